//! Redaction: a new history of a case, made of its state now and nothing of its past. The
//! state is copied value by value into a fresh Automerge document under a new id, with the
//! redacted note's text written as it reads after redaction: the words taken out never enter
//! the new document, not even as deleted characters (a delete in Automerge keeps what it
//! deleted in the change).
//!
//! Owns the copy. Knows nothing of storage, tombstones or who may redact (`device/erasure.rs`).

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value, transaction::Transactable};

use super::{
    DocError,
    case::note_obj,
    fields::{child, commit, put_text, touch},
};
use crate::{
    ids::{DocId, NoteId},
    model::{Note, Timestamp},
};

/// Writes into `new` (a fresh document) the case `old` as it is now, under the id `id`, with
/// the text of `note` replaced by `text`: one change. False if the case has no such note.
/// Where a field holds concurrent values, the one Automerge shows wins (the others were
/// conflicts the history held).
pub(crate) fn redacted_copy(
    old: &AutoCommit,
    new: &mut AutoCommit,
    id: DocId,
    note: NoteId,
    text: &str,
    now: Timestamp,
) -> Result<bool, DocError> {
    let Some(old_note) = note_obj(old, note)? else { return Ok(false) };
    let redacted = match old.get(&old_note, "text")? {
        Some((Value::Object(ObjType::Text), t)) => t,
        _ => return Err(DocError::Malformed("a note without text".into())),
    };
    let subst = Substitute { obj: redacted, text };
    copy_object(old, &ROOT, new, &ROOT, &subst)?;
    new.put(ROOT, "id", id.to_string())?;
    // A fork's lineage names the ids its signatures were made under: this history has none.
    if new.get(ROOT, "lineage")?.is_some() {
        new.delete(ROOT, "lineage")?;
    }
    if let Some(copied) = note_obj(new, note)? {
        new.put(&copied, "edited_at", now)?;
    }
    touch(new, now)?;
    commit(new, "A new history of the case, without redacted words".into(), now);
    Ok(true)
}

/// The text object whose content is written as `text` instead of as it is.
struct Substitute<'a> {
    obj: ObjId,
    text: &'a str,
}

/// Copies the content of `from` (in `old`) into `to` (in `new`), which is empty and of the
/// same type.
fn copy_object(
    old: &AutoCommit,
    from: &ObjId,
    new: &mut AutoCommit,
    to: &ObjId,
    subst: &Substitute<'_>,
) -> Result<(), DocError> {
    match old.object_type(from)? {
        ObjType::Map | ObjType::Table => {
            let keys: Vec<String> = old.keys(from).collect();
            for key in keys {
                let Some((value, child)) = old.get(from, key.as_str())? else { continue };
                match value {
                    Value::Scalar(s) => {
                        new.put(to, key.as_str(), s.into_owned())?;
                    }
                    Value::Object(t) => {
                        let made = new.put_object(to, key.as_str(), t)?;
                        copy_object(old, &child, new, &made, subst)?;
                    }
                }
            }
        }
        ObjType::List => {
            for i in 0..old.length(from) {
                let Some((value, child)) = old.get(from, i)? else { continue };
                match value {
                    Value::Scalar(s) => {
                        new.insert(to, i, s.into_owned())?;
                    }
                    Value::Object(t) => {
                        let made = new.insert_object(to, i, t)?;
                        copy_object(old, &child, new, &made, subst)?;
                    }
                }
            }
        }
        ObjType::Text => {
            let text = if *from == subst.obj { subst.text.to_string() } else { old.text(from)? };
            if !text.is_empty() {
                new.splice_text(to, 0, 0, &text)?;
            }
        }
    }
    Ok(())
}

/// Adds notes written on a case's old history (before a redaction reached the device that
/// wrote or held them) to its new one, each as it was: author, times, kind and text.
pub(crate) fn put_carried_notes(
    doc: &mut AutoCommit,
    notes: &[Note],
    now: Timestamp,
) -> Result<(), DocError> {
    let notes_obj = child(doc, &ROOT, "notes")?;
    for n in notes {
        let obj = doc.put_object(&notes_obj, n.id.to_string().as_str(), ObjType::Map)?;
        doc.put(&obj, "by", format!("{}:{}", n.author.member, n.author.device))?;
        doc.put(&obj, "by_name", n.author.name.as_str())?;
        doc.put(&obj, "created_at", n.created_at)?;
        if n.edited_at != n.created_at {
            doc.put(&obj, "edited_at", n.edited_at)?;
        }
        doc.put(&obj, "kind", n.kind.as_str())?;
        put_text(doc, &obj, "text", &n.text)?;
    }
    touch(doc, now)?;
    commit(doc, format!("Carried over {} notes from before a redaction", notes.len()), now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{
        TextEdit, add_note, edit_note, read_case, read_notes,
        tests::{author, new_case, new_note},
    };
    use crate::model::NoteKind;

    #[test]
    fn the_copy_holds_the_state_now_and_no_word_of_the_past() {
        let a = author(1);
        let (mut old, _) = new_case(&a);
        let (keep, redact) = (NoteId::from_bytes([1; 16]), NoteId::from_bytes([2; 16]));
        add_note(&mut old, keep, &new_note(NoteKind::Observation, "Huur betaald."), &a, 2_000)
            .unwrap();
        let text = "Meneer Vrijthoff, de buurman, belde.";
        add_note(&mut old, redact, &new_note(NoteKind::Observation, text), &a, 3_000).unwrap();
        // An edit leaves an earlier word in the history only.
        edit_note(&mut old, keep, &TextEdit::Replace("Huur betaald, in termijnen."), 4_000)
            .unwrap();
        assert!(contains(&old.save_nocompress(), b"Vrijthoff"), "the control");

        let mut new = crate::doc::new_doc(&author(2).device);
        let new_id = DocId::from_bytes([9; 16]);
        assert!(redacted_copy(&old, &mut new, new_id, redact, "De buurman belde.", 5_000).unwrap());
        let bytes = new.save_nocompress();
        assert!(!contains(&bytes, b"Vrijthoff"), "no redacted word in the new history");
        assert_eq!(new.get_changes(&[]).len(), 1, "one change");
        let (was, now) = (read_case(&old).unwrap(), read_case(&new).unwrap());
        assert_eq!(now.id, new_id);
        assert_eq!(
            (now.subject, now.tags, now.created_at),
            (was.subject, was.tags, was.created_at)
        );
        let notes = read_notes(&new, new_id).unwrap();
        let texts: Vec<(NoteId, &str)> = notes.iter().map(|n| (n.id, n.text.as_str())).collect();
        assert!(texts.contains(&(keep, "Huur betaald, in termijnen.")));
        assert!(texts.contains(&(redact, "De buurman belde.")));
        let redacted = notes.iter().find(|n| n.id == redact).unwrap();
        assert_eq!((redacted.author.clone(), redacted.created_at), (a, 3_000));
        // A note the case does not have: nothing is made.
        let mut none = crate::doc::new_doc(&author(2).device);
        let missing = NoteId::from_bytes([7; 16]);
        assert!(!redacted_copy(&old, &mut none, new_id, missing, "x", 5_000).unwrap());
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
