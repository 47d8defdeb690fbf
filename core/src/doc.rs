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
    ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, TextEncoding, Value,
    transaction::{CommitOptions, Transactable},
};
use autosurgeon::{Hydrate, Reconcile, Text, hydrate_prop, reconcile_prop};

use crate::{
    ids::{DeviceKey, DocId, ItemId, MemberId, NoteId, Randomness},
    model::{
        Agreement, Author, CAIMER_FIELDS, Caimer, Case, CaseActor, CaseItem, CaseStatus, Conflict,
        Consent, ConsentStatus, DocKind, LearningPoint, LearningPointStatus, Meeting, Member,
        Network, Note, NoteKind, Perspective, PerspectiveKind, TextItem, Timestamp, TurningPoint,
    },
};

/// The schema version this build writes, and the newest it reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Why a document could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// Changes arrived whose earlier changes this device does not have; nothing was applied.
    #[error("{0} changes depend on changes this device does not have")]
    MissingDependencies(usize),
    /// Automerge refused an operation.
    #[error("automerge: {0}")]
    Automerge(Box<automerge::AutomergeError>),
}

impl From<automerge::AutomergeError> for DocError {
    fn from(e: automerge::AutomergeError) -> Self {
        DocError::Automerge(Box::new(e))
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
pub fn new_doc(device: &DeviceKey) -> AutoCommit {
    AutoCommit::new_with_encoding(ENCODING).with_actor(ActorId::from(device.as_bytes().as_slice()))
}

/// Loads a document from one buffer: a snapshot followed by any number of incremental chunks.
pub fn load(bytes: &[u8], device: &DeviceKey) -> Result<AutoCommit, DocError> {
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

/// Applies whole documents and changes from another device. Every chunk is parsed and checked
/// before anything is applied; then changes whose dependencies are present are applied.
pub fn apply_chunks(doc: &mut AutoCommit, bytes: &[u8]) -> Result<(), DocError> {
    let mut changes = Vec::new();
    let mut documents = Vec::new();
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
    for mut d in documents {
        doc.merge(&mut d)?;
    }
    doc.apply_changes(changes)?;
    Ok(())
}

/// What a document says about itself: id, kind and schema version, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The document id stored inside it.
    pub id: DocId,
    /// Its kind.
    pub kind: DocKind,
}

/// Reads and checks a document's header: known kind, parseable id, schema not newer than ours.
pub fn header(doc: &AutoCommit) -> Result<Header, DocError> {
    // Two values for a header field means changes of another document were merged in.
    for field in ["id", "kind", "schema"] {
        if doc.get_all(&ROOT, field)?.len() > 1 {
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

/// Checks that `doc` is a `expected` document.
pub fn expect_kind(doc: &AutoCommit, expected: DocKind) -> Result<Header, DocError> {
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
struct TurningPointDoc {
    when: String,
    description: String,
    at: i64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct ActorDoc {
    name: String,
    relation: String,
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
struct PerspectiveDoc {
    kind: String,
    who: String,
    text: String,
    at: i64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct ParticipantDoc {
    name: String,
    at: i64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct OrderedRef {
    at: i64,
}

#[derive(Debug, Clone, Hydrate)]
/// A note. Kept to few fields: in a case with many notes every Automerge op costs a seek
/// through the document, so a note is born with five (author as one `member:device` string).
struct NoteDoc {
    by: String,
    by_name: String,
    created_at: i64,
    /// Absent until the text is first edited.
    #[autosurgeon(missing = "Option::default")]
    edited_at: Option<i64>,
    kind: String,
    text: Text,
}

#[derive(Debug, Clone, Hydrate)]
struct CaimerDoc {
    context: Text,
    actors: Text,
    interventions: Text,
    mechanisms: Text,
    results: Text,
}

#[derive(Debug, Clone, Hydrate)]
struct ConsentDoc {
    status: String,
    scope: String,
    date: Option<String>,
}

/// The case root without its notes: hydrating it does not touch the notes map.
#[derive(Debug, Clone, Hydrate)]
struct CaseRoot {
    created_at: i64,
    created_by: AuthorDoc,
    subject: String,
    status: String,
    tags: BTreeMap<String, bool>,
    at_stake: Text,
    opgaven: BTreeMap<String, TextItemDoc>,
    turning_points: BTreeMap<String, TurningPointDoc>,
    client_voice: Text,
    actors: BTreeMap<String, ActorDoc>,
    caimer: CaimerDoc,
    agreements: BTreeMap<String, AgreementDoc>,
    consent: ConsentDoc,
    networks: BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Hydrate)]
struct LearningPointRoot {
    created_at: i64,
    created_by: AuthorDoc,
    title: String,
    insight: Text,
    cases: BTreeMap<String, OrderedRef>,
    sources: BTreeMap<String, TextItemDoc>,
    perspectives: BTreeMap<String, PerspectiveDoc>,
    status: String,
    meeting: Option<String>,
    tags: BTreeMap<String, bool>,
    networks: BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Hydrate)]
struct MeetingRoot {
    created_at: i64,
    created_by: AuthorDoc,
    network: Option<String>,
    date: String,
    place: String,
    participants: BTreeMap<String, ParticipantDoc>,
    agenda: BTreeMap<String, OrderedRef>,
    minutes: Text,
    learning_points: BTreeMap<String, OrderedRef>,
    agreements: BTreeMap<String, AgreementDoc>,
}

#[derive(Debug, Clone, Hydrate)]
struct MemberDoc {
    name: String,
    devices: BTreeMap<String, i64>,
    at: i64,
}

#[derive(Debug, Clone, Hydrate)]
struct NetworkRoot {
    created_at: i64,
    name: String,
    members: BTreeMap<String, MemberDoc>,
}

// ---------------------------------------------------------------------------------------------
// Low-level helpers

fn scalar_str(doc: &AutoCommit, obj: &ObjId, prop: &str) -> Result<String, DocError> {
    match doc.get(obj, prop)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Ok(s.to_string()),
            other => Err(DocError::Malformed(format!("{prop} is {other:?}, not a string"))),
        },
        _ => Err(DocError::Malformed(format!("{prop} is missing"))),
    }
}

/// The object at `obj[prop]`, which the layout says exists.
fn child(doc: &AutoCommit, obj: &ObjId, prop: &str) -> Result<ObjId, DocError> {
    match doc.get(obj, prop)? {
        Some((Value::Object(_), id)) => Ok(id),
        _ => Err(DocError::Malformed(format!("{prop} is not an object"))),
    }
}

fn put_text(doc: &mut AutoCommit, obj: &ObjId, prop: &str, value: &str) -> Result<(), DocError> {
    let text = doc.put_object(obj, prop, ObjType::Text)?;
    if !value.is_empty() {
        doc.splice_text(&text, 0, 0, value)?;
    }
    Ok(())
}

/// Changes a text field to `value` by the smallest splices, so concurrent edits elsewhere in
/// the text survive.
fn update_text(doc: &mut AutoCommit, obj: &ObjId, prop: &str, value: &str) -> Result<(), DocError> {
    let text = child(doc, obj, prop)?;
    doc.update_text(&text, value)?;
    Ok(())
}

/// Sets a scalar only when it differs: writing an unchanged value would still create a
/// conflict with a concurrent edit on another device.
fn put_if_changed(
    doc: &mut AutoCommit,
    obj: &ObjId,
    prop: &str,
    value: ScalarValue,
) -> Result<(), DocError> {
    let current = doc.get_all(obj, prop)?;
    let same =
        current.len() == 1 && matches!(&current[0], (Value::Scalar(s), _) if s.as_ref() == &value);
    if !same {
        doc.put(obj, prop, value)?;
    }
    Ok(())
}

fn put_author(doc: &mut AutoCommit, obj: &ObjId, prop: &str, a: &Author) -> Result<(), DocError> {
    reconcile_prop(doc, obj, prop, AuthorDoc::from_author(a))?;
    Ok(())
}

fn commit(doc: &mut AutoCommit, message: String, now: Timestamp) {
    doc.commit_with(CommitOptions::default().with_message(message).with_time(now));
}

fn put_root_header(
    doc: &mut AutoCommit,
    id: DocId,
    kind: DocKind,
    now: Timestamp,
) -> Result<(), DocError> {
    doc.put(ROOT, "schema", ScalarValue::Uint(SCHEMA_VERSION))?;
    doc.put(ROOT, "kind", kind.as_str())?;
    doc.put(ROOT, "id", id.to_string())?;
    doc.put(ROOT, "created_at", now)?;
    doc.put(ROOT, "updated_at", now)?;
    Ok(())
}

fn touch(doc: &mut AutoCommit, now: Timestamp) -> Result<(), DocError> {
    doc.put(ROOT, "updated_at", now)?;
    Ok(())
}

fn new_map(doc: &mut AutoCommit, obj: &ObjId, prop: &str) -> Result<ObjId, DocError> {
    Ok(doc.put_object(obj, prop, ObjType::Map)?)
}

fn set_keys<'a>(
    doc: &mut AutoCommit,
    obj: &ObjId,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<(), DocError> {
    for k in keys {
        if doc.get(obj, k)?.is_none() {
            doc.put(obj, k, true)?;
        }
    }
    Ok(())
}

fn ordered_refs(
    doc: &mut AutoCommit,
    obj: &ObjId,
    ids: &[DocId],
    now: Timestamp,
) -> Result<(), DocError> {
    for (i, id) in ids.iter().enumerate() {
        let key = id.to_string();
        if doc.get(obj, key.as_str())?.is_none() {
            reconcile_prop(doc, obj, key.as_str(), OrderedRef { at: now * 1000 + i as i64 })?;
        }
    }
    Ok(())
}

/// The newest of all concurrent `updated_at` values: the document's last activity.
pub fn updated_at(doc: &AutoCommit) -> Result<Timestamp, DocError> {
    let mut newest = 0;
    for (v, _) in doc.get_all(&ROOT, "updated_at")? {
        if let Value::Scalar(s) = v
            && let ScalarValue::Int(t) = s.as_ref()
        {
            newest = newest.max(*t);
        }
    }
    Ok(newest)
}

fn render(v: &Value<'_>) -> String {
    match v {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            ScalarValue::Null => "(none)".to_string(),
            other => other.to_string(),
        },
        Value::Object(t) => format!("({t})"),
    }
}

/// Fields with more than one concurrent value.
fn conflicts(doc: &AutoCommit, fields: &[(&ObjId, &str, &str)]) -> Result<Vec<Conflict>, DocError> {
    let mut out = Vec::new();
    for (obj, prop, label) in fields {
        let all = doc.get_all(*obj, *prop)?;
        if all.len() > 1 {
            // Automerge lists the winner last; the app shows the winner first.
            let mut values: Vec<String> = Vec::with_capacity(all.len());
            for (v, _) in all.iter().rev() {
                let v = render(v);
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            // The same value written on two devices is no conflict to show.
            if values.len() < 2 {
                continue;
            }
            out.push(Conflict { field: label.to_string(), values });
        }
    }
    Ok(out)
}

fn sorted_items<T: Clone>(items: &BTreeMap<String, T>, at: impl Fn(&T) -> i64) -> Vec<(ItemId, T)> {
    let mut v: Vec<(i64, ItemId, T)> = items
        .iter()
        .filter_map(|(k, t)| k.parse::<ItemId>().ok().map(|id| (at(t), id, t.clone())))
        .collect();
    v.sort_by_key(|(at, id, _)| (*at, *id));
    v.into_iter().map(|(_, id, t)| (id, t)).collect()
}

fn doc_ids(keys: impl Iterator<Item = String>) -> Vec<DocId> {
    keys.filter_map(|k| k.parse().ok()).collect()
}

fn ordered_doc_ids(items: &BTreeMap<String, OrderedRef>) -> Vec<DocId> {
    let mut v: Vec<(i64, DocId)> =
        items.iter().filter_map(|(k, r)| k.parse().ok().map(|id| (r.at, id))).collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

/// `done` set both ways on two devices at once, per agreement.
fn agreement_conflicts(doc: &AutoCommit) -> Result<Vec<Conflict>, DocError> {
    let obj = child(doc, &ROOT, "agreements")?;
    let mut out = Vec::new();
    for key in doc.keys(&obj).collect::<Vec<_>>() {
        if let Some((Value::Object(_), item)) = doc.get(&obj, key.as_str())? {
            let label = format!("agreements.{key}.done");
            out.extend(conflicts(doc, &[(&item, "done", label.as_str())])?);
        }
    }
    Ok(out)
}

fn agreements(items: &BTreeMap<String, AgreementDoc>) -> Vec<Agreement> {
    sorted_items(items, |a| a.at)
        .into_iter()
        .map(|(id, a)| Agreement { id, text: a.text, owner: a.owner, due: a.due, done: a.done })
        .collect()
}

fn put_agreement(
    doc: &mut AutoCommit,
    obj: &ObjId,
    text: &str,
    owner: &str,
    due: Option<&str>,
    now: Timestamp,
    ids: &Randomness,
) -> Result<ItemId, DocError> {
    let id = ItemId::random_from(ids);
    let a = AgreementDoc {
        text: text.to_string(),
        owner: owner.to_string(),
        due: due.map(str::to_string),
        done: false,
        at: now,
    };
    reconcile_prop(doc, obj, id.to_string().as_str(), a)?;
    Ok(id)
}

fn short_text(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 40 {
        format!("{}…", one_line.chars().take(40).collect::<String>())
    } else {
        one_line
    }
}

// ---------------------------------------------------------------------------------------------
// Cases and notes

/// Validated fields of a new case.
#[derive(Debug, Clone)]
pub struct CaseInit<'a> {
    /// Subject label.
    pub subject: &'a str,
    /// Tags, normalised.
    pub tags: &'a [String],
    /// What is at stake.
    pub at_stake: &'a str,
    /// The person's own words.
    pub client_voice: &'a str,
    /// Networks.
    pub networks: &'a [DocId],
}

/// Writes a new case document's first change: every object it will ever hold.
pub fn create_case(
    doc: &mut AutoCommit,
    id: DocId,
    init: &CaseInit<'_>,
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::Case, now)?;
    put_author(doc, &ROOT, "created_by", author)?;
    doc.put(ROOT, "subject", init.subject)?;
    doc.put(ROOT, "status", CaseStatus::Open.as_str())?;
    let tags = new_map(doc, &ROOT, "tags")?;
    set_keys(doc, &tags, init.tags.iter().map(String::as_str))?;
    put_text(doc, &ROOT, "at_stake", init.at_stake)?;
    new_map(doc, &ROOT, "opgaven")?;
    new_map(doc, &ROOT, "turning_points")?;
    put_text(doc, &ROOT, "client_voice", init.client_voice)?;
    new_map(doc, &ROOT, "actors")?;
    let caimer = new_map(doc, &ROOT, "caimer")?;
    for f in CAIMER_FIELDS {
        put_text(doc, &caimer, f, "")?;
    }
    new_map(doc, &ROOT, "agreements")?;
    let consent = new_map(doc, &ROOT, "consent")?;
    doc.put(&consent, "status", ConsentStatus::Unknown.as_str())?;
    doc.put(&consent, "scope", "")?;
    doc.put(&consent, "date", ScalarValue::Null)?;
    let nets = new_map(doc, &ROOT, "networks")?;
    let net_keys: Vec<String> = init.networks.iter().map(DocId::to_string).collect();
    set_keys(doc, &nets, net_keys.iter().map(String::as_str))?;
    new_map(doc, &ROOT, "notes")?;
    commit(doc, format!("Created case “{}”", init.subject), now);
    Ok(())
}

/// Validated change to a case's fields.
#[derive(Debug, Clone, Default)]
pub struct CaseChange {
    /// New subject.
    pub subject: Option<String>,
    /// New status.
    pub status: Option<CaseStatus>,
    /// Tags to add (normalised).
    pub add_tags: Vec<String>,
    /// Tags to remove (normalised).
    pub remove_tags: Vec<String>,
    /// New at-stake text.
    pub at_stake: Option<String>,
    /// New client-voice text.
    pub client_voice: Option<String>,
    /// New CAIMeR texts.
    pub caimer: Vec<(String, String)>,
    /// New consent.
    pub consent: Option<Consent>,
    /// Networks to share with.
    pub share_with: Vec<DocId>,
}

/// Applies a change to a case's fields as one Automerge change. Returns whether anything changed.
pub fn update_case(doc: &mut AutoCommit, c: &CaseChange, now: Timestamp) -> Result<bool, DocError> {
    let mut what = Vec::new();
    if let Some(s) = &c.subject {
        put_if_changed(doc, &ROOT, "subject", ScalarValue::Str(s.as_str().into()))?;
        what.push("subject");
    }
    if let Some(s) = c.status {
        put_if_changed(doc, &ROOT, "status", ScalarValue::Str(s.as_str().into()))?;
        what.push("status");
    }
    if !c.add_tags.is_empty() || !c.remove_tags.is_empty() {
        let tags = child(doc, &ROOT, "tags")?;
        set_keys(doc, &tags, c.add_tags.iter().map(String::as_str))?;
        for t in &c.remove_tags {
            if doc.get(&tags, t.as_str())?.is_some() {
                doc.delete(&tags, t.as_str())?;
            }
        }
        what.push("tags");
    }
    if let Some(t) = &c.at_stake {
        update_text(doc, &ROOT, "at_stake", t)?;
        what.push("what is at stake");
    }
    if let Some(t) = &c.client_voice {
        update_text(doc, &ROOT, "client_voice", t)?;
        what.push("client's voice");
    }
    if !c.caimer.is_empty() {
        let caimer = child(doc, &ROOT, "caimer")?;
        for (field, value) in &c.caimer {
            update_text(doc, &caimer, field, value)?;
        }
        what.push("CAIMeR");
    }
    if let Some(consent) = &c.consent {
        let obj = child(doc, &ROOT, "consent")?;
        put_if_changed(doc, &obj, "status", ScalarValue::Str(consent.status.as_str().into()))?;
        put_if_changed(doc, &obj, "scope", ScalarValue::Str(consent.scope.as_str().into()))?;
        let date = match &consent.date {
            Some(d) => ScalarValue::Str(d.as_str().into()),
            None => ScalarValue::Null,
        };
        put_if_changed(doc, &obj, "date", date)?;
        what.push("consent");
    }
    if !c.share_with.is_empty() {
        let nets = child(doc, &ROOT, "networks")?;
        let keys: Vec<String> = c.share_with.iter().map(DocId::to_string).collect();
        set_keys(doc, &nets, keys.iter().map(String::as_str))?;
        what.push("sharing");
    }
    if doc.pending_ops() == 0 {
        return Ok(false);
    }
    touch(doc, now)?;
    commit(doc, format!("Changed {}", what.join(", ")), now);
    Ok(true)
}

/// Adds an item (opgave, turning point, actor, agreement) to a case; its id comes from `ids`.
pub fn add_case_item(
    doc: &mut AutoCommit,
    item: &CaseItem,
    now: Timestamp,
    ids: &Randomness,
) -> Result<ItemId, DocError> {
    let id = ItemId::random_from(ids);
    let key = id.to_string();
    let message = match item {
        CaseItem::Opgave { text } => {
            let obj = child(doc, &ROOT, "opgaven")?;
            reconcile_prop(doc, &obj, key.as_str(), TextItemDoc { text: text.clone(), at: now })?;
            format!("Added opgave “{}”", short_text(text))
        }
        CaseItem::TurningPoint { when, description } => {
            let obj = child(doc, &ROOT, "turning_points")?;
            let tp =
                TurningPointDoc { when: when.clone(), description: description.clone(), at: now };
            reconcile_prop(doc, &obj, key.as_str(), tp)?;
            format!("Added turning point “{}”", short_text(description))
        }
        CaseItem::Actor { name, relation } => {
            let obj = child(doc, &ROOT, "actors")?;
            let a = ActorDoc { name: name.clone(), relation: relation.clone(), at: now };
            reconcile_prop(doc, &obj, key.as_str(), a)?;
            format!("Added {name} ({relation}) to the network around the person")
        }
        CaseItem::Agreement { text, owner, due } => {
            let obj = child(doc, &ROOT, "agreements")?;
            let a = AgreementDoc {
                text: text.clone(),
                owner: owner.clone(),
                due: due.clone(),
                done: false,
                at: now,
            };
            reconcile_prop(doc, &obj, key.as_str(), a)?;
            format!("Agreed “{}” ({owner})", short_text(text))
        }
    };
    touch(doc, now)?;
    commit(doc, message, now);
    Ok(id)
}

/// Marks an agreement of a case or meeting done (or not). Returns false if there is no such
/// agreement.
pub fn set_agreement_done(
    doc: &mut AutoCommit,
    agreement: ItemId,
    done: bool,
    now: Timestamp,
) -> Result<bool, DocError> {
    let obj = child(doc, &ROOT, "agreements")?;
    let Some((Value::Object(_), item)) = doc.get(&obj, agreement.to_string().as_str())? else {
        return Ok(false);
    };
    put_if_changed(doc, &item, "done", ScalarValue::Boolean(done))?;
    if doc.pending_ops() == 0 {
        return Ok(true);
    }
    touch(doc, now)?;
    commit(doc, format!("Marked an agreement {}", if done { "done" } else { "open" }), now);
    Ok(true)
}

/// Adds a note to a case.
pub fn add_note(
    doc: &mut AutoCommit,
    id: NoteId,
    kind: NoteKind,
    text: &str,
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    put_note(doc, id, kind, text, author, now)?;
    touch(doc, now)?;
    commit(doc, format!("Added {kind} note “{}”", short_text(text)), now);
    Ok(())
}

/// Adds several notes as one change (an import).
pub fn add_notes(
    doc: &mut AutoCommit,
    notes: &[(NoteId, NoteKind, &str)],
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    for (id, kind, text) in notes {
        put_note(doc, *id, *kind, text, author, now)?;
    }
    touch(doc, now)?;
    commit(doc, format!("Added {} notes", notes.len()), now);
    Ok(())
}

fn put_note(
    doc: &mut AutoCommit,
    id: NoteId,
    kind: NoteKind,
    text: &str,
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    let notes = child(doc, &ROOT, "notes")?;
    let note = doc.put_object(&notes, id.to_string().as_str(), ObjType::Map)?;
    doc.put(&note, "by", format!("{}:{}", author.member, author.device))?;
    doc.put(&note, "by_name", author.name.as_str())?;
    doc.put(&note, "created_at", now)?;
    doc.put(&note, "kind", kind.as_str())?;
    put_text(doc, &note, "text", text)?;
    Ok(())
}

fn note_obj(doc: &AutoCommit, note: NoteId) -> Result<Option<ObjId>, DocError> {
    let notes = child(doc, &ROOT, "notes")?;
    match doc.get(&notes, note.to_string().as_str())? {
        Some((Value::Object(_), obj)) => Ok(Some(obj)),
        _ => Ok(None),
    }
}

/// How a note's text is changed.
#[derive(Debug, Clone)]
pub enum TextEdit<'a> {
    /// Replace the whole text; stored as the smallest splices (a diff).
    Replace(&'a str),
    /// Delete `delete` characters at `pos` and insert `insert` there.
    Splice {
        /// Position, in characters.
        pos: usize,
        /// Characters to delete.
        delete: usize,
        /// Text to insert.
        insert: &'a str,
    },
}

/// Edits a note's text. Returns `Ok(None)` if the note does not exist, else the new text.
pub fn edit_note(
    doc: &mut AutoCommit,
    note: NoteId,
    edit: &TextEdit<'_>,
    now: Timestamp,
) -> Result<Option<String>, DocError> {
    let Some(obj) = note_obj(doc, note)? else {
        return Ok(None);
    };
    let text = child(doc, &obj, "text")?;
    match edit {
        TextEdit::Replace(t) => doc.update_text(&text, *t)?,
        TextEdit::Splice { pos, delete, insert } => {
            let len = doc.length(&text);
            if pos.checked_add(*delete).is_none_or(|end| end > len) {
                return Err(DocError::TextRange { pos: *pos, delete: *delete, len });
            }
            doc.splice_text(&text, *pos, *delete as isize, insert)?;
        }
    }
    let new_text = doc.text(&text)?;
    if doc.pending_ops() == 0 {
        return Ok(Some(new_text));
    }
    doc.put(&obj, "edited_at", now)?;
    touch(doc, now)?;
    commit(doc, format!("Edited note “{}”", short_text(&new_text)), now);
    Ok(Some(new_text))
}

/// Reads a case (without notes).
pub fn read_case(doc: &AutoCommit) -> Result<Case, DocError> {
    let h = expect_kind(doc, DocKind::Case)?;
    let r: CaseRoot = autosurgeon::hydrate(doc)?;
    let consent_obj = child(doc, &ROOT, "consent")?;
    let conflicts = conflicts(
        doc,
        &[
            (&ROOT, "subject", "subject"),
            (&ROOT, "status", "status"),
            (&consent_obj, "status", "consent.status"),
            (&consent_obj, "scope", "consent.scope"),
            (&consent_obj, "date", "consent.date"),
        ],
    )?;
    let mut conflicts = conflicts;
    conflicts.extend(agreement_conflicts(doc)?);
    Ok(Case {
        id: h.id,
        subject: r.subject,
        status: CaseStatus::parse(&r.status).map_err(|e| DocError::Malformed(e.to_string()))?,
        tags: r.tags.into_keys().collect(),
        at_stake: r.at_stake.as_str().to_string(),
        opgaven: sorted_items(&r.opgaven, |t| t.at)
            .into_iter()
            .map(|(id, t)| TextItem { id, text: t.text })
            .collect(),
        turning_points: sorted_items(&r.turning_points, |t| t.at)
            .into_iter()
            .map(|(id, t)| TurningPoint { id, when: t.when, description: t.description })
            .collect(),
        client_voice: r.client_voice.as_str().to_string(),
        actors: sorted_items(&r.actors, |a| a.at)
            .into_iter()
            .map(|(id, a)| CaseActor { id, name: a.name, relation: a.relation })
            .collect(),
        caimer: Caimer {
            context: r.caimer.context.as_str().to_string(),
            actors: r.caimer.actors.as_str().to_string(),
            interventions: r.caimer.interventions.as_str().to_string(),
            mechanisms: r.caimer.mechanisms.as_str().to_string(),
            results: r.caimer.results.as_str().to_string(),
        },
        agreements: agreements(&r.agreements),
        consent: Consent {
            status: ConsentStatus::parse(&r.consent.status)
                .map_err(|e| DocError::Malformed(e.to_string()))?,
            scope: r.consent.scope,
            date: r.consent.date,
        },
        networks: doc_ids(r.networks.into_keys()),
        created_at: r.created_at,
        created_by: r.created_by.to_author()?,
        updated_at: updated_at(doc)?,
        conflicts,
    })
}

fn note_from(case_id: DocId, id: NoteId, n: NoteDoc) -> Result<Note, DocError> {
    let bad = |e: crate::ids::ParseIdError| DocError::Malformed(format!("note author: {e}"));
    let (member, device) =
        n.by.split_once(':')
            .ok_or_else(|| DocError::Malformed("note author is not member:device".into()))?;
    Ok(Note {
        id,
        case_id,
        author: Author {
            member: member.parse().map_err(bad)?,
            name: n.by_name,
            device: device.parse().map_err(bad)?,
        },
        created_at: n.created_at,
        edited_at: n.edited_at.unwrap_or(n.created_at),
        kind: NoteKind::parse(&n.kind).map_err(|e| DocError::Malformed(e.to_string()))?,
        text: n.text.as_str().to_string(),
    })
}

/// Reads one note, if it exists.
pub fn read_note(doc: &AutoCommit, case_id: DocId, note: NoteId) -> Result<Option<Note>, DocError> {
    let notes = child(doc, &ROOT, "notes")?;
    let key = note.to_string();
    if doc.get(&notes, key.as_str())?.is_none() {
        return Ok(None);
    }
    let n: NoteDoc = hydrate_prop(doc, &notes, key.as_str())?;
    note_from(case_id, note, n).map(Some)
}

/// Reads every note of a case, oldest first.
pub fn read_notes(doc: &AutoCommit, case_id: DocId) -> Result<Vec<Note>, DocError> {
    let notes_obj = child(doc, &ROOT, "notes")?;
    let keys: Vec<String> = doc.keys(&notes_obj).collect();
    let mut notes = Vec::with_capacity(keys.len());
    for k in keys {
        let id: NoteId = k.parse().map_err(|e| DocError::Malformed(format!("note id: {e}")))?;
        let n: NoteDoc = hydrate_prop(doc, &notes_obj, k.as_str())?;
        notes.push(note_from(case_id, id, n)?);
    }
    notes.sort_by_key(|n| (n.created_at, n.id));
    Ok(notes)
}

// ---------------------------------------------------------------------------------------------
// Learning points

/// Validated fields of a new learning point.
#[derive(Debug, Clone)]
pub struct LearningPointInit<'a> {
    /// Title.
    pub title: &'a str,
    /// Insight.
    pub insight: &'a str,
    /// Cases it came from.
    pub cases: &'a [DocId],
    /// Sources.
    pub sources: &'a [String],
    /// Tags.
    pub tags: &'a [String],
    /// Networks.
    pub networks: &'a [DocId],
}

/// Writes a new learning point's first change.
pub fn create_learning_point(
    doc: &mut AutoCommit,
    id: DocId,
    init: &LearningPointInit<'_>,
    author: &Author,
    now: Timestamp,
    ids: &Randomness,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::LearningPoint, now)?;
    put_author(doc, &ROOT, "created_by", author)?;
    doc.put(ROOT, "title", init.title)?;
    put_text(doc, &ROOT, "insight", init.insight)?;
    let cases = new_map(doc, &ROOT, "cases")?;
    ordered_refs(doc, &cases, init.cases, now)?;
    let sources = new_map(doc, &ROOT, "sources")?;
    for (i, s) in init.sources.iter().enumerate() {
        let item = TextItemDoc { text: s.clone(), at: now * 1000 + i as i64 };
        reconcile_prop(doc, &sources, ItemId::random_from(ids).to_string().as_str(), item)?;
    }
    new_map(doc, &ROOT, "perspectives")?;
    doc.put(ROOT, "status", LearningPointStatus::Proposed.as_str())?;
    doc.put(ROOT, "meeting", ScalarValue::Null)?;
    let tags = new_map(doc, &ROOT, "tags")?;
    set_keys(doc, &tags, init.tags.iter().map(String::as_str))?;
    let nets = new_map(doc, &ROOT, "networks")?;
    let net_keys: Vec<String> = init.networks.iter().map(DocId::to_string).collect();
    set_keys(doc, &nets, net_keys.iter().map(String::as_str))?;
    commit(doc, format!("Proposed learning point “{}”", init.title), now);
    Ok(())
}

/// Validated change to a learning point.
#[derive(Debug, Clone, Default)]
pub struct LearningPointChange {
    /// New title.
    pub title: Option<String>,
    /// New insight.
    pub insight: Option<String>,
    /// New status.
    pub status: Option<LearningPointStatus>,
    /// Meeting where discussed.
    pub meeting: Option<DocId>,
    /// Cases to link.
    pub add_cases: Vec<DocId>,
    /// Sources to add.
    pub add_sources: Vec<String>,
    /// Perspectives to add.
    pub add_perspectives: Vec<(PerspectiveKind, String, String)>,
    /// Tags to add.
    pub add_tags: Vec<String>,
}

/// Applies a change to a learning point. Returns whether anything changed.
pub fn update_learning_point(
    doc: &mut AutoCommit,
    c: &LearningPointChange,
    now: Timestamp,
    ids: &Randomness,
) -> Result<bool, DocError> {
    let mut what = Vec::new();
    if let Some(t) = &c.title {
        put_if_changed(doc, &ROOT, "title", ScalarValue::Str(t.as_str().into()))?;
        what.push("title".to_string());
    }
    if let Some(t) = &c.insight {
        update_text(doc, &ROOT, "insight", t)?;
        what.push("insight".to_string());
    }
    if let Some(s) = c.status {
        put_if_changed(doc, &ROOT, "status", ScalarValue::Str(s.as_str().into()))?;
        what.push(format!("status to {s}"));
    }
    if let Some(m) = c.meeting {
        put_if_changed(doc, &ROOT, "meeting", ScalarValue::Str(m.to_string().into()))?;
        what.push("meeting".to_string());
    }
    if !c.add_cases.is_empty() {
        let cases = child(doc, &ROOT, "cases")?;
        ordered_refs(doc, &cases, &c.add_cases, now)?;
        what.push("cases".to_string());
    }
    if !c.add_sources.is_empty() {
        let sources = child(doc, &ROOT, "sources")?;
        for (i, s) in c.add_sources.iter().enumerate() {
            let item = TextItemDoc { text: s.clone(), at: now * 1000 + i as i64 };
            reconcile_prop(doc, &sources, ItemId::random_from(ids).to_string().as_str(), item)?;
        }
        what.push("sources".to_string());
    }
    if !c.add_perspectives.is_empty() {
        let obj = child(doc, &ROOT, "perspectives")?;
        for (i, (kind, who, text)) in c.add_perspectives.iter().enumerate() {
            let p = PerspectiveDoc {
                kind: kind.as_str().to_string(),
                who: who.clone(),
                text: text.clone(),
                at: now * 1000 + i as i64,
            };
            reconcile_prop(doc, &obj, ItemId::random_from(ids).to_string().as_str(), p)?;
        }
        what.push("perspectives".to_string());
    }
    if !c.add_tags.is_empty() {
        let tags = child(doc, &ROOT, "tags")?;
        set_keys(doc, &tags, c.add_tags.iter().map(String::as_str))?;
        what.push("tags".to_string());
    }
    if doc.pending_ops() == 0 {
        return Ok(false);
    }
    touch(doc, now)?;
    commit(doc, format!("Changed {}", what.join(", ")), now);
    Ok(true)
}

/// Reads a learning point.
pub fn read_learning_point(doc: &AutoCommit) -> Result<LearningPoint, DocError> {
    let h = expect_kind(doc, DocKind::LearningPoint)?;
    let r: LearningPointRoot = autosurgeon::hydrate(doc)?;
    let conflicts = conflicts(
        doc,
        &[(&ROOT, "title", "title"), (&ROOT, "status", "status"), (&ROOT, "meeting", "meeting")],
    )?;
    let mut perspectives = Vec::new();
    for (id, p) in sorted_items(&r.perspectives, |p| p.at) {
        perspectives.push(Perspective {
            id,
            kind: PerspectiveKind::parse(&p.kind)
                .map_err(|e| DocError::Malformed(e.to_string()))?,
            who: p.who,
            text: p.text,
        });
    }
    Ok(LearningPoint {
        id: h.id,
        title: r.title,
        insight: r.insight.as_str().to_string(),
        cases: ordered_doc_ids(&r.cases),
        sources: sorted_items(&r.sources, |s| s.at)
            .into_iter()
            .map(|(id, s)| TextItem { id, text: s.text })
            .collect(),
        perspectives,
        status: LearningPointStatus::parse(&r.status)
            .map_err(|e| DocError::Malformed(e.to_string()))?,
        meeting: r.meeting.and_then(|m| m.parse().ok()),
        tags: r.tags.into_keys().collect(),
        networks: doc_ids(r.networks.into_keys()),
        created_at: r.created_at,
        created_by: r.created_by.to_author()?,
        updated_at: updated_at(doc)?,
        conflicts,
    })
}

// ---------------------------------------------------------------------------------------------
// Meetings

/// Validated fields of a new meeting.
#[derive(Debug, Clone)]
pub struct MeetingInit<'a> {
    /// Network.
    pub network: Option<DocId>,
    /// Date.
    pub date: &'a str,
    /// Place.
    pub place: &'a str,
    /// Participants.
    pub participants: &'a [String],
    /// Agenda.
    pub agenda: &'a [DocId],
}

fn add_participants(
    doc: &mut AutoCommit,
    names: &[String],
    now: Timestamp,
    ids: &Randomness,
) -> Result<(), DocError> {
    let obj = child(doc, &ROOT, "participants")?;
    let existing: Vec<String> = doc
        .keys(&obj)
        .filter_map(|k| hydrate_prop::<_, ParticipantDoc, _, _>(doc, &obj, k.as_str()).ok())
        .map(|p| p.name)
        .collect();
    for (i, name) in names.iter().enumerate() {
        if !existing.contains(name) {
            let p = ParticipantDoc { name: name.clone(), at: now * 1000 + i as i64 };
            reconcile_prop(doc, &obj, ItemId::random_from(ids).to_string().as_str(), p)?;
        }
    }
    Ok(())
}

/// Writes a new meeting's first change.
pub fn create_meeting(
    doc: &mut AutoCommit,
    id: DocId,
    init: &MeetingInit<'_>,
    author: &Author,
    now: Timestamp,
    ids: &Randomness,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::Meeting, now)?;
    put_author(doc, &ROOT, "created_by", author)?;
    match init.network {
        Some(n) => doc.put(ROOT, "network", n.to_string())?,
        None => doc.put(ROOT, "network", ScalarValue::Null)?,
    }
    doc.put(ROOT, "date", init.date)?;
    doc.put(ROOT, "place", init.place)?;
    new_map(doc, &ROOT, "participants")?;
    add_participants(doc, init.participants, now, ids)?;
    let agenda = new_map(doc, &ROOT, "agenda")?;
    ordered_refs(doc, &agenda, init.agenda, now)?;
    put_text(doc, &ROOT, "minutes", "")?;
    new_map(doc, &ROOT, "learning_points")?;
    new_map(doc, &ROOT, "agreements")?;
    commit(doc, format!("Planned meeting on {} at {}", init.date, init.place), now);
    Ok(())
}

/// Validated change to a meeting.
#[derive(Debug, Clone, Default)]
pub struct MeetingChange {
    /// New place.
    pub place: Option<String>,
    /// New minutes.
    pub minutes: Option<String>,
    /// Participants to add.
    pub add_participants: Vec<String>,
    /// Agenda cases to add.
    pub add_agenda: Vec<DocId>,
    /// Learning points captured.
    pub add_learning_points: Vec<DocId>,
    /// Agreements: text, owner, due.
    pub add_agreements: Vec<(String, String, Option<String>)>,
}

/// Applies a change to a meeting. Returns whether anything changed.
pub fn update_meeting(
    doc: &mut AutoCommit,
    c: &MeetingChange,
    now: Timestamp,
    ids: &Randomness,
) -> Result<bool, DocError> {
    let mut what = Vec::new();
    if let Some(p) = &c.place {
        put_if_changed(doc, &ROOT, "place", ScalarValue::Str(p.as_str().into()))?;
        what.push("place");
    }
    if let Some(m) = &c.minutes {
        update_text(doc, &ROOT, "minutes", m)?;
        what.push("minutes");
    }
    if !c.add_participants.is_empty() {
        add_participants(doc, &c.add_participants, now, ids)?;
        what.push("participants");
    }
    if !c.add_agenda.is_empty() {
        let obj = child(doc, &ROOT, "agenda")?;
        ordered_refs(doc, &obj, &c.add_agenda, now)?;
        what.push("agenda");
    }
    if !c.add_learning_points.is_empty() {
        let obj = child(doc, &ROOT, "learning_points")?;
        ordered_refs(doc, &obj, &c.add_learning_points, now)?;
        what.push("learning points");
    }
    if !c.add_agreements.is_empty() {
        let obj = child(doc, &ROOT, "agreements")?;
        for (i, (text, owner, due)) in c.add_agreements.iter().enumerate() {
            put_agreement(doc, &obj, text, owner, due.as_deref(), now * 1000 + i as i64, ids)?;
        }
        what.push("agreements");
    }
    if doc.pending_ops() == 0 {
        return Ok(false);
    }
    touch(doc, now)?;
    commit(doc, format!("Changed {}", what.join(", ")), now);
    Ok(true)
}

/// Reads a meeting.
pub fn read_meeting(doc: &AutoCommit) -> Result<Meeting, DocError> {
    let h = expect_kind(doc, DocKind::Meeting)?;
    let r: MeetingRoot = autosurgeon::hydrate(doc)?;
    let mut conflicts = conflicts(doc, &[(&ROOT, "date", "date"), (&ROOT, "place", "place")])?;
    conflicts.extend(agreement_conflicts(doc)?);
    Ok(Meeting {
        id: h.id,
        network: r.network.and_then(|n| n.parse().ok()),
        date: r.date,
        place: r.place,
        participants: sorted_items(&r.participants, |p| p.at)
            .into_iter()
            .map(|(_, p)| p.name)
            .collect(),
        agenda: ordered_doc_ids(&r.agenda),
        minutes: r.minutes.as_str().to_string(),
        learning_points: ordered_doc_ids(&r.learning_points),
        agreements: agreements(&r.agreements),
        created_at: r.created_at,
        created_by: r.created_by.to_author()?,
        updated_at: updated_at(doc)?,
        conflicts,
    })
}

// ---------------------------------------------------------------------------------------------
// Networks

/// Writes a new network's first change; the creator is its first member, and `sealed_key` its
/// network key (epoch 0) sealed to the creator's device.
pub fn create_network(
    doc: &mut AutoCommit,
    id: DocId,
    name: &str,
    creator: &Author,
    sealed_key: &[u8],
    now: Timestamp,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::Network, now)?;
    put_author(doc, &ROOT, "created_by", creator)?;
    doc.put(ROOT, "name", name)?;
    new_map(doc, &ROOT, "members")?;
    put_member(doc, creator.member, &creator.name, creator.device, now)?;
    ensure_key_maps(doc)?;
    put_sealed_network_key(doc, 0, &creator.device, sealed_key)?;
    commit(doc, format!("Started network “{name}”"), now);
    Ok(())
}

