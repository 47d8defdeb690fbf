//! The `Device` object, change listeners and subscriptions.
//!
//! Every method converts its arguments (parsing ids), calls the core, and converts the result
//! and the error. Nothing else happens here.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, MutexGuard},
};

use automerge::ChangeHash;
use nabij_core::{
    DeviceKey, DocId, ItemId, MemberId, NoteId,
    model::{self as m, ValidationError},
};

use crate::{
    error::{NabijError, parse_id, parse_invitation},
    types::*,
};

type Result<T, E = NabijError> = std::result::Result<T, E>;

fn convert<A, B: From<A>>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(B::from).collect()
}

/// Parses change hashes given as hex (as [`Device::heads`] returns them).
fn parse_heads(heads: &[String]) -> Result<Vec<ChangeHash>> {
    heads
        .iter()
        .map(|h| {
            h.trim().parse::<ChangeHash>().map_err(|e| {
                NabijError::from(ValidationError::Invalid {
                    field: "change hash",
                    reason: format!("`{h}`: {e}"),
                })
            })
        })
        .collect()
}

/// Receives the ids of documents changed by each committed write or merge on a `Device`.
///
/// Called on the thread that made the write, after its commit, before the write call returns.
/// Keep it short (hand the ids to your UI thread). An exception thrown by the listener is
/// swallowed: it cannot undo the committed write, and it does not fail it.
#[uniffi::export(foreign)]
pub trait ChangeListener: Send + Sync {
    /// Documents changed: their ids.
    fn on_change(&self, doc_ids: Vec<String>);
}

/// A change subscription. It ends when `cancel()` is called or when the object
/// is destroyed, whichever comes first. Garbage-collected languages destroy late: call
/// `cancel()` (or Kotlin's `close()`) when the screen goes away.
#[derive(uniffi::Object)]
pub struct Subscription {
    inner: Mutex<Option<nabij_core::Subscription>>,
}

impl Subscription {
    fn slot(&self) -> MutexGuard<'_, Option<nabij_core::Subscription>> {
        // A poisoned lock only means a panic elsewhere; the slot is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[uniffi::export]
impl Subscription {
    /// Ends the subscription: the listener is not called again. Calling it twice is harmless.
    pub fn cancel(&self) {
        let sub = self.slot().take();
        drop(sub);
    }

    /// Whether the subscription is still active.
    pub fn is_active(&self) -> bool {
        self.slot().is_some()
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("active", &self.is_active()).finish()
    }
}

/// One device: a store file, an identity, and every operation an app performs. Share one per
/// store file; it is safe to use from several threads.
#[derive(Debug, uniffi::Object)]
pub struct Device {
    /// Shared with the meeting-sync tasks ([`crate::net`]), which outlive a single call.
    pub(crate) inner: Arc<nabij_core::Device>,
}

#[uniffi::export]
impl Device {
    /// Opens the store at `path`, encrypted with `key` (32 bytes the app keeps in the Android
    /// Keystore or iOS Keychain), creating it (encrypted, with this device's key inside) on
    /// first use. A wrong key, or a store that needs none, fails with `WrongKey` or `Storage`
    /// and leaves the file as it was; `store_state` tells which a path holds.
    #[uniffi::constructor]
    pub fn open(path: String, key: Vec<u8>) -> Result<Arc<Self>> {
        let key = store_key(key)?;
        Ok(Arc::new(Self { inner: Arc::new(nabij_core::Device::open_encrypted(path, key)?) }))
    }

    /// Opens (or creates) a store that is not encrypted. Only for stores made before
    /// encryption at rest, until `encrypt_store` has encrypted them, and for tests: a plain
    /// store gives a thief every note.
    #[uniffi::constructor]
    pub fn open_unencrypted(path: String) -> Result<Arc<Self>> {
        Ok(Arc::new(Self { inner: Arc::new(nabij_core::Device::open(path)?) }))
    }

    /// Whether the store is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.inner.is_encrypted()
    }

    /// Re-encrypts the store under `new_key` (32 bytes). The whole file is rewritten and
    /// swapped in atomically; nothing else may have the store open meanwhile.
    pub fn rekey(&self, new_key: Vec<u8>) -> Result<()> {
        Ok(self.inner.change_store_key(&store_key(new_key)?)?)
    }

