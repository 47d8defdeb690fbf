//! Networks: the roster of members and devices, and the relay keys sealed in the network
//! document.

// The kinds share the layout's vocabulary: shapes, helpers and imports of `doc`.
use super::*;

// Stored shapes

/// A member as the unsigned roster of a network made before signed membership held them; read
/// only to sign them into the membership when the creator's device upgrades the network.
#[derive(Debug, Clone, Hydrate)]
struct MemberDoc {
    name: String,
    devices: BTreeMap<String, i64>,
}

/// What a network document holds, read without judging it: its name, the signed membership
/// operations it carries (each one whose id matches its bytes), and for a network made before
/// signed membership, its creator and unsigned roster. The membership is what the operations
/// resolve to (see `membership`), with the operations the device has seen before.
#[derive(Debug, Clone)]
pub(crate) struct NetworkDoc {
    pub(crate) id: DocId,
    pub(crate) name: String,
    pub(crate) created_at: Timestamp,
    pub(crate) created_by: Option<DeviceKey>,
    pub(crate) ops: Vec<SignedOp>,
    pub(crate) unsigned_members: Vec<(MemberId, String, Vec<DeviceKey>)>,
}

/// Writes a new network's first change: its name, the creator's signed genesis, and its
/// network key (epoch 0) sealed to the creator's device.
pub(crate) fn create_network(
    doc: &mut AutoCommit,
    id: DocId,
    name: &str,
    creator: &Author,
    genesis: &SignedOp,
    sealed_key: &[u8],
    now: Timestamp,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::Network, now)?;
    put_author(doc, &ROOT, "created_by", creator)?;
    doc.put(ROOT, "name", name)?;
    new_map(doc, &ROOT, "ops")?;
    put_op(doc, genesis)?;
    ensure_key_maps(doc)?;
    put_sealed_network_key(doc, 0, &creator.device, &creator.device, sealed_key)?;
    commit(doc, format!("Started network “{name}”"), now);
    Ok(())
}

/// Adds a signed membership operation (keyed by its id: two devices adding the same one
/// write the same entry). Creates the map in a network made before signed membership; only
/// its creator's device does that, so two devices never race to create it.
pub(crate) fn put_op(doc: &mut AutoCommit, op: &SignedOp) -> Result<(), DocError> {
    let ops = match doc.get(&ROOT, "ops")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => doc.put_object(&ROOT, "ops", ObjType::Map)?,
    };
    let key = hex::encode(op.id());
    if doc.get(&ops, key.as_str())?.is_none() {
        doc.put(&ops, key.as_str(), ScalarValue::Bytes(op.bytes().to_vec()))?;
    }
    Ok(())
}

/// The signed operations a network document carries. Any member can write the map, so every
/// value of every entry is read (concurrent writes keep both) and only those whose id is their
/// key count: garbage and forgeries are passed over here, signatures are checked on resolving.
fn read_ops(doc: &AutoCommit) -> Result<Vec<SignedOp>, DocError> {
    let Some((Value::Object(ObjType::Map), ops)) = doc.get(&ROOT, "ops")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for key in doc.keys(&ops) {
        for (value, _) in doc.get_all(&ops, key.as_str())? {
            let Value::Scalar(s) = value else { continue };
            let ScalarValue::Bytes(b) = s.as_ref() else { continue };
            match SignedOp::decode(b) {
                Ok(op) if hex::encode(op.id()) == key => out.push(op),
                Ok(_) => tracing::debug!(key, "a membership entry not under its id is ignored"),
                Err(e) => {
                    tracing::debug!(key, error = %e, "a malformed membership entry is ignored")
                }
            }
        }
    }
    Ok(out)
}

