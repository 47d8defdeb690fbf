//! Networks: the roster of members and devices, and the relay keys sealed in the network
//! document.

// The kinds share the layout's vocabulary: shapes, helpers and imports of `doc`.
use super::*;

// Stored shapes

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

/// Writes a new network's first change; the creator is its first member, and `sealed_key` its
/// network key (epoch 0) sealed to the creator's device.
pub(crate) fn create_network(
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
pub(crate) fn ensure_key_maps(doc: &mut AutoCommit) -> Result<(), DocError> {
    for map in ["keys", "content_keys"] {
        if !matches!(doc.get(&ROOT, map)?, Some((Value::Object(ObjType::Map), _))) {
            new_map(doc, &ROOT, map)?;
        }
    }
    Ok(())
}

/// The bytes of a key-map entry. Any member can write these maps, so an entry that is not
/// bytes is someone's garbage: passed over like one that does not open (promise 4: no member
/// can make the others' sync fail), never an error.
fn bytes_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<Vec<u8>>, DocError> {
    match doc.get(obj, key)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Bytes(b) => Ok(Some(b.clone())),
            _ => {
                tracing::debug!(key, "a key-map entry that is not bytes is ignored");
                Ok(None)
            }
        },
        Some(_) => {
            tracing::debug!(key, "a key-map entry that is not bytes is ignored");
            Ok(None)
        }
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
pub(crate) fn put_sealed_network_key(
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
pub(crate) fn sealed_network_key(
    doc: &AutoCommit,
    epoch: u32,
    device: &DeviceKey,
) -> Result<Option<Vec<u8>>, DocError> {
    let Some(keys) = key_map(doc, "keys")? else { return Ok(None) };
    bytes_at(doc, &keys, &format!("{epoch}.{device}"))
}

/// Records a document's content key, sealed under the network key, by the document's relay
/// id and the key's id.
pub(crate) fn put_content_key(
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
pub(crate) fn network_creator(doc: &AutoCommit) -> Result<Option<DeviceKey>, DocError> {
    let by: Option<AuthorDoc> = hydrate_prop(doc, &ROOT, "created_by")?;
    Ok(by.and_then(|a| a.device.parse().ok()))
}

/// Commits key entries written since the last commit (nothing if none were).
pub(crate) fn commit_keys(
    doc: &mut AutoCommit,
    message: String,
    now: Timestamp,
) -> Result<(), DocError> {
    if doc.pending_ops() > 0 {
        touch(doc, now)?;
        commit(doc, message, now);
    }
    Ok(())
}

/// A content key's id and the key sealed under the network key.
pub(crate) type SealedContentKey = (Vec<u8>, Vec<u8>);

/// A document's sealed content keys, by key id.
pub(crate) fn content_keys(
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
        // An id that is not hex is someone's garbage (see `bytes_at`): passed over.
        let Ok(id) = hex::decode(id_hex) else {
            tracing::debug!(key = %item.key, "a content key entry with a malformed id is ignored");
            continue;
        };
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
pub(crate) fn add_member(
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
pub(crate) fn read_network(doc: &AutoCommit) -> Result<Network, DocError> {
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