    /// Where the store is.
    pub fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    // ---------------------------------------------------------------------------------------
    // Identity

    /// This device's public key (its identity and Automerge actor id).
    pub fn device_key(&self) -> String {
        self.inner.device_key().to_string()
    }

    /// The member (person) this device writes as.
    pub fn member_id(&self) -> String {
        self.inner.member_id().to_string()
    }

    /// The member's display name.
    pub fn display_name(&self) -> String {
        self.inner.display_name()
    }

    /// Sets the member's display name, used as author name on what this device writes next.
    pub fn set_display_name(&self, name: String) -> Result<()> {
        Ok(self.inner.set_display_name(&name)?)
    }

    // ---------------------------------------------------------------------------------------
    // Listeners

    /// Subscribes to changes: `listener` gets the ids of documents changed by each committed
    /// write or merge. The subscription lasts until it is cancelled or destroyed.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) -> Arc<Subscription> {
        let sub = self.inner.subscribe(move |ids: &[DocId]| {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            // A listener that throws makes uniffi panic; keep that from failing the write
            // that has already committed.
            let _ = catch_unwind(AssertUnwindSafe(|| listener.on_change(ids)));
        });
        Arc::new(Subscription { inner: Mutex::new(Some(sub)) })
    }

    // ---------------------------------------------------------------------------------------
    // Cases and notes

    /// Creates a case; returns its id.
    pub fn create_case(&self, input: NewCase) -> Result<String> {
        Ok(self.inner.create_case(input.try_into()?)?.to_string())
    }

    /// Changes a case's fields. Only the fields given are written.
    pub fn update_case(&self, id: String, update: CaseUpdate) -> Result<()> {
        Ok(self.inner.update_case(parse_id(&id)?, update.try_into()?)?)
    }

    /// Adds an opgave, turning point, actor or agreement to a case; returns the item's id.
    pub fn add_case_item(&self, id: String, item: CaseItem) -> Result<String> {
        Ok(self.inner.add_case_item(parse_id(&id)?, item.into())?.to_string())
    }

    /// Marks an agreement of a case done or open.
    pub fn set_case_agreement_done(&self, id: String, agreement: String, done: bool) -> Result<()> {
        let agreement: ItemId = parse_id(&agreement)?;
        Ok(self.inner.set_case_agreement_done(parse_id(&id)?, agreement, done)?)
    }

    /// Reads a case (without its notes; see `case_timeline`).
    pub fn case(&self, id: String) -> Result<Case> {
        Ok(self.inner.case(parse_id(&id)?)?.into())
    }

    /// Adds a note to a case; returns its id.
    pub fn add_note(&self, case_id: String, note: NewNote) -> Result<String> {
        Ok(self.inner.add_note(parse_id(&case_id)?, note.into())?.to_string())
    }

    /// Adds several notes to a case as one change and one commit (an import); returns their
    /// ids, in order.
    pub fn add_notes(&self, case_id: String, notes: Vec<NewNote>) -> Result<Vec<String>> {
        let ids = self.inner.add_notes(parse_id(&case_id)?, convert(notes))?;
        Ok(ids.iter().map(ToString::to_string).collect())
    }

    /// Replaces a note's text (stored as the smallest edit, so concurrent edits elsewhere in
    /// the text survive). Returns the note's text after the edit.
    pub fn edit_note(&self, case_id: String, note_id: String, text: String) -> Result<String> {
        let note: NoteId = parse_id(&note_id)?;
        Ok(self.inner.edit_note(parse_id(&case_id)?, note, &text)?)
    }

    /// Deletes `delete` characters at `pos` (in Unicode code points) and inserts `insert`.
    /// Returns the note's text after the edit.
    pub fn splice_note(
        &self,
        case_id: String,
        note_id: String,
        pos: u32,
        delete: u32,
        insert: String,
    ) -> Result<String> {
        let note: NoteId = parse_id(&note_id)?;
        Ok(self.inner.splice_note(parse_id(&case_id)?, note, pos, delete, &insert)?)
    }

    /// Reads one note.
    pub fn note(&self, case_id: String, note_id: String) -> Result<Note> {
        let note: NoteId = parse_id(&note_id)?;
        Ok(self.inner.note(parse_id(&case_id)?, note)?.into())
    }

    // ---------------------------------------------------------------------------------------
    // Learning points

    /// Proposes a learning point; returns its id.
    pub fn create_learning_point(&self, input: NewLearningPoint) -> Result<String> {
        Ok(self.inner.create_learning_point(input.try_into()?)?.to_string())
    }

    /// Changes a learning point.
    pub fn update_learning_point(&self, id: String, update: LearningPointUpdate) -> Result<()> {
        Ok(self.inner.update_learning_point(parse_id(&id)?, update.try_into()?)?)
    }

    /// Reads a learning point.
    pub fn learning_point(&self, id: String) -> Result<LearningPoint> {
        Ok(self.inner.learning_point(parse_id(&id)?)?.into())
    }

    // ---------------------------------------------------------------------------------------
    // Meetings

    /// Plans a meeting; returns its id.
    pub fn create_meeting(&self, input: NewMeeting) -> Result<String> {
        Ok(self.inner.create_meeting(input.try_into()?)?.to_string())
    }

    /// Changes a meeting.
    pub fn update_meeting(&self, id: String, update: MeetingUpdate) -> Result<()> {
        Ok(self.inner.update_meeting(parse_id(&id)?, update.try_into()?)?)
    }

    /// Reads a meeting.
    pub fn meeting(&self, id: String) -> Result<Meeting> {
        Ok(self.inner.meeting(parse_id(&id)?)?.into())
    }

    // ---------------------------------------------------------------------------------------
    // Networks

    /// Starts a network with this device's member as its first member and admin; returns its
    /// id.
    pub fn create_network(&self, name: String) -> Result<String> {
        Ok(self.inner.create_network(&name)?.to_string())
    }

    /// Adds a member's device to a network (a new member, with the member role, or a new phone
    /// of a member). Only an admin of the network may (`NotAllowed` otherwise).
    pub fn add_member(
        &self,
        network: String,
        member: String,
        name: String,
        device: String,
    ) -> Result<()> {
        let member: MemberId = parse_id(&member)?;
        let device: DeviceKey = parse_id(&device)?;
        Ok(self.inner.add_member(parse_id(&network)?, member, &name, device)?)
    }

    /// Adds a member's device to a network (as `add_member`) and returns the invitation to hand
    /// to that device (a `nabijinvite1…` string, for a QR code or a message). Only an admin may.
    pub fn invite(
        &self,
        network: String,
        member: String,
        name: String,
        device: String,
    ) -> Result<String> {
        let member: MemberId = parse_id(&member)?;
        let device: DeviceKey = parse_id(&device)?;
        Ok(self.inner.invite(parse_id(&network)?, member, &name, device)?.encode())
    }

    /// Reads an invitation without accepting it, to show the user what they are asked to join.
    /// A damaged or forged invitation is `InvalidInput`.
    pub fn read_invitation(&self, invitation: String) -> Result<InvitationInfo> {
        Ok(parse_invitation(&invitation)?.into())
    }

    /// Accepts an invitation (the user said yes): the network then arrives at the next meeting
    /// or relay sync. Until then the device takes no network it was not invited to. An
    /// invitation for another device is `InvalidInput`.
    pub fn join(&self, invitation: String) -> Result<()> {
        Ok(self.inner.join(&parse_invitation(&invitation)?)?)
    }

    /// Invitations accepted whose network has not arrived yet.
    pub fn pending_invitations(&self) -> Result<Vec<InvitationInfo>> {
        Ok(convert(self.inner.pending_invitations()?))
    }

    /// Gives a member of a network another role. Only an admin may.
    pub fn set_role(&self, network: String, member: String, role: Role) -> Result<()> {
        let member: MemberId = parse_id(&member)?;
        Ok(self.inner.set_role(parse_id(&network)?, member, role.into())?)
    }

    /// Removes one device from a network (a lost or stolen phone), keeping its member. Only an
    /// admin may.
    pub fn remove_device(
        &self,
        network: String,
        device: String,
        reason: RemovalReason,
    ) -> Result<()> {
        let device: DeviceKey = parse_id(&device)?;
        Ok(self.inner.remove_device(parse_id(&network)?, device, reason.into())?)
    }

    /// Removes a member, with all their devices, from a network. Only an admin may.
    pub fn remove_member(
        &self,
        network: String,
        member: String,
        reason: RemovalReason,
    ) -> Result<()> {
        let member: MemberId = parse_id(&member)?;
        Ok(self.inner.remove_member(parse_id(&network)?, member, reason.into())?)
    }

    /// Reads a network: members with their roles, and removed devices.
    pub fn network(&self, id: String) -> Result<Network> {
        Ok(self.inner.network(parse_id(&id)?)?.into())
    }

    // ---------------------------------------------------------------------------------------
    // Queries

    /// Cases, newest activity first (the case list screen).
    pub fn list_cases(&self, filter: CaseFilter) -> Result<Vec<CaseSummary>> {
        let filter: m::CaseFilter = filter.try_into()?;
        Ok(convert(self.inner.list_cases(&filter)?))
    }

    /// A case's notes, oldest first (the case screen).
    pub fn case_timeline(&self, case_id: String) -> Result<Vec<Note>> {
        Ok(convert(self.inner.case_timeline(parse_id(&case_id)?)?))
    }

    /// Learning points citing a case, newest first.
    pub fn learning_points_citing(&self, case_id: String) -> Result<Vec<LearningPointSummary>> {
        Ok(convert(self.inner.learning_points_citing(parse_id(&case_id)?)?))
    }

    /// Learning points, optionally only those with a status and/or a tag, newest first.
    #[uniffi::method(default(status = None, tag = None))]
    pub fn list_learning_points(
        &self,
        status: Option<LearningPointStatus>,
        tag: Option<String>,
    ) -> Result<Vec<LearningPointSummary>> {
        Ok(convert(self.inner.list_learning_points(status.map(Into::into), tag.as_deref())?))
    }

    /// Meetings, newest first.
    pub fn list_meetings(&self) -> Result<Vec<MeetingSummary>> {
        Ok(convert(self.inner.list_meetings()?))
    }

    /// Everything discussed in a meeting.
    pub fn meeting_contents(&self, id: String) -> Result<MeetingContents> {
        Ok(self.inner.meeting_contents(parse_id(&id)?)?.into())
    }

    /// Networks on this device.
    pub fn list_networks(&self) -> Result<Vec<NetworkSummary>> {
        Ok(convert(self.inner.list_networks()?))
    }

    /// Ranked full-text search over cases, notes, learning points and meetings, best first.
    /// Any text is a valid query. Every word must match, accents and letters like `ø` folded;
    /// the last word also matches as a prefix while typed (not after a space, nor with a
    /// stress accent as in `één`). `limit` is clamped to 1..=500.
    #[uniffi::method(default(limit = 20))]
    pub fn search(&self, query: String, limit: u32) -> Result<Vec<SearchHit>> {
        Ok(convert(self.inner.search(&query, limit)?))
    }

    /// A document's history, oldest first: who (device and member name), when, what.
    pub fn history(&self, id: String) -> Result<Vec<HistoryEntry>> {
        Ok(convert(self.inner.history(parse_id(&id)?)?))
    }

    /// Erases a case (with its notes), learning point or meeting here and, by a signed
    /// tombstone that travels with its networks, on every device that syncs afterwards. Only
    /// the worker who created it or an admin of a network it is shared with may (`NotAllowed`
    /// otherwise); `reason` is required (the client asked, the retention period ended).
    pub fn erase(&self, id: String, reason: String) -> Result<()> {
        Ok(self.inner.erase(parse_id(&id)?, &reason)?)
    }

    /// Takes words out of a note and out of the case's history (a name written by mistake):
    /// `text` is the note as it should read. The case goes on under the returned new id
    /// (links to the old one lead there), and its old history is erased here and on every
    /// device that syncs afterwards; notes others wrote on the old history meanwhile are
    /// carried over. Only the case's worker or an admin of a network it is shared with may
    /// (`NotAllowed`); `reason` is required.
    pub fn redact_note(
        &self,
        case_id: String,
        note_id: String,
        text: String,
        reason: String,
    ) -> Result<String> {
        let note: NoteId = parse_id(&note_id)?;
        Ok(self.inner.redact_note(parse_id(&case_id)?, note, &text, &reason)?.to_string())
    }

    /// The kind of a stored document.
    pub fn kind_of(&self, id: String) -> Result<DocKind> {
        Ok(self.inner.kind_of(parse_id(&id)?)?.into())
    }

    /// Every document on this device.
    pub fn document_ids(&self) -> Result<Vec<DocumentInfo>> {
        Ok(convert(self.inner.document_ids()?))
    }

    // ---------------------------------------------------------------------------------------
    // Exchange: what sync drivers build on

    /// A document's current heads (change hashes, hex).
    pub fn heads(&self, id: String) -> Result<Vec<String>> {
        Ok(self.inner.heads(parse_id(&id)?)?.iter().map(ToString::to_string).collect())
    }

    /// A whole document, saved (compressed): give it to `merge_document` on another device.
    pub fn export_document(&self, id: String) -> Result<Vec<u8>> {
        Ok(self.inner.export_document(parse_id(&id)?)?)
    }

    /// The changes of a document not covered by `heads` (from another device's `heads`).
    pub fn changes_since(&self, id: String, heads: Vec<String>) -> Result<Vec<u8>> {
        let heads = parse_heads(&heads)?;
        Ok(self.inner.changes_since(parse_id(&id)?, &heads)?)
    }

    /// Merges a whole document from another device (new here or not). Refused bytes
    /// (`InvalidInput`) leave the store as it was.
    pub fn merge_document(&self, data: Vec<u8>) -> Result<MergeOutcome> {
        Ok(self.inner.merge_document(&data)?.into())
    }

    /// Merges changes (from `changes_since`) into a document this device already holds.
    pub fn merge_changes(&self, id: String, data: Vec<u8>) -> Result<MergeOutcome> {
        Ok(self.inner.merge_changes(parse_id(&id)?, &data)?.into())
    }

    // ---------------------------------------------------------------------------------------
    // Maintenance

    /// Rebuilds every derived table from the stored documents; returns how many there are.
    pub fn reindex(&self) -> Result<u64> {
        Ok(u64::try_from(self.inner.reindex()?).unwrap_or(u64::MAX))
    }

    /// Runs SQLite's integrity check and loads every document: the problems found, if any.
    pub fn check_integrity(&self) -> Result<Vec<String>> {
        Ok(self.inner.check_integrity()?)
    }
}

