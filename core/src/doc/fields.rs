//! Reading and writing a document's fields: scalars that keep their conflicts visible, texts
//! changed by diffs, maps of keys, ordered references, and commits with a message and a time.
//! Shared by every kind; the kinds never touch Automerge's API for these directly.

use super::*;

pub(super) fn scalar_str(doc: &AutoCommit, obj: &ObjId, prop: &str) -> Result<String, DocError> {
    match doc.get(obj, prop)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Ok(s.to_string()),
            other => Err(DocError::Malformed(format!("{prop} is {other:?}, not a string"))),
        },
        _ => Err(DocError::Malformed(format!("{prop} is missing"))),
    }
}

/// The object at `obj[prop]`, which the layout says exists.
pub(super) fn child(doc: &AutoCommit, obj: &ObjId, prop: &str) -> Result<ObjId, DocError> {
    match doc.get(obj, prop)? {
        Some((Value::Object(_), id)) => Ok(id),
        _ => Err(DocError::Malformed(format!("{prop} is not an object"))),
    }
}

pub(super) fn put_text(
    doc: &mut AutoCommit,
    obj: &ObjId,
    prop: &str,
    value: &str,
) -> Result<(), DocError> {
    let text = doc.put_object(obj, prop, ObjType::Text)?;
    if !value.is_empty() {
        doc.splice_text(&text, 0, 0, value)?;
    }
    Ok(())
}

/// Changes a text field to `value` by the smallest splices, so concurrent edits elsewhere in
/// the text survive.
pub(super) fn update_text(
    doc: &mut AutoCommit,
    obj: &ObjId,
    prop: &str,
    value: &str,
) -> Result<(), DocError> {
    let text = child(doc, obj, prop)?;
    doc.update_text(&text, value)?;
    Ok(())
}

/// Sets a scalar only when it differs: writing an unchanged value would still create a
/// conflict with a concurrent edit on another device.
pub(super) fn put_if_changed(
    doc: &mut AutoCommit,
    obj: &ObjId,
    prop: &str,
    value: ScalarValue,
) -> Result<(), DocError> {
    let current = doc.get_all(obj, prop)?;
    let same =
        current.len() == 1 && matches!(&current[0], (Value::Scalar(s), _) if s.as_ref() == &value);
    if !same {
        doc.put(obj, prop, value)?;
    }
    Ok(())
}

pub(super) fn put_author(
    doc: &mut AutoCommit,
    obj: &ObjId,
    prop: &str,
    a: &Author,
) -> Result<(), DocError> {
    reconcile_prop(doc, obj, prop, AuthorDoc::from_author(a))?;
    Ok(())
}

/// The fields a form's save changed, for the history message: a field is named only if ops
/// were written for it (saving a form with a field as it was names only what was edited).
pub(super) struct Changed<T> {
    pub(super) names: Vec<T>,
    ops: usize,
}

impl<T> Changed<T> {
    pub(super) fn new(doc: &AutoCommit) -> Self {
        Changed { names: Vec::new(), ops: doc.pending_ops() }
    }

    /// Names `field` if ops were written since the last field.
    pub(super) fn push(&mut self, doc: &AutoCommit, field: T) {
        let ops = doc.pending_ops();
        if ops > self.ops {
            self.names.push(field);
            self.ops = ops;
        }
    }
}

pub(super) fn commit(doc: &mut AutoCommit, message: String, now: Timestamp) {
    doc.commit_with(CommitOptions::default().with_message(message).with_time(now));
}

pub(super) fn put_root_header(
    doc: &mut AutoCommit,
    id: DocId,
    kind: DocKind,
    now: Timestamp,
) -> Result<(), DocError> {
    doc.put(ROOT, "schema", ScalarValue::Uint(SCHEMA_VERSION))?;
    doc.put(ROOT, "kind", kind.as_str())?;
    doc.put(ROOT, "id", id.to_string())?;
    doc.put(ROOT, "created_at", now)?;
    doc.put(ROOT, "updated_at", now)?;
    Ok(())
}

