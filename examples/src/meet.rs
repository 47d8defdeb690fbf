//! `nabij card`, `nabij listen` and `nabij sync`: meeting sync from a terminal.
//!
//! The listening device shows a ticket (and a QR code of it); the others sync with the ticket.
//! A new device shows its card, a member adds it with `nabij network add-member --card`, and
//! at its first sync the device receives the network and its documents.

use std::{
    io::IsTerminal,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use nabij_core::{
    Device,
    net::{self, DeviceCard, ListenOptions, NetError, SyncOptions, SyncReport, Ticket},
    sync::SyncError,
};
use serde_json::json;

use crate::{
    args::ListenArgs,
    commands::print,
    error::{CliError, Result},
    resolve,
    text::{self, short},
};

impl From<NetError> for CliError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Ticket(e) => CliError::invalid(e.to_string()),
            NetError::Sync(SyncError::Storage(m)) => CliError::storage(m),
            e => CliError::failure(e.to_string()),
        }
    }
}

/// A runtime for the network tasks: two workers are plenty for a phone-sized meeting.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the network runtime: {e}")))
}

/// Bytes for people: 812 B, 12.4 kB, 3.1 MB.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n < 1_000 => format!("{n} B"),
        n if n < 1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{:.1} MB", n as f64 / 1e6),
    }
}

pub(crate) fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The report as JSON.
pub(crate) fn report_json(r: &SyncReport) -> serde_json::Value {
    json!({
        "peer": r.peer.to_string(),
        "documents_sent": r.documents_sent,
        "documents_received": r.documents_received,
        "documents_refused": r.documents_refused,
        "documents_refused_by_peer": r.documents_refused_by_peer,
        "bytes_sent": r.bytes_sent,
        "bytes_received": r.bytes_received,
        "wire_bytes_sent": r.wire_bytes_sent,
        "wire_bytes_received": r.wire_bytes_received,
        "duration_ms": r.duration.as_millis() as u64,
    })
}

/// One line about a finished sync.
pub(crate) fn report_line(who: &str, r: &SyncReport) -> String {
    // Said only when it happened: a refused document is worth a look at the log.
    let refused = match (r.documents_refused, r.documents_refused_by_peer) {
        (0, 0) => String::new(),
        (here, there) => format!("; refused: {here} here, {there} by the other device"),
    };
    format!(
        "{who}: {} received, {} sent; {} in, {} out; {}{refused}",
        text::plural(r.documents_received, "document", "documents"),
        r.documents_sent,
        bytes(r.bytes_received),
        bytes(r.bytes_sent),
        millis(r.duration)
    )
}

/// The name a roster on this device gives `peer`, else its short key.
fn peer_name(dev: &Device, peer: &nabij_core::DeviceKey) -> String {
    let found = dev.list_networks().ok().and_then(|nets| {
        nets.iter().find_map(|n| {
            let net = dev.network(n.id).ok()?;
            net.members.iter().find(|m| m.devices.contains(peer)).map(|m| m.name.clone())
        })
    });
    match found {
        Some(name) => format!("{name} (device {})", short(peer)),
        None => format!("device {}", short(peer)),
    }
}