/// The key from the bytes the app passed, which are wiped here (the foreign side keeps its
/// own copy in the keystore).
fn store_key(mut bytes: Vec<u8>) -> Result<nabij_core::StoreKey> {
    let key = nabij_core::StoreKey::from_slice(&bytes)
        .map_err(|e| NabijError::InvalidInput { message: format!("store key: {e}") });
    zeroize::Zeroize::zeroize(&mut bytes);
    key
}

/// What a store path holds, read without opening or changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum StoreState {
    /// No store yet: `Device.open` creates one.
    Absent,
    /// A store made before encryption at rest: encrypt it with `encrypt_store`.
    Plain,
    /// An encrypted store: it opens only with its key.
    Encrypted,
}

/// What is at `path`: no store, a plain one, or an encrypted one.
#[uniffi::export]
pub fn store_state(path: String) -> Result<StoreState> {
    Ok(match nabij_core::Device::store_state(path)? {
        nabij_core::StoreState::Absent => StoreState::Absent,
        nabij_core::StoreState::Plain => StoreState::Plain,
        nabij_core::StoreState::Encrypted => StoreState::Encrypted,
    })
}

/// Encrypts the plain store at `path` with `key` (32 bytes), in place and atomically: after a
/// crash at any point, either the plain store or the encrypted one opens (call again to
/// finish). No `Device` may have the store open. Repeating it on a store already encrypted with
/// `key` does nothing.
#[uniffi::export]
pub fn encrypt_store(path: String, key: Vec<u8>) -> Result<()> {
    Ok(nabij_core::Device::encrypt_store(path, &store_key(key)?)?)
}

/// A new random 32-byte store key from the operating system's random source, for apps that do
/// not make one with the platform's own (keep it in the Keystore or Keychain).
#[uniffi::export]
pub fn new_store_key() -> Result<Vec<u8>> {
    let key = nabij_core::StoreKey::generate()
        .map_err(|e| NabijError::Other { message: format!("no randomness: {e}") })?;
    Ok(key.as_bytes().to_vec())
}

/// The CAIMeR field names accepted by `CaseUpdate.caimer`.
#[uniffi::export]
pub fn caimer_fields() -> Vec<String> {
    nabij_core::model::CAIMER_FIELDS.iter().map(|f| (*f).to_string()).collect()
}
