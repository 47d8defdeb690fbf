//! The façade's error: one enum over the operation families' errors, so an app can tell bad
//! input from a missing document from a storage failure.

use crate::model::ValidationError;
pub use crate::{
    doc::DocError,
    store::{OpenError, StoreError},
};

/// Why a [`crate::Device`] operation failed. Nothing was written when an operation fails.
#[derive(Debug, thiserror::Error)]
// Not `non_exhaustive`: nabij-ffi maps every variant by name, so a new one fails its build
// until it is given a kind apps can act on.
pub enum Error {
    /// The input was refused; the message names the field.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No such document or note on this device.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked for.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document stored on this device could not be read.
    #[error("stored document {id} cannot be read: {source}")]
    StoredDocument {
        /// The document.
        id: String,
        /// Why.
        source: DocError,
    },
    /// A document or change set given to merge was refused; nothing of it was applied.
    #[error("cannot merge: {0}")]
    Merge(DocError),
    /// A bug: an operation panicked. It was rolled back and the document reloaded; nothing of
    /// it was written.
    #[error("internal error (nothing was written): {0}")]
    Internal(String),
    /// An edit could not be applied to a document.
    #[error(transparent)]
    Document(#[from] DocError),
    /// The device may not do this (only an admin of a network changes who is in it, say).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// A membership operation could not be made or read.
    #[error(transparent)]
    Membership(#[from] crate::membership::MembershipError),
    /// A key could not be made, sealed or opened.
    #[error("encryption: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

impl From<crate::ids::ParseIdError> for Error {
    fn from(e: crate::ids::ParseIdError) -> Self {
        Error::Invalid(ValidationError::Id(e))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(e.into())
    }
}
