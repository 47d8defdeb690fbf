//! The one error type apps see, and the one place core errors are mapped to it.
//!
//! Apps match on six kinds, not on the core's many: what they should do differs per kind.
//! - `InvalidInput`: the call's arguments were refused (a field, an id, a text range, bytes given
//!   to merge). Nothing was written; show the message or drop the payload, do not retry as is.
//! - `NotFound`: no such document, note or agreement on this device (yet: it may arrive by sync).
//! - `Storage`: the store could not be opened, read or written, or holds a damaged document.
//!   Retry later, or run `check_integrity`/`reindex`, or restore from another device.
//! - `Network`: meeting sync with another device failed (not reached, refused this device, went
//!   silent, lost the connection, or broke the protocol). What was exchanged before is kept;
//!   retry when the devices are together again.
//! - `NotAllowed`: this device may not do that (only an admin of a network adds or removes
//!   members). Nothing was written; ask an admin.
//! - `Other`: anything else (a bug, or a document this version cannot change). Report it.

use nabij_core::{
    error::DocError,
    ids::ParseIdError,
    model::ValidationError,
    net::{NetError, TicketError},
    relay::RelayError,
    sync::SyncError,
};

/// Why a call failed. Nothing was written when a call fails.
///
/// Flat: each variant carries only a human-readable message (the exception's message in
/// Kotlin and Swift, `str(e)` in Python), so the foreign API stays stable when the core's
/// error details change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum NabijError {
    /// The input was refused: a required field is empty or too long, an id does not parse or
    /// names the wrong kind of document, a text range is outside the note, or bytes given to
    /// merge are not a (compatible) Nabij document.
    #[error("{message}")]
    InvalidInput {
        /// What was refused, naming the field.
        message: String,
    },
    /// No such document, note or agreement on this device.
    #[error("{message}")]
    NotFound {
        /// What was looked for.
        message: String,
    },
    /// The store could not be opened, read or written, or a stored document is damaged.
    #[error("{message}")]
    Storage {
        /// What failed.
        message: String,
    },
    /// Meeting sync failed: the other device could not be reached, refused this one, went
    /// silent, lost the connection, or broke the sync protocol. What was already exchanged is
    /// kept; try again when the devices are together.
    #[error("{message}")]
    Network {
        /// What failed, naming the device or address where known.
        message: String,
    },
    /// This device may not do that: only an admin of a network adds or removes members and
    /// devices or changes roles.
    #[error("{message}")]
    NotAllowed {
        /// What was refused.
        message: String,
    },
    /// The store is encrypted and the key given is not its key. Nothing was written; ask the
    /// keystore again (or the store was copied from another phone).
    #[error("{message}")]
    WrongKey {
        /// Which store.
        message: String,
    },
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
    },
}

impl From<nabij_core::Error> for NabijError {
    fn from(e: nabij_core::Error) -> Self {
        use nabij_core::Error as E;
        let message = e.to_string();
        match e {
            E::Invalid(_) => NabijError::InvalidInput { message },
            E::NotFound { .. } => NabijError::NotFound { message },
            E::Open(nabij_core::error::OpenError::WrongKey(_)) => NabijError::WrongKey { message },
            E::Open(_) | E::Store(_) | E::StoredDocument { .. } => NabijError::Storage { message },
            // Bytes from another device were refused as a whole: bad input, nothing applied.
            E::Merge(_) => NabijError::InvalidInput { message },
            E::Document(e) => match e {
                // The caller named a document of another kind, or a range outside a note's
                // text.
                DocError::WrongKind { .. } | DocError::TextRange { .. } => {
                    NabijError::InvalidInput { message }
                }
                // Changes from elsewhere that are not signed by a device that may write them,
                // or a second history a device wrote of a document.
                DocError::Unauthorized(_) | DocError::Forked { .. } => {
                    NabijError::InvalidInput { message }
                }
                // Changes to a document erased here: refused, as any bad input.
                DocError::Erased(_) => NabijError::InvalidInput { message },
                // A document this version cannot change.
                DocError::Corrupt(_)
                | DocError::NewerSchema { .. }
                | DocError::Malformed(_)
                | DocError::MissingDependencies(_)
                | DocError::Automerge(_) => NabijError::Other { message },
            },
            E::NotAllowed(_) => NabijError::NotAllowed { message },
            // A bug (rolled back), a key that could not be made or opened, or a membership
            // operation that could not be signed.
            E::Internal(_) | E::Crypto(_) | E::Membership(_) => NabijError::Other { message },
        }
    }
}

