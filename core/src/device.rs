//! The façade an app holds: one [`Device`] per phone, owning its store, its identity, the cache
//! of loaded documents and the change listeners.
//!
//! Owns the write path: validate → change the Automerge document → append its incremental
//! chunk → update the derived tables → COMMIT → notify listeners, all for one operation.
//! Queries read only derived tables through a separate reader connection. Knows nothing of the
//! network: sync drivers call [`Device::merge_changes`] and friends.

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use automerge::{AutoCommit, ChangeHash};
use lru::LruCache;
use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, Transaction, TransactionBehavior};

mod relay_store;
mod sync_store;

pub use relay_store::DeviceRelay;

use crate::{
    crypto::{self, CryptoError, SecretKey},
    doc::{self, DocError, TextEdit},
    error::Error,
    identity::DeviceIdentity,
    ids::{DeviceKey, DocId, ItemId, MemberId, NoteId, Randomness},
    model::{
        self, Author, CAIMER_FIELDS, Case, CaseItem, CaseUpdate, DocKind, LearningPoint,
        LearningPointUpdate, Meeting, MeetingUpdate, Network, NewCase, NewLearningPoint,
        NewMeeting, NewNote, Note, Timestamp, ValidationError,
    },
    store::{
        self, CaseFilter, CaseSummary, DocState, LearningPointSummary, MeetingContents,
        MeetingSummary, NetworkSummary, SearchHit,
    },
};

/// Where time comes from: the system clock in apps, a fake one in deterministic tests.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Timestamp {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Timestamp)
            .unwrap_or_default()
    }
}

/// How a device is opened.
#[derive(Clone)]
pub struct DeviceOptions {
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Most Automerge documents kept loaded.
    pub cache_capacity: NonZeroUsize,
    /// Where new ids and, at the store's first open, the device's secret key come from: the
    /// OS random source by default. Only tests and simulations set
    /// [`Randomness::deterministic_for_tests`] (see [`DeviceOptions::deterministic_for_tests`]).
    pub randomness: Randomness,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            cache_capacity: NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN),
            randomness: Randomness::os(),
        }
    }
}

impl DeviceOptions {
    /// Options for a test or simulation that must replay byte for byte: `clock` for every
    /// timestamp (Automerge changes included), ids and the device key from the
    /// [`Randomness::deterministic_for_tests`] stream of `seed`. The device key is then
    /// predictable: never for a real device.
    ///
    /// Clones share the stream: reopen a store with a clone of the options it was first
    /// opened with, not with new options of the same seed (those would repeat its ids).
    pub fn deterministic_for_tests(clock: Arc<dyn Clock>, seed: u64) -> Self {
        Self { clock, randomness: Randomness::deterministic_for_tests(seed), ..Self::default() }
    }
}

/// A loaded document and the heads the store holds of it: the next chunk is everything after
/// them (`save_after`), because `load` resets Automerge's own incremental cursor.
struct Cached {
    doc: AutoCommit,
    persisted: Vec<ChangeHash>,
}

struct Writer {
    conn: Connection,
    cache: LruCache<DocId, Cached>,
}

type Listener = Arc<dyn Fn(&[DocId]) + Send + Sync>;

#[derive(Default)]
struct Listeners {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Listener>>,
}

/// A change subscription; dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    listeners: Weak<Listeners>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(l) = self.listeners.upgrade() {
            l.map.lock().remove(&self.id);
        }
    }
}

/// What merging foreign data did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MergeOutcome {
    /// The document.
    pub doc_id: DocId,
    /// Its kind.
    pub kind: DocKind,
    /// Whether anything new arrived.
    pub changed: bool,
}

/// One entry of a document's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    /// The change hash.
    pub hash: String,
    /// The device that wrote it.
    pub device: Option<DeviceKey>,
    /// The member name that device is known by, if known here.
    pub author: Option<String>,
    /// When (milliseconds since the epoch, the writer's clock).
    pub time: Timestamp,
    /// What changed.
    pub summary: String,
}

/// Which notes of a case a write touched, for the derived tables.
enum Notes {
    Some(Touched),
    All,
}

/// The notes a local write touched: rows the write already knows in full (a new note), and
/// notes to read back from the document (an edit, whose merged text only the document knows).
#[derive(Default)]
struct Touched {
    known: Vec<Note>,
    read: Vec<NoteId>,
}

/// One device: a store, an identity, and every operation an app performs.
pub struct Device {
    path: PathBuf,
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    identity: DeviceIdentity,
    member: MemberId,
    name: RwLock<String>,
    clock: Arc<dyn Clock>,
    randomness: Randomness,
    listeners: Arc<Listeners>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("path", &self.path)
            .field("key", &self.identity.public_key())
            .finish()
    }
}

fn heads_bytes(heads: &[ChangeHash]) -> Vec<[u8; 32]> {
    heads.iter().map(|h| h.0).collect()
}

fn same_heads(a: &[ChangeHash], b: &[[u8; 32]]) -> bool {
    let mut a: Vec<[u8; 32]> = heads_bytes(a);
    a.sort();
    a == b
}

