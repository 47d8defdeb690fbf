//! The façade an app holds: one [`Device`] per phone, owning its store, its identity and the
//! change listeners.
//!
//! This file holds the type, opening a store, the device's identity and display name, and the
//! listeners; each file under `device/` adds one role to `impl Device` (see `ARCHITECTURE.md`,
//! "The house"). One operation runs: parse the input (`model::Valid`) → change the Automerge
//! document → append its incremental chunk → update the derived tables → COMMIT → notify
//! listeners; `engine` owns that order. Queries read only derived tables through a separate
//! reader connection. Knows nothing of the network: sync drivers call
//! [`Device::merge_changes`] and friends.

use std::{
    collections::{BTreeMap, HashMap},
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

mod at_rest;
mod cases;
mod engine;
mod erasure;
mod exchange;
mod forks;
mod learning_points;
mod maintenance;
mod meetings;
mod networks;
mod projection;
mod queries;
mod redaction;
mod relay_store;
mod sync_store;

use engine::{
    Writer, check_changes, check_changes_as_new, check_merged, guard, load_cached, mark_persisted,
    merge_in, persist,
};
pub(crate) use projection::{Derived, derive};
use projection::{Notes, Touched, index_doc, write_derived};

pub use at_rest::StoreState;
pub use erasure::DEFAULT_ERASURE_WINDOW_MS;
pub use relay_store::DeviceRelay;

use crate::{
    authorship::{self, SignedHead},
    crypto::{self, SecretKey},
    doc::{self, DocError, TextEdit},
    error::Error,
    identity::DeviceIdentity,
    ids::{DeviceKey, DocId, ItemId, MemberId, NoteId, Randomness},
    model::{
        self, Author, Case, CaseFilter, CaseItem, CaseSummary, CaseUpdate, Consent, ConsentStatus,
        DocKind, LearningPoint, LearningPointSummary, LearningPointUpdate, Meeting,
        MeetingContents, MeetingSummary, MeetingUpdate, Network, NetworkSummary, NewCase,
        NewLearningPoint, NewMeeting, NewNote, Note, SearchHit, Timestamp, ValidationError,
    },
    store::{self, DocState, StoreKey},
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
    /// The key the store is encrypted with (SQLCipher), from the platform keystore. `None`
    /// opens (or creates) a plain store: only for tests and stores not yet encrypted (see
    /// [`Device::encrypt_store`]). A new store is created encrypted when a key is given.
    pub key: Option<StoreKey>,
    /// How long a document erased here is refused (milliseconds): a stale copy that comes
    /// back within it is not taken. Default a year ([`DEFAULT_ERASURE_WINDOW_MS`]).
    pub erasure_window_ms: i64,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            cache_capacity: NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN),
            randomness: Randomness::os(),
            key: None,
            erasure_window_ms: DEFAULT_ERASURE_WINDOW_MS,
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

type Listener = Arc<dyn Fn(&[DocId]) + Send + Sync>;

#[derive(Default)]
struct Listeners {
    next: AtomicU64,
    /// By subscription id, so listeners are called in the order they subscribed.
    map: Mutex<BTreeMap<u64, Listener>>,
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

/// One device: a store, an identity, and every operation an app performs.
pub struct Device {
    path: PathBuf,
    /// The store's key, kept to open more connections (the integrity check, after a rekey).
    key: RwLock<Option<StoreKey>>,
    /// Declared before the writer so that it closes first: the last connection to close folds
    /// the WAL into the store and deletes it, and only the writer may (the reader is read-only).
    reader: Mutex<Connection>,
    writer: Mutex<Writer>,
    identity: DeviceIdentity,
    member: MemberId,
    name: RwLock<String>,
    clock: Arc<dyn Clock>,
    randomness: Randomness,
    erasure_window_ms: i64,
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

    /// Opens the store at `path` encrypted with `key`, creating it (encrypted, and the
    /// device's key inside it) on first use. A wrong key is [`store::OpenError::WrongKey`]
    /// and leaves the file as it was.
    pub fn open_encrypted(path: impl AsRef<Path>, key: StoreKey) -> Result<Self, Error> {
        Self::open_with(path, DeviceOptions { key: Some(key), ..DeviceOptions::default() })
    }

    /// Opens with explicit options (clock, cache size, store key).
    pub fn open_with(path: impl AsRef<Path>, options: DeviceOptions) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let (mut conn, reader, needs_reindex) = store::open(&path, options.key.as_ref())?;
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
            key: RwLock::new(options.key),
            writer: Mutex::new(Writer { conn, cache: LruCache::new(options.cache_capacity) }),
            reader: Mutex::new(reader),
            identity,
            member,
            name: RwLock::new(name),
            clock: options.clock,
            randomness: options.randomness,
            erasure_window_ms: options.erasure_window_ms,
            listeners: Arc::default(),
        };
        if store::meta_get(&device.reader.lock(), "upgrade_networks")?.is_some() {
            // Version 6 signs networks made before signed membership in (see
            // `upgrade_networks`); like a reindex, a failure must not lock the worker out.
            if let Err(e) = device.upgrade_networks() {
                tracing::warn!(error = %e, "signing older networks into signed membership failed");
            }
        }
        if store::meta_get(&device.reader.lock(), "sign_heads")?.is_some() {
            // Version 6 signs authorship: sign this device's own changes to what it holds.
            if let Err(e) = device.sign_own_heads() {
                tracing::warn!(error = %e, "signing this device's changes failed");
            }
        }
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

    /// The device's signing key, for the attacker tests' member gone bad (`test_utils`).
    #[cfg(feature = "test-utils")]
    pub(crate) fn signing_key_for_tests(&self) -> &ed25519_dalek::SigningKey {
        self.identity.signing_key()
    }

    /// Whether some network this device holds lists both it and `peer`: the devices it will
    /// accept connections from.
    pub fn shares_network_with(&self, peer: &DeviceKey) -> Result<bool, Error> {
        let shared = store::shared_networks(&self.reader.lock(), &self.device_key(), peer)?;
        Ok(!shared.is_empty())
    }

    /// Whether this device admits `peer` to a meeting: it shares a network with it, or `peer`
    /// was removed from a network this device is in (it is admitted only to be handed its
    /// removal, and wipes that network; it gets nothing else).
    pub fn may_meet(&self, peer: &DeviceKey) -> Result<bool, Error> {
        let r = self.reader.lock();
        Ok(!store::shared_networks(&r, &self.device_key(), peer)?.is_empty()
            || !store::networks_removing(&r, &self.device_key(), peer)?.is_empty())
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
            // The write is committed: a listener that panics must neither make it look failed
            // nor keep the listeners after it from hearing of it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l(ids))).is_err() {
                tracing::error!("a change listener panicked; the others were still called");
            }
        }
    }
}

// Apps share one Device across threads (and uniffi requires it).
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Device>();
};
