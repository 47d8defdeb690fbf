//! Reaching a peer: QUIC handshakes to each of its addresses, started afresh every few
//! seconds until one completes or the caller's bound runs out.
//!
//! Why not one handshake per address: QUIC doubles its probe timeout after every lost flight,
//! so on a lossy link one handshake that lost a few flights in a row waits 5, 10, 20 s before
//! it tries again, and a 20 s bound then holds only six tries, the last ones far apart. A
//! fresh attempt starts from the short probe timeout again. On a good link the first attempt
//! completes in milliseconds and no second one starts.
//!
//! Owns the attempts and their timing; knows nothing of what the connection then carries.

use std::{net::SocketAddr, time::Duration};

use tokio::{task::JoinSet, time::Instant};

use super::NetError;

/// How long an attempt runs alone before a fresh one joins it (about four probe timeouts at
/// the 100 ms initial round trip the transport assumes: 0.3 + 0.6 + 1.2 + 2.4 s).
const FRESH_ATTEMPT_EVERY: Duration = Duration::from_millis(4_500);

/// Connects to the first of `targets` (an endpoint and the address to reach from it) whose
/// handshake completes within `bound`. A target that answers with a refusal (or whose
/// address the endpoint cannot use) gets no further attempts; the others are tried afresh
/// every [`FRESH_ATTEMPT_EVERY`]. The attempts that lose are dropped, which closes them.
pub(super) async fn first_handshake(
    targets: &[(quinn::Endpoint, SocketAddr)],
    config: &quinn::ClientConfig,
    server_name: &str,
    bound: Duration,
) -> Result<quinn::Connection, NetError> {
    let deadline = Instant::now() + bound;
    let mut worth_trying = vec![true; targets.len()];
    let mut attempts = JoinSet::new();
    let mut last = NetError::Connect("no address to connect to".into());
    let mut next_round = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_round && now < deadline {
            for (i, (endpoint, addr)) in targets.iter().enumerate() {
                if !worth_trying[i] {
                    continue;
                }
                match endpoint.connect_with(config.clone(), *addr, server_name) {
                    Ok(connecting) => {
                        attempts.spawn(async move {
                            (i, tokio::time::timeout_at(deadline, connecting).await)
                        });
                    }
                    Err(e) => {
                        worth_trying[i] = false;
                        last = NetError::Connect(format!("{addr}: {e}"));
                    }
                }
            }
            next_round += FRESH_ATTEMPT_EVERY;
        }
        let more_rounds = next_round < deadline && worth_trying.iter().any(|w| *w);
        if attempts.is_empty() && !more_rounds {
            return Err(last);
        }
        tokio::select! {
            joined = attempts.join_next(), if !attempts.is_empty() => match joined {
                Some(Ok((_, Ok(Ok(conn))))) => {
                    // The others are dropped, which closes them.
                    attempts.abort_all();
                    return Ok(conn);
                }
                Some(Ok((i, Ok(Err(e))))) => {
                    worth_trying[i] = false;
                    last = super::driver::connect_error(e);
                }
                Some(Ok((i, Err(_)))) => {
                    last = NetError::Timeout(format!("no answer from {}", targets[i].1));
                }
                Some(Err(e)) => last = NetError::Internal(e.to_string()),
                None => {}
            },
            () = tokio::time::sleep_until(next_round), if more_rounds => {}
        }
    }
}
