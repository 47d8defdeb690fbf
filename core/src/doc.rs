//! Typed Automerge mapping: how cases (with their notes), learning points, meetings and
//! networks are laid out in Automerge documents, how local edits become Automerge changes, and
//! how documents are read back into [`crate::model`] types.
//!
//! Owns the document layout and its schema version. Knows nothing of SQLite or the network.
//!
//! Layout rules, each for a CRDT reason:
//! - Every object a document will ever hold (text fields, maps) is created when the document is
//!   born, by one device; two devices that each created the same text field concurrently would
//!   conflict and one whole text would win.
//! - Collections of things (notes, tags, agreements, networks) are maps keyed by id, not lists:
//!   concurrent additions on two devices both survive and a re-added tag is not duplicated.
//! - Free text (notes, what is at stake, the client's voice, CAIMeR, insight, minutes) is an
//!   Automerge text object changed by splices, so concurrent edits by two workers both survive.
//! - Scalar fields that two devices set concurrently keep every value; readers report them as
//!   [`Conflict`]s rather than silently showing one.
//! - Each change carries a readable message and the author's time: that is the history.

use std::collections::BTreeMap;

use automerge::{
    ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, TextEncoding,
    Value, legacy,
    transaction::{CommitOptions, Transactable},
};
use autosurgeon::{Hydrate, Reconcile, Text, hydrate_prop, reconcile_prop};

use crate::{
    ids::{DeviceKey, DocId, ItemId, MemberId, NoteId, Randomness},
    membership::SignedOp,
    model::{
        Agreement, Author, CAIMER_FIELDS, Caimer, Case, CaseActor, CaseItem, CaseStatus,
        CaseUpdate, Conflict, Consent, ConsentStatus, DocKind, LearningPoint, LearningPointStatus,
        LearningPointUpdate, Meeting, MeetingUpdate, NewCase, NewLearningPoint, NewMeeting,
        NewNote, Note, NoteKind, Perspective, PerspectiveKind, TextItem, Timestamp, TurningPoint,
        Valid,
    },
};

mod case;
mod fields;
mod history;
mod learning_point;
mod meeting;
mod network;
mod redaction;

use self::fields::*;
pub(crate) use self::fields::{shared_with, sharers, updated_at};
pub(crate) use self::{
    case::*,
    history::*,
    learning_point::*,
    meeting::*,
    network::*,
    redaction::{put_carried_notes, redacted_copy},
};

/// The schema version this build writes, and the newest it reads.
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// Why a document could not be read or changed.
#[derive(Debug, thiserror::Error)]
// Not `non_exhaustive`: nabij-ffi maps every variant by name, so a new one fails its build
// until it is given a kind apps can act on.
pub enum DocError {
    /// The bytes are not a valid Automerge document or change set.
    #[error("document data is corrupt: {0}")]
    Corrupt(String),
    /// Written by a newer version of Nabij.
    #[error("document {id} has schema version {found}; this version reads up to {supported}")]
    NewerSchema {
        /// The document.
        id: String,
        /// Its schema version.
        found: u64,
        /// The newest this build reads.
        supported: u64,
    },
    /// A valid Automerge document, but not shaped like a Nabij document.
    #[error("document is malformed: {0}")]
    Malformed(String),
    /// A document of another kind than the operation needs.
    #[error("document {id} is a {found}, not a {expected}")]
    WrongKind {
        /// The document.
        id: String,
        /// What it is.
        found: DocKind,
        /// What was expected.
        expected: DocKind,
    },
    /// A position or length outside a text.
    #[error("text range {pos}+{delete} is outside a text of {len} characters")]
    TextRange {
        /// Start, in characters.
        pos: usize,
        /// Characters to delete.
        delete: usize,
        /// Length of the text.
        len: usize,
    },
    /// Changes not signed by the device they claim to be by, or by a device that is not (and
    /// never was) in the networks the document is shared with.
    #[error("changes refused: {0}")]
    Unauthorized(String),
    /// The document was erased (a tombstone names it): nothing of it is taken again.
    #[error("document {0} was erased")]
    Erased(String),
    /// Changes arrived whose earlier changes this device does not have; nothing was applied.
    #[error("{0} changes depend on changes this device does not have")]
    MissingDependencies(usize),
    /// A device wrote two different changes with one number in its chain of this document (a
    /// modified app, or one device's store copied onto two phones): Automerge holds one change
    /// per device and number, so the two histories cannot merge into one document.
    #[error("device {device} wrote two different histories of this document (change {seq})")]
    Forked {
        /// The device (its actor id), hex.
        device: String,
        /// The number both changes carry.
        seq: u64,
    },
    /// Automerge refused an operation.
    #[error("automerge: {0}")]
    Automerge(Box<automerge::AutomergeError>),
}

