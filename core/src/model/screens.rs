//! Read models: what the app's list, detail and search screens show, read from the store's
//! derived tables without loading a document.
//!
//! Plain values only; `store` fills them, the façade returns them.

use serde::Serialize;

use super::{CaseStatus, LearningPointStatus, Timestamp};
use crate::ids::{DocId, NoteId};

/// A case in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    /// The case.
    pub id: DocId,
    /// Subject label.
    pub subject: String,
    /// Status.
    pub status: CaseStatus,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Newest activity on the case or its notes.
    pub last_activity: Timestamp,
    /// Number of notes.
    pub note_count: u32,
    /// Whether a field holds concurrent values.
    pub has_conflicts: bool,
}

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only cases shared with this network.
    pub network: Option<DocId>,
    /// Only cases with this status.
    pub status: Option<CaseStatus>,
    /// Only cases with this tag.
    pub tag: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: u32,
}

/// A learning point in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LearningPointSummary {
    /// The learning point.
    pub id: DocId,
    /// Title.
    pub title: String,
    /// Status.
    pub status: LearningPointStatus,
    /// Last change.
    pub updated_at: Timestamp,
    /// Number of cases it cites.
    pub case_count: u32,
}

/// A meeting in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeetingSummary {
    /// The meeting.
    pub id: DocId,
    /// Network.
    pub network: Option<DocId>,
    /// Date.
    pub date: String,
    /// Place.
    pub place: String,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Everything discussed in a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeetingContents {
    /// The meeting.
    pub meeting: MeetingSummary,
    /// Cases on the agenda, in order (those this device holds).
    pub agenda: Vec<CaseSummary>,
    /// Learning points captured, in order (those this device holds).
    pub learning_points: Vec<LearningPointSummary>,
}

/// A network in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSummary {
    /// The network.
    pub id: DocId,
    /// Name.
    pub name: String,
    /// Number of members.
    pub member_count: u32,
}

/// What a search hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A case's own fields.
    Case,
    /// A note.
    Note,
    /// A learning point.
    LearningPoint,
    /// A meeting.
    Meeting,
}

/// One full-text search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// What matched.
    pub kind: HitKind,
    /// The document.
    pub doc_id: DocId,
    /// The note, for note hits.
    pub note_id: Option<NoteId>,
    /// The case subject, learning point title, or meeting date and place.
    pub title: String,
    /// The matching passage, matches in `[` `]`.
    pub snippet: String,
    /// Relevance (higher is better).
    pub score: f64,
}
