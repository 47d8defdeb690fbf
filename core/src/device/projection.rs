//! Projection: what the derived tables hold of each document, read from it and written in the
//! caller's transaction (the whole document after a merge; only the touched notes after a note
//! write).

use super::*;

/// Which notes of a case a write touched, for the derived tables.
pub(super) enum Notes {
    Some(Touched),
    All,
}

/// The notes a local write touched: rows the write already knows in full (a new note), and
/// notes to read back from the document (an edit, whose merged text only the document knows).
#[derive(Default)]
pub(super) struct Touched {
    pub(super) known: Vec<Note>,
    pub(super) read: Vec<NoteId>,
}

/// Updates the derived rows of one document, in the caller's transaction.
pub(super) fn index_doc(
    tx: &Transaction<'_>,
    doc: &AutoCommit,
    kind: DocKind,
    notes: Notes,
) -> Result<(), Error> {
    match kind {
        DocKind::Case => match notes {
            // A note write changes only that note and the case's last activity: the case's
            // own row, tags and search entry stay as they are (this keeps note writes cheap
            // in cases with many notes).
            Notes::Some(t) if !t.known.is_empty() || !t.read.is_empty() => {
                let id = doc::header(doc)?.id;
                store::touch_case(tx, id, doc::updated_at(doc)?)?;
                let mut rows = t.known;
                for n in t.read {
                    if let Some(note) = doc::read_note(doc, id, n)? {
                        rows.push(note);
                    }
                }
                store::index_notes(tx, &rows)?;
            }
            Notes::Some(_) => store::index_case(tx, &doc::read_case(doc)?)?,
            Notes::All => write_derived(tx, &derive(doc, kind)?)?,
        },
        kind => write_derived(tx, &derive(doc, kind)?)?,
    }
    Ok(())
}

/// Everything the derived tables hold about one document, read from it (no database).
pub(crate) enum Derived {
    Case(Box<Case>, Vec<Note>),
    LearningPoint(Box<LearningPoint>),
    Meeting(Box<Meeting>),
    Network(doc::NetworkDoc),
}

/// Reads a document's derived rows; pure, so several documents can be read in parallel.
pub(crate) fn derive(doc: &AutoCommit, kind: DocKind) -> Result<Derived, DocError> {
    Ok(match kind {
        DocKind::Case => {
            let case = doc::read_case(doc)?;
            let notes = doc::read_notes(doc, case.id)?;
            Derived::Case(Box::new(case), notes)
        }
        DocKind::LearningPoint => Derived::LearningPoint(Box::new(doc::read_learning_point(doc)?)),
        DocKind::Meeting => Derived::Meeting(Box::new(doc::read_meeting(doc)?)),
        DocKind::Network => Derived::Network(doc::read_network(doc)?),
    })
}

/// Writes a document's derived rows (replacing what was there).
pub(super) fn write_derived(tx: &Transaction<'_>, d: &Derived) -> Result<(), Error> {
    match d {
        Derived::Case(case, rows) => {
            store::index_case(tx, case)?;
            let ids: Vec<NoteId> = rows.iter().map(|n| n.id).collect();
            store::remove_other_notes(tx, case.id, &ids)?;
            store::index_notes(tx, rows)?;
        }
        Derived::LearningPoint(lp) => store::index_learning_point(tx, lp)?,
        Derived::Meeting(m) => store::index_meeting(tx, m)?,
        Derived::Network(n) => {
            // Every operation seen is kept (grow-only), then the membership is resolved from
            // all of them: on every path a network document arrives by (a local write, a
            // meeting, the relay, a merge), in the transaction that stores it.
            store::put_network_ops(tx, n.id, &n.ops)?;
            let (_, network) = super::networks::resolve_network(tx, n)?;
            store::index_network(tx, &network)?;
        }
    }
    Ok(())
}