impl Device {
    /// Opens the store at `path`, creating it (and the device's key) on first use.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, DeviceOptions::default())
    }

    /// Opens with explicit options (clock, cache size).
    pub fn open_with(path: impl AsRef<Path>, options: DeviceOptions) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let (mut conn, reader, needs_reindex) = store::open(&path)?;
        let (identity, member, name) = {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let identity = match store::meta_get(&tx, "device_secret")? {
                Some(secret) => {
                    DeviceIdentity::from_secret(&secret).map_err(store::OpenError::from)?
                }
                None => {
                    let id = DeviceIdentity::generate_from(&options.randomness)
                        .map_err(store::OpenError::from)?;
                    store::meta_put(&tx, "device_secret", &id.secret_bytes())?;
                    id
                }
            };
            let member = match store::meta_get(&tx, "member_id")? {
                Some(b) => MemberId::from_slice(&b)
                    .map_err(|e| store::StoreError::Corrupt(e.to_string()))?,
                None => {
                    let m = MemberId::random_from(&options.randomness);
                    store::meta_put(&tx, "member_id", m.as_bytes())?;
                    m
                }
            };
            let name = match store::meta_get(&tx, "member_name")? {
                Some(b) => String::from_utf8_lossy(&b).into_owned(),
                None => format!("device {}", identity.public_key().short()),
            };
            tx.commit()?;
            (identity, member, name)
        };
        let device = Self {
            path,
            writer: Mutex::new(Writer { conn, cache: LruCache::new(options.cache_capacity) }),
            reader: Mutex::new(reader),
            identity,
            member,
            name: RwLock::new(name),
            clock: options.clock,
            randomness: options.randomness,
            listeners: Arc::default(),
        };
        if needs_reindex {
            // A damaged document must not lock the worker out of every other one: open anyway
            // (the flag stays, so the next open tries again) and let `check_integrity` report.
            if let Err(e) = device.reindex() {
                tracing::warn!(error = %e, "rebuilding derived tables after an upgrade failed");
            }
        }
        Ok(device)
    }

    /// The device's key pair (the transport puts it in the TLS certificate).
    #[cfg(feature = "quic")]
    pub(crate) fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// Whether some network this device holds lists both it and `peer`: the devices it will
    /// accept connections from.
    pub fn shares_network_with(&self, peer: &DeviceKey) -> Result<bool, Error> {
        let shared = store::shared_networks(&self.reader.lock(), &self.device_key(), peer)?;
        Ok(!shared.is_empty())
    }

    /// Where the store is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This device's public key (its identity and Automerge actor id).
    pub fn device_key(&self) -> DeviceKey {
        self.identity.public_key()
    }

    /// The member (person) this device writes as.
    pub fn member_id(&self) -> MemberId {
        self.member
    }

    /// The member's display name.
    pub fn display_name(&self) -> String {
        self.name.read().clone()
    }

    /// Sets the member's display name, used as author name on what this device writes next.
    pub fn set_display_name(&self, name: &str) -> Result<(), Error> {
        let name = model::required_short("display name", name)?;
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::meta_put(&tx, "member_name", name.as_bytes())?;
        tx.commit()?;
        *self.name.write() = name;
        Ok(())
    }

    fn author(&self) -> Author {
        Author { member: self.member, name: self.display_name(), device: self.device_key() }
    }

    fn now(&self) -> Timestamp {
        self.clock.now_ms()
    }

    /// Subscribes to changes: `listener` gets the ids of documents changed by each committed
    /// write or merge, after the commit. Dropping the returned [`Subscription`] unsubscribes.
    pub fn subscribe(&self, listener: impl Fn(&[DocId]) + Send + Sync + 'static) -> Subscription {
        let id = self.listeners.next.fetch_add(1, Ordering::Relaxed);
        self.listeners.map.lock().insert(id, Arc::new(listener));
        Subscription { id, listeners: Arc::downgrade(&self.listeners) }
    }

    fn notify(&self, ids: &[DocId]) {
        if ids.is_empty() {
            return;
        }
        // Copy out so a listener may subscribe, unsubscribe or query without deadlock.
        let listeners: Vec<Listener> = self.listeners.map.lock().values().cloned().collect();
        for l in listeners {
            l(ids);
        }
    }

    // -----------------------------------------------------------------------------------------
    // The write path

    /// Creates a document: `init` writes its first change into an empty document.
    fn create(
        &self,
        kind: DocKind,
        init: impl FnOnce(&mut AutoCommit, DocId, &Author, Timestamp) -> Result<(), DocError>,
    ) -> Result<DocId, Error> {
        let id = DocId::random_from(&self.randomness);
        let mut doc = doc::new_doc(&self.device_key());
        init(&mut doc, id, &self.author(), self.now())?;
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let bytes = doc.save();
        let heads = doc.get_heads();
        store::insert_document(&tx, id, kind, &bytes, &heads_bytes(&heads))?;
        index_doc(&tx, &doc, kind, Notes::All)?;
        tx.commit()?;
        w.cache.put(id, Cached { doc, persisted: heads });
        drop(w);
        self.notify(&[id]);
        Ok(id)
    }

    /// Changes a stored document: `edit` makes its Automerge change; the chunk, the derived
    /// rows and the COMMIT follow. On any failure the transaction rolls back and the loaded
    /// document is dropped from the cache, so no half-applied edit survives in memory either.
    fn edit<R>(
        &self,
        id: DocId,
        kind: DocKind,
        edit: impl FnOnce(&mut AutoCommit, &mut Touched, Timestamp) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let now = self.now();
        let mut w = self.writer.lock();
        let result = guard(|| self.edit_locked(&mut w, id, kind, now, edit));
        if result.is_err() {
            w.cache.pop(&id);
        }
        drop(w);
        let (r, changed) = result?;
        if changed {
            self.notify(&[id]);
        }
        Ok(r)
    }

    fn edit_locked<R>(
        &self,
        w: &mut Writer,
        id: DocId,
        kind: DocKind,
        now: Timestamp,
        edit: impl FnOnce(&mut AutoCommit, &mut Touched, Timestamp) -> Result<R, Error>,
    ) -> Result<(R, bool), Error> {
        let Writer { conn, cache } = w;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state = store::doc_state(&tx, id)?
            .ok_or(Error::NotFound { kind: kind_name(kind), id: id.to_string() })?;
        if state.kind != kind {
            return Err(Error::Document(DocError::WrongKind {
                id: id.to_string(),
                found: state.kind,
                expected: kind,
            }));
        }
        let cached = load_cached(cache, &tx, id, &state, &self.device_key())?;
        let mut touched = Touched::default();
        let r = edit(&mut cached.doc, &mut touched, now)?;
        let changed = persist(&tx, id, &state, cached)?;
        if changed {
            index_doc(&tx, &cached.doc, kind, Notes::Some(touched))?;
            tx.commit()?;
            cached.persisted = cached.doc.get_heads();
        }
        Ok((r, changed))
    }

    /// Reads a stored document.
    fn read<R>(
        &self,
        id: DocId,
        kind: DocKind,
        read: impl FnOnce(&mut AutoCommit) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut w = self.writer.lock();
        let Writer { conn, cache } = &mut *w;
        // One read transaction: another process may write or compact between the statements.
        let tx = conn.transaction()?;
        let state = store::doc_state(&tx, id)?
            .ok_or(Error::NotFound { kind: kind_name(kind), id: id.to_string() })?;
        if state.kind != kind {
            return Err(Error::Document(DocError::WrongKind {
                id: id.to_string(),
                found: state.kind,
                expected: kind,
            }));
        }
        let cached = load_cached(cache, &tx, id, &state, &self.device_key())?;
        read(&mut cached.doc)
    }

    // -----------------------------------------------------------------------------------------
    // Cases and notes

    /// Creates a case.
    pub fn create_case(&self, input: NewCase) -> Result<DocId, Error> {
        let subject = model::required_short("subject", &input.subject)?;
        let tags = model::tags(&input.tags)?;
        model::text("what is at stake", &input.at_stake)?;
        model::text("client's voice", &input.client_voice)?;
        model::at_most("networks", &input.networks, 100)?;
        let init = doc::CaseInit {
            subject: &subject,
            tags: &tags,
            at_stake: &input.at_stake,
            client_voice: &input.client_voice,
            networks: &input.networks,
        };
        self.create(DocKind::Case, |d, id, a, now| doc::create_case(d, id, &init, a, now))
    }

    /// Changes a case's fields. Only the fields given are written.
    pub fn update_case(&self, id: DocId, u: CaseUpdate) -> Result<(), Error> {
        let change = doc::CaseChange {
            subject: u
                .subject
                .as_deref()
                .map(|s| model::required_short("subject", s))
                .transpose()?,
            status: u.status,
            add_tags: model::tags(&u.add_tags)?,
            remove_tags: model::tags(&u.remove_tags)?,
            at_stake: u
                .at_stake
                .map(|t| model::text("what is at stake", &t).map(|_| t))
                .transpose()?,
            client_voice: u
                .client_voice
                .map(|t| model::text("client's voice", &t).map(|_| t))
                .transpose()?,
            caimer: u
                .caimer
                .into_iter()
                .map(|(f, t)| {
                    if !CAIMER_FIELDS.contains(&f.as_str()) {
                        return Err(ValidationError::Invalid {
                            field: "CAIMeR field",
                            reason: format!("`{f}` is not one of {}", CAIMER_FIELDS.join(", ")),
                        });
                    }
                    model::text("CAIMeR text", &t)?;
                    Ok((f, t))
                })
                .collect::<Result<_, _>>()?,
            consent: u
                .consent
                .map(|mut c| -> Result<_, ValidationError> {
                    c.scope = model::short("consent scope", &c.scope)?;
                    c.date = c.date.map(|d| model::date("consent date", &d)).transpose()?;
                    Ok(c)
                })
                .transpose()?,
            share_with: u.share_with,
        };
        self.edit(id, DocKind::Case, |d, _, now| Ok(doc::update_case(d, &change, now)?))?;
        Ok(())
    }

    /// Adds an opgave, turning point, actor or agreement to a case.
    pub fn add_case_item(&self, id: DocId, item: CaseItem) -> Result<ItemId, Error> {
        let item = match item {
            CaseItem::Opgave { text } => {
                CaseItem::Opgave { text: model::required_short("opgave", &text)? }
            }
            CaseItem::TurningPoint { when, description } => CaseItem::TurningPoint {
                when: model::short("turning point date", &when)?,
                description: model::required_short("turning point", &description)?,
            },
            CaseItem::Actor { name, relation } => CaseItem::Actor {
                name: model::required_short("actor name", &name)?,
                relation: model::short("relation", &relation)?,
            },
            CaseItem::Agreement { text, owner, due } => CaseItem::Agreement {
                text: model::required_short("agreement", &text)?,
                owner: model::short("agreement owner", &owner)?,
                due: due.map(|d| model::date("due date", &d)).transpose()?,
            },
        };
        self.edit(id, DocKind::Case, |d, _, now| {
            Ok(doc::add_case_item(d, &item, now, &self.randomness)?)
        })
    }

    /// Marks an agreement of a case done or open.
    pub fn set_case_agreement_done(
        &self,
        id: DocId,
        agreement: ItemId,
        done: bool,
    ) -> Result<(), Error> {
        self.edit(id, DocKind::Case, |d, _, now| {
            if doc::set_agreement_done(d, agreement, done, now)? {
                Ok(())
            } else {
                Err(Error::NotFound { kind: "agreement", id: agreement.to_string() })
            }
        })
    }

    /// Reads a case (without its notes; see [`Device::case_timeline`]).
    pub fn case(&self, id: DocId) -> Result<Case, Error> {
        self.read(id, DocKind::Case, |d| Ok(doc::read_case(d)?))
    }

    /// Adds a note to a case.
    pub fn add_note(&self, case: DocId, note: NewNote) -> Result<NoteId, Error> {
        model::required_text("note text", &note.text)?;
        let author = self.author();
        let id = NoteId::random_from(&self.randomness);
        self.edit(case, DocKind::Case, |d, touched, now| {
            doc::add_note(d, id, note.kind, &note.text, &author, now)?;
            touched.known.push(Note {
                id,
                case_id: case,
                author: author.clone(),
                created_at: now,
                edited_at: now,
                kind: note.kind,
                text: note.text.clone(),
            });
            Ok(id)
        })
    }

    /// Adds several notes to a case as one change and one commit (an import).
    pub fn add_notes(&self, case: DocId, notes: Vec<NewNote>) -> Result<Vec<NoteId>, Error> {
        model::at_most("notes", &notes, 10_000)?;
        for n in &notes {
            model::required_text("note text", &n.text)?;
        }
        let author = self.author();
        let ids: Vec<NoteId> =
            notes.iter().map(|_| NoteId::random_from(&self.randomness)).collect();
        self.edit(case, DocKind::Case, |d, touched, now| {
            let batch: Vec<(NoteId, model::NoteKind, &str)> =
                ids.iter().zip(&notes).map(|(id, n)| (*id, n.kind, n.text.as_str())).collect();
            doc::add_notes(d, &batch, &author, now)?;
            touched.known.extend(ids.iter().zip(&notes).map(|(id, n)| Note {
                id: *id,
                case_id: case,
                author: author.clone(),
                created_at: now,
                edited_at: now,
                kind: n.kind,
                text: n.text.clone(),
            }));
            Ok(ids.clone())
        })
    }

    /// Replaces a note's text; stored as the smallest edit, so concurrent edits elsewhere in
    /// the text survive. Returns the note's text after the edit.
    pub fn edit_note(&self, case: DocId, note: NoteId, text: &str) -> Result<String, Error> {
        model::required_text("note text", text)?;
        self.edit_note_with(case, note, TextEdit::Replace(text))
    }

    /// Deletes `delete` characters at `pos` (in Unicode code points) and inserts `insert`.
    /// Returns the note's text after the edit.
    pub fn splice_note(
        &self,
        case: DocId,
        note: NoteId,
        pos: u32,
        delete: u32,
        insert: &str,
    ) -> Result<String, Error> {
        model::text("inserted text", insert)?;
        self.edit_note_with(
            case,
            note,
            TextEdit::Splice { pos: pos as usize, delete: delete as usize, insert },
        )
    }

    fn edit_note_with(
        &self,
        case: DocId,
        note: NoteId,
        edit: TextEdit<'_>,
    ) -> Result<String, Error> {
        self.edit(case, DocKind::Case, |d, touched, now| {
            let text = doc::edit_note(d, note, &edit, now)?
                .ok_or(Error::NotFound { kind: "note", id: note.to_string() })?;
            if text.len() > model::MAX_TEXT {
                return Err(ValidationError::TooLong {
                    field: "note text",
                    len: text.len(),
                    max: model::MAX_TEXT,
                }
                .into());
            }
            touched.read.push(note);
            Ok(text)
        })
    }

    /// Reads one note from its document.
    pub fn note(&self, case: DocId, note: NoteId) -> Result<Note, Error> {
        self.read(case, DocKind::Case, |d| {
            doc::read_note(d, case, note)?
                .ok_or(Error::NotFound { kind: "note", id: note.to_string() })
        })
    }

    // -----------------------------------------------------------------------------------------
    // Learning points

    /// Proposes a learning point.
    pub fn create_learning_point(&self, input: NewLearningPoint) -> Result<DocId, Error> {
        let title = model::required_short("title", &input.title)?;
        model::text("insight", &input.insight)?;
        model::at_most("cases", &input.cases, 1_000)?;
        model::at_most("sources", &input.sources, 100)?;
        let sources = input
            .sources
            .iter()
            .map(|s| model::required_short("source", s))
            .collect::<Result<Vec<_>, _>>()?;
        let tags = model::tags(&input.tags)?;
        let init = doc::LearningPointInit {
            title: &title,
            insight: &input.insight,
            cases: &input.cases,
            sources: &sources,
            tags: &tags,
            networks: &input.networks,
        };
        self.create(DocKind::LearningPoint, |d, id, a, now| {
            doc::create_learning_point(d, id, &init, a, now, &self.randomness)
        })
    }

    /// Changes a learning point.
    pub fn update_learning_point(&self, id: DocId, u: LearningPointUpdate) -> Result<(), Error> {
        let change = doc::LearningPointChange {
            title: u.title.as_deref().map(|t| model::required_short("title", t)).transpose()?,
            insight: u.insight.map(|t| model::text("insight", &t).map(|_| t)).transpose()?,
            status: u.status,
            meeting: u.meeting,
            add_cases: u.add_cases,
            add_sources: u
                .add_sources
                .iter()
                .map(|s| model::required_short("source", s))
                .collect::<Result<_, _>>()?,
            add_perspectives: u
                .add_perspectives
                .into_iter()
                .map(|(k, who, text)| {
                    Ok((k, model::short("perspective holder", &who)?, {
                        model::required_text("perspective", &text)?;
                        text
                    }))
                })
                .collect::<Result<_, ValidationError>>()?,
            add_tags: model::tags(&u.add_tags)?,
        };
        self.edit(id, DocKind::LearningPoint, |d, _, now| {
            Ok(doc::update_learning_point(d, &change, now, &self.randomness)?)
        })?;
        Ok(())
    }

    /// Reads a learning point.
    pub fn learning_point(&self, id: DocId) -> Result<LearningPoint, Error> {
        self.read(id, DocKind::LearningPoint, |d| Ok(doc::read_learning_point(d)?))
    }

    // -----------------------------------------------------------------------------------------
    // Meetings

    /// Plans a meeting.
    pub fn create_meeting(&self, input: NewMeeting) -> Result<DocId, Error> {
        let date = model::date("meeting date", &input.date)?;
        let place = model::short("place", &input.place)?;
        model::at_most("participants", &input.participants, 200)?;
        model::at_most("agenda", &input.agenda, 200)?;
        let participants = input
            .participants
            .iter()
            .map(|p| model::required_short("participant", p))
            .collect::<Result<Vec<_>, _>>()?;
        let init = doc::MeetingInit {
            network: input.network,
            date: &date,
            place: &place,
            participants: &participants,
            agenda: &input.agenda,
        };
        self.create(DocKind::Meeting, |d, id, a, now| {
            doc::create_meeting(d, id, &init, a, now, &self.randomness)
        })
    }

    /// Changes a meeting.
    pub fn update_meeting(&self, id: DocId, u: MeetingUpdate) -> Result<(), Error> {
        let change = doc::MeetingChange {
            place: u.place.as_deref().map(|p| model::short("place", p)).transpose()?,
            minutes: u.minutes.map(|m| model::text("minutes", &m).map(|_| m)).transpose()?,
            add_participants: u
                .add_participants
                .iter()
                .map(|p| model::required_short("participant", p))
                .collect::<Result<_, _>>()?,
            add_agenda: u.add_agenda,
            add_learning_points: u.add_learning_points,
            add_agreements: u
                .add_agreements
                .into_iter()
                .map(|(t, o, d)| {
                    Ok((
                        model::required_short("agreement", &t)?,
                        model::short("agreement owner", &o)?,
                        d.map(|d| model::date("due date", &d)).transpose()?,
                    ))
                })
                .collect::<Result<_, ValidationError>>()?,
        };
        self.edit(id, DocKind::Meeting, |d, _, now| {
            Ok(doc::update_meeting(d, &change, now, &self.randomness)?)
        })?;
        Ok(())
    }

    /// Marks an agreement made in a meeting done or open.
    pub fn set_meeting_agreement_done(
        &self,
        id: DocId,
        agreement: ItemId,
        done: bool,
    ) -> Result<(), Error> {
        self.edit(id, DocKind::Meeting, |d, _, now| {
            if doc::set_agreement_done(d, agreement, done, now)? {
                Ok(())
            } else {
                Err(Error::NotFound { kind: "agreement", id: agreement.to_string() })
            }
        })
    }

    /// Reads a meeting.
    pub fn meeting(&self, id: DocId) -> Result<Meeting, Error> {
        self.read(id, DocKind::Meeting, |d| Ok(doc::read_meeting(d)?))
    }

    // -----------------------------------------------------------------------------------------
    // Networks

    /// Starts a network with this device's member as its first member.
    pub fn create_network(&self, name: &str) -> Result<DocId, Error> {
        let name = model::required_short("network name", name)?;
        let key = SecretKey::generate(&self.randomness)?;
        self.create(DocKind::Network, |d, id, a, now| {
            let sealed = crypto::seal_network_key(&self.randomness, &key, id, 0, &a.device)
                .map_err(|e| DocError::Malformed(format!("sealing the network key: {e}")))?;
            doc::create_network(d, id, &name, a, sealed.as_bytes(), now)
        })
    }

    /// Adds a member's device to a network (a new member, or a new phone of a member).
    pub fn add_member(
        &self,
        network: DocId,
        member: MemberId,
        name: &str,
        device: DeviceKey,
    ) -> Result<(), Error> {
        let name = model::required_short("member name", name)?;
        self.edit(network, DocKind::Network, |d, _, now| {
            // The new device gets the network key now if this device holds it; otherwise a
            // member who does seals it at their next relay sync.
            let sealed = match self.network_key_in(d, network)? {
                Some(key) => {
                    Some(crypto::seal_network_key(&self.randomness, &key, network, 0, &device)?)
                }
                None => None,
            };
            let sealed = sealed.as_ref().map(|s| s.as_bytes());
            Ok(doc::add_member(d, member, &name, device, sealed, now)?)
        })?;
        Ok(())
    }

    /// The network key sealed to this device in a network document, opened.
    pub(crate) fn network_key_in(
        &self,
        d: &AutoCommit,
        network: DocId,
    ) -> Result<Option<SecretKey>, Error> {
        let Some(sealed) = doc::sealed_network_key(d, 0, &self.device_key())? else {
            return Ok(None);
        };
        let (key, id) = crypto::open_network_key(&self.identity, &sealed, 0)?;
        if id != network {
            return Err(Error::Crypto(CryptoError::Tampered));
        }
        Ok(Some(key))
    }

    /// The id a network has at a relay (derived from its key), if this device holds the key.
    pub fn relay_network_id(&self, network: DocId) -> Result<Option<[u8; 32]>, Error> {
        self.read(network, DocKind::Network, |d| {
            Ok(self.network_key_in(d, network)?.map(|k| crypto::relay_network_id(&k)))
        })
    }

    /// Makes sure every device on a network's roster has the network key sealed to it, and
    /// returns the key (None if this device cannot open one). A network made before keys
    /// existed gets its key here, from its creator's device only, so two devices never make
    /// two keys for one network. A listed key that cannot be sealed to (not a valid Ed25519
    /// point) is skipped and logged: it never blocks the others.
    pub(crate) fn seal_network_keys(&self, network: DocId) -> Result<Option<SecretKey>, Error> {
        let me = self.device_key();
        let (key, missing, i_created) = self.read(network, DocKind::Network, |d| {
            let key = self.network_key_in(d, network)?;
            let roster = doc::read_network(d)?;
            let mut missing = Vec::new();
            for dev in roster.members.iter().flat_map(|m| m.devices.iter()) {
                if doc::sealed_network_key(d, 0, dev)?.is_none() && !missing.contains(dev) {
                    missing.push(*dev);
                }
            }
            Ok((key, missing, doc::network_creator(d)? == Some(me)))
        })?;
        if missing.is_empty() || (key.is_none() && !i_created) {
            return Ok(key);
        }
        let fresh = SecretKey::generate(&self.randomness)?;
        self.edit(network, DocKind::Network, |d, _, now| {
            // Read again under the writer lock: another sync of this device may have made or
            // sealed the key since.
            let key = match self.network_key_in(d, network)? {
                Some(k) => k,
                None => {
                    doc::ensure_key_maps(d)?;
                    let mine = crypto::seal_network_key(&self.randomness, &fresh, network, 0, &me)?;
                    doc::put_sealed_network_key(d, 0, &me, mine.as_bytes())?;
                    fresh.clone()
                }
            };
            let mut sealed = 0;
            for dev in &missing {
                match crypto::seal_network_key(&self.randomness, &key, network, 0, dev) {
                    Ok(s) => {
                        if doc::put_sealed_network_key(d, 0, dev, s.as_bytes())? {
                            sealed += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(device = %dev, error = %e, "cannot seal to a listed key")
                    }
                }
            }
            doc::commit_keys(d, format!("Sealed the network key to {sealed} devices"), now)?;
            Ok(key)
        })
        .map(Some)
    }

    /// Reads a network.
    pub fn network(&self, id: DocId) -> Result<Network, Error> {
        self.read(id, DocKind::Network, |d| Ok(doc::read_network(d)?))
    }

    // -----------------------------------------------------------------------------------------
    // Queries: derived tables only

    /// Cases, newest activity first (the case list screen).
    pub fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, Error> {
        Ok(store::list_cases(&self.reader.lock(), filter)?)
    }

    /// A case's notes, oldest first (the case screen).
    pub fn case_timeline(&self, case: DocId) -> Result<Vec<Note>, Error> {
        let r = self.reader.lock();
        if store::case_summary(&r, case)?.is_none() {
            return Err(Error::NotFound { kind: "case", id: case.to_string() });
        }
        Ok(store::timeline(&r, case)?)
    }

    /// Learning points citing a case.
    pub fn learning_points_citing(&self, case: DocId) -> Result<Vec<LearningPointSummary>, Error> {
        Ok(store::learning_points_citing(&self.reader.lock(), case)?)
    }

    /// Learning points, optionally by status or tag.
    pub fn list_learning_points(
        &self,
        status: Option<model::LearningPointStatus>,
        tag: Option<&str>,
    ) -> Result<Vec<LearningPointSummary>, Error> {
        Ok(store::list_learning_points(&self.reader.lock(), status, tag)?)
    }

    /// Meetings, newest first.
    pub fn list_meetings(&self) -> Result<Vec<MeetingSummary>, Error> {
        Ok(store::list_meetings(&self.reader.lock())?)
    }

    /// Everything discussed in a meeting.
    pub fn meeting_contents(&self, id: DocId) -> Result<MeetingContents, Error> {
        store::meeting_contents(&self.reader.lock(), id)?
            .ok_or(Error::NotFound { kind: "meeting", id: id.to_string() })
    }

    /// Networks on this device.
    pub fn list_networks(&self) -> Result<Vec<NetworkSummary>, Error> {
        Ok(store::list_networks(&self.reader.lock())?)
    }

    /// Ranked full-text search over cases, notes, learning points and meetings. Any text is a
    /// valid query; the last word matches as a prefix.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<SearchHit>, Error> {
        if query.len() > 1_000 {
            return Err(
                ValidationError::TooLong { field: "query", len: query.len(), max: 1_000 }.into()
            );
        }
        Ok(store::search(&self.reader.lock(), query, limit.clamp(1, 500))?)
    }

    /// A document's history, oldest first: who (device and member name), when, what.
    pub fn history(&self, id: DocId) -> Result<Vec<HistoryEntry>, Error> {
        let kind = self.kind_of(id)?;
        let changes = self.read(id, kind, |d| Ok(doc::history(d)))?;
        let r = self.reader.lock();
        let me = self.device_key();
        let mut names: HashMap<DeviceKey, Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            let author = match c.device {
                Some(d) if d == me => Some(self.display_name()),
                Some(d) => match names.get(&d) {
                    Some(n) => n.clone(),
                    None => {
                        let n = store::member_name_for_device(&r, &d)?;
                        names.insert(d, n.clone());
                        n
                    }
                },
                None => None,
            };
            out.push(HistoryEntry {
                hash: c.hash,
                device: c.device,
                author,
                time: c.time,
                summary: c.summary,
            });
        }
        Ok(out)
    }

    /// The kind of a stored document.
    pub fn kind_of(&self, id: DocId) -> Result<DocKind, Error> {
        Ok(store::doc_state(&self.reader.lock(), id)?
            .ok_or(Error::NotFound { kind: "document", id: id.to_string() })?
            .kind)
    }

    /// Every document on this device.
    pub fn document_ids(&self) -> Result<Vec<(DocId, DocKind)>, Error> {
        Ok(store::document_ids(&self.reader.lock())?)
    }

    // -----------------------------------------------------------------------------------------
    // Exchange: what sync drivers build on

    /// A document's current heads.
    pub fn heads(&self, id: DocId) -> Result<Vec<ChangeHash>, Error> {
        let kind = self.kind_of(id)?;
        self.read(id, kind, |d| Ok(d.get_heads()))
    }

    /// A whole document, saved (compressed).
    pub fn export_document(&self, id: DocId) -> Result<Vec<u8>, Error> {
        {
            // A document stored as one snapshot is sent as stored: no load, no save. (Its
            // bytes were loaded and checked when they were written.)
            let w = self.writer.lock();
            let state = store::doc_state(&w.conn, id)?
                .ok_or(Error::NotFound { kind: "document", id: id.to_string() })?;
            if state.chunk_count == 1 {
                return Ok(store::load_bytes(&w.conn, id)?);
            }
        }
        let kind = self.kind_of(id)?;
        self.read(id, kind, |d| Ok(d.save()))
    }

    /// The changes of a document that are not covered by `heads`.
    pub fn changes_since(&self, id: DocId, heads: &[ChangeHash]) -> Result<Vec<u8>, Error> {
        let kind = self.kind_of(id)?;
        self.read(id, kind, |d| Ok(d.save_after(heads)))
    }

    /// Merges a whole document or a set of changes from another device. If the document is
    /// new here, `bytes` must hold it from its first change. The result is checked (schema,
    /// kind, id, shape) before anything is committed; a refusal leaves the store as it was.
    /// Derived tables are updated in the same transaction, exactly as for local edits.
    pub fn merge_document(&self, bytes: &[u8]) -> Result<MergeOutcome, Error> {
        let incoming = doc::load(bytes, &self.device_key()).map_err(Error::Merge)?;
        self.merge_loaded(incoming, bytes)
    }

    /// Merges a whole document already loaded from `bytes` (loaded once: loading is the
    /// expensive part of receiving a document).
    pub(crate) fn merge_loaded(
        &self,
        incoming: AutoCommit,
        bytes: &[u8],
    ) -> Result<MergeOutcome, Error> {
        let header = doc::header(&incoming).map_err(Error::Merge)?;
        self.merge_into(header.id, Some(header.kind), bytes, Some((incoming, None)))
    }

    /// Merges changes into a document this device already holds.
    pub fn merge_changes(&self, id: DocId, bytes: &[u8]) -> Result<MergeOutcome, Error> {
        self.merge_into(id, None, bytes, None)
    }

    fn merge_into(
        &self,
        id: DocId,
        kind: Option<DocKind>,
        bytes: &[u8],
        preloaded: Option<(AutoCommit, Option<Derived>)>,
    ) -> Result<MergeOutcome, Error> {
        let mut w = self.writer.lock();
        let result = guard(|| self.merge_locked(&mut w, id, kind, bytes, preloaded));
        if result.is_err() {
            w.cache.pop(&id);
        }
        drop(w);
        let outcome = result?;
        if outcome.changed {
            self.notify(&[id]);
        }
        Ok(outcome)
    }

    fn merge_locked(
        &self,
        w: &mut Writer,
        id: DocId,
        kind: Option<DocKind>,
        bytes: &[u8],
        preloaded: Option<(AutoCommit, Option<Derived>)>,
    ) -> Result<MergeOutcome, Error> {
        let key = self.device_key();
        let Writer { conn, cache } = w;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = merge_in(&tx, cache, &key, id, kind, bytes, preloaded)?;
        if outcome.changed {
            tx.commit()?;
            mark_persisted(cache, id);
        }
        Ok(outcome)
    }

    /// Merges changes pulled from a relay into documents this device holds, all in one
    /// transaction (all or nothing), and records in it what the relay now holds of each: what
    /// this device knew it held, plus everything the sender had (the heads the blob carried:
    /// the sender pushed all of that or knew the relay held it). So a pulled change is never
    /// pushed back.
    pub(crate) fn merge_from_relay(
        &self,
        at: store::RelayScope<'_>,
        items: &[(DocId, &[u8], Vec<ChangeHash>)],
    ) -> Result<Vec<MergeOutcome>, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        let result = guard(|| {
            let Writer { conn, cache } = &mut *w;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut outcomes = Vec::with_capacity(items.len());
            for (id, bytes, at_relay) in items {
                outcomes.push(merge_in(&tx, cache, &key, *id, None, bytes, None)?);
                let known = store::relay_pushed(&tx, at, *id)?;
                let Some(cached) = cache.get_mut(id) else { continue };
                let doc = &mut cached.doc;
                if at_relay.iter().all(|h| doc.get_change_by_hash(h).is_some()) {
                    let mut held: Vec<ChangeHash> = known
                        .iter()
                        .map(|h| ChangeHash(*h))
                        .chain(at_relay.iter().copied())
                        .collect();
                    held.sort();
                    held.dedup();
                    // Everything here is at the relay: its heads say it exactly. Otherwise
                    // the union stands (not minimal, still exact for `save_after`).
                    if doc.get_changes_meta(&held).is_empty() {
                        held = doc.get_heads();
                    }
                    store::set_relay_pushed(&tx, at, *id, &heads_bytes(&held))?;
                }
            }
            tx.commit()?;
            for (id, _, _) in items {
                mark_persisted(cache, *id);
            }
            Ok(outcomes)
        });
        if result.is_err() {
            for (id, _, _) in items {
                w.cache.pop(id);
            }
        }
        drop(w);
        let outcomes = result?;
        let changed: Vec<DocId> = outcomes.iter().filter(|o| o.changed).map(|o| o.doc_id).collect();
        self.notify(&changed);
        Ok(outcomes)
    }

    // -----------------------------------------------------------------------------------------
    // Maintenance

    /// Rebuilds every derived table from the stored document chunks alone.
    pub fn reindex(&self) -> Result<usize, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        w.cache.clear();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::clear_index(&tx)?;
        let ids = store::document_ids(&tx)?;
        for (id, kind) in &ids {
            let bytes = store::load_bytes(&tx, *id)?;
            let doc = doc::load(&bytes, &key)
                .map_err(|source| Error::StoredDocument { id: id.to_string(), source })?;
            index_doc(&tx, &doc, *kind, Notes::All)?;
        }
        store::meta_delete(&tx, "needs_reindex")?;
        tx.commit()?;
        Ok(ids.len())
    }

    /// The writer connection's journal mode and `synchronous` level (for tests and support:
    /// acknowledged writes survive power loss only with `wal` and 2 = FULL).
    pub fn durability(&self) -> Result<(String, i64), Error> {
        let w = self.writer.lock();
        let mode: String = w.conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let sync: i64 = w.conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        Ok((mode, sync))
    }

    /// Runs SQLite's integrity check and loads every document: the problems found, if any.
    pub fn check_integrity(&self) -> Result<Vec<String>, Error> {
        let mut problems = Vec::new();
        let r = self.reader.lock();
        let mut stmt = r.prepare("PRAGMA integrity_check")?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let row = row?;
            if row != "ok" {
                problems.push(row);
            }
        }
        for (id, _) in store::document_ids(&r)? {
            let bytes = store::load_bytes(&r, id)?;
            if let Err(e) = doc::load(&bytes, &self.device_key()).and_then(|d| doc::header(&d)) {
                problems.push(format!("document {id}: {e}"));
            }
        }
        Ok(problems)
    }
}

