//! `nabij relay-sync`: sync through a relay from a terminal, once or (`--watch`) for as long
//! as the command runs.

use std::{sync::Arc, time::Duration};

use nabij_core::{
    Device,
    net::{self, NetError, RelayProgress, RelayProgressFn, RelaySyncOptions, RelaySyncReport},
    relay::parse_relay_key,
};
use serde_json::json;

use crate::{
    args::RelaySyncArgs,
    commands::print,
    error::{CliError, Result},
    meet::{bytes, millis, progress_bar, runtime},
    text,
};

fn report_json(r: &RelaySyncReport) -> serde_json::Value {
    let rep = &r.report;
    json!({
        "networks": rep.networks,
        "rosters_registered": rep.rosters_registered,
        "blobs_pushed": rep.blobs_pushed,
        "bytes_pushed": rep.bytes_pushed,
        "blobs_pulled": rep.blobs_pulled,
        "bytes_pulled": rep.bytes_pulled,
        "documents_changed": rep.documents_changed,
        "blobs_deleted": rep.blobs_deleted,
        "rejected": rep.rejected.iter().map(|b| json!({"seq": b.seq, "reason": b.reason})).collect::<Vec<_>>(),
        "refusals": rep.refusals.iter().map(|f| json!({"request": f.request, "reason": f.reason.to_string(), "detail": f.detail})).collect::<Vec<_>>(),
        "bytes_sent": r.bytes_sent,
        "bytes_received": r.bytes_received,
        "duration_ms": r.duration.as_millis() as u64,
    })
}

fn report_text(r: &RelaySyncReport) -> String {
    let rep = &r.report;
    let mut out = format!(
        "Synced with the relay in {}: {} pushed ({}), {} pulled ({}), {} changed here, {}.\n",
        millis(r.duration),
        text::plural(rep.blobs_pushed, "blob", "blobs"),
        bytes(rep.bytes_pushed),
        text::plural(rep.blobs_pulled, "blob", "blobs"),
        bytes(rep.bytes_pulled),
        text::plural(rep.documents_changed, "document", "documents"),
        text::plural(rep.networks, "network", "networks"),
    );
    if rep.blobs_deleted > 0 {
        out.push_str(&format!(
            "  deleted at the relay: {} of erased or unshared documents\n",
            text::plural(rep.blobs_deleted as usize, "blob", "blobs")
        ));
    }
    for b in &rep.rejected {
        out.push_str(&format!("  not applied: blob {} ({})\n", b.seq, b.reason));
    }
    for f in &rep.refusals {
        out.push_str(&format!(
            "  refused by the relay: {} ({}: {})\n",
            f.request, f.reason, f.detail
        ));
    }
    out
}

pub(crate) fn sync(dev: Device, args: RelaySyncArgs, json: bool) -> Result<()> {
    let key = parse_relay_key(&args.key).map_err(|e| CliError::invalid(e.to_string()))?;
    let dev = Arc::new(dev);
    let rt = runtime()?;
    if let Some(every) = args.watch {
        let every = Duration::from_secs(every.max(1));
        return rt.block_on(async move {
            let on_sync: net::OnRelaySync =
                Arc::new(move |r: &std::result::Result<RelaySyncReport, NetError>| {
                    let line = match r {
                        Ok(r) if json => format!("{}\n", report_json(r)),
                        Ok(r) => report_text(r),
                        Err(e) => format!("relay sync failed (retrying): {e}\n"),
                    };
                    let _ = print(&line);
                });
            let looped = net::spawn_relay_loop(
                dev,
                args.relay,
                key,
                Duration::from_secs(2),
                every,
                Some(on_sync),
            );
            let _ = tokio::signal::ctrl_c().await;
            looped.stop().await;
            Ok(())
        });
    }
    let bar = progress_bar(json, format!("syncing with the relay at {}", args.relay));
    let progress_bar = bar.clone();
    let progress: RelayProgressFn = Arc::new(move |p: &RelayProgress| {
        progress_bar.set_length(p.docs_total as u64);
        progress_bar.set_position(p.docs_done as u64);
    });
    let result = rt.block_on(net::sync_with_relay(
        dev,
        &args.relay,
        key,
        RelaySyncOptions { progress: Some(progress), ..RelaySyncOptions::default() },
    ));
    bar.finish_and_clear();
    let report = result?;
    if json {
        return print(&format!("{}\n", report_json(&report)));
    }
    print(&report_text(&report))
}
