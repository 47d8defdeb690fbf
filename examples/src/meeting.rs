//! `nabij meeting`: a neighbourhood network meets, over real QUIC on this machine.
//!
//! Several device stores (one per worker) join the network at a first meeting, then work
//! offline for a week: each writes cases and notes, and two of them change the same note
//! without knowing of each other. At the casusbespreking the host's phone listens; everyone
//! syncs with it at once over QUIC on loopback, with pinned device keys. The demo then checks
//! that every device holds the same documents with the same heads and shows what the merged
//! note says, with timings and bytes.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use nabij_core::{
    Device, DocId, NoteId,
    model::{NewCase, NewNote, NoteKind},
    net::{self, ListenOptions, NetError, SyncOptions, SyncReport, Ticket},
    sync::session::digest,
};
use serde_json::json;

use crate::{
    args::MeetingArgs,
    commands::print,
    error::{CliError, Result},
    meet::{bytes, millis, report_json, runtime},
    text::{self, short},
};

const NETWORK: &str = "Wijknetwerk Oost";
const NAMES: [&str; 5] = [
    "Fatima Amrani (wijkwerker)",
    "Joost de Vries (buurtpastor)",
    "Sem Bakker (jongerenwerker)",
    "Marleen Kok (POH huisartsenpraktijk)",
    "Ruud Jansen (woonconsulent)",
];

/// Offline work: subjects and the notes written about them.
const SUBJECTS: [&str; 6] = [
    "Meneer D. (81)",
    "K. (17), buurthuis De Kroon",
    "Gezin B., schulden",
    "Mevrouw A., net verhuisd",
    "J. (12), verzuim",
    "Buren Populierstraat",
];
const NOTES: [&str; 4] = [
    "Huisbezoek: koffie gedronken, de post lag ongeopend op tafel.",
    "Samen gebeld met de woningcorporatie over de achterstand.",
    "Wil zelf niet naar de huisarts; buurvrouw haalt de recepten.",
    "Afspraak gemaakt om volgende week samen naar het wijkcentrum te gaan.",
];

struct Worker {
    name: String,
    dev: Arc<Device>,
}

fn first_name(full: &str) -> &str {
    full.split_whitespace().next().unwrap_or(full)
}

/// Every document with its heads, and one fingerprint of all of them.
fn fingerprint(d: &Device) -> Result<(usize, String)> {
    let mut inv = Vec::new();
    for (id, _) in d.document_ids()? {
        inv.push((id, d.heads(id)?.iter().map(|h| h.0).collect::<Vec<[u8; 32]>>()));
    }
    let fp = digest(&inv);
    Ok((inv.len(), fp[..6].iter().map(|b| format!("{b:02x}")).collect()))
}

async fn sync_all(workers: &[Worker], ticket: &Ticket) -> Result<Vec<(usize, SyncReport)>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, w) in workers.iter().enumerate().skip(1) {
        let (dev, ticket) = (w.dev.clone(), ticket.clone());
        set.spawn(async move { (i, net::sync_with(dev, &ticket, SyncOptions::default()).await) });
    }
    let mut reports = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| CliError::failure(format!("sync task failed: {e}")))?;
        let name = first_name(&workers[i].name);
        reports.push((i, r.map_err(|e| CliError::from(e).context(name))?));
    }
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports)
}

fn loopback() -> ListenOptions {
    ListenOptions { bind: SocketAddr::from(([127, 0, 0, 1], 0)), ..ListenOptions::default() }
}

/// The demo.
pub(crate) fn run(args: MeetingArgs, json: bool) -> Result<()> {
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "nabij-meeting-{}-{}",
                std::process::id(),
                text::now_ms()
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::storage(format!("cannot create {}: {e}", dir.display())))?;
    let result = meeting(&args, &dir, json);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn open_workers(n: usize, dir: &Path) -> Result<Vec<Worker>> {
    let mut workers = Vec::new();
    for i in 0..n {
        let name = match NAMES.get(i) {
            Some(name) => (*name).to_string(),
            None => format!("Collega{} (vrijwilliger)", i + 1),
        };
        let file = format!("{}.db", first_name(&name).to_lowercase());
        let path: PathBuf = dir.join(file);
        if path.exists() {
            return Err(CliError::invalid(format!(
                "{} already exists; the meeting demo needs an empty folder",
                path.display()
            )));
        }
        let dev = Device::open(&path)
            .map_err(|e| CliError::from(e).context(format!("store {}", path.display())))?;
        dev.set_display_name(&name)?;
        workers.push(Worker { name, dev: Arc::new(dev) });
    }
    Ok(workers)
}