/// Reads a network document (see [`NetworkDoc`]).
pub(crate) fn read_network(doc: &AutoCommit) -> Result<NetworkDoc, DocError> {
    let h = expect_kind(doc, DocKind::Network)?;
    let name: String = hydrate_prop(doc, &ROOT, "name")?;
    let created_at: Timestamp = hydrate_prop(doc, &ROOT, "created_at")?;
    let created_by = network_creator(doc)?;
    let ops = read_ops(doc)?;
    let unsigned: Option<BTreeMap<String, MemberDoc>> = hydrate_prop(doc, &ROOT, "members")
        .unwrap_or_else(|e| {
            tracing::debug!(error = %e, "an unreadable unsigned roster is ignored");
            None
        });
    let unsigned_members = unsigned
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, m)| {
            let id: MemberId = k.parse().ok()?;
            Some((id, m.name, m.devices.keys().filter_map(|d| d.parse().ok()).collect()))
        })
        .collect();
    Ok(NetworkDoc { id: h.id, name, created_at, created_by, ops, unsigned_members })
}

// Keys. Both maps are flat, keyed `"<a>.<b>"`: two devices writing entries at once never
// create the same nested map twice (concurrently created maps conflict and one loses).

/// Creates the network document's key and tombstone maps if it has none (a network made
/// before they existed). Only the network's creator calls this, so two devices never race to
/// create them. (Content keys are not kept here any more: Automerge would keep them past an
/// erasure. A network made before holds a `content_keys` map, still read to open its old
/// blobs, never written.)
pub(crate) fn ensure_key_maps(doc: &mut AutoCommit) -> Result<(), DocError> {
    for map in ["keys", "tombstones"] {
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

/// Records the network key of `epoch` sealed to `device` by `sealer`. Entries are keyed by all
/// three, so one device's entry (garbage from a member gone bad, say) never stands in the way
/// of another's. Returns false (and writes nothing) if `sealer` already sealed one.
pub(crate) fn put_sealed_network_key(
    doc: &mut AutoCommit,
    epoch: u32,
    device: &DeviceKey,
    sealer: &DeviceKey,
    sealed: &[u8],
) -> Result<bool, DocError> {
    let keys = key_map(doc, "keys")?.ok_or(DocError::Malformed("network has no key map".into()))?;
    let k = format!("{epoch}.{device}.{sealer}");
    if doc.get(&keys, k.as_str())?.is_some() {
        return Ok(false);
    }
    doc.put(&keys, k.as_str(), ScalarValue::Bytes(sealed.to_vec()))?;
    Ok(true)
}

/// A sealed network key and the device that sealed it (none for an entry written before
/// entries named their sealer).
pub(crate) type SealedNetworkKey = (Option<DeviceKey>, Vec<u8>);

/// Every network key of `epoch` sealed to `device`, with its sealer (none for an entry written
/// before entries named their sealer). Which one to trust is the caller's: the one that opens
/// to a key the membership commits to.
pub(crate) fn sealed_network_keys(
    doc: &AutoCommit,
    epoch: u32,
    device: &DeviceKey,
) -> Result<Vec<SealedNetworkKey>, DocError> {
    let Some(keys) = key_map(doc, "keys")? else { return Ok(Vec::new()) };
    let base = format!("{epoch}.{device}");
    let mut out = Vec::new();
    if let Some(b) = bytes_at(doc, &keys, &base)? {
        out.push((None, b));
    }
    let entries: Vec<String> = doc
        .map_range(&keys, format!("{base}.")..format!("{base}/"))
        .map(|i| i.key.to_string())
        .collect();
    for key in entries {
        // `<epoch>.<device>.<sealer>` and nothing more (`check_write_once` refuses the rest).
        let Some(sealer) = key.strip_prefix(&format!("{base}.")).and_then(|s| s.parse().ok())
        else {
            continue;
        };
        if let Some(b) = bytes_at(doc, &keys, &key)? {
            out.push((Some(sealer), b));
        }
    }
    Ok(out)
}

/// Records a signed tombstone under the erased document's tag (see `crate::erasure`). An entry already there (the
/// document erased before, by anyone) is left as it is. False if the network has no
/// tombstone map (made before erasure existed: only its creator's device adds one, so two
/// devices never race to create it).
pub(crate) fn put_tombstone(
    doc: &mut AutoCommit,
    tag: &[u8; 32],
    signer: &DeviceKey,
    unshared: Option<&[[u8; 32]]>,
    signed: &[u8],
) -> Result<bool, DocError> {
    let Some(map) = key_map(doc, "tombstones")? else { return Ok(false) };
    // Keyed by the tag and the signer, and only the signer may write its entry (see
    // `check_write_once`): no member can squat an erasure's place with garbage. An unsharing
    // adds a hash of the heads it names: a case shared again and unshared again gets a second
    // entry (the map is write-once).
    let mut k = format!("{}.{signer}", hex::encode(tag));
    if let Some(heads) = unshared {
        let mut h = blake3::Hasher::new_derive_key("nabij unshared heads v1");
        for head in heads {
            h.update(head);
        }
        k.push('.');
        k.push_str(&hex::encode(&h.finalize().as_bytes()[..8]));
    }
    if doc.get(&map, k.as_str())?.is_none() {
        doc.put(&map, k.as_str(), ScalarValue::Bytes(signed.to_vec()))?;
    }
    Ok(true)
}

/// Puts bytes under `key` in the write-once map `map`, unchecked: a modified app's write.
#[cfg(feature = "test-utils")]
pub(crate) fn plant_entry_for_tests(
    doc: &mut AutoCommit,
    map: &str,
    key: &str,
    bytes: Vec<u8>,
    make: bool,
) -> Result<(), DocError> {
    if make && key_map(doc, map)?.is_none() {
        new_map(doc, &ROOT, map)?;
    }
    let obj = key_map(doc, map)?.ok_or(DocError::Malformed(format!("no `{map}` map")))?;
    doc.put(&obj, key, ScalarValue::Bytes(bytes))?;
    Ok(())
}

/// A tombstone entry: the key it is kept under (`<tag hex>.<signer>`, and `.<heads hash>` for
/// an unsharing), the signed bytes, and
/// the change that wrote it (where in the network's history it was written).
pub(crate) type TombstoneEntry = (String, Vec<u8>, Option<ChangeHash>);

/// Every tombstone entry of a network document that is bytes (every value of concurrent
/// writes). Checking them is the reader's.
pub(crate) fn tombstone_entries(doc: &AutoCommit) -> Result<Vec<TombstoneEntry>, DocError> {
    let Some(map) = key_map(doc, "tombstones")? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for key in doc.keys(&map) {
        for (value, op) in doc.get_all(&map, key.as_str())? {
            if let Value::Scalar(s) = value
                && let ScalarValue::Bytes(b) = s.as_ref()
            {
                out.push((key.clone(), b.clone(), doc.hash_for_opid(&op)));
            }
        }
    }
    Ok(out)
}

/// The signed membership operations the network document held at `heads` (as
/// [`read_network`] reads them now): what a change made at those heads was made under.
pub(crate) fn ops_at(doc: &AutoCommit, heads: &[ChangeHash]) -> Result<Vec<SignedOp>, DocError> {
    let Some((Value::Object(ObjType::Map), ops)) = doc.get_at(&ROOT, "ops", heads)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for key in doc.keys_at(&ops, heads) {
        for (value, _) in doc.get_all_at(&ops, key.as_str(), heads)? {
            let Value::Scalar(s) = value else { continue };
            let ScalarValue::Bytes(b) = s.as_ref() else { continue };
            if let Ok(op) = SignedOp::decode(b)
                && hex::encode(op.id()) == key
            {
                out.push(op);
            }
        }
    }
    Ok(out)
}

/// A tombstone entry's key split into its tag (hex) and signer, if it has the shape
/// `<tag hex>.<signer>` or `<tag hex>.<signer>.<16 hex>`.
pub(crate) fn tombstone_key(k: &str) -> Option<(&str, &str)> {
    let mut parts = k.split('.');
    let (tag, signer, suffix) = (parts.next()?, parts.next()?, parts.next());
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(tag, 64) && suffix.is_none_or(|s| hex_of(s, 16)) && parts.next().is_none())
        .then_some((tag, signer))
}

/// The device that created a network, if its document records one.
pub(crate) fn network_creator(doc: &AutoCommit) -> Result<Option<DeviceKey>, DocError> {
    let by: Option<AuthorDoc> = hydrate_prop(doc, &ROOT, "created_by")?;
    Ok(by.and_then(|a| a.device.parse().ok()))
}

/// Commits key entries or membership operations written since the last commit (nothing if
/// none were).
pub(crate) fn commit_pending(
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

/// A document's sealed content keys in the map of a network made before content keys left the
/// network document, by key id.
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

/// An entry of a write-once map: the map, the entry's key, its bytes.
pub(crate) type WriteOnceEntry = (&'static str, String, Vec<u8>);

/// Every entry of the network document's write-once maps that is bytes (what else is there is
/// someone's garbage, passed over as `bytes_at` does).
pub(crate) fn write_once_entries(doc: &AutoCommit) -> Result<Vec<WriteOnceEntry>, DocError> {
    let mut out = Vec::new();
    for map in WRITE_ONCE {
        let Some(obj) = key_map(doc, map)? else { continue };
        let keys: Vec<String> = doc.keys(&obj).collect();
        for k in keys {
            if let Some(b) = bytes_at(doc, &obj, &k)? {
                out.push((map, k, b));
            }
        }
    }
    Ok(out)
}

/// Writes back entries of write-once maps that the document lacks (none it holds is touched):
/// what a device's own history of the document carried, after that history gave way to
/// another (`device/forks.rs`). Each entry proves itself when read, as any member's does.
pub(crate) fn restore_entries(
    doc: &mut AutoCommit,
    entries: &[WriteOnceEntry],
) -> Result<usize, DocError> {
    let mut written = 0;
    for (map, key, bytes) in entries {
        let Some(obj) = key_map(doc, map)? else { continue };
        if doc.get(&obj, key.as_str())?.is_none() {
            doc.put(&obj, key.as_str(), ScalarValue::Bytes(bytes.clone()))?;
            written += 1;
        }
    }
    Ok(written)
}

/// The network document's maps whose entries are written once and never changed: membership
/// operations, sealed network keys, sealed content keys and tombstones. Any member can write
/// to them; overwriting or deleting an entry (or replacing a map) could make devices that had
/// not seen it yet lose a key, an operation or an erasure for good (promise 4), so no change
/// may.
const WRITE_ONCE: [&str; 4] = ["ops", "keys", "content_keys", "tombstones"];

/// Refuses a network document whose changes since `since` (all of them for a document new
/// here) overwrite or delete an entry of a write-once map, replace or delete such a map, or
/// leave two concurrent copies of one (one would hide the other's entries).
pub(crate) fn check_write_once(doc: &mut AutoCommit, since: &[ChangeHash]) -> Result<(), DocError> {
    let mut maps: Vec<String> = Vec::new();
    let mut keys_map = None;
    let mut tombstones_map = None;
    let mut ops_map = None;
    let creator = network_creator(doc)?.map(|c| *c.as_bytes());
    for name in WRITE_ONCE {
        let all = doc.get_all(ROOT, name)?;
        if all.len() > 1 {
            return Err(DocError::Malformed(format!("two concurrent `{name}` maps")));
        }
        if let Some((Value::Object(ObjType::Map), id)) = all.into_iter().next() {
            if name == "keys" {
                keys_map = Some(id.to_string());
            }
            if name == "tombstones" {
                tombstones_map = Some(id.to_string());
            }
            if name == "ops" {
                ops_map = Some(id.clone());
            }
            maps.push(id.to_string());
        }
    }
    let changes: Vec<(Option<[u8; 32]>, Vec<ChangeHash>, _)> = doc
        .get_changes(since)
        .into_iter()
        .map(|c| {
            let writer = <[u8; 32]>::try_from(c.actor_id().to_bytes()).ok();
            (writer, c.deps().to_vec(), c.decode().operations)
        })
        .collect();
    for (writer, deps, operations) in changes {
        for op in operations {
            let replaces = !op.pred.is_empty() || matches!(op.action, legacy::OpType::Delete);
            // A sealed network key names its sealer, whom devices trust by that name (an
            // admin's entry counts as the device served): only the sealer may write it, or a
            // member could write garbage for a device under an admin's name before the admin
            // seals there, and lock the device out of that epoch (promise 4). An entry naming
            // no sealer was written before entries named one: taken only from a change made
            // before the network had signed operations (whatever path it comes by: a rule on
            // the change, not on how it arrived, or a whole copy planted on a new member would
            // carry what every other device refuses, and never merge with theirs again). An
            // entry of any other shape is no device's.
            if !replaces
                && let (legacy::ObjectId::Id(obj), legacy::Key::Map(k)) = (&op.obj, &op.key)
                && keys_map.as_deref() == Some(obj.to_string().as_str())
            {
                let parts: Vec<&str> = k.split('.').collect();
                let ok = match parts.as_slice() {
                    [epoch, device, sealer] => {
                        epoch.parse::<u32>().is_ok()
                            && device.parse::<DeviceKey>().is_ok()
                            && sealer
                                .parse::<DeviceKey>()
                                .is_ok_and(|n| Some(*n.as_bytes()) == writer)
                    }
                    [epoch, device] => {
                        epoch.parse::<u32>().is_ok()
                            && device.parse::<DeviceKey>().is_ok()
                            && ops_map.as_ref().is_none_or(|m| doc.length_at(m, &deps) == 0)
                    }
                    _ => false,
                };
                if !ok {
                    return Err(DocError::Malformed(
                        "a network key entry names another sealer than the device that wrote it"
                            .into(),
                    ));
                }
            }
            // A tombstone entry is `<tag hex>.<signer>` (an unsharing: `.<heads hash>` after
            // it), written by that signer only.
            if !replaces
                && let (legacy::ObjectId::Id(obj), legacy::Key::Map(k)) = (&op.obj, &op.key)
                && tombstones_map.as_deref() == Some(obj.to_string().as_str())
            {
                let ok = tombstone_key(k).is_some_and(|(_, signer)| {
                    signer.parse::<DeviceKey>().is_ok_and(|s| Some(*s.as_bytes()) == writer)
                });
                if !ok {
                    return Err(DocError::Malformed(
                        "a tombstone entry names another signer than the device that wrote it"
                            .into(),
                    ));
                }
            }
            // The write-once maps themselves: only ever maps (a value put where one belongs
            // would be overwritten when its creator makes it, and that change refused
            // everywhere), and the tombstone map only by the network's creator (who adds it to
            // a network made before erasure existed), so that no two devices make it at once.
            if !replaces
                && let (legacy::ObjectId::Root, legacy::Key::Map(k)) = (&op.obj, &op.key)
                && WRITE_ONCE.contains(&k.as_str())
            {
                let is_map = matches!(op.action, legacy::OpType::Make(ObjType::Map));
                if !is_map || (k == "tombstones" && creator.is_some() && writer != creator) {
                    return Err(DocError::Malformed(format!(
                        "`{k}` may be made only as a map{}",
                        if k == "tombstones" { ", by the network's creator" } else { "" }
                    )));
                }
            }
            if !replaces {
                continue;
            }
            let on_map = match &op.obj {
                legacy::ObjectId::Root => {
                    matches!(&op.key, legacy::Key::Map(k) if WRITE_ONCE.contains(&k.as_str()))
                }
                legacy::ObjectId::Id(id) => maps.contains(&id.to_string()),
            };
            if on_map {
                return Err(DocError::Malformed(
                    "a change overwrites or deletes a network key or membership entry".into(),
                ));
            }
        }
    }
    Ok(())
}