// Keys. Both maps are flat, keyed `"<a>.<b>"`: two devices writing entries at once never
// create the same nested map twice (concurrently created maps conflict and one loses).

/// Creates the network document's key maps if it has none (a network made before keys
/// existed). Only the network's creator calls this, so two devices never race to create them.
pub fn ensure_key_maps(doc: &mut AutoCommit) -> Result<(), DocError> {
    for map in ["keys", "content_keys"] {
        if !matches!(doc.get(&ROOT, map)?, Some((Value::Object(ObjType::Map), _))) {
            new_map(doc, &ROOT, map)?;
        }
    }
    Ok(())
}

fn bytes_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<Vec<u8>>, DocError> {
    match doc.get(obj, key)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Bytes(b) => Ok(Some(b.clone())),
            _ => Err(DocError::Malformed(format!("key entry {key} is not bytes"))),
        },
        Some(_) => Err(DocError::Malformed(format!("key entry {key} is not bytes"))),
        None => Ok(None),
    }
}

fn key_map(doc: &AutoCommit, map: &str) -> Result<Option<ObjId>, DocError> {
    match doc.get(&ROOT, map)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(Some(id)),
        _ => Ok(None),
    }
}

/// Records the network key of `epoch` sealed to `device`. Returns false (and writes nothing)
/// if the device already has one.
pub fn put_sealed_network_key(
    doc: &mut AutoCommit,
    epoch: u32,
    device: &DeviceKey,
    sealed: &[u8],
) -> Result<bool, DocError> {
    let keys = key_map(doc, "keys")?.ok_or(DocError::Malformed("network has no key map".into()))?;
    let k = format!("{epoch}.{device}");
    if doc.get(&keys, k.as_str())?.is_some() {
        return Ok(false);
    }
    doc.put(&keys, k.as_str(), ScalarValue::Bytes(sealed.to_vec()))?;
    Ok(true)
}

