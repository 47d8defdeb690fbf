//! Human output: what a worker reads in a terminal. Compact, one screen where possible, ids
//! shortened to the 8 characters every command accepts back.

use std::{collections::HashMap, fmt::Write as _};

use nabij_core::{
    DeviceKey, DocId,
    device::HistoryEntry,
    model::{
        Agreement, Case, CaseSummary, Conflict, ConsentStatus, HitKind, LearningPoint,
        LearningPointSummary, Meeting, MeetingContents, MeetingSummary, Network, NetworkSummary,
        Note, PerspectiveKind, SearchHit,
    },
};

use crate::text::{datetime, plural, short, truncate, wrap, wrap_max};

/// How much of a case to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Everything (`case show`).
    Full,
    /// The essentials and the timeline, notes cut to two lines (the demo).
    Compact,
}

/// Names of networks, cases and meetings, to show instead of bare ids.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub(crate) networks: HashMap<DocId, String>,
    pub(crate) cases: HashMap<DocId, String>,
    pub(crate) meetings: HashMap<DocId, String>,
}

impl Names {
    fn network(&self, id: &DocId) -> String {
        self.networks.get(id).cloned().unwrap_or_else(|| format!("network {}", short(id)))
    }
    fn case(&self, id: &DocId) -> String {
        match self.cases.get(id) {
            Some(s) => format!("{}  {s}", short(id)),
            None => format!("{}  (case not on this device)", short(id)),
        }
    }
    fn meeting(&self, id: &DocId) -> String {
        match self.meetings.get(id) {
            Some(s) => format!("{s} · meeting {}", short(id)),
            None => format!("meeting {}", short(id)),
        }
    }
}

fn heading(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}");
}

fn block(out: &mut String, title: &str, text: &str, width: usize) {
    if text.trim().is_empty() {
        return;
    }
    heading(out, title);
    for l in wrap(text, 2, width) {
        let _ = writeln!(out, "{l}");
    }
}

fn tags(tags: &[String]) -> String {
    tags.iter().map(|t| format!("#{t}")).collect::<Vec<_>>().join(" ")
}

/// Conflicts worth showing: more than one distinct value.
fn real_conflicts(conflicts: &[Conflict]) -> Vec<&Conflict> {
    conflicts.iter().filter(|c| c.values.len() > 1).collect()
}

fn conflicts_block(out: &mut String, conflicts: &[Conflict], width: usize) {
    for c in real_conflicts(conflicts) {
        let _ = writeln!(
            out,
            "\n!! {} was changed on two devices at once; both values are kept:",
            c.field
        );
        for (i, v) in c.values.iter().enumerate() {
            let mark = if i == 0 { "   (shown as current)" } else { "" };
            let line = format!("“{}”{mark}", truncate(v, width.saturating_sub(12)));
            let _ = writeln!(out, "!!   {line}");
        }
        let _ = writeln!(out, "!! Agree on one and set it again.");
    }
}

