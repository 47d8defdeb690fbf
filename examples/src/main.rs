//! `nabij`: one Nabij device in a terminal.
//!
//! `nabij --store FILE <command>` works on the store in FILE (default `$NABIJ_STORE`, else
//! `./nabij.db`): cases and their notes, learning points, meetings, networks, search and
//! history. Output is for people by default and one JSON value with `--json`. Errors are one
//! line on stderr and an exit code: 2 invalid input, 3 not found, 4 storage, 5 not
//! allowed, 1 anything else.
//! `nabij demo` seeds a store with a day in a neighbourhood network and shows it.

mod args;
mod at_rest;
mod commands;
mod demo;
mod error;
mod meet;
mod meeting;
mod relay;
mod resolve;
mod text;
mod view;

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::Parser;

use crate::{
    args::{Cli, Command, DemoCmd, KeyCmd},
    commands::App,
    error::{CliError, Result},
};

fn store_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.store {
        return p.clone();
    }
    match std::env::var_os("NABIJ_STORE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("nabij.db"),
    }
}

fn run(cli: Cli) -> Result<()> {
    let width = text::width();
    if let Command::Key(KeyCmd::New { out }) = &cli.command {
        return at_rest::new_key(out, cli.json);
    }
    let key = at_rest::store_key(cli.key_file.as_deref())?;
    match cli.command {
        Command::Demo { which: None } => return demo::run(cli.store, key, cli.json, width),
        Command::Demo { which: Some(DemoCmd::Meeting(args)) } => {
            return meeting::run(args, cli.json);
        }
        _ => {}
    }
    let store = store_path(&cli);
    if let Command::MigrateEncrypt = cli.command {
        return at_rest::migrate_encrypt(&store, key, cli.json);
    }
    let dev = commands::open(&store, commands::may_create(&cli.command), key)?;
    match cli.command {
        Command::Rekey { new_key_file } => {
            return at_rest::rekey(&dev, &store, &new_key_file, cli.json);
        }
        Command::Card => return meet::card(&dev, cli.json),
        Command::Listen(args) => return meet::listen(dev, &store, args, cli.json),
        Command::Sync { ticket } => return meet::sync(dev, &ticket, cli.json),
        Command::RelaySync(args) => return relay::sync(dev, args, cli.json),
        _ => {}
    }
    let app = App { dev, json: cli.json, store, width };
    app.run(cli.command)
}

fn report(e: &CliError, json: bool) {
    let line = if json {
        serde_json::json!({
            "error": e.code.name(),
            "message": e.message,
            "exit_code": e.code.number(),
        })
        .to_string()
    } else {
        format!("nabij: {}", e.message)
    };
    // Not eprintln!: a closed stderr must not turn an error into a panic.
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, json);
            e.code.exit_code()
        }
    }
}
