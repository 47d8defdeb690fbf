//! Networks: rosters, members and the network key sealed to each member device.

use super::*;

impl Device {
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
}