/// Runs a write so that a panic inside it (a bug, or in a dependency) becomes an error: the
/// transaction rolls back when unwinding drops it, and the caller evicts the document.
fn guard<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(Error::Internal(what))
        }
    }
}

fn kind_name(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Case => "case",
        DocKind::LearningPoint => "learning point",
        DocKind::Meeting => "meeting",
        DocKind::Network => "network",
    }
}

fn as_merge_error(e: Error) -> Error {
    match e {
        Error::Document(d) => Error::Merge(d),
        e => e,
    }
}

/// A merged document must still be the same document, of the same kind, readable by us.
/// After a commit: the cached document's state is what the store now holds.
fn mark_persisted(cache: &mut LruCache<DocId, Cached>, id: DocId) {
    if let Some(c) = cache.get_mut(&id) {
        c.persisted = c.doc.get_heads();
    }
}

/// Merges `bytes` (whole document or changes) into document `id` inside `tx`, without
/// committing. The caller commits and then calls [`mark_persisted`], or drops the cache entry
/// on error.
fn merge_in(
    tx: &Transaction<'_>,
    cache: &mut LruCache<DocId, Cached>,
    key: &DeviceKey,
    id: DocId,
    kind: Option<DocKind>,
    bytes: &[u8],
    preloaded: Option<(AutoCommit, Option<Derived>)>,
) -> Result<MergeOutcome, Error> {
    let state = store::doc_state(tx, id)?;
    let (cached, state) = match state {
        Some(state) => {
            if kind.is_some_and(|k| k != state.kind) {
                return Err(Error::Merge(DocError::WrongKind {
                    id: id.to_string(),
                    found: kind.unwrap_or(state.kind),
                    expected: state.kind,
                }));
            }
            let cached = load_cached(cache, tx, id, &state, key)?;
            if bytes.is_empty() {
                return Ok(MergeOutcome { doc_id: id, kind: state.kind, changed: false });
            }
            doc::apply_chunks(&mut cached.doc, bytes).map_err(Error::Merge)?;
            // Changes whose predecessors are missing would wait in Automerge's queue, in
            // memory only: refuse them so the sender knows they did not land.
            let missing = cached.doc.get_missing_deps(&[]).len();
            if missing > 0 {
                return Err(Error::Merge(DocError::MissingDependencies(missing)));
            }
            (cached, state)
        }
        None => {
            let kind = kind.ok_or(Error::NotFound { kind: "document", id: id.to_string() })?;
            let (mut doc, derived) = match preloaded {
                Some(d) => d,
                None => (doc::load(bytes, key).map_err(Error::Merge)?, None),
            };
            check_merged(&doc, id, kind)?;
            let heads = doc.get_heads();
            // The bytes loaded whole (a partial load is an error), so they are the document:
            // stored as they came, without saving it again.
            store::insert_document(tx, id, kind, bytes, &heads_bytes(&heads))?;
            match derived {
                Some(d) => write_derived(tx, &d).map_err(as_merge_error)?,
                None => index_doc(tx, &doc, kind, Notes::All).map_err(as_merge_error)?,
            }
            cache.put(id, Cached { doc, persisted: heads });
            return Ok(MergeOutcome { doc_id: id, kind, changed: true });
        }
    };
    check_merged(&cached.doc, id, state.kind)?;
    let changed = persist(tx, id, &state, cached)?;
    if changed {
        index_doc(tx, &cached.doc, state.kind, Notes::All).map_err(as_merge_error)?;
    }
    Ok(MergeOutcome { doc_id: id, kind: state.kind, changed })
}

