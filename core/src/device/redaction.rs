//! Redaction: words taken out of a case's history, not just its text (a name written by
//! mistake). The case goes on as a new document made of its state now, with the note's text as
//! it reads after redaction, and the old document is erased everywhere by a signed tombstone
//! that names the new one (`Scope::Replaced`). See ARCHITECTURE.md, "Erasure, redaction and consent".
//!
//! Owns redacting here and taking a redaction in: a device that holds the old case hands the
//! notes the redactor's copy did not have on to the new one before it deletes the old.

use super::{
    erasure::{Replacing, delete_in, scrub_or_mark},
    *,
};
use crate::erasure::{Scope, erased_tag};

impl Device {
    /// Redacts a note of a case: `text` is the note as it should read, without the words to
    /// remove. Automerge keeps every word a document ever held, so the case goes on as a new
    /// document (returned) holding its state now and none of its history, and the old one is
    /// erased here and, by a signed tombstone in each network it is shared with, on every
    /// device that syncs afterwards (its blobs at the relay, its content keys, its search
    /// entries; freed pages zeroed). Only the member who created the case or an admin of a
    /// network it is shared with may, as for erasure. What it costs: the case's change history
    /// (who changed what, and when, before now: the notes keep their authors and times), and
    /// a new id for the case (links to the old one lead to the new one here for the erasure
    /// window).
    pub fn redact_note(
        &self,
        case: DocId,
        note: NoteId,
        text: &str,
        reason: &str,
    ) -> Result<DocId, Error> {
        let reason = model::required_short("reason", reason)?;
        if self.kind_of(case)? != DocKind::Case {
            return Err(Error::NotFound { kind: "case", id: case.to_string() });
        }
        let current = self
            .read(case, DocKind::Case, |d| Ok(doc::read_note(d, case, note)?))?
            .ok_or(Error::NotFound { kind: "note", id: note.to_string() })?;
        // The new text must be a note's text, as any edit.
        let text = model::NewNote { kind: current.kind, text: text.into() }.parse()?.text.clone();
        let creator = self.creator_device(case, DocKind::Case)?;
        let shared = store::networks_of_doc(&self.reader.lock(), case)?;
        let networks = self.may_act_in(creator, &shared, "redact its notes")?;
        let new_id = DocId::random_from(&self.randomness);
        let tag = erased_tag(case);
        let now = self.now();
        let me = self.device_key();
        // A case shared with no network: no network to name (and never its own id).
        let network = networks.first().copied().unwrap_or(DocId::from_bytes([0; 16]));
        let plan = self.plan_deletion(&[(tag, Some(case), network, now)], &[])?;
        let mut w = self.writer.lock();
        let Writer { conn, cache } = &mut *w;
        let result = guard(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Read under the writer: a change merged meanwhile is in the copy, or comes after
            // the old case is refused.
            let ((found, mut new, old_heads), _) =
                self.edit_in(&tx, cache, case, DocKind::Case, now, |d, _, now| {
                    let mut new = doc::new_doc(&me);
                    let found = doc::redacted_copy(d, &mut new, new_id, note, &text, now)?;
                    Ok((found, new, heads_bytes(&d.get_heads())))
                })?;
            if !found {
                return Err(Error::NotFound { kind: "note", id: note.to_string() });
            }
            let new_heads = self.insert_new_in(&tx, &mut new, new_id, DocKind::Case)?;
            let scope = Scope::Replaced { by: new_id, heads: old_heads };
            let changed =
                self.put_tombstones_in(&tx, cache, tag, &networks, &reason, &scope, now)?;
            delete_in(&tx, &plan)?;
            store::mark_replaced(&tx, &tag, new_id, plan.until)?;
            tx.commit()?;
            for (d, h) in &changed {
                engine::set_persisted(cache, *d, h);
            }
            cache.put(new_id, engine::Cached { doc: new, persisted: new_heads });
            Ok(changed.into_iter().map(|(d, _)| d).collect::<Vec<_>>())
        });
        cache.pop(&case);
        if result.is_err() {
            for n in &networks {
                cache.pop(n);
            }
        }
        if result.is_ok() {
            // The reader must not hold the checkpoint back (writer before reader).
            let _reader = self.reader.lock();
            scrub_or_mark(conn);
        }
        drop(w);
        let mut changed = result?;
        changed.extend([case, new_id]);
        tracing::info!("a note redacted: the case goes on under a new id");
        self.notify(&changed);
        Ok(new_id)
    }

    /// Takes in a valid replacement of a case held here: the notes this copy holds that the
    /// new case lacks (written where the redactor's copy had not reached) go into the new case
    /// as this device's change, and the old case is deleted, in one transaction (read and
    /// written under the writer, so a note merged meanwhile is not left behind). If the new
    /// case has not come yet, the old one is deleted only if it holds nothing the redactor's
    /// copy lacked (its heads among the tombstone's); else it waits for the new one. A new
    /// case not shared with the tombstone's network is not taken as the replacement (notes of
    /// this network must not be carried into a case another network's members read). The
    /// documents deleted.
    pub(super) fn replace_here(&self, r: &Replacing) -> Result<Vec<DocId>, Error> {
        if r.by == r.old {
            return Ok(Vec::new());
        }
        let new_held = self.kind_of(r.by).is_ok_and(|k| k == DocKind::Case);
        if new_held && !store::networks_of_doc(&self.reader.lock(), r.by)?.contains(&r.network) {
            tracing::warn!("a replacement names a case not shared with its network: ignored");
            return Ok(Vec::new());
        }
        let plan = self.plan_deletion(&[(r.tag, Some(r.old), r.network, r.at)], &[])?;
        let now = self.now();
        let mut w = self.writer.lock();
        let Writer { conn, cache } = &mut *w;
        let result = guard(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ((old_notes, old_heads), _) =
                self.edit_in(&tx, cache, r.old, DocKind::Case, now, |d, _, _| {
                    Ok((doc::read_notes(d, r.old)?, heads_bytes(&d.get_heads())))
                })?;
            let mut carried = 0;
            let mut changed = None;
            if new_held {
                let (n, h) =
                    self.edit_in(&tx, cache, r.by, DocKind::Case, now, |d, touched, now| {
                        let have: std::collections::HashSet<NoteId> =
                            doc::read_notes(d, r.by)?.into_iter().map(|n| n.id).collect();
                        let missing: Vec<model::Note> = old_notes
                            .into_iter()
                            .filter(|n| !have.contains(&n.id))
                            .map(|n| model::Note { case_id: r.by, ..n })
                            .collect();
                        if !missing.is_empty() {
                            doc::put_carried_notes(d, &missing, now)?;
                        }
                        let n = missing.len();
                        touched.known.extend(missing);
                        Ok(n)
                    })?;
                (carried, changed) = (n, h);
            } else if !old_heads.iter().all(|h| r.heads.contains(h)) {
                tracing::info!("a redacted case waits for its new history before it goes");
                return Ok(None);
            }
            delete_in(&tx, &plan)?;
            store::mark_replaced(&tx, &r.tag, r.by, plan.until)?;
            tx.commit()?;
            if let Some(h) = &changed {
                engine::set_persisted(cache, r.by, h);
            }
            Ok(Some(carried))
        });
        cache.pop(&r.old);
        if result.is_err() {
            cache.pop(&r.by);
        }
        if matches!(result, Ok(Some(_))) {
            let _reader = self.reader.lock();
            scrub_or_mark(conn);
        }
        drop(w);
        let Some(carried) = result? else { return Ok(Vec::new()) };
        if carried > 0 {
            tracing::info!(notes = carried, "notes of a redacted case's old history carried over");
        }
        self.notify(&[r.old, r.by]);
        Ok(vec![r.old])
    }
}