/// The network key of `epoch` sealed to `device`, if the network holds one.
pub fn sealed_network_key(
    doc: &AutoCommit,
    epoch: u32,
    device: &DeviceKey,
) -> Result<Option<Vec<u8>>, DocError> {
    let Some(keys) = key_map(doc, "keys")? else { return Ok(None) };
    bytes_at(doc, &keys, &format!("{epoch}.{device}"))
}

/// Records a document's content key, sealed under the network key, by the document's relay
/// id and the key's id.
pub fn put_content_key(
    doc: &mut AutoCommit,
    relay_doc: &[u8; 32],
    key_id: &[u8],
    sealed: &[u8],
) -> Result<(), DocError> {
    let keys = key_map(doc, "content_keys")?
        .ok_or(DocError::Malformed("network has no content key map".into()))?;
    let k = format!("{}.{}", hex::encode(relay_doc), hex::encode(key_id));
    doc.put(&keys, k.as_str(), ScalarValue::Bytes(sealed.to_vec()))?;
    Ok(())
}

/// The device that created a network, if its document records one.
pub fn network_creator(doc: &AutoCommit) -> Result<Option<DeviceKey>, DocError> {
    let by: Option<AuthorDoc> = hydrate_prop(doc, &ROOT, "created_by")?;
    Ok(by.and_then(|a| a.device.parse().ok()))
}