fn check_merged(doc: &AutoCommit, id: DocId, kind: DocKind) -> Result<(), Error> {
    let h = doc::header(doc).map_err(Error::Merge)?;
    if h.id != id {
        return Err(Error::Merge(DocError::Malformed(format!(
            "document says it is {}, not {id}",
            h.id
        ))));
    }
    if h.kind != kind {
        return Err(Error::Merge(DocError::WrongKind {
            id: id.to_string(),
            found: h.kind,
            expected: kind,
        }));
    }
    Ok(())
}

/// The loaded document, reloaded from the store if another process (or a failed write)
/// changed what the store holds since it was cached.
fn load_cached<'a>(
    cache: &'a mut LruCache<DocId, Cached>,
    conn: &Connection,
    id: DocId,
    state: &DocState,
    key: &DeviceKey,
) -> Result<&'a mut Cached, Error> {
    let fresh = cache.get(&id).is_some_and(|c| same_heads(&c.persisted, &state.heads));
    if !fresh {
        let bytes = store::load_bytes(conn, id)?;
        let stored = |source| Error::StoredDocument { id: id.to_string(), source };
        let mut doc = doc::load(&bytes, key).map_err(stored)?;
        let h = doc::header(&doc).map_err(stored)?;
        let persisted = doc.get_heads();
        if h.id != id || h.kind != state.kind || !same_heads(&persisted, &state.heads) {
            return Err(stored(DocError::Corrupt(
                "stored chunks do not match the document's record".into(),
            )));
        }
        cache.put(id, Cached { doc, persisted });
    }
    cache.get_mut(&id).ok_or(Error::NotFound { kind: "document", id: id.to_string() })
}

