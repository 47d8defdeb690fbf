//! Cases and their notes: the façade's operations on case documents.

use super::*;

impl Device {
    /// Creates a case.
    pub fn create_case(&self, input: NewCase) -> Result<DocId, Error> {
        let case = input.parse()?;
        self.create(DocKind::Case, |d, id, a, now| doc::create_case(d, id, &case, a, now))
    }

    /// Changes a case's fields. Only the fields given are written.
    ///
    /// Consent decides sharing: withdrawing it unshares the case from every network, and a
    /// case whose consent is withdrawn is shared with none. Unsharing (consent withdrawn, or
    /// `unshare_from` when its scope narrows) is for the worker who created the case or an
    /// admin of the network; the members' copies are deleted at their next sync, and this
    /// device keeps the case.
    pub fn update_case(&self, id: DocId, u: CaseUpdate) -> Result<(), Error> {
        let change = u.parse()?;
        let before = self.case(id)?;
        let withdrawn = |c: &Consent| c.status == ConsentStatus::Withdrawn;
        let withdrawing = change.consent.as_ref().is_some_and(withdrawn);
        if change.consent.as_ref().map_or(withdrawn(&before.consent), withdrawn)
            && !change.share_with.is_empty()
        {
            return Err(Error::NotAllowed(
                "consent for this case is withdrawn: it is shared with no network until \
                 consent is given again"
                    .into(),
            ));
        }
        let unshare: Vec<DocId> = before
            .networks
            .iter()
            .filter(|n| withdrawing || change.unshare_from.contains(n))
            .copied()
            .collect();
        if unshare.is_empty() {
            self.edit(id, DocKind::Case, |d, _, now| Ok(doc::update_case(d, &change, &[], now)?))?;
            return Ok(());
        }
        let reason = if withdrawing { "consent withdrawn" } else { "consent narrowed" };
        let kept: Vec<DocId> = before
            .networks
            .iter()
            .chain(&change.share_with)
            .filter(|n| !unshare.contains(n))
            .copied()
            .collect();
        self.unshare_case(id, &change, &unshare, &kept, reason)
    }

    /// Adds an opgave, turning point, actor or agreement to a case.
    pub fn add_case_item(&self, id: DocId, item: CaseItem) -> Result<ItemId, Error> {
        let item = item.parse()?;
        self.edit(id, DocKind::Case, |d, _, now| {
            Ok(doc::add_case_item(d, &item, now, &self.randomness)?)
        })
    }

    /// Marks an agreement of a case done or open.
    pub fn set_case_agreement_done(
        &self,
        id: DocId,
        agreement: ItemId,
        done: bool,
    ) -> Result<(), Error> {
        self.set_agreement_done_in(id, DocKind::Case, agreement, done)
    }

    /// Reads a case (without its notes; see [`Device::case_timeline`]).
    pub fn case(&self, id: DocId) -> Result<Case, Error> {
        self.read(id, DocKind::Case, |d| Ok(doc::read_case(d)?))
    }

    /// Adds a note to a case.
    pub fn add_note(&self, case: DocId, note: NewNote) -> Result<NoteId, Error> {
        let note = note.parse()?;
        let author = self.author();
        let id = NoteId::random_from(&self.randomness);
        self.edit(case, DocKind::Case, |d, touched, now| {
            doc::add_note(d, id, &note, &author, now)?;
            touched.known.push(Note {
                id,
                case_id: case,
                author: author.clone(),
                created_at: now,
                edited_at: now,
                kind: note.kind,
                text: note.text.clone(),
            });
            Ok(id)
        })
    }

    /// Adds several notes to a case as one change and one commit (an import).
    pub fn add_notes(&self, case: DocId, notes: Vec<NewNote>) -> Result<Vec<NoteId>, Error> {
        let notes: Vec<(NoteId, _)> = NewNote::parse_all(notes)?
            .into_iter()
            .map(|n| (NoteId::random_from(&self.randomness), n))
            .collect();
        let author = self.author();
        self.edit(case, DocKind::Case, |d, touched, now| {
            doc::add_notes(d, &notes, &author, now)?;
            touched.known.extend(notes.iter().map(|(id, n)| Note {
                id: *id,
                case_id: case,
                author: author.clone(),
                created_at: now,
                edited_at: now,
                kind: n.kind,
                text: n.text.clone(),
            }));
            Ok(notes.iter().map(|(id, _)| *id).collect())
        })
    }

    /// Replaces a note's text; stored as the smallest edit, so concurrent edits elsewhere in
    /// the text survive. Returns the note's text after the edit.
    pub fn edit_note(&self, case: DocId, note: NoteId, text: &str) -> Result<String, Error> {
        model::required_text("note text", text)?;
        self.edit_note_with(case, note, TextEdit::Replace(text))
    }

    /// Deletes `delete` characters at `pos` (in Unicode code points) and inserts `insert`.
    /// Returns the note's text after the edit.
    pub fn splice_note(
        &self,
        case: DocId,
        note: NoteId,
        pos: u32,
        delete: u32,
        insert: &str,
    ) -> Result<String, Error> {
        model::text("inserted text", insert)?;
        self.edit_note_with(
            case,
            note,
            TextEdit::Splice { pos: pos as usize, delete: delete as usize, insert },
        )
    }

    fn edit_note_with(
        &self,
        case: DocId,
        note: NoteId,
        edit: TextEdit<'_>,
    ) -> Result<String, Error> {
        self.edit(case, DocKind::Case, |d, touched, now| {
            let text = doc::edit_note(d, note, &edit, now)?
                .ok_or(Error::NotFound { kind: "note", id: note.to_string() })?;
            if text.len() > model::MAX_TEXT {
                return Err(ValidationError::TooLong {
                    field: "note text",
                    len: text.len(),
                    max: model::MAX_TEXT,
                }
                .into());
            }
            touched.read.push(note);
            Ok(text)
        })
    }

    /// Reads one note from its document.
    pub fn note(&self, case: DocId, note: NoteId) -> Result<Note, Error> {
        self.read(case, DocKind::Case, |d| {
            doc::read_note(d, case, note)?
                .ok_or(Error::NotFound { kind: "note", id: note.to_string() })
        })
    }
}
