//! Queries for the app's screens: derived tables only, never an Automerge document.

use rusqlite::{Connection, OptionalExtension, Row, params, types::Type};

use super::{Result, doc_id_col, note_id_col, parse_col};
use crate::{
    ids::{DeviceKey, DocId, MemberId},
    model::{
        CaseFilter, CaseStatus, CaseSummary, LearningPointStatus, LearningPointSummary,
        MeetingContents, MeetingSummary, NetworkSummary, Note, NoteKind,
    },
};

const CASE_COLUMNS: &str = "c.doc_id, c.subject, c.status, c.last_activity, c.has_conflicts,
    (SELECT count(*) FROM notes n WHERE n.case_id = c.doc_id),
    (SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM case_tags t WHERE t.case_id = c.doc_id ORDER BY tag))";

fn case_summary_row(r: &Row<'_>) -> rusqlite::Result<CaseSummary> {
    let tags: Option<String> = r.get(6)?;
    Ok(CaseSummary {
        id: doc_id_col(r, 0)?,
        subject: r.get(1)?,
        status: parse_col(r, 2, CaseStatus::parse)?,
        last_activity: r.get(3)?,
        has_conflicts: r.get(4)?,
        note_count: r.get(5)?,
        tags: tags.map(|t| t.split('\u{1f}').map(str::to_string).collect()).unwrap_or_default(),
    })
}

/// Cases, newest activity first.
pub(crate) fn list_cases(conn: &Connection, f: &CaseFilter) -> Result<Vec<CaseSummary>> {
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM cases c
         WHERE (?1 IS NULL OR c.status = ?1)
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM case_tags t WHERE t.case_id = c.doc_id AND t.tag = ?2))
           AND (?3 IS NULL OR EXISTS (SELECT 1 FROM doc_networks d WHERE d.doc_id = c.doc_id AND d.network_id = ?3))
         ORDER BY c.last_activity DESC, c.doc_id LIMIT ?4 OFFSET ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let tag = f.tag.as_ref().map(|t| t.trim().to_lowercase());
    let rows = stmt.query_map(
        params![
            f.status.map(|s| s.as_str()),
            tag,
            f.network.map(|n| n.as_bytes().to_vec()),
            f.limit.unwrap_or(50),
            f.offset
        ],
        case_summary_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One case's summary.
pub(crate) fn case_summary(conn: &Connection, id: DocId) -> Result<Option<CaseSummary>> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases c WHERE c.doc_id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id.as_bytes()], case_summary_row).optional()?)
}

/// A case's notes, oldest first.
pub(crate) fn timeline(conn: &Connection, case: DocId) -> Result<Vec<Note>> {
    let mut stmt = conn.prepare_cached(
        "SELECT note_id, case_id, created_at, edited_at, kind, author_member, author_name, author_device, text
         FROM notes WHERE case_id = ?1 ORDER BY created_at, note_id",
    )?;
    let rows = stmt.query_map([case.as_bytes()], |r| {
        let member: Vec<u8> = r.get(5)?;
        let device: Vec<u8> = r.get(7)?;
        let bad = |i| rusqlite::Error::InvalidColumnType(i, "id".into(), Type::Blob);
        Ok(Note {
            id: note_id_col(r, 0)?,
            case_id: doc_id_col(r, 1)?,
            created_at: r.get(2)?,
            edited_at: r.get(3)?,
            kind: parse_col(r, 4, NoteKind::parse)?,
            author: crate::model::Author {
                member: MemberId::from_slice(&member).map_err(|_| bad(5))?,
                name: r.get(6)?,
                device: DeviceKey::from_slice(&device).ok_or_else(|| bad(7))?,
            },
            text: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

const LP_COLUMNS: &str = "l.doc_id, l.title, l.status, l.updated_at,
    (SELECT count(*) FROM learning_point_cases x WHERE x.lp_id = l.doc_id)";

fn lp_row(r: &Row<'_>) -> rusqlite::Result<LearningPointSummary> {
    Ok(LearningPointSummary {
        id: doc_id_col(r, 0)?,
        title: r.get(1)?,
        status: parse_col(r, 2, LearningPointStatus::parse)?,
        updated_at: r.get(3)?,
        case_count: r.get(4)?,
    })
}

/// Learning points that cite a case, newest first.
pub(crate) fn learning_points_citing(
    conn: &Connection,
    case: DocId,
) -> Result<Vec<LearningPointSummary>> {
    let sql = format!(
        "SELECT {LP_COLUMNS} FROM learning_point_cases c JOIN learning_points l ON l.doc_id = c.lp_id
         WHERE c.case_id = ?1 ORDER BY l.updated_at DESC, l.doc_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([case.as_bytes()], lp_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Learning points, optionally with one status or tag, newest first.
pub(crate) fn list_learning_points(
    conn: &Connection,
    status: Option<LearningPointStatus>,
    tag: Option<&str>,
) -> Result<Vec<LearningPointSummary>> {
    let sql = format!(
        "SELECT {LP_COLUMNS} FROM learning_points l
         WHERE (?1 IS NULL OR l.status = ?1)
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM learning_point_tags t WHERE t.lp_id = l.doc_id AND t.tag = ?2))
         ORDER BY l.updated_at DESC, l.doc_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![status.map(|s| s.as_str()), tag.map(|t| t.trim().to_lowercase())],
        lp_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn meeting_row(r: &Row<'_>) -> rusqlite::Result<MeetingSummary> {
    let network: Option<Vec<u8>> = r.get(1)?;
    Ok(MeetingSummary {
        id: doc_id_col(r, 0)?,
        network: network.and_then(|n| DocId::from_slice(&n).ok()),
        date: r.get(2)?,
        place: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

/// Meetings, newest date first.
pub(crate) fn list_meetings(conn: &Connection) -> Result<Vec<MeetingSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_id, network_id, date, place, updated_at FROM meetings ORDER BY date DESC, doc_id",
    )?;
    let rows = stmt.query_map([], meeting_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A meeting's contents.
pub(crate) fn meeting_contents(conn: &Connection, id: DocId) -> Result<Option<MeetingContents>> {
    let Some(meeting) = conn
        .prepare_cached(
            "SELECT doc_id, network_id, date, place, updated_at FROM meetings WHERE doc_id = ?1",
        )?
        .query_row([id.as_bytes()], meeting_row)
        .optional()?
    else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM meeting_items i JOIN cases c ON c.doc_id = i.item_id
         WHERE i.meeting_id = ?1 AND i.item_kind = 'case' ORDER BY i.position"
    );
    let agenda = conn
        .prepare_cached(&sql)?
        .query_map([id.as_bytes()], case_summary_row)?
        .collect::<rusqlite::Result<_>>()?;
    let sql = format!(
        "SELECT {LP_COLUMNS} FROM meeting_items i JOIN learning_points l ON l.doc_id = i.item_id
         WHERE i.meeting_id = ?1 AND i.item_kind = 'learning_point' ORDER BY i.position"
    );
    let learning_points = conn
        .prepare_cached(&sql)?
        .query_map([id.as_bytes()], lp_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(MeetingContents { meeting, agenda, learning_points }))
}

/// Networks this device holds.
pub(crate) fn list_networks(conn: &Connection) -> Result<Vec<NetworkSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.doc_id, n.name, (SELECT count(DISTINCT member_id) FROM network_devices d WHERE d.network_id = n.doc_id)
         FROM networks n ORDER BY n.name, n.doc_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(NetworkSummary { id: doc_id_col(r, 0)?, name: r.get(1)?, member_count: r.get(2)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