/// Appends what changed since the persisted heads as one chunk; compacts when due.
fn persist(
    tx: &Transaction<'_>,
    id: DocId,
    state: &DocState,
    cached: &mut Cached,
) -> Result<bool, Error> {
    let heads = cached.doc.get_heads();
    if same_heads(&heads, &state.heads) {
        return Ok(false);
    }
    let bytes = cached.doc.save_after(&cached.persisted);
    let hb = heads_bytes(&heads);
    let next = store::append_chunk(tx, id, state, &bytes, &hb)?;
    if store::should_compact(&next) {
        let snapshot = cached.doc.save();
        store::replace_with_snapshot(tx, id, &next, &snapshot, &hb)?;
    }
    Ok(true)
}

/// Updates the derived rows of one document, in the caller's transaction.
fn index_doc(
    tx: &Transaction<'_>,
    doc: &AutoCommit,
    kind: DocKind,
    notes: Notes,
) -> Result<(), Error> {
    match kind {
        DocKind::Case => match notes {
            // A note write changes only that note and the case's last activity: the case's
            // own row, tags and search entry stay as they are (this keeps note writes cheap
            // in cases with many notes).
            Notes::Some(t) if !t.known.is_empty() || !t.read.is_empty() => {
                let id = doc::header(doc)?.id;
                store::touch_case(tx, id, doc::updated_at(doc)?)?;
                let mut rows = t.known;
                for n in t.read {
                    if let Some(note) = doc::read_note(doc, id, n)? {
                        rows.push(note);
                    }
                }
                store::index_notes(tx, &rows)?;
            }
            Notes::Some(_) => store::index_case(tx, &doc::read_case(doc)?)?,
            Notes::All => write_derived(tx, &derive(doc, kind)?)?,
        },
        kind => write_derived(tx, &derive(doc, kind)?)?,
    }
    Ok(())
}

