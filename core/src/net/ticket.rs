//! Tickets: the short strings (and QR codes) that tell one device how to reach another.
//!
//! A meeting ticket carries the listening device's addresses and port, its device key (which
//! the connecting side pins: the TLS handshake fails for any other key) and, optionally, the
//! network the meeting is for. A device card carries a device key, member id and name: what a
//! new device shows so that a member can add it to a network.
//!
//! Encoding: a prefix, then base58check of a postcard body, so a mistyped or truncated ticket
//! is refused by its checksum rather than dialled.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceKey, DocId, MemberId};

const TICKET_PREFIX: &str = "nabij1";
const CARD_PREFIX: &str = "nabijcard1";
/// Longest ticket string accepted, so a pasted blob is refused before it is decoded.
const MAX_LEN: usize = 1024;

/// Why a ticket or card could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// It does not start with the expected prefix.
    #[error("not a Nabij {0} (it should start with \"{1}\")")]
    Prefix(&'static str, &'static str),
    /// Too long to be one.
    #[error("too long ({0} characters) to be a ticket")]
    TooLong(usize),
    /// Bad characters or a failed checksum: mistyped or truncated.
    #[error("damaged ticket (mistyped or cut short): {0}")]
    Checksum(String),
    /// It decodes but makes no sense.
    #[error("malformed ticket: {0}")]
    Malformed(String),
    /// A meeting ticket without any address to dial.
    #[error("the ticket has no address to connect to")]
    NoAddress,
}

/// How to reach a listening device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The listening device's key, pinned by whoever connects.
    pub device: DeviceKey,
    /// Where it listens (all of them share one port).
    pub addrs: Vec<SocketAddr>,
    /// The network the meeting is for, if one was named.
    pub network: Option<DocId>,
}

#[derive(Serialize, Deserialize)]
struct TicketWire {
    device: [u8; 32],
    addrs: Vec<SocketAddr>,
    network: Option<[u8; 16]>,
}

/// What a device shows to be added to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCard {
    /// The device's key.
    pub device: DeviceKey,
    /// The member (worker) the device belongs to.
    pub member: MemberId,
    /// The member's display name.
    pub name: String,
}

#[derive(Serialize, Deserialize)]
struct CardWire {
    device: [u8; 32],
    member: [u8; 16],
    name: String,
}

fn decode_body<'a>(
    s: &str,
    prefix: &'static str,
    what: &'static str,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], TicketError> {
    let s = s.trim();
    if s.len() > MAX_LEN {
        return Err(TicketError::TooLong(s.len()));
    }
    let body = s.strip_prefix(prefix).ok_or(TicketError::Prefix(what, prefix))?;
    *buf = bs58::decode(body)
        .with_check(None)
        .into_vec()
        .map_err(|e| TicketError::Checksum(e.to_string()))?;
    Ok(buf.as_slice())
}

impl Ticket {
    /// The ticket as a string (what the QR code carries).
    pub fn encode(&self) -> String {
        let wire = TicketWire {
            device: *self.device.as_bytes(),
            addrs: self.addrs.clone(),
            network: self.network.map(|n| *n.as_bytes()),
        };
        // Serialising plain owned data to a Vec cannot fail.
        let body = postcard::to_allocvec(&wire).unwrap_or_default();
        format!("{TICKET_PREFIX}{}", bs58::encode(body).with_check().into_string())
    }

    /// Reads a ticket; refuses damaged ones and ones without an address.
    pub fn parse(s: &str) -> Result<Self, TicketError> {
        let mut buf = Vec::new();
        let body = decode_body(s, TICKET_PREFIX, "ticket", &mut buf)?;
        let wire: TicketWire =
            postcard::from_bytes(body).map_err(|e| TicketError::Malformed(e.to_string()))?;
        if wire.addrs.is_empty() {
            return Err(TicketError::NoAddress);
        }
        if wire.addrs.len() > 16 {
            return Err(TicketError::Malformed(format!("{} addresses", wire.addrs.len())));
        }
        Ok(Self {
            device: DeviceKey::from_bytes(wire.device),
            addrs: wire.addrs,
            network: wire.network.map(DocId::from_bytes),
        })
    }
}