fn agreement_line(a: &Agreement) -> String {
    let mut s = format!("  [{}] {}  {}", if a.done { "x" } else { " " }, short(a.id), a.text);
    if !a.owner.is_empty() {
        let _ = write!(s, " — {}", a.owner);
    }
    if let Some(d) = &a.due {
        let _ = write!(s, " · due {d}");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Cases

pub(crate) fn case_list(cases: &[CaseSummary], width: usize) -> String {
    if cases.is_empty() {
        return "No cases. Start one with `nabij case create --subject …`.\n".into();
    }
    let mut out = String::new();
    let subjects: Vec<String> = cases
        .iter()
        .map(|c| {
            let s = truncate(&c.subject, 34);
            if c.has_conflicts { format!("{s} (!)") } else { s }
        })
        .collect();
    let col = subjects.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(7);
    // Tags only where the terminal has room for them.
    let room = width.saturating_sub(46 + col);
    let show_tags = room >= 16;
    let _ = writeln!(
        out,
        "  {:<8}  {:<6}  {:<16}  {:>5}  {}",
        "ID",
        "STATUS",
        "LAST ACTIVITY",
        "NOTES",
        if show_tags { format!("{:<col$}  TAGS", "SUBJECT") } else { "SUBJECT".into() }
    );
    for (c, subject) in cases.iter().zip(&subjects) {
        let _ = writeln!(
            out,
            "  {:<8}  {:<6}  {:<16}  {:>5}  {}",
            short(c.id),
            c.status.as_str(),
            datetime(c.last_activity),
            c.note_count,
            if show_tags {
                format!("{subject:<col$}  {}", truncate(&tags(&c.tags), room))
            } else {
                subject.clone()
            }
        );
    }
    if cases.iter().any(|c| c.has_conflicts) {
        let _ = writeln!(out, "  (!) concurrent edits to look at: `nabij case show ID`");
    }
    out
}

fn note_kind_label(n: &Note) -> &'static str {
    match n.kind {
        nabij_core::model::NoteKind::Observation => "observation",
        nabij_core::model::NoteKind::Reflection => "reflection",
        nabij_core::model::NoteKind::Agreement => "agreement",
        nabij_core::model::NoteKind::Question => "question",
    }
}

/// One note in a timeline: a header line and the text, indented.
pub(crate) fn note_entry(n: &Note, width: usize, max_lines: Option<usize>) -> String {
    let mut out = String::new();
    let edited = if n.edited_at > n.created_at + 60_000 {
        let (created, edited) = (datetime(n.created_at), datetime(n.edited_at));
        match edited.strip_prefix(&created[..11]) {
            Some(time) => format!(" · edited {time}"),
            None => format!(" · edited {edited}"),
        }
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  {}  {:<11}  {}  · note {}{edited}",
        datetime(n.created_at),
        note_kind_label(n),
        n.author.name,
        short(n.id)
    );
    let lines = match max_lines {
        Some(m) => wrap_max(&n.text, 6, width, m),
        None => wrap(&n.text, 6, width),
    };
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

pub(crate) fn note_full(n: &Note, case_subject: &str, width: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Note {} in case {}  {case_subject}", short(n.id), short(n.case_id));
    let _ = writeln!(out, "  id:      {}", n.id);
    let _ = writeln!(out, "  kind:    {}", note_kind_label(n));
    let _ = writeln!(
        out,
        "  written: {} by {} (device {})",
        datetime(n.created_at),
        n.author.name,
        n.author.device.short()
    );
    if n.edited_at != n.created_at {
        let _ = writeln!(out, "  edited:  {}", datetime(n.edited_at));
    }
    let _ = writeln!(out);
    for l in wrap(&n.text, 2, width) {
        let _ = writeln!(out, "{l}");
    }
    out
}

pub(crate) fn case_full(
    c: &Case,
    notes: &[Note],
    citing: &[LearningPointSummary],
    names: &Names,
    detail: Detail,
    width: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", c.subject);
    let mut line = format!("case {} · {}", short(c.id), c.status.as_str());
    if !c.tags.is_empty() {
        let _ = write!(line, " · {}", tags(&c.tags));
    }
    let _ = writeln!(out, "{line}");
    if detail == Detail::Full {
        let _ = writeln!(out, "id {}", c.id);
        let _ = writeln!(
            out,
            "created {} by {} · last activity {}",
            datetime(c.created_at),
            c.created_by.name,
            datetime(c.updated_at)
        );
    }
    if !c.networks.is_empty() {
        let nets: Vec<String> = c.networks.iter().map(|n| names.network(n)).collect();
        let _ = writeln!(out, "shared with {}", nets.join(", "));
    }
    let consent = match c.consent.status {
        ConsentStatus::Unknown => "consent not recorded".to_string(),
        s => {
            let mut t = format!("consent {}", s.as_str());
            if !c.consent.scope.is_empty() {
                let _ = write!(t, " · {}", c.consent.scope);
            }
            if let Some(d) = &c.consent.date {
                let _ = write!(t, " · {d}");
            }
            t
        }
    };
    let _ = writeln!(out, "{consent}");
    conflicts_block(&mut out, &c.conflicts, width);

    if detail == Detail::Full {
        block(&mut out, "What is at stake", &c.at_stake, width);
    }
    if !c.client_voice.trim().is_empty() {
        heading(&mut out, "In their own words");
        for l in wrap(&c.client_voice, 2, width) {
            let _ = writeln!(out, "{l}");
        }
    }
    if !c.opgaven.is_empty() && detail == Detail::Full {
        heading(&mut out, "Opgaven (what they struggle with now)");
        for o in &c.opgaven {
            let _ = writeln!(out, "  · {}", o.text);
        }
    }
    if detail == Detail::Full {
        if !c.turning_points.is_empty() {
            heading(&mut out, "Turning points");
            for t in &c.turning_points {
                if t.when.is_empty() {
                    let _ = writeln!(out, "  · {}", t.description);
                } else {
                    let _ = writeln!(out, "  · {} — {}", t.when, t.description);
                }
            }
        }
        if !c.actors.is_empty() {
            heading(&mut out, "Around the person");
            for a in &c.actors {
                if a.relation.is_empty() {
                    let _ = writeln!(out, "  · {}", a.name);
                } else {
                    let _ = writeln!(out, "  · {} — {}", a.name, a.relation);
                }
            }
        }
    }
    let caimer = [
        ("Context", &c.caimer.context),
        ("Actors", &c.caimer.actors),
        ("Interventions", &c.caimer.interventions),
        ("Mechanisms", &c.caimer.mechanisms),
        ("Results", &c.caimer.results),
    ];
    let filled: Vec<&(&str, &String)> =
        caimer.iter().filter(|(_, t)| !t.trim().is_empty()).collect();
    if !filled.is_empty() {
        match detail {
            Detail::Full => {
                heading(&mut out, "CAIMeR");
                for (label, text) in filled {
                    for (i, l) in wrap(text, 17, width).into_iter().enumerate() {
                        if i == 0 {
                            let _ = writeln!(out, "  {label:<14} {}", l.trim_start());
                        } else {
                            let _ = writeln!(out, "{l}");
                        }
                    }
                }
            }
            Detail::Compact => {
                let labels: Vec<String> = filled.iter().map(|(l, _)| l.to_lowercase()).collect();
                heading(&mut out, &format!("CAIMeR analysis: {}", labels.join(", ")));
            }
        }
    }
    if !c.agreements.is_empty() {
        let open = c.agreements.iter().filter(|a| !a.done).count();
        heading(&mut out, &format!("Agreements ({open} open)"));
        for a in &c.agreements {
            let _ = writeln!(out, "{}", agreement_line(a));
        }
    }
    heading(&mut out, &format!("Timeline ({})", plural(notes.len(), "note", "notes")));
    if notes.is_empty() {
        let _ = writeln!(
            out,
            "  (no notes yet: `nabij note add {} --kind observation TEXT`)",
            short(c.id)
        );
    }
    let max_lines = match detail {
        Detail::Full => None,
        Detail::Compact => Some(2),
    };
    for n in notes {
        out.push_str(&note_entry(n, width, max_lines));
    }
    if !citing.is_empty() {
        heading(&mut out, "Learning points citing this case");
        for lp in citing {
            let _ = writeln!(out, "{}", lp_line(lp));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Learning points

fn lp_line(lp: &LearningPointSummary) -> String {
    format!(
        "  {}  {:<9}  {}  ({})",
        short(lp.id),
        lp.status.as_str(),
        lp.title,
        plural(lp.case_count as usize, "case", "cases")
    )
}

pub(crate) fn lp_list(lps: &[LearningPointSummary]) -> String {
    if lps.is_empty() {
        return "No learning points. Propose one with `nabij lp create --title …`.\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(out, "  {:<8}  {:<9}  TITLE", "ID", "STATUS");
    for lp in lps {
        let _ = writeln!(out, "{}", lp_line(lp));
    }
    out
}

fn perspective_label(k: PerspectiveKind) -> &'static str {
    match k {
        PerspectiveKind::ClientVoice => "client's voice",
        PerspectiveKind::Professional => "professional",
        PerspectiveKind::Dissent => "dissent",
    }
}

pub(crate) fn lp_full(lp: &LearningPoint, names: &Names, detail: Detail, width: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", lp.title);
    let mut line = format!("learning point {} · {}", short(lp.id), lp.status.as_str());
    if !lp.tags.is_empty() {
        let _ = write!(line, " · {}", tags(&lp.tags));
    }
    let _ = writeln!(out, "{line}");
    let _ = writeln!(out, "proposed {} by {}", datetime(lp.created_at), lp.created_by.name);
    if let Some(m) = &lp.meeting {
        let _ = writeln!(out, "discussed at {}", names.meeting(m));
    }
    conflicts_block(&mut out, &lp.conflicts, width);
    block(&mut out, "Insight", &lp.insight, width);
    if !lp.cases.is_empty() {
        heading(&mut out, &format!("From {}", plural(lp.cases.len(), "case", "cases")));
        for c in &lp.cases {
            if lp.erased_cases.contains(c) {
                let _ = writeln!(out, "  {}  (erased)", short(c));
                continue;
            }
            let _ = writeln!(out, "  {}", names.case(c));
        }
    }
    if !lp.perspectives.is_empty() {
        heading(&mut out, "Perspectives considered");
        for p in &lp.perspectives {
            let who = if p.who.is_empty() { String::new() } else { format!(" ({})", p.who) };
            let _ = writeln!(out, "  {}{who}:", perspective_label(p.kind));
            for l in wrap(&p.text, 4, width) {
                let _ = writeln!(out, "{l}");
            }
        }
    }
    if !lp.sources.is_empty() && detail == Detail::Full {
        heading(&mut out, "Sources");
        for s in &lp.sources {
            let _ = writeln!(out, "  · {}", s.text);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Meetings

pub(crate) fn meeting_list(ms: &[MeetingSummary], names: &Names) -> String {
    if ms.is_empty() {
        return "No meetings. Plan one with `nabij meeting create --date YYYY-MM-DD …`.\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(out, "  {:<8}  {:<10}  PLACE", "ID", "DATE");
    for m in ms {
        let net = m.network.map(|n| format!("  ({})", names.network(&n))).unwrap_or_default();
        let _ = writeln!(out, "  {}  {:<10}  {}{net}", short(m.id), m.date, m.place);
    }
    out
}

pub(crate) fn meeting_full(
    m: &Meeting,
    contents: &MeetingContents,
    names: &Names,
    width: usize,
) -> String {
    let mut out = String::new();
    let place = if m.place.is_empty() { String::new() } else { format!(" · {}", m.place) };
    let _ = writeln!(out, "Meeting {}{place}", m.date);
    let mut line = format!("meeting {}", short(m.id));
    if let Some(n) = &m.network {
        let _ = write!(line, " · {}", names.network(n));
    }
    let _ = writeln!(out, "{line}");
    if !m.participants.is_empty() {
        for (i, l) in wrap(&m.participants.join(", "), 14, width).into_iter().enumerate() {
            if i == 0 {
                let _ = writeln!(out, "participants  {}", l.trim_start());
            } else {
                let _ = writeln!(out, "{l}");
            }
        }
    }
    conflicts_block(&mut out, &m.conflicts, width);
    heading(&mut out, "Agenda");
    if m.agenda.is_empty() {
        let _ = writeln!(out, "  (no cases on the agenda)");
    }
    for (i, id) in m.agenda.iter().enumerate() {
        match contents.agenda.iter().find(|c| c.id == *id) {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "  {}. {}  {} · {} · {}",
                    i + 1,
                    short(c.id),
                    c.subject,
                    c.status.as_str(),
                    plural(c.note_count as usize, "note", "notes")
                );
            }
            None => {
                let _ = writeln!(out, "  {}. {}  (case not on this device)", i + 1, short(id));
            }
        }
    }
    block(&mut out, "Minutes", &m.minutes, width);
    if !m.agreements.is_empty() {
        let open = m.agreements.iter().filter(|a| !a.done).count();
        heading(&mut out, &format!("Agreements ({open} open)"));
        for a in &m.agreements {
            let _ = writeln!(out, "{}", agreement_line(a));
        }
    }
    if !contents.learning_points.is_empty() {
        heading(&mut out, "Learning points captured");
        for lp in &contents.learning_points {
            let _ = writeln!(out, "{}", lp_line(lp));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Networks, search, history

pub(crate) fn network_list(ns: &[NetworkSummary]) -> String {
    if ns.is_empty() {
        return "No networks. Start one with `nabij network create NAME`.\n".into();
    }
    let mut out = String::new();
    for n in ns {
        let _ = writeln!(
            out,
            "  {}  {}  ({})",
            short(n.id),
            n.name,
            plural(n.member_count as usize, "member", "members")
        );
    }
    out
}

pub(crate) fn network_full(n: &Network, me: &DeviceKey) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", n.name);
    let _ = writeln!(out, "network {} · since {}", short(n.id), datetime(n.created_at));
    let _ = writeln!(out, "id {}", n.id);
    heading(&mut out, &format!("Members ({})", n.members.len()));
    let mut members: Vec<_> = n.members.iter().collect();
    members.sort_by_key(|m| m.name.to_lowercase());
    for m in members {
        let devices: Vec<String> = m.devices.iter().map(|d| d.short()).collect();
        let you = if m.devices.contains(me) { "  (you)" } else { "" };
        let _ = writeln!(
            out,
            "  {}  {}  · {} · {} {}{you}",
            short(m.id),
            m.name,
            m.role.as_str(),
            if devices.len() == 1 { "device" } else { "devices" },
            devices.join(", ")
        );
    }
    if !n.removed.is_empty() {
        heading(&mut out, &format!("Removed devices ({})", n.removed.len()));
        for r in &n.removed {
            let you = if r.device == *me { "  (you)" } else { "" };
            let _ = writeln!(out, "  {}  {}{you}", r.device.short(), r.reason.as_str());
        }
    }
    out
}

fn hit_label(k: HitKind) -> &'static str {
    match k {
        HitKind::Case => "case",
        HitKind::Note => "note",
        HitKind::LearningPoint => "learning point",
        HitKind::Meeting => "meeting",
    }
}

pub(crate) fn search_hits(
    query: &str,
    hits: &[SearchHit],
    max_lines: usize,
    width: usize,
) -> String {
    let mut out = String::new();
    if hits.is_empty() {
        let _ = writeln!(out, "Nothing found for “{query}”.");
        return out;
    }
    let _ = writeln!(out, "{} for “{query}”, best first:", plural(hits.len(), "hit", "hits"));
    for (i, h) in hits.iter().enumerate() {
        let place = match (h.kind, h.note_id) {
            (HitKind::Note, Some(n)) => {
                format!("note {} in case {}  {}", short(n), short(h.doc_id), h.title)
            }
            (k, _) => format!("{} {}  {}", hit_label(k), short(h.doc_id), h.title),
        };
        let _ = writeln!(out, "{:>3}. {}", i + 1, truncate(&place, width.saturating_sub(5)));
        let snippet = h.snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        for l in wrap_max(&snippet, 5, width, max_lines) {
            let _ = writeln!(out, "{l}");
        }
    }
    out
}

pub(crate) fn history(what: &str, entries: &[HistoryEntry], width: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "History of {what} ({}):", plural(entries.len(), "change", "changes"));
    for e in entries {
        let who = match (&e.author, &e.device) {
            (Some(a), Some(d)) => format!("{a} [{}]", d.short()),
            (None, Some(d)) => format!("device {} (not a member known here)", d.short()),
            (Some(a), None) => a.clone(),
            (None, None) => "unknown".into(),
        };
        let head = format!("  {}  {who}", datetime(e.time));
        let _ = writeln!(out, "{head}");
        for l in wrap(&e.summary, 6, width) {
            let _ = writeln!(out, "{l}");
        }
    }
    out
}