/// Everything the derived tables hold about one document, read from it (no database).
pub(crate) enum Derived {
    Case(Box<Case>, Vec<Note>),
    LearningPoint(Box<LearningPoint>),
    Meeting(Box<Meeting>),
    Network(Network),
}

/// Reads a document's derived rows; pure, so several documents can be read in parallel.
pub(crate) fn derive(doc: &AutoCommit, kind: DocKind) -> Result<Derived, DocError> {
    Ok(match kind {
        DocKind::Case => {
            let case = doc::read_case(doc)?;
            let notes = doc::read_notes(doc, case.id)?;
            Derived::Case(Box::new(case), notes)
        }
        DocKind::LearningPoint => Derived::LearningPoint(Box::new(doc::read_learning_point(doc)?)),
        DocKind::Meeting => Derived::Meeting(Box::new(doc::read_meeting(doc)?)),
        DocKind::Network => Derived::Network(doc::read_network(doc)?),
    })
}

/// Writes a document's derived rows (replacing what was there).
fn write_derived(tx: &Transaction<'_>, d: &Derived) -> Result<(), Error> {
    match d {
        Derived::Case(case, rows) => {
            store::index_case(tx, case)?;
            let ids: Vec<NoteId> = rows.iter().map(|n| n.id).collect();
            store::remove_other_notes(tx, case.id, &ids)?;
            store::index_notes(tx, rows)?;
        }
        Derived::LearningPoint(lp) => store::index_learning_point(tx, lp)?,
        Derived::Meeting(m) => store::index_meeting(tx, m)?,
        Derived::Network(n) => store::index_network(tx, n)?,
    }
    Ok(())
}

// Apps share one Device across threads (and uniffi requires it).
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Device>();
};
