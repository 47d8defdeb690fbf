//! Invitations: how a device is asked into a network, and how its user says yes.
//!
//! An admin adds a new device to a network's signed membership and hands it an invitation: the
//! network's id and name, the invited device's key and member, and who invites, signed by the
//! inviting device. The new device's user accepts it ([`crate::Device::join`]); from then on
//! (and only then) the device takes that network's document from a meeting or the relay. A
//! device never takes on a network it was not invited to and did not accept, so no one can
//! plant a network on it (threat model, promise 1). The network's id commits to its genesis
//! (see [`crate::membership::network_id_for`]), so the document that arrives under that id
//! is the one the inviter meant, whoever carries it.
//!
//! Owns the invitation's format and signature. Encoding: a prefix, then base58check of a
//! postcard body and the signature, like tickets and cards.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    ids::{DeviceKey, DocId, MemberId},
    model::Role,
};

const PREFIX: &str = "nabijinvite1";
/// Longest invitation string accepted, so a pasted blob is refused before it is decoded.
const MAX_LEN: usize = 2048;
/// Domain separation: an invitation signature is never mistaken for another of the device's.
const CONTEXT: &[u8] = b"nabij invitation v1\0";

/// Why an invitation could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvitationError {
    /// It does not start with the invitation prefix.
    #[error("not a Nabij invitation (it should start with \"{PREFIX}\")")]
    Prefix,
    /// Too long to be one.
    #[error("too long ({0} characters) to be an invitation")]
    TooLong(usize),
    /// Bad characters or a failed checksum: mistyped or truncated.
    #[error("damaged invitation (mistyped or cut short): {0}")]
    Checksum(String),
    /// It decodes but makes no sense.
    #[error("malformed invitation: {0}")]
    Malformed(String),
    /// The signature does not verify: not made by the device it names.
    #[error("the invitation's signature does not hold")]
    Signature,
}

/// An invitation into a network, signed by the inviting device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The network.
    pub network: DocId,
    /// Its name, to show the user before they accept.
    pub network_name: String,
    /// The invited device.
    pub device: DeviceKey,
    /// The member the device joins as.
    pub member: MemberId,
    /// The role it is given.
    pub role: Role,
    /// The inviting device (an admin of the network when it signed).
    pub inviter: DeviceKey,
    /// The inviter's name, to show the user.
    pub inviter_name: String,
    /// When it was made (ms since the epoch; shown, not trusted).
    pub issued_at: i64,
    signature: [u8; 64],
}

#[derive(Serialize, Deserialize)]
struct Body {
    network: [u8; 16],
    network_name: String,
    device: [u8; 32],
    member: [u8; 16],
    role: Role,
    inviter: [u8; 32],
    inviter_name: String,
    issued_at: i64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    body: Vec<u8>,
    signature: Vec<u8>,
}