impl std::fmt::Display for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

impl std::str::FromStr for Ticket {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl DeviceCard {
    /// The card of `device`: its key, its member id and the name it writes as.
    pub fn of(device: &crate::Device) -> Self {
        Self {
            device: device.device_key(),
            member: device.member_id(),
            name: device.display_name(),
        }
    }

    /// The card as a string.
    pub fn encode(&self) -> String {
        let wire = CardWire {
            device: *self.device.as_bytes(),
            member: *self.member.as_bytes(),
            name: self.name.clone(),
        };
        // Serialising plain owned data to a Vec cannot fail.
        let body = postcard::to_allocvec(&wire).unwrap_or_default();
        format!("{CARD_PREFIX}{}", bs58::encode(body).with_check().into_string())
    }

    /// Reads a card.
    pub fn parse(s: &str) -> Result<Self, TicketError> {
        let mut buf = Vec::new();
        let body = decode_body(s, CARD_PREFIX, "device card", &mut buf)?;
        let wire: CardWire =
            postcard::from_bytes(body).map_err(|e| TicketError::Malformed(e.to_string()))?;
        Ok(Self {
            device: DeviceKey::from_bytes(wire.device),
            member: MemberId::from_bytes(wire.member),
            name: wire.name,
        })
    }
}

impl std::fmt::Display for DeviceCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ticket() -> Ticket {
        Ticket {
            device: DeviceKey::from_bytes([7; 32]),
            addrs: vec!["192.168.1.20:40123".parse().unwrap(), "[fe80::1]:40123".parse().unwrap()],
            network: Some(DocId::from_bytes([3; 16])),
        }
    }

    #[test]
    fn ticket_round_trips_and_stays_short() {
        let t = ticket();
        let s = t.encode();
        assert!(s.starts_with("nabij1"), "{s}");
        // A QR code of version 10 holds ~270 alphanumeric characters; keep well within.
        assert!(s.len() < 200, "{} characters", s.len());
        assert_eq!(Ticket::parse(&s).unwrap(), t);
        assert_eq!(Ticket::parse(&format!("  {s}\n")).unwrap(), t);
    }

    #[test]
    fn damaged_tickets_are_refused() {
        let s = ticket().encode();
        assert!(matches!(Ticket::parse("hello"), Err(TicketError::Prefix(..))));
        assert!(matches!(Ticket::parse(&s[..s.len() - 3]), Err(TicketError::Checksum(_))));
        assert!(matches!(Ticket::parse(&"x".repeat(5000)), Err(TicketError::TooLong(5000))));
        let none = Ticket { addrs: vec![], ..ticket() };
        assert_eq!(Ticket::parse(&none.encode()), Err(TicketError::NoAddress));
        let card = DeviceCard {
            device: DeviceKey::from_bytes([1; 32]),
            member: MemberId::from_slice(&[2; 16]).unwrap(),
            name: "Sanne".into(),
        };
        assert!(matches!(Ticket::parse(&card.encode()), Err(TicketError::Prefix(..))));
        assert_eq!(DeviceCard::parse(&card.encode()).unwrap(), card);
    }

    proptest! {
        /// Any single-character change to a ticket is refused, never misread as another one.
        #[test]
        fn a_changed_character_is_caught(pos in 6usize..60, c in proptest::char::range('1', 'z')) {
            let s = ticket().encode();
            let mut chars: Vec<char> = s.chars().collect();
            let pos = pos.min(chars.len() - 1);
            prop_assume!(chars[pos] != c);
            chars[pos] = c;
            let changed: String = chars.into_iter().collect();
            prop_assert!(Ticket::parse(&changed).is_err());
        }
    }
}
