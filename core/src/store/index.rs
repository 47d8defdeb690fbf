//! Derived rows: the tables every screen reads and the search index, written from `model`
//! values in the same transaction as the chunk they derive from.

use rusqlite::{Transaction, params};

use super::{
    Result, note_id_col,
    search::{clear_search, delete_search, put_search},
};
use crate::{
    ids::{DocId, NoteId},
    model::{Case, LearningPoint, Meeting, Network, Note, Timestamp},
};

pub(crate) fn clear_index(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "DELETE FROM cases; DELETE FROM case_tags; DELETE FROM doc_networks; DELETE FROM notes;
         DELETE FROM learning_points; DELETE FROM learning_point_cases; DELETE FROM learning_point_tags;
         DELETE FROM meetings; DELETE FROM meeting_items; DELETE FROM networks;
         DELETE FROM network_devices; DELETE FROM network_removed;",
    )?;
    clear_search(tx)?;
    Ok(())
}

fn set_networks(tx: &Transaction<'_>, doc: DocId, networks: &[DocId]) -> Result<()> {
    tx.prepare_cached("DELETE FROM doc_networks WHERE doc_id = ?1")?.execute([doc.as_bytes()])?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO doc_networks (network_id, doc_id) VALUES (?1, ?2)",
    )?;
    for n in networks {
        ins.execute(params![n.as_bytes(), doc.as_bytes()])?;
    }
    Ok(())
}

/// Writes a case's own rows (not its notes).
pub(crate) fn index_case(tx: &Transaction<'_>, case: &Case) -> Result<()> {
    let id = case.id.as_bytes();
    tx.prepare_cached(
        "INSERT INTO cases (doc_id, subject, status, created_at, last_activity, has_conflicts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (doc_id) DO UPDATE SET subject = excluded.subject, status = excluded.status,
             last_activity = excluded.last_activity, has_conflicts = excluded.has_conflicts",
    )?
    .execute(params![
        id,
        case.subject,
        case.status.as_str(),
        case.created_at,
        case.updated_at,
        !case.conflicts.is_empty()
    ])?;
    tx.prepare_cached("DELETE FROM case_tags WHERE case_id = ?1")?.execute([id])?;
    let mut ins =
        tx.prepare_cached("INSERT OR IGNORE INTO case_tags (tag, case_id) VALUES (?1, ?2)")?;
    for t in &case.tags {
        ins.execute(params![t, id])?;
    }
    set_networks(tx, case.id, &case.networks)?;
    let mut body = vec![case.at_stake.as_str(), case.client_voice.as_str()];
    body.extend(case.opgaven.iter().map(|o| o.text.as_str()));
    body.extend(case.turning_points.iter().map(|t| t.description.as_str()));
    body.extend(case.agreements.iter().map(|a| a.text.as_str()));
    body.extend([
        case.caimer.context.as_str(),
        case.caimer.actors.as_str(),
        case.caimer.interventions.as_str(),
        case.caimer.mechanisms.as_str(),
        case.caimer.results.as_str(),
    ]);
    body.extend(case.tags.iter().map(String::as_str));
    let body: Vec<&str> = body.into_iter().filter(|s| !s.is_empty()).collect();
    put_search(tx, "case", case.id, id, &case.subject, &body.join("\n"))
}

/// Moves a case's last activity (after a note write, which changes nothing else of its row).
pub(crate) fn touch_case(
    tx: &Transaction<'_>,
    case: DocId,
    last_activity: Timestamp,
) -> Result<()> {
    tx.prepare_cached("UPDATE cases SET last_activity = ?2 WHERE doc_id = ?1")?
        .execute(params![case.as_bytes(), last_activity])?;
    Ok(())
}

/// Writes (or rewrites) note rows.
pub(crate) fn index_notes(tx: &Transaction<'_>, notes: &[Note]) -> Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO notes (note_id, case_id, created_at, edited_at, kind, author_member, author_name, author_device, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (case_id, note_id) DO UPDATE SET edited_at = excluded.edited_at, kind = excluded.kind, text = excluded.text",
    )?;
    for n in notes {
        ins.execute(params![
            n.id.as_bytes(),
            n.case_id.as_bytes(),
            n.created_at,
            n.edited_at,
            n.kind.as_str(),
            n.author.member.as_bytes(),
            n.author.name,
            n.author.device.as_bytes(),
            n.text
        ])?;
        put_search(tx, "note", n.case_id, n.id.as_bytes(), "", &n.text)?;
    }
    Ok(())
}