/// A QR code of `s` for a terminal (two rows per line).
pub(crate) fn qr(s: &str) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(s.as_bytes())
        .map_err(|e| CliError::failure(format!("cannot make a QR code: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// `nabij card`.
pub(crate) fn card(dev: &Device, json: bool) -> Result<()> {
    let card = DeviceCard::of(dev);
    if json {
        return print(&format!(
            "{}\n",
            json!({ "card": card.encode(), "device_key": card.device, "member_id": card.member,
                    "display_name": card.name })
        ));
    }
    print(&format!(
        "{}\n\n{}\n{}\nA member adds this device with:\n  nabij network add-member NETWORK --card {}\n",
        card.name,
        card.encode(),
        qr(&card.encode())?,
        card.encode()
    ))
}

/// `nabij listen`.
pub(crate) fn listen(dev: Device, store: &Path, args: ListenArgs, json: bool) -> Result<()> {
    let network = args.network.as_deref().map(|n| resolve::network(&dev, n)).transpose()?;
    let dev = Arc::new(dev);
    let rt = runtime()?;
    rt.block_on(async {
        let options = ListenOptions { bind: args.bind, network, ..ListenOptions::default() };
        let mut listener = net::listen(dev.clone(), options).await?;
        let ticket = listener.ticket().encode();
        if let Some(f) = &args.ticket_file {
            std::fs::write(f, format!("{ticket}\n"))
                .map_err(|e| CliError::failure(format!("cannot write {}: {e}", f.display())))?;
        }
        if !json {
            let addrs: Vec<String> =
                listener.ticket().addrs.iter().map(ToString::to_string).collect();
            let mut s = format!(
                "{} listens on {} (store {})\n\nTicket:\n{ticket}\n",
                dev.display_name(),
                addrs.join(", "),
                store.display()
            );
            if !args.no_qr {
                s.push('\n');
                s.push_str(&qr(&ticket)?);
                s.push('\n');
            }
            s.push_str("\nColleagues run `nabij sync TICKET`. Ctrl-C stops.\n");
            print(&s)?;
        }
        let mut served = Vec::new();
        loop {
            if args.sessions.is_some_and(|n| served.len() >= n) {
                break;
            }
            let next = tokio::select! {
                s = listener.next_session() => s,
                _ = tokio::signal::ctrl_c() => None,
            };
            let Some(s) = next else { break };
            // A handshake that never completed (a guest on a lossy link gives one up for a
            // fresher one; a device no shared network lists is refused in it) is no session.
            let Some(peer) = s.peer else {
                if let (Err(e), false) = (&s.result, json) {
                    print(&format!("· a handshake did not complete: {e}\n"))?;
                }
                continue;
            };
            let who = peer_name(&dev, &peer);
            match &s.result {
                Ok(r) if !json => print(&format!("✓ {}\n", report_line(&who, r)))?,
                Err(e) if !json => print(&format!("✗ {who}: {e}\n"))?,
                _ => {}
            }
            served.push(match s.result {
                Ok(r) => report_json(&r),
                Err(e) => json!({ "peer": peer.to_string(), "error": e.to_string() }),
            });
        }
        listener.close().await;
        if json {
            print(&format!("{}\n", json!({ "ticket": ticket, "sessions": served })))?;
        }
        Ok(())
    })
}

/// A documents progress bar on stderr (hidden for `--json` or when stderr is not a terminal).
pub(crate) fn progress_bar(json: bool, message: String) -> ProgressBar {
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} documents")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// `nabij sync TICKET`.
pub(crate) fn sync(dev: Device, ticket: &str, json: bool) -> Result<()> {
    let ticket = Ticket::parse(ticket).map_err(|e| CliError::invalid(e.to_string()))?;
    let dev = Arc::new(dev);
    let bar = progress_bar(json, format!("syncing with device {}", short(ticket.device)));
    let progress_bar = bar.clone();
    let progress: net::ProgressFn = Arc::new(move |p: &net::Progress| {
        progress_bar.set_length(p.docs_total as u64);
        progress_bar.set_position(p.docs_done as u64);
    });
    let started = Instant::now();
    let result = runtime()?.block_on(net::sync_with(
        dev.clone(),
        &ticket,
        SyncOptions { progress: Some(progress), ..SyncOptions::default() },
    ));
    bar.finish_and_clear();
    let report = result?;
    if json {
        return print(&format!("{}\n", report_json(&report)));
    }
    let who = peer_name(&dev, &report.peer);
    print(&format!(
        "Synced with {who} in {}.\n  {}\n",
        millis(started.elapsed()),
        report_line("this device", &report)
    ))
}
