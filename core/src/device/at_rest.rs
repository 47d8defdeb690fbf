//! Encryption at rest on an open device: whether the store is encrypted, changing its key, and
//! encrypting a plain store. The SQLCipher work itself is `store::cipher`'s.

use super::*;
use crate::store::OpenError;

/// A connection that refuses every write and holds no table, put in a device's slots while
/// its store is rewritten, so that nothing can reach a file that is being replaced.
fn closed_slot() -> Result<Connection, Error> {
    let c = Connection::open_in_memory()?;
    c.pragma_update(None, "query_only", true)?;
    Ok(c)
}

/// What is at a store's path, as an app asks before opening it (to encrypt a store made before
/// encryption at rest, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    /// No store yet: opening creates one.
    Absent,
    /// A store that is not encrypted: encrypt it with [`Device::encrypt_store`].
    Plain,
    /// An encrypted store: it opens only with its key.
    Encrypted,
}

impl Device {
    /// What is at `path`, read without opening or changing it. A file that is neither a store
    /// nor could be an encrypted one is [`OpenError::NotADatabase`].
    pub fn store_state(path: impl AsRef<Path>) -> Result<StoreState, Error> {
        let path = path.as_ref();
        Ok(match store::file_state(path)? {
            store::FileState::Fresh => StoreState::Absent,
            store::FileState::Plain => StoreState::Plain,
            store::FileState::Opaque if store::could_be_encrypted(path)? => StoreState::Encrypted,
            store::FileState::Opaque => {
                return Err(OpenError::NotADatabase(path.to_path_buf()).into());
            }
        })
    }

    /// Whether the store is encrypted (opened with a key).
    pub fn is_encrypted(&self) -> bool {
        self.key.read().is_some()
    }

    /// Re-encrypts the store under `new` (say, after the old key may have leaked). The whole
    /// file is rewritten beside the store and renamed over it: a crash leaves the store under
    /// the old key or under the new one, never neither. Nothing else may have the store open.
    /// A plain store is [`OpenError::NotEncrypted`]: encrypt it with [`Device::encrypt_store`].
    pub fn change_store_key(&self, new: &StoreKey) -> Result<(), Error> {
        let mut key = self.key.write();
        let Some(old) = key.clone() else {
            return Err(OpenError::NotEncrypted(self.path.clone()).into());
        };
        // Writer before reader, as every other path that takes both.
        let mut w = self.writer.lock();
        let mut r = self.reader.lock();
        drop(std::mem::replace(&mut *r, closed_slot()?));
        let conn = std::mem::replace(&mut w.conn, closed_slot()?);
        let done = store::rekey_store(conn, &self.path, new);
        // The store opens with the key the rewrite reports, or else (an outcome it could not
        // see) with the other: whichever opens is the store's key from now on.
        let (first, second) = if done.is_ok() { (new, &old) } else { (&old, new) };
        let (opened_with, (writer, reader, _)) = match store::open(&self.path, Some(first)) {
            Ok(opened) => (first.clone(), opened),
            Err(OpenError::WrongKey(_)) => (second.clone(), store::open(&self.path, Some(second))?),
            Err(e) => return Err(e.into()),
        };
        w.conn = writer;
        *r = reader;
        let rekeyed = opened_with.as_bytes() == new.as_bytes();
        *key = Some(opened_with);
        if rekeyed { Ok(()) } else { done.map_err(Error::from) }
    }

    /// Encrypts the plain store at `path` with `key`, in place and atomically: a crash at any
    /// point leaves either the plain store or the encrypted one, both usable (the next open or
    /// call clears what was left half-done). The old file's bytes are overwritten before it is
    /// deleted. No device may have the store open. A store already encrypted with `key` is
    /// left as it is, so the call can be repeated after a crash.
    pub fn encrypt_store(path: impl AsRef<Path>, key: &StoreKey) -> Result<(), Error> {
        Ok(store::encrypt_store(path.as_ref(), key)?)
    }
}