impl Invitation {
    /// Signs an invitation with the inviting device's key.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sign(
        inviter: &SigningKey,
        inviter_name: &str,
        network: DocId,
        network_name: &str,
        device: DeviceKey,
        member: MemberId,
        role: Role,
        issued_at: i64,
    ) -> Result<Self, InvitationError> {
        let mut inv = Self {
            network,
            network_name: network_name.to_string(),
            device,
            member,
            role,
            inviter: DeviceKey::from_bytes(inviter.verifying_key().to_bytes()),
            inviter_name: inviter_name.to_string(),
            issued_at,
            signature: [0; 64],
        };
        let body = inv.body()?;
        inv.signature = inviter.sign(&[CONTEXT, &body].concat()).to_bytes();
        Ok(inv)
    }

    fn body(&self) -> Result<Vec<u8>, InvitationError> {
        postcard::to_stdvec(&Body {
            network: *self.network.as_bytes(),
            network_name: self.network_name.clone(),
            device: *self.device.as_bytes(),
            member: *self.member.as_bytes(),
            role: self.role,
            inviter: *self.inviter.as_bytes(),
            inviter_name: self.inviter_name.clone(),
            issued_at: self.issued_at,
        })
        .map_err(|e| InvitationError::Malformed(e.to_string()))
    }

    /// The invitation as a string (a QR code, a message).
    pub fn encode(&self) -> String {
        // Serialising plain owned data to a Vec cannot fail.
        let wire =
            Wire { body: self.body().unwrap_or_default(), signature: self.signature.to_vec() };
        let bytes = postcard::to_stdvec(&wire).unwrap_or_default();
        format!("{PREFIX}{}", bs58::encode(bytes).with_check().into_string())
    }

    /// Reads an invitation and checks its signature; refuses damaged and forged ones.
    pub fn parse(s: &str) -> Result<Self, InvitationError> {
        let s = s.trim();
        if s.len() > MAX_LEN {
            return Err(InvitationError::TooLong(s.len()));
        }
        let encoded = s.strip_prefix(PREFIX).ok_or(InvitationError::Prefix)?;
        let bytes = bs58::decode(encoded)
            .with_check(None)
            .into_vec()
            .map_err(|e| InvitationError::Checksum(e.to_string()))?;
        let wire: Wire =
            postcard::from_bytes(&bytes).map_err(|e| InvitationError::Malformed(e.to_string()))?;
        let b: Body = postcard::from_bytes(&wire.body)
            .map_err(|e| InvitationError::Malformed(e.to_string()))?;
        let signature: [u8; 64] =
            wire.signature.as_slice().try_into().map_err(|_| InvitationError::Signature)?;
        let key = VerifyingKey::from_bytes(&b.inviter).map_err(|_| InvitationError::Signature)?;
        key.verify(&[CONTEXT, &wire.body].concat(), &Signature::from_bytes(&signature))
            .map_err(|_| InvitationError::Signature)?;
        Ok(Self {
            network: DocId::from_bytes(b.network),
            network_name: b.network_name,
            device: DeviceKey::from_bytes(b.device),
            member: MemberId::from_bytes(b.member),
            role: b.role,
            inviter: DeviceKey::from_bytes(b.inviter),
            inviter_name: b.inviter_name,
            issued_at: b.issued_at,
            signature,
        })
    }
}

impl std::fmt::Display for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

impl std::str::FromStr for Invitation {
    type Err = InvitationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation() -> Invitation {
        let admin = SigningKey::from_bytes(&[1; 32]);
        Invitation::sign(
            &admin,
            "Anna",
            DocId::from_bytes([2; 16]),
            "Wijknetwerk Oost",
            DeviceKey::from_bytes([3; 32]),
            MemberId::from_bytes([4; 16]),
            Role::Member,
            1_700_000_000_000,
        )
        .expect("sign")
    }

    #[test]
    fn an_invitation_round_trips_and_a_forged_or_damaged_one_is_refused() {
        let inv = invitation();
        let s = inv.encode();
        assert_eq!(Invitation::parse(&s).expect("parse"), inv);
        // Someone changes the network name (re-encoding the body): the signature fails.
        let mut forged = inv.clone();
        forged.network_name = "Wijknetwerk West".into();
        assert_eq!(Invitation::parse(&forged.encode()), Err(InvitationError::Signature));
        // Signed by another key than the inviter it names.
        let mut other = inv.clone();
        other.inviter =
            DeviceKey::from_bytes(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes());
        assert_eq!(Invitation::parse(&other.encode()), Err(InvitationError::Signature));
        let cut = &s[..s.len() - 3];
        assert!(matches!(Invitation::parse(cut), Err(InvitationError::Checksum(_))));
        assert_eq!(Invitation::parse("nabij1abc"), Err(InvitationError::Prefix));
        assert!(matches!(Invitation::parse(&"x".repeat(5000)), Err(InvitationError::TooLong(_))));
    }
}