/// Reads an invitation string; damaged or forged ones are invalid input.
pub(crate) fn parse_invitation(s: &str) -> Result<nabij_core::invitation::Invitation, NabijError> {
    nabij_core::invitation::Invitation::parse(s)
        .map_err(|e| NabijError::InvalidInput { message: e.to_string() })
}

impl From<NetError> for NabijError {
    fn from(e: NetError) -> Self {
        Self::from(&e)
    }
}

impl From<&NetError> for NabijError {
    fn from(e: &NetError) -> Self {
        let message = e.to_string();
        match e {
            // A mistyped, cut-short or foreign ticket: nothing was dialled.
            NetError::Ticket(_) => NabijError::InvalidInput { message },
            NetError::Io(_)
            | NetError::Connect(_)
            | NetError::Connection(_)
            | NetError::Timeout(_) => NabijError::Network { message },
            NetError::Sync(SyncError::Storage(_)) => NabijError::Storage { message },
            // The peer broke the protocol, sent data this device refused, or went silent; the
            // session ended before anything bad was applied.
            NetError::Sync(
                SyncError::Frame(_)
                | SyncError::Version(_)
                | SyncError::WrongPeer
                | SyncError::Protocol(_)
                | SyncError::Refused(_)
                | SyncError::Timeout(_)
                | SyncError::Closed,
            ) => NabijError::Network { message },
            NetError::Relay(RelayError::Store(_)) => NabijError::Storage { message },
            NetError::Relay(RelayError::Protocol(_)) => NabijError::Network { message },
            NetError::Tls(_) | NetError::Internal(_) => NabijError::Other { message },
        }
    }
}

impl From<TicketError> for NabijError {
    fn from(e: TicketError) -> Self {
        NetError::from(e).into()
    }
}

impl From<ParseIdError> for NabijError {
    fn from(e: ParseIdError) -> Self {
        nabij_core::Error::from(e).into()
    }
}

impl From<ValidationError> for NabijError {
    fn from(e: ValidationError) -> Self {
        nabij_core::Error::from(e).into()
    }
}

/// Parses an id (document, note, member, item id or device key) given as base58check.
pub(crate) fn parse_id<T>(s: &str) -> Result<T, NabijError>
where
    T: std::str::FromStr<Err = ParseIdError>,
{
    Ok(s.parse::<T>()?)
}

/// Parses a list of ids.
pub(crate) fn parse_ids<T>(ids: &[String]) -> Result<Vec<T>, NabijError>
where
    T: std::str::FromStr<Err = ParseIdError>,
{
    ids.iter().map(|s| parse_id(s)).collect()
}

/// Parses an optional id.
pub(crate) fn parse_opt_id<T>(s: Option<&str>) -> Result<Option<T>, NabijError>
where
    T: std::str::FromStr<Err = ParseIdError>,
{
    s.map(parse_id).transpose()
}

#[cfg(test)]
mod tests {
    use nabij_core::{
        DeviceKey, DocId, Error as E, NoteId,
        error::{OpenError, StoreError},
        model::DocKind,
    };

    use super::*;

    #[test]
    fn ids_parse_and_bad_ids_are_invalid_input() {
        let id = DocId::random();
        assert_eq!(parse_id::<DocId>(&id.to_string()), Ok(id));
        assert_eq!(parse_ids::<DocId>(&[id.to_string()]), Ok(vec![id]));
        assert_eq!(parse_opt_id::<DocId>(None), Ok(None));
        for bad in ["", "not an id", "0OIl", &format!("{id}x")] {
            let e = parse_id::<NoteId>(bad).expect_err(bad);
            assert!(matches!(e, NabijError::InvalidInput { .. }), "{bad}: {e:?}");
        }
        // A well-formed id of the wrong length (a device key) is refused too.
        let key = DeviceKey::from_bytes([1; 32]).to_string();
        let e = parse_id::<DocId>(&key).expect_err("a device key is not a document id");
        let NabijError::InvalidInput { message } = e else { panic!("{e:?}") };
        assert!(message.contains("document id"), "{message}");
    }