/// Removes note rows of a case that are not in `keep` (after a merge removed them).
pub(crate) fn remove_other_notes(tx: &Transaction<'_>, case: DocId, keep: &[NoteId]) -> Result<()> {
    let mut stmt = tx.prepare_cached("SELECT note_id FROM notes WHERE case_id = ?1")?;
    let existing: Vec<NoteId> = stmt
        .query_map([case.as_bytes()], |r| note_id_col(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    for n in existing.into_iter().filter(|n| !keep.contains(n)) {
        tx.execute(
            "DELETE FROM notes WHERE case_id = ?1 AND note_id = ?2",
            [case.as_bytes(), n.as_bytes()],
        )?;
        delete_search(tx, case, n.as_bytes())?;
    }
    Ok(())
}

/// Writes a learning point's rows.
pub(crate) fn index_learning_point(tx: &Transaction<'_>, lp: &LearningPoint) -> Result<()> {
    let id = lp.id.as_bytes();
    tx.execute(
        "INSERT OR REPLACE INTO learning_points (doc_id, title, status, meeting_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, lp.title, lp.status.as_str(), lp.meeting.map(|m| m.as_bytes().to_vec()), lp.created_at, lp.updated_at],
    )?;
    tx.execute("DELETE FROM learning_point_cases WHERE lp_id = ?1", [id])?;
    for c in &lp.cases {
        tx.execute(
            "INSERT OR IGNORE INTO learning_point_cases (case_id, lp_id) VALUES (?1, ?2)",
            params![c.as_bytes(), id],
        )?;
    }
    tx.execute("DELETE FROM learning_point_tags WHERE lp_id = ?1", [id])?;
    for t in &lp.tags {
        tx.execute(
            "INSERT OR IGNORE INTO learning_point_tags (tag, lp_id) VALUES (?1, ?2)",
            params![t, id],
        )?;
    }
    set_networks(tx, lp.id, &lp.networks)?;
    let mut body = vec![lp.insight.clone()];
    body.extend(lp.perspectives.iter().map(|p| format!("{}: {}", p.who, p.text)));
    body.extend(lp.sources.iter().map(|s| s.text.clone()));
    body.extend(lp.tags.iter().cloned());
    put_search(tx, "learning_point", lp.id, id, &lp.title, &body.join("\n"))
}

/// Writes a meeting's rows.
pub(crate) fn index_meeting(tx: &Transaction<'_>, m: &Meeting) -> Result<()> {
    let id = m.id.as_bytes();
    tx.execute(
        "INSERT OR REPLACE INTO meetings (doc_id, network_id, date, place, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            m.network.map(|n| n.as_bytes().to_vec()),
            m.date,
            m.place,
            m.created_at,
            m.updated_at
        ],
    )?;
    tx.execute("DELETE FROM meeting_items WHERE meeting_id = ?1", [id])?;
    let items = m
        .agenda
        .iter()
        .map(|c| ("case", c))
        .chain(m.learning_points.iter().map(|l| ("learning_point", l)));
    for (pos, (kind, item)) in items.enumerate() {
        tx.execute(
            "INSERT OR IGNORE INTO meeting_items (meeting_id, item_kind, item_id, position) VALUES (?1, ?2, ?3, ?4)",
            params![id, kind, item.as_bytes(), pos as i64],
        )?;
    }
    set_networks(tx, m.id, &m.network.into_iter().collect::<Vec<_>>())?;
    let mut body = vec![m.minutes.clone(), m.participants.join(", ")];
    body.extend(m.agreements.iter().map(|a| a.text.clone()));
    put_search(tx, "meeting", m.id, id, &format!("{} {}", m.date, m.place), &body.join("\n"))
}

/// Writes a network's rows.
pub(crate) fn index_network(tx: &Transaction<'_>, n: &Network) -> Result<()> {
    let id = n.id.as_bytes();
    tx.execute(
        "INSERT OR REPLACE INTO networks (doc_id, name) VALUES (?1, ?2)",
        params![id, n.name],
    )?;
    tx.execute("DELETE FROM network_devices WHERE network_id = ?1", [id])?;
    for m in &n.members {
        for d in &m.devices {
            tx.execute(
                "INSERT OR IGNORE INTO network_devices (network_id, member_id, device, member_name, role)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, m.id.as_bytes(), d.as_bytes(), m.name, m.role.as_str()],
            )?;
        }
    }
    tx.execute("DELETE FROM network_removed WHERE network_id = ?1", [id])?;
    for r in &n.removed {
        tx.execute(
            "INSERT OR IGNORE INTO network_removed (network_id, device, reason) VALUES (?1, ?2, ?3)",
            params![id, r.device.as_bytes(), r.reason.as_str()],
        )?;
    }
    Ok(())
}