/// Commits key entries written since the last commit (nothing if none were).
pub fn commit_keys(doc: &mut AutoCommit, message: String, now: Timestamp) -> Result<(), DocError> {
    if doc.pending_ops() > 0 {
        touch(doc, now)?;
        commit(doc, message, now);
    }
    Ok(())
}

/// A content key's id and the key sealed under the network key.
pub type SealedContentKey = (Vec<u8>, Vec<u8>);

/// A document's sealed content keys, by key id.
pub fn content_keys(
    doc: &AutoCommit,
    relay_doc: &[u8; 32],
) -> Result<Vec<SealedContentKey>, DocError> {
    let Some(keys) = key_map(doc, "content_keys")? else { return Ok(Vec::new()) };
    // Keys are "<64 hex>.<16 hex>": the document's entries are one range of the sorted map.
    let from = format!("{}.", hex::encode(relay_doc));
    let to = format!("{}/", hex::encode(relay_doc));
    let mut out = Vec::new();
    for item in doc.map_range(&keys, from..to) {
        let id_hex = item.key.rsplit('.').next().unwrap_or_default();
        let id = hex::decode(id_hex)
            .map_err(|_| DocError::Malformed(format!("content key id {id_hex}")))?;
        if let Some(bytes) = bytes_at(doc, &keys, &item.key)? {
            out.push((id, bytes));
        }
    }
    Ok(out)
}

