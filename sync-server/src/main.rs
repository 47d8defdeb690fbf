//! `nabij-relay`: runs the Nabij relay (see `nabij_sync_server::cli`).

fn main() -> std::process::ExitCode {
    nabij_sync_server::cli::main()
}