impl From<automerge::AutomergeError> for DocError {
    fn from(e: automerge::AutomergeError) -> Self {
        match e {
            automerge::AutomergeError::DuplicateSeqNumber(seq, actor) => {
                DocError::Forked { device: actor.to_hex_string(), seq }
            }
            e => DocError::Automerge(Box::new(e)),
        }
    }
}

impl From<autosurgeon::HydrateError> for DocError {
    fn from(e: autosurgeon::HydrateError) -> Self {
        DocError::Malformed(e.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for DocError {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        DocError::Malformed(e.to_string())
    }
}

/// Text positions in the API count Unicode code points, on every platform.
const ENCODING: TextEncoding = TextEncoding::UnicodeCodePoint;

/// A new, empty document that writes as `device`.
pub(crate) fn new_doc(device: &DeviceKey) -> AutoCommit {
    AutoCommit::new_with_encoding(ENCODING).with_actor(ActorId::from(device.as_bytes().as_slice()))
}

/// Loads a document from one buffer: a snapshot followed by any number of incremental chunks.
pub(crate) fn load(bytes: &[u8], device: &DeviceKey) -> Result<AutoCommit, DocError> {
    let options = automerge::LoadOptions::new()
        .on_partial_load(automerge::OnPartialLoad::Error)
        .text_encoding(ENCODING);
    let doc = AutoCommit::load_with_options(bytes, options)
        .map_err(|e| DocError::Corrupt(e.to_string()))?;
    Ok(doc.with_actor(ActorId::from(device.as_bytes().as_slice())))
}

/// Splits Automerge's storage format into its chunks: `[magic 4][checksum 4][type 1]
/// [length uleb128][body]`, refusing anything that does not tile the input exactly.
/// (`load_incremental` silently skips what it cannot parse; merging must refuse it instead.)
fn split_chunks(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, DocError> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let bad = |what: &str, at: usize| DocError::Corrupt(format!("{what} at byte {at}"));
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        if bytes.get(at..at + 4) != Some(MAGIC.as_slice()) {
            return Err(bad("no chunk header", at));
        }
        at += 8;
        let kind = *bytes.get(at).ok_or_else(|| bad("truncated chunk header", at))?;
        at += 1;
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *bytes.get(at).ok_or_else(|| bad("truncated chunk length", at))?;
            at += 1;
            if shift > 56 {
                return Err(bad("chunk length overflows", at));
            }
            len |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| bad("chunk longer than the data", start))?;
        chunks.push((kind, &bytes[start..end]));
        at = end;
    }
    Ok(chunks)
}

/// Whole documents and changes in `bytes`, each chunk parsed and checked.
fn parse_chunks(bytes: &[u8]) -> Result<(Vec<AutoCommit>, Vec<automerge::Change>), DocError> {
    let mut documents = Vec::new();
    let mut changes = Vec::new();
    for (kind, chunk) in split_chunks(bytes)? {
        match kind {
            0 => {
                let options = automerge::LoadOptions::new()
                    .on_partial_load(automerge::OnPartialLoad::Error)
                    .text_encoding(ENCODING);
                documents.push(
                    AutoCommit::load_with_options(chunk, options)
                        .map_err(|e| DocError::Corrupt(e.to_string()))?,
                );
            }
            1 | 2 => changes.push(
                automerge::Change::try_from(chunk).map_err(|e| DocError::Corrupt(e.to_string()))?,
            ),
            other => return Err(DocError::Corrupt(format!("unsupported chunk type {other}"))),
        }
    }
    Ok((documents, changes))
}