fn put_member(
    doc: &mut AutoCommit,
    member: MemberId,
    name: &str,
    device: DeviceKey,
    now: Timestamp,
) -> Result<(), DocError> {
    let members = child(doc, &ROOT, "members")?;
    let key = member.to_string();
    let m = match doc.get(&members, key.as_str())? {
        Some((Value::Object(_), m)) => {
            put_if_changed(doc, &m, "name", ScalarValue::Str(name.into()))?;
            m
        }
        _ => {
            let m = doc.put_object(&members, key.as_str(), ObjType::Map)?;
            doc.put(&m, "name", name)?;
            doc.put(&m, "at", now)?;
            doc.put_object(&m, "devices", ObjType::Map)?;
            m
        }
    };
    let devices = child(doc, &m, "devices")?;
    let dkey = device.to_string();
    if doc.get(&devices, dkey.as_str())?.is_none() {
        doc.put(&devices, dkey.as_str(), now)?;
    }
    Ok(())
}

/// Adds a member (or another device of a member) to a network, with the network key sealed
/// to the device when the adding device holds it.
pub fn add_member(
    doc: &mut AutoCommit,
    member: MemberId,
    name: &str,
    device: DeviceKey,
    sealed_key: Option<&[u8]>,
    now: Timestamp,
) -> Result<bool, DocError> {
    put_member(doc, member, name, device, now)?;
    if let Some(sealed) = sealed_key {
        put_sealed_network_key(doc, 0, &device, sealed)?;
    }
    if doc.pending_ops() == 0 {
        return Ok(false);
    }
    touch(doc, now)?;
    commit(doc, format!("Added {name} (device {}) to the network", device.short()), now);
    Ok(true)
}