struct Out {
    json: bool,
}

impl Out {
    fn say(&self, s: &str) -> Result<()> {
        if self.json { Ok(()) } else { print(s) }
    }
}

#[allow(clippy::too_many_lines)]
fn meeting(args: &MeetingArgs, dir: &Path, json: bool) -> Result<()> {
    let out = Out { json };
    let workers = open_workers(usize::from(args.devices), dir)?;
    let host = &workers[0];
    let rt = runtime()?;

    // --- A month ago: the network is started and everyone joins at a first meeting.
    let network = host.dev.create_network(NETWORK)?;
    for w in &workers[1..] {
        let invitation =
            host.dev.invite(network, w.dev.member_id(), &w.name, w.dev.device_key())?;
        w.dev.join(&invitation)?;
    }
    let shared = host.dev.create_case(NewCase {
        subject: "Moeder R. en dochter L. (15)".into(),
        tags: vec!["school".into(), "hygiëne".into()],
        at_stake: "Dat L. niet meer nagewezen wordt en moeder zich geen slechte moeder voelt."
            .into(),
        networks: vec![network],
        ..NewCase::default()
    })?;
    let plan = host.dev.add_note(
        shared,
        NewNote {
            kind: NoteKind::Agreement,
            text: "Plan: kleding die heet wassen overleeft, via kledingbank Oost.".into(),
        },
    )?;
    out.say(&format!(
        "{} workers, one store each, in {}\n\nA month ago: {} starts \"{NETWORK}\" and adds \
         everyone; at the first meeting each phone joins over QUIC.\n",
        workers.len(),
        dir.display(),
        first_name(&host.name)
    ))?;
    let joined = rt.block_on(async {
        let listener = net::listen(host.dev.clone(), loopback()).await?;
        let ticket = Ticket::parse(&listener.ticket().encode()).map_err(NetError::from)?;
        let r = sync_all(&workers, &ticket).await;
        listener.close().await;
        r
    })?;
    for (i, r) in &joined {
        out.say(&format!(
            "  {:<8} joined: {} received ({}) in {}\n",
            first_name(&workers[*i].name),
            text::plural(r.documents_received, "document", "documents"),
            bytes(r.bytes_received),
            millis(r.duration)
        ))?;
    }

    // --- The week offline.
    out.say("\nThe week in between, offline (no network at all):\n")?;
    let mut written = 0usize;
    for (i, w) in workers.iter().enumerate() {
        let mut notes = 0;
        for c in 0..usize::from(args.cases) {
            let subject = SUBJECTS[(i + c) % SUBJECTS.len()];
            let case = w.dev.create_case(NewCase {
                subject: format!("{subject} ({})", first_name(&w.name)),
                tags: vec!["wijk-oost".into()],
                networks: vec![network],
                ..NewCase::default()
            })?;
            let batch: Vec<NewNote> = (0..3)
                .map(|n| NewNote {
                    kind: NoteKind::Observation,
                    text: NOTES[(i + c + n) % NOTES.len()].to_string(),
                })
                .collect();
            notes += batch.len();
            w.dev.add_notes(case, batch)?;
        }
        w.dev.add_note(
            shared,
            NewNote {
                kind: NoteKind::Observation,
                text: format!(
                    "{} sprak L. deze week; het gaat beter op school.",
                    first_name(&w.name)
                ),
            },
        )?;
        written += usize::from(args.cases) + notes + 1;
        out.say(&format!(
            "  {:<8} wrote {} with {notes} notes, and a note in the shared case\n",
            first_name(&w.name),
            text::plural(usize::from(args.cases), "case", "cases"),
        ))?;
    }
    // Two workers change the same note, each unaware of the other.
    let (a, b) = (&workers[1], &workers[workers.len() - 1]);
    concurrent_edit(&a.dev, &b.dev, shared, plan)?;
    out.say(&format!(
        "  {} and {} both changed the plan note, each on their own phone.\n",
        first_name(&a.name),
        first_name(&b.name)
    ))?;

    // --- The casusbespreking: everyone syncs with the host at once.
    let started = Instant::now();
    let (ticket, rounds) = rt.block_on(async {
        let listener = net::listen(host.dev.clone(), loopback()).await?;
        let ticket = listener.ticket().encode();
        let parsed = Ticket::parse(&ticket).map_err(NetError::from)?;
        // Everyone at once; then once more, so those who finished early also get what the
        // last ones brought. (A phone that stays connected gets it live; the demo ends.)
        let first = sync_all(&workers, &parsed).await?;
        let second = sync_all(&workers, &parsed).await?;
        listener.close().await;
        Ok::<_, CliError>((ticket, vec![first, second]))
    })?;
    let took = started.elapsed();
    out.say(&format!(
        "\nThe casusbespreking: {} listens on 127.0.0.1 with ticket\n  {}\nand everyone syncs \
         with it at once (device keys pinned in the TLS handshake):\n",
        first_name(&host.name),
        ticket
    ))?;
    let mut total = 0u64;
    for (round, reports) in rounds.iter().enumerate() {
        for (i, r) in reports {
            total += r.wire_bytes_sent + r.wire_bytes_received;
            out.say(&format!(
                "  round {} {:<8} sent {:>2} docs ({:>8}), received {:>2} docs ({:>8}) in {:>4} ms\n",
                round + 1,
                first_name(&workers[*i].name),
                r.documents_sent,
                bytes(r.bytes_sent),
                r.documents_received,
                bytes(r.bytes_received),
                r.duration.as_millis()
            ))?;
        }
    }

    // --- Did everyone converge?
    let mut prints = Vec::new();
    for w in &workers {
        prints.push(fingerprint(&w.dev)?);
    }
    let converged = prints.iter().all(|p| *p == prints[0]);
    out.say(&format!(
        "\nAfter the meeting ({} in total, {} on the wire):\n",
        millis(took),
        bytes(total)
    ))?;
    for (w, (n, fp)) in workers.iter().zip(&prints) {
        out.say(&format!(
            "  {:<8} {n} documents, fingerprint {fp} {}\n",
            first_name(&w.name),
            if *fp == prints[0].1 { "✓" } else { "✗ differs" }
        ))?;
    }
    let merged = host.dev.note(shared, plan)?.text;
    let timeline = host.dev.case_timeline(shared)?.len();
    out.say(&format!(
        "\nThe plan note, both changes kept:\n  \"{merged}\"\nThe shared case now has {timeline} \
         notes, one from every worker. {written} things written offline; none lost.\n"
    ))?;
    if json {
        let devices: Vec<_> = workers
            .iter()
            .zip(&prints)
            .map(|(w, (n, fp))| {
                json!({ "name": w.name, "device_key": w.dev.device_key().to_string(),
                        "documents": n, "fingerprint": fp })
            })
            .collect();
        let rounds: Vec<Vec<_>> =
            rounds.iter().map(|r| r.iter().map(|(_, r)| report_json(r)).collect()).collect();
        print(&format!(
            "{}\n",
            json!({
                "network": network.to_string(),
                "devices": devices,
                "rounds": rounds,
                "converged": converged,
                "meeting_ms": took.as_millis() as u64,
                "wire_bytes": total,
                "merged_note": merged,
                "shared_case_notes": timeline,
                "ticket": ticket,
            })
        ))?;
    }
    if !converged {
        return Err(CliError::failure("the devices did not converge"));
    }
    out.say(&format!("\nEvery device converged. (Device keys: {}.)\n", {
        let keys: Vec<String> = workers.iter().map(|w| short(w.dev.device_key())).collect();
        keys.join(", ")
    }))
}

/// Two phones change one note concurrently: one adds a date, the other a place.
fn concurrent_edit(a: &Device, b: &Device, case: DocId, note: NoteId) -> Result<()> {
    let text = a.note(case, note)?.text;
    let before = text.trim_end_matches('.').chars().count() as u32;
    a.splice_note(case, note, before, 0, ", vóór 1 december")?;
    let at = text.find("kledingbank").map_or(0, |i| text[..i].chars().count() as u32);
    b.splice_note(case, note, at, 0, "de ")?;
    Ok(())
}