/// Applies whole documents and changes from another device. Every chunk is parsed and checked
/// before anything is applied; then changes whose dependencies are present are applied.
pub(crate) fn apply_chunks(doc: &mut AutoCommit, bytes: &[u8]) -> Result<(), DocError> {
    let (documents, changes) = parse_chunks(bytes)?;
    for mut d in documents {
        doc.merge(&mut d)?;
    }
    doc.apply_changes(changes)?;
    Ok(())
}

/// The changes in `bytes` (whole documents or changes, as [`apply_chunks`] takes them).
pub(crate) fn changes_in(bytes: &[u8]) -> Result<Vec<automerge::Change>, DocError> {
    let (documents, mut changes) = parse_chunks(bytes)?;
    for mut d in documents {
        changes.extend(d.get_changes(&[]));
    }
    Ok(changes)
}

/// What a document says about itself: id, kind and schema version, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The document id stored inside it.
    pub id: DocId,
    /// Its kind.
    pub kind: DocKind,
}

/// Reads and checks a document's header: known kind, parseable id, schema not newer than ours.
pub(crate) fn header(doc: &AutoCommit) -> Result<Header, DocError> {
    // Two values for a header field means changes of another document were merged in. (Two
    // devices that moved the same forked history under its new id wrote the same id: one
    // value, twice.)
    for field in ["id", "kind", "schema"] {
        let mut values: Vec<Value<'_>> =
            doc.get_all(&ROOT, field)?.into_iter().map(|(v, _)| v).collect();
        values.dedup();
        if values.len() > 1 {
            return Err(DocError::Malformed(format!(
                "conflicting `{field}` values: mixed documents"
            )));
        }
    }
    let id_str = scalar_str(doc, &ROOT, "id")?;
    let id: DocId = id_str.parse().map_err(|e| DocError::Malformed(format!("id: {e}")))?;
    let schema = match doc.get(&ROOT, "schema")? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Uint(n) => *n,
            ScalarValue::Int(n) if *n >= 0 => *n as u64,
            _ => return Err(DocError::Malformed("schema is not a number".into())),
        },
        _ => return Err(DocError::Malformed("no schema version".into())),
    };
    if schema > SCHEMA_VERSION {
        return Err(DocError::NewerSchema { id: id_str, found: schema, supported: SCHEMA_VERSION });
    }
    let kind = DocKind::parse(&scalar_str(doc, &ROOT, "kind")?)
        .map_err(|e| DocError::Malformed(e.to_string()))?;
    Ok(Header { id, kind })
}

/// The documents a forked document's history went on from, oldest first (none for a document
/// that was never forked): the signatures over its earlier changes name those ids.
pub(crate) fn lineage(doc: &AutoCommit) -> Result<Vec<DocId>, DocError> {
    parse_lineage(doc.get(&ROOT, "lineage")?)
}

/// The document's id as it was at `heads` (a header that does not read: an error).
pub(crate) fn header_at(doc: &AutoCommit, heads: &[ChangeHash]) -> Result<Header, DocError> {
    let id = match doc.get_at(&ROOT, "id", heads)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(t) => {
                t.parse().map_err(|e| DocError::Malformed(format!("id: {e}")))?
            }
            _ => return Err(DocError::Malformed("id is not a string".into())),
        },
        _ => return Err(DocError::Malformed("no id".into())),
    };
    let kind = header(doc)?.kind;
    Ok(Header { id, kind })
}

/// [`lineage`] as it was at `heads`.
pub(crate) fn lineage_at(doc: &AutoCommit, heads: &[ChangeHash]) -> Result<Vec<DocId>, DocError> {
    parse_lineage(doc.get_at(&ROOT, "lineage", heads)?)
}

