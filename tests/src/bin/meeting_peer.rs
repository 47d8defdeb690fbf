//! Child process for the network-namespace tests: one device, listening or syncing, run with
//! `ip netns exec` so its sockets live in a namespace the test made.
//!
//! Usage:
//! - `meeting_peer listen STORE BIND TICKET_FILE SESSIONS`: listens on BIND, writes the ticket
//!   to TICKET_FILE, serves SESSIONS sessions, prints `served ok|error …` for each (and
//!   `dropped attempt …` for each handshake the guest gave up for a fresher one).
//! - `meeting_peer sync STORE TICKET [CONNECT_TIMEOUT_MS]`: syncs once, prints
//!   `report <received> <sent> <ms>`.
//!
//! Exit code 0 when every session succeeded, 1 otherwise, 2 on bad usage.

use std::{io::Write, sync::Arc};

use nabij_core::{
    Device, DeviceOptions,
    net::{self, ListenOptions, SyncOptions, Ticket},
};

fn fail(msg: &str, code: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "meeting_peer: {msg}");
    std::process::exit(code)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| fail("usage", 2));
    let store = arg(2);
    // The scenario tests' stores are encrypted with their one test key.
    let options = DeviceOptions { key: Some(nabij_tests::store_key()), ..Default::default() };
    let device = match Device::open_with(store, options) {
        Ok(d) => Arc::new(d),
        Err(e) => fail(&format!("open {store}: {e}"), 1),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}"), 1));
    let ok = match arg(1) {
        "listen" => {
            let bind = arg(3).parse().unwrap_or_else(|_| fail("bad bind address", 2));
            let (ticket_file, sessions) = (arg(4), arg(5));
            let sessions: usize = sessions.parse().unwrap_or_else(|_| fail("bad count", 2));
            rt.block_on(async {
                let options = ListenOptions { bind, ..ListenOptions::default() };
                let mut listener = net::listen(device, options)
                    .await
                    .unwrap_or_else(|e| fail(&format!("listen: {e}"), 1));
                let ticket = listener.ticket().encode();
                // Written whole, then renamed: the test never reads half a ticket.
                let tmp = format!("{ticket_file}.tmp");
                std::fs::write(&tmp, &ticket)
                    .and_then(|()| std::fs::rename(&tmp, ticket_file))
                    .unwrap_or_else(|e| fail(&format!("ticket file: {e}"), 1));
                let mut ok = true;
                let mut served = 0;
                while served < sessions {
                    let Some(s) = listener.next_session().await else { break };
                    // A handshake that never completed is an attempt the guest dropped for a
                    // fresher one (a lossy link), not a session.
                    if s.peer.is_none() {
                        println!("dropped attempt {:?}", s.result.err());
                        continue;
                    }
                    served += 1;
                    match s.result {
                        Ok(r) => {
                            println!("served ok {} {}", r.documents_sent, r.documents_received)
                        }
                        Err(e) => {
                            ok = false;
                            println!("served error {e}");
                        }
                    }
                }
                listener.close().await;
                ok
            })
        }
        "sync" => {
            let ticket = Ticket::parse(arg(3)).unwrap_or_else(|e| fail(&e.to_string(), 2));
            let connect_timeout = args.get(4).map(|ms| {
                std::time::Duration::from_millis(
                    ms.parse().unwrap_or_else(|_| fail("bad connect timeout", 2)),
                )
            });
            let options = SyncOptions { connect_timeout, ..SyncOptions::default() };
            match rt.block_on(net::sync_with(device, &ticket, options)) {
                Ok(r) => {
                    println!(
                        "report {} {} {}",
                        r.documents_received,
                        r.documents_sent,
                        r.duration.as_millis()
                    );
                    true
                }
                Err(e) => {
                    println!("error {e}");
                    false
                }
            }
        }
        _ => fail("usage: meeting_peer listen|sync …", 2),
    };
    let _ = std::io::stdout().flush();
    std::process::exit(if ok { 0 } else { 1 });
}