pub(super) fn touch(doc: &mut AutoCommit, now: Timestamp) -> Result<(), DocError> {
    doc.put(ROOT, "updated_at", now)?;
    Ok(())
}

pub(super) fn new_map(doc: &mut AutoCommit, obj: &ObjId, prop: &str) -> Result<ObjId, DocError> {
    Ok(doc.put_object(obj, prop, ObjType::Map)?)
}

pub(super) fn set_keys<'a>(
    doc: &mut AutoCommit,
    obj: &ObjId,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<(), DocError> {
    for k in keys {
        if doc.get(obj, k)?.is_none() {
            doc.put(obj, k, true)?;
        }
    }
    Ok(())
}

pub(super) fn ordered_refs(
    doc: &mut AutoCommit,
    obj: &ObjId,
    ids: &[DocId],
    now: Timestamp,
) -> Result<(), DocError> {
    for (i, id) in ids.iter().enumerate() {
        let key = id.to_string();
        if doc.get(obj, key.as_str())?.is_none() {
            reconcile_prop(doc, obj, key.as_str(), OrderedRef { at: now * 1000 + i as i64 })?;
        }
    }
    Ok(())
}

/// The newest of all concurrent `updated_at` values: the document's last activity.
pub(crate) fn updated_at(doc: &AutoCommit) -> Result<Timestamp, DocError> {
    let mut newest = 0;
    for (v, _) in doc.get_all(&ROOT, "updated_at")? {
        if let Value::Scalar(s) = v
            && let ScalarValue::Int(t) = s.as_ref()
        {
            newest = newest.max(*t);
        }
    }
    Ok(newest)
}

pub(super) fn render(v: &Value<'_>) -> String {
    match v {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            ScalarValue::Null => "(none)".to_string(),
            other => other.to_string(),
        },
        Value::Object(t) => format!("({t})"),
    }
}