fn parse_lineage(value: Option<(Value<'_>, automerge::ObjId)>) -> Result<Vec<DocId>, DocError> {
    let text = match value {
        None => return Ok(Vec::new()),
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(t) => t.to_string(),
            _ => return Err(DocError::Malformed("lineage is not a string".into())),
        },
        Some(_) => return Err(DocError::Malformed("lineage is not a string".into())),
    };
    text.split_whitespace()
        .map(|s| s.parse().map_err(|e| DocError::Malformed(format!("lineage: {e}"))))
        .collect()
}

/// Moves a forked document's history under the id `fork` ([`crate::device`]'s forks): the
/// header names the new id and the ids it went on from (`lineage`, the document's own last).
pub(crate) fn mark_fork(
    doc: &mut AutoCommit,
    fork: DocId,
    lineage: &[DocId],
    now: Timestamp,
) -> Result<(), DocError> {
    doc.put(ROOT, "id", fork.to_string())?;
    let ids: Vec<String> = lineage.iter().map(DocId::to_string).collect();
    doc.put(ROOT, "lineage", ids.join(" "))?;
    commit(
        doc,
        format!("Split off from {}: a writer made two histories", lineage_tail(lineage)),
        now,
    );
    Ok(())
}

fn lineage_tail(lineage: &[DocId]) -> String {
    lineage.last().map(DocId::to_string).unwrap_or_default()
}

/// Checks that `doc` is a `expected` document.
pub(crate) fn expect_kind(doc: &AutoCommit, expected: DocKind) -> Result<Header, DocError> {
    let h = header(doc)?;
    if h.kind != expected {
        return Err(DocError::WrongKind { id: h.id.to_string(), found: h.kind, expected });
    }
    Ok(h)
}

// ---------------------------------------------------------------------------------------------
// Stored shapes (autosurgeon). Item maps carry `at` (when added) so lists read back in the order
// they were written on every device.
#[derive(Debug, Clone, Reconcile, Hydrate)]
struct AuthorDoc {
    member: String,
    name: String,
    device: String,
}

impl AuthorDoc {
    fn from_author(a: &Author) -> Self {
        Self { member: a.member.to_string(), name: a.name.clone(), device: a.device.to_string() }
    }
    fn to_author(&self) -> Result<Author, DocError> {
        Ok(Author {
            member: self.member.parse().map_err(|e| DocError::Malformed(format!("author: {e}")))?,
            name: self.name.clone(),
            device: self.device.parse().map_err(|e| DocError::Malformed(format!("author: {e}")))?,
        })
    }
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct TextItemDoc {
    text: String,
    at: i64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct AgreementDoc {
    text: String,
    owner: String,
    due: Option<String>,
    done: bool,
    at: i64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct OrderedRef {
    at: i64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn author(n: u8) -> Author {
        Author {
            member: MemberId::from_bytes([n; 16]),
            name: format!("worker {n}"),
            device: DeviceKey::from_bytes([n; 32]),
        }
    }

    pub(crate) fn new_note(kind: NoteKind, text: &str) -> Valid<NewNote> {
        NewNote { kind, text: text.into() }.parse().unwrap()
    }

    pub(crate) fn new_case(a: &Author) -> (AutoCommit, DocId) {
        let mut doc = new_doc(&a.device);
        let id = DocId::random();
        let init = NewCase {
            subject: "Familie K.".into(),
            tags: vec!["wonen".into()],
            ..NewCase::default()
        }
        .parse()
        .unwrap();
        create_case(&mut doc, id, &init, a, 1_000).unwrap();
        (doc, id)
    }

    #[test]
    fn newer_schema_is_refused() {
        let a = author(1);
        let (mut d, _) = new_case(&a);
        d.put(ROOT, "schema", ScalarValue::Uint(SCHEMA_VERSION + 1)).unwrap();
        d.commit();
        assert!(matches!(header(&d), Err(DocError::NewerSchema { .. })));
    }
}