/// Reads a network.
pub fn read_network(doc: &AutoCommit) -> Result<Network, DocError> {
    let h = expect_kind(doc, DocKind::Network)?;
    let r: NetworkRoot = autosurgeon::hydrate(doc)?;
    let mut members = Vec::new();
    let mut sorted: Vec<(String, MemberDoc)> = r.members.into_iter().collect();
    sorted.sort_by(|a, b| (a.1.at, &a.0).cmp(&(b.1.at, &b.0)));
    for (k, m) in sorted {
        members.push(Member {
            id: k.parse().map_err(|e| DocError::Malformed(format!("member id: {e}")))?,
            name: m.name,
            devices: m.devices.keys().filter_map(|d| d.parse().ok()).collect(),
        });
    }
    Ok(Network { id: h.id, name: r.name, members, created_at: r.created_at })
}

// ---------------------------------------------------------------------------------------------
// History

/// One change in a document's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The change hash (hex).
    pub hash: String,
    /// The device that wrote it (its actor id), if it is a Nabij device key.
    pub device: Option<DeviceKey>,
    /// When, as the writing device's clock said (milliseconds since the epoch).
    pub time: i64,
    /// What changed, in words.
    pub summary: String,
}

/// Every change of a document, oldest first (in causal order).
pub fn history(doc: &mut AutoCommit) -> Vec<Change> {
    doc.get_changes_meta(&[])
        .into_iter()
        .map(|c| Change {
            hash: c.hash.to_string(),
            device: DeviceKey::from_slice(c.actor.to_bytes()),
            time: c.timestamp,
            summary: c.message.map(|m| m.to_string()).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(n: u8) -> Author {
        Author {
            member: MemberId::from_bytes([n; 16]),
            name: format!("worker {n}"),
            device: DeviceKey::from_bytes([n; 32]),
        }
    }

    fn new_case(a: &Author) -> (AutoCommit, DocId) {
        let mut doc = new_doc(&a.device);
        let id = DocId::random();
        let init = CaseInit {
            subject: "Familie K.",
            tags: &["wonen".into()],
            at_stake: "",
            client_voice: "",
            networks: &[],
        };
        create_case(&mut doc, id, &init, a, 1_000).unwrap();
        (doc, id)
    }

    #[test]
    fn concurrent_note_edits_both_survive_and_conflicts_are_visible() {
        let (a, b) = (author(1), author(2));
        let (mut d1, id) = new_case(&a);
        let note = NoteId::random();
        add_note(
            &mut d1,
            note,
            NoteKind::Observation,
            "Joke wast alles op tachtig graden.",
            &a,
            2_000,
        )
        .unwrap();
        let mut d2 = load(&d1.save(), &b.device).unwrap();

        edit_note(
            &mut d1,
            note,
            &TextEdit::Replace("Joke wast alles samen op tachtig graden."),
            3_000,
        )
        .unwrap();
        edit_note(
            &mut d2,
            note,
            &TextEdit::Replace("Joke wast alles op tachtig graden, zegt Michelle."),
            3_000,
        )
        .unwrap();
        update_case(
            &mut d1,
            &CaseChange { subject: Some("Joke en Michelle".into()), ..Default::default() },
            3_000,
        )
        .unwrap();
        update_case(
            &mut d2,
            &CaseChange { subject: Some("Gezin K.".into()), ..Default::default() },
            3_000,
        )
        .unwrap();

        d1.merge(&mut d2).unwrap();
        d2.merge(&mut d1).unwrap();
        let t1 = read_note(&d1, id, note).unwrap().unwrap().text;
        assert_eq!(t1, read_note(&d2, id, note).unwrap().unwrap().text);
        assert_eq!(t1, "Joke wast alles samen op tachtig graden, zegt Michelle.");
        let case = read_case(&d1).unwrap();
        let c =
            case.conflicts.iter().find(|c| c.field == "subject").expect("subject conflict shown");
        assert_eq!(c.values.len(), 2);
        assert!(
            c.values.contains(&"Joke en Michelle".to_string())
                && c.values.contains(&"Gezin K.".to_string())
        );
        assert_eq!(c.values[0], case.subject, "the current value is listed first");
    }

    #[test]
    fn splice_out_of_range_is_refused_without_changing_the_note() {
        let a = author(1);
        let (mut d, id) = new_case(&a);
        let note = NoteId::random();
        add_note(&mut d, note, NoteKind::Reflection, "ë is één teken", &a, 2_000).unwrap();
        let err =
            edit_note(&mut d, note, &TextEdit::Splice { pos: 10, delete: 10, insert: "x" }, 3_000);
        assert!(matches!(err, Err(DocError::TextRange { len: 14, .. })));
        // Positions count characters, not bytes.
        edit_note(&mut d, note, &TextEdit::Splice { pos: 0, delete: 1, insert: "E" }, 3_000)
            .unwrap();
        assert_eq!(read_note(&d, id, note).unwrap().unwrap().text, "E is één teken");
    }

    #[test]
    fn newer_schema_is_refused() {
        let a = author(1);
        let (mut d, _) = new_case(&a);
        d.put(ROOT, "schema", ScalarValue::Uint(SCHEMA_VERSION + 1)).unwrap();
        d.commit();
        assert!(matches!(header(&d), Err(DocError::NewerSchema { .. })));
    }

    #[test]
    fn history_names_the_device_and_says_what_changed() {
        let a = author(3);
        let (mut d, _) = new_case(&a);
        add_note(&mut d, NoteId::random(), NoteKind::Question, "Wie kent de huisarts?", &a, 5_000)
            .unwrap();
        let h = history(&mut d);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].device, Some(a.device));
        assert!(h[1].summary.contains("question note"));
        assert_eq!(h[1].time, 5_000);
    }
}