/// Fields with more than one concurrent value.
pub(super) fn conflicts(
    doc: &AutoCommit,
    fields: &[(&ObjId, &str, &str)],
) -> Result<Vec<Conflict>, DocError> {
    let mut out = Vec::new();
    for (obj, prop, label) in fields {
        let all = doc.get_all(*obj, *prop)?;
        if all.len() > 1 {
            // Automerge lists the winner last; the app shows the winner first.
            let mut values: Vec<String> = Vec::with_capacity(all.len());
            for (v, _) in all.iter().rev() {
                let v = render(v);
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            // The same value written on two devices is no conflict to show.
            if values.len() < 2 {
                continue;
            }
            out.push(Conflict { field: label.to_string(), values });
        }
    }
    Ok(out)
}

pub(super) fn sorted_items<T: Clone>(
    items: &BTreeMap<String, T>,
    at: impl Fn(&T) -> i64,
) -> Vec<(ItemId, T)> {
    let mut v: Vec<(i64, ItemId, T)> = items
        .iter()
        .filter_map(|(k, t)| k.parse::<ItemId>().ok().map(|id| (at(t), id, t.clone())))
        .collect();
    v.sort_by_key(|(at, id, _)| (*at, *id));
    v.into_iter().map(|(_, id, t)| (id, t)).collect()
}

pub(super) fn doc_ids(keys: impl Iterator<Item = String>) -> Vec<DocId> {
    keys.filter_map(|k| exact_id(&k)).collect()
}

/// A document id written in a document exactly as ids are written (no padding, no other
/// spelling): what decides who a document is shared with must be read one way only, so that
/// no key can name a network to one check and be passed over by another.
pub(super) fn exact_id(k: &str) -> Option<DocId> {
    let id: DocId = k.parse().ok()?;
    (id.to_string() == k).then_some(id)
}

pub(super) fn ordered_doc_ids(items: &BTreeMap<String, OrderedRef>) -> Vec<DocId> {
    let mut v: Vec<(i64, DocId)> =
        items.iter().filter_map(|(k, r)| k.parse().ok().map(|id| (r.at, id))).collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

/// `done` set both ways on two devices at once, per agreement.
pub(super) fn agreement_conflicts(doc: &AutoCommit) -> Result<Vec<Conflict>, DocError> {
    let obj = child(doc, &ROOT, "agreements")?;
    let mut out = Vec::new();
    for key in doc.keys(&obj).collect::<Vec<_>>() {
        if let Some((Value::Object(_), item)) = doc.get(&obj, key.as_str())? {
            let label = format!("agreements.{key}.done");
            out.extend(conflicts(doc, &[(&item, "done", label.as_str())])?);
        }
    }
    Ok(out)
}

pub(super) fn agreements(items: &BTreeMap<String, AgreementDoc>) -> Vec<Agreement> {
    sorted_items(items, |a| a.at)
        .into_iter()
        .map(|(id, a)| Agreement { id, text: a.text, owner: a.owner, due: a.due, done: a.done })
        .collect()
}

pub(super) fn put_agreement(
    doc: &mut AutoCommit,
    obj: &ObjId,
    text: &str,
    owner: &str,
    due: Option<&str>,
    now: Timestamp,
    ids: &Randomness,
) -> Result<ItemId, DocError> {
    let id = ItemId::random_from(ids);
    let a = AgreementDoc {
        text: text.to_string(),
        owner: owner.to_string(),
        due: due.map(str::to_string),
        done: false,
        at: now,
    };
    reconcile_prop(doc, obj, id.to_string().as_str(), a)?;
    Ok(id)
}

pub(super) fn short_text(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 40 {
        format!("{}…", one_line.chars().take(40).collect::<String>())
    } else {
        one_line
    }
}

/// The networks a document is shared with, as the document says (a network document: itself),
/// read without the rest of it.
pub(crate) fn shared_with(doc: &AutoCommit, kind: DocKind) -> Result<Vec<DocId>, DocError> {
    Ok(match kind {
        DocKind::Network => vec![header(doc)?.id],
        DocKind::Case | DocKind::LearningPoint => {
            let nets: Option<BTreeMap<String, bool>> = hydrate_prop(doc, &ROOT, "networks")?;
            doc_ids(nets.unwrap_or_default().into_keys())
        }
        // Every current value of the field (concurrent puts give several), each a string
        // written exactly as an id; anything else names no network.
        DocKind::Meeting => doc
            .get_all(ROOT, "network")?
            .iter()
            .filter_map(|(v, _)| v.as_str().and_then(exact_id))
            .collect(),
    })
}

/// The devices (actor ids) whose operations put `network` in a document's networks: the
/// current puts of that key in the `networks` map (a case, a learning point), or of the
/// meeting's `network` field where it names `network`. Concurrent puts give several.
pub(crate) fn sharers(
    doc: &AutoCommit,
    kind: DocKind,
    network: DocId,
) -> Result<Vec<automerge::ActorId>, DocError> {
    let actor = |id: &automerge::ObjId| match id {
        automerge::ObjId::Id(_, actor, _) => Some(actor.clone()),
        automerge::ObjId::Root => None,
    };
    Ok(match kind {
        DocKind::Network => Vec::new(),
        DocKind::Case | DocKind::LearningPoint => {
            let Some((_, nets)) = doc.get(ROOT, "networks")? else { return Ok(Vec::new()) };
            doc.get_all(&nets, network.to_string())?
                .iter()
                .filter_map(|(_, id)| actor(id))
                .collect()
        }
        DocKind::Meeting => doc
            .get_all(ROOT, "network")?
            .iter()
            .filter(|(v, _)| v.as_str().and_then(exact_id) == Some(network))
            .filter_map(|(_, id)| actor(id))
            .collect(),
    })
}