    /// The variant name and message of an error.
    fn named(e: NabijError) -> (&'static str, String) {
        match e {
            NabijError::InvalidInput { message } => ("InvalidInput", message),
            NabijError::NotFound { message } => ("NotFound", message),
            NabijError::Storage { message } => ("Storage", message),
            NabijError::Network { message } => ("Network", message),
            NabijError::NotAllowed { message } => ("NotAllowed", message),
            NabijError::WrongKey { message } => ("WrongKey", message),
            NabijError::Other { message } => ("Other", message),
        }
    }

    /// The variant name and message a core error maps to.
    fn mapped(e: E) -> (&'static str, String) {
        named(e.into())
    }

    #[test]
    fn core_errors_map_to_their_kinds() {
        let required = E::Invalid(ValidationError::Required("subject"));
        assert_eq!(mapped(required), ("InvalidInput", "subject is required".into()));
        let missing = E::NotFound { kind: "case", id: "x".into() };
        assert_eq!(mapped(missing), ("NotFound", "case x not found".into()));
        assert_eq!(mapped(E::Open(OpenError::NotADatabase("f".into()))).0, "Storage");
        assert_eq!(mapped(E::Open(OpenError::WrongKey("f".into()))).0, "WrongKey");
        let (kind, message) = mapped(E::Open(OpenError::NotEncrypted("f".into())));
        assert_eq!(kind, "Storage");
        assert!(message.contains("migrate-encrypt"), "{message}");
        assert_eq!(mapped(E::Store(StoreError::Corrupt("bad".into()))).0, "Storage");
        let stored = E::StoredDocument { id: "x".into(), source: DocError::Corrupt("c".into()) };
        assert_eq!(mapped(stored).0, "Storage");
        assert_eq!(mapped(E::NotAllowed("only an admin".into())).0, "NotAllowed");
        let (kind, message) = mapped(E::Merge(DocError::Corrupt("garbage".into())));
        assert_eq!(kind, "InvalidInput");
        assert!(message.contains("garbage"), "{message}");
        let wrong_kind = DocError::WrongKind {
            id: "x".into(),
            found: DocKind::Meeting,
            expected: DocKind::Case,
        };
        assert_eq!(mapped(E::Document(wrong_kind)).0, "InvalidInput");
        let range = DocError::TextRange { pos: 9, delete: 1, len: 3 };
        assert_eq!(mapped(E::Document(range)).0, "InvalidInput");
        assert_eq!(mapped(E::Document(DocError::Malformed("m".into()))).0, "Other");
    }

    /// The variant name and message a meeting-sync error maps to.
    fn net_mapped(e: NetError) -> (&'static str, String) {
        named(e.into())
    }

    #[test]
    fn net_errors_map_to_network_invalid_input_storage_or_other() {
        let (kind, message) = net_mapped(NetError::Ticket(TicketError::NoAddress));
        assert_eq!(kind, "InvalidInput");
        assert!(message.contains("no address"), "{message}");
        assert_eq!(NabijError::from(TicketError::NoAddress).to_string(), message);
        assert_eq!(net_mapped(NetError::Connect("refused".into())).0, "Network");
        assert_eq!(net_mapped(NetError::Connection("lost".into())).0, "Network");
        assert_eq!(net_mapped(NetError::Timeout("silent".into())).0, "Network");
        assert_eq!(net_mapped(NetError::Io(std::io::Error::other("in use"))).0, "Network");
        assert_eq!(net_mapped(NetError::Sync(SyncError::WrongPeer)).0, "Network");
        assert_eq!(net_mapped(NetError::Sync(SyncError::Storage("disk".into()))).0, "Storage");
        assert_eq!(net_mapped(NetError::Tls("cert".into())).0, "Other");
        assert_eq!(net_mapped(NetError::Internal("task".into())).0, "Other");
    }
}
