//! Cases and their notes: the case document's layout, its first change, edits of its fields,
//! items and notes, and reading it back.

// The kinds share the layout's vocabulary: shapes, helpers and imports of `doc`.
use super::*;

// Stored shapes

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct TurningPointDoc {
    when: String,
    description: String,
    at: i64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct ActorDoc {
    name: String,
    relation: String,
    at: i64,
}

#[derive(Debug, Clone, Hydrate)]
/// A note. Kept to few fields: in a case with many notes every Automerge op costs a seek
/// through the document, so a note is born with five (author as one `member:device` string).
struct NoteDoc {
    by: String,
    by_name: String,
    created_at: i64,
    /// Absent until the text is first edited.
    #[autosurgeon(missing = "Option::default")]
    edited_at: Option<i64>,
    kind: String,
    text: Text,
}

#[derive(Debug, Clone, Hydrate)]
struct CaimerDoc {
    context: Text,
    actors: Text,
    interventions: Text,
    mechanisms: Text,
    results: Text,
}

#[derive(Debug, Clone, Hydrate)]
struct ConsentDoc {
    status: String,
    scope: String,
    date: Option<String>,
}

/// The case root without its notes: hydrating it does not touch the notes map.
#[derive(Debug, Clone, Hydrate)]
struct CaseRoot {
    created_at: i64,
    created_by: AuthorDoc,
    subject: String,
    status: String,
    tags: BTreeMap<String, bool>,
    at_stake: Text,
    opgaven: BTreeMap<String, TextItemDoc>,
    turning_points: BTreeMap<String, TurningPointDoc>,
    client_voice: Text,
    actors: BTreeMap<String, ActorDoc>,
    caimer: CaimerDoc,
    agreements: BTreeMap<String, AgreementDoc>,
    consent: ConsentDoc,
    networks: BTreeMap<String, bool>,
}

/// Writes a new case document's first change: every object it will ever hold.
pub(crate) fn create_case(
    doc: &mut AutoCommit,
    id: DocId,
    init: &Valid<NewCase>,
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::Case, now)?;
    put_author(doc, &ROOT, "created_by", author)?;
    doc.put(ROOT, "subject", init.subject.as_str())?;
    doc.put(ROOT, "status", CaseStatus::Open.as_str())?;
    let tags = new_map(doc, &ROOT, "tags")?;
    set_keys(doc, &tags, init.tags.iter().map(String::as_str))?;
    put_text(doc, &ROOT, "at_stake", &init.at_stake)?;
    new_map(doc, &ROOT, "opgaven")?;
    new_map(doc, &ROOT, "turning_points")?;
    put_text(doc, &ROOT, "client_voice", &init.client_voice)?;
    new_map(doc, &ROOT, "actors")?;
    let caimer = new_map(doc, &ROOT, "caimer")?;
    for f in CAIMER_FIELDS {
        put_text(doc, &caimer, f, "")?;
    }
    new_map(doc, &ROOT, "agreements")?;
    let consent = new_map(doc, &ROOT, "consent")?;
    doc.put(&consent, "status", ConsentStatus::Unknown.as_str())?;
    doc.put(&consent, "scope", "")?;
    doc.put(&consent, "date", ScalarValue::Null)?;
    let nets = new_map(doc, &ROOT, "networks")?;
    let net_keys: Vec<String> = init.networks.iter().map(DocId::to_string).collect();
    set_keys(doc, &nets, net_keys.iter().map(String::as_str))?;
    new_map(doc, &ROOT, "notes")?;
    commit(doc, format!("Created case “{}”", init.subject), now);
    Ok(())
}

/// Applies a change to a case's fields as one Automerge change. Returns whether anything changed.
pub(crate) fn update_case(
    doc: &mut AutoCommit,
    c: &Valid<CaseUpdate>,
    unshare: &[DocId],
    now: Timestamp,
) -> Result<bool, DocError> {
    let mut what = Changed::new(doc);
    if let Some(s) = &c.subject {
        put_if_changed(doc, &ROOT, "subject", ScalarValue::Str(s.as_str().into()))?;
        what.push(doc, "subject");
    }
    if let Some(s) = c.status {
        put_if_changed(doc, &ROOT, "status", ScalarValue::Str(s.as_str().into()))?;
        what.push(doc, "status");
    }
    if !c.add_tags.is_empty() || !c.remove_tags.is_empty() {
        let tags = child(doc, &ROOT, "tags")?;
        set_keys(doc, &tags, c.add_tags.iter().map(String::as_str))?;
        for t in &c.remove_tags {
            if doc.get(&tags, t.as_str())?.is_some() {
                doc.delete(&tags, t.as_str())?;
            }
        }
        what.push(doc, "tags");
    }
    if let Some(t) = &c.at_stake {
        update_text(doc, &ROOT, "at_stake", t)?;
        what.push(doc, "what is at stake");
    }
    if let Some(t) = &c.client_voice {
        update_text(doc, &ROOT, "client_voice", t)?;
        what.push(doc, "client's voice");
    }
    if !c.caimer.is_empty() {
        let caimer = child(doc, &ROOT, "caimer")?;
        for (field, value) in &c.caimer {
            update_text(doc, &caimer, field, value)?;
        }
        what.push(doc, "CAIMeR");
    }
    if let Some(consent) = &c.consent {
        let obj = child(doc, &ROOT, "consent")?;
        put_if_changed(doc, &obj, "status", ScalarValue::Str(consent.status.as_str().into()))?;
        put_if_changed(doc, &obj, "scope", ScalarValue::Str(consent.scope.as_str().into()))?;
        let date = match &consent.date {
            Some(d) => ScalarValue::Str(d.as_str().into()),
            None => ScalarValue::Null,
        };
        put_if_changed(doc, &obj, "date", date)?;
        what.push(doc, "consent");
    }
    if !c.share_with.is_empty() {
        let nets = child(doc, &ROOT, "networks")?;
        let keys: Vec<String> = c.share_with.iter().map(DocId::to_string).collect();
        set_keys(doc, &nets, keys.iter().map(String::as_str))?;
        what.push(doc, "sharing");
    }
    if !unshare.is_empty() {
        let nets = child(doc, &ROOT, "networks")?;
        for n in unshare {
            let k = n.to_string();
            if doc.get(&nets, k.as_str())?.is_some() {
                doc.delete(&nets, k.as_str())?;
            }
        }
        what.push(doc, "sharing");
    }
    if doc.pending_ops() == 0 {
        return Ok(false);
    }
    touch(doc, now)?;
    commit(doc, format!("Changed {}", what.names.join(", ")), now);
    Ok(true)
}

/// Adds an item (opgave, turning point, actor, agreement) to a case; its id comes from `ids`.
pub(crate) fn add_case_item(
    doc: &mut AutoCommit,
    item: &Valid<CaseItem>,
    now: Timestamp,
    ids: &Randomness,
) -> Result<ItemId, DocError> {
    let id = ItemId::random_from(ids);
    let key = id.to_string();
    let message = match &**item {
        CaseItem::Opgave { text } => {
            let obj = child(doc, &ROOT, "opgaven")?;
            reconcile_prop(doc, &obj, key.as_str(), TextItemDoc { text: text.clone(), at: now })?;
            format!("Added opgave “{}”", short_text(text))
        }
        CaseItem::TurningPoint { when, description } => {
            let obj = child(doc, &ROOT, "turning_points")?;
            let tp =
                TurningPointDoc { when: when.clone(), description: description.clone(), at: now };
            reconcile_prop(doc, &obj, key.as_str(), tp)?;
            format!("Added turning point “{}”", short_text(description))
        }
        CaseItem::Actor { name, relation } => {
            let obj = child(doc, &ROOT, "actors")?;
            let a = ActorDoc { name: name.clone(), relation: relation.clone(), at: now };
            reconcile_prop(doc, &obj, key.as_str(), a)?;
            format!("Added {name} ({relation}) to the network around the person")
        }
        CaseItem::Agreement { text, owner, due } => {
            let obj = child(doc, &ROOT, "agreements")?;
            let a = AgreementDoc {
                text: text.clone(),
                owner: owner.clone(),
                due: due.clone(),
                done: false,
                at: now,
            };
            reconcile_prop(doc, &obj, key.as_str(), a)?;
            format!("Agreed “{}” ({owner})", short_text(text))
        }
    };
    touch(doc, now)?;
    commit(doc, message, now);
    Ok(id)
}

/// Marks an agreement of a case or meeting done (or not). Returns false if there is no such
/// agreement.
pub(crate) fn set_agreement_done(
    doc: &mut AutoCommit,
    agreement: ItemId,
    done: bool,
    now: Timestamp,
) -> Result<bool, DocError> {
    let obj = child(doc, &ROOT, "agreements")?;
    let Some((Value::Object(_), item)) = doc.get(&obj, agreement.to_string().as_str())? else {
        return Ok(false);
    };
    put_if_changed(doc, &item, "done", ScalarValue::Boolean(done))?;
    if doc.pending_ops() == 0 {
        return Ok(true);
    }
    touch(doc, now)?;
    commit(doc, format!("Marked an agreement {}", if done { "done" } else { "open" }), now);
    Ok(true)
}

/// Adds a note to a case.
pub(crate) fn add_note(
    doc: &mut AutoCommit,
    id: NoteId,
    note: &Valid<NewNote>,
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    put_note(doc, id, note.kind, &note.text, author, now)?;
    touch(doc, now)?;
    commit(doc, format!("Added {} note “{}”", note.kind, short_text(&note.text)), now);
    Ok(())
}

/// Adds several notes as one change (an import).
pub(crate) fn add_notes(
    doc: &mut AutoCommit,
    notes: &[(NoteId, Valid<NewNote>)],
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    for (id, note) in notes {
        put_note(doc, *id, note.kind, &note.text, author, now)?;
    }
    touch(doc, now)?;
    commit(doc, format!("Added {} notes", notes.len()), now);
    Ok(())
}

fn put_note(
    doc: &mut AutoCommit,
    id: NoteId,
    kind: NoteKind,
    text: &str,
    author: &Author,
    now: Timestamp,
) -> Result<(), DocError> {
    let notes = child(doc, &ROOT, "notes")?;
    let note = doc.put_object(&notes, id.to_string().as_str(), ObjType::Map)?;
    doc.put(&note, "by", format!("{}:{}", author.member, author.device))?;
    doc.put(&note, "by_name", author.name.as_str())?;
    doc.put(&note, "created_at", now)?;
    doc.put(&note, "kind", kind.as_str())?;
    put_text(doc, &note, "text", text)?;
    Ok(())
}

pub(super) fn note_obj(doc: &AutoCommit, note: NoteId) -> Result<Option<ObjId>, DocError> {
    let notes = child(doc, &ROOT, "notes")?;
    match doc.get(&notes, note.to_string().as_str())? {
        Some((Value::Object(_), obj)) => Ok(Some(obj)),
        _ => Ok(None),
    }
}

/// How a note's text is changed.
#[derive(Debug, Clone)]
pub(crate) enum TextEdit<'a> {
    /// Replace the whole text; stored as the smallest splices (a diff).
    Replace(&'a str),
    /// Delete `delete` characters at `pos` and insert `insert` there.
    Splice {
        /// Position, in characters.
        pos: usize,
        /// Characters to delete.
        delete: usize,
        /// Text to insert.
        insert: &'a str,
    },
}

/// Edits a note's text. Returns `Ok(None)` if the note does not exist, else the new text.
pub(crate) fn edit_note(
    doc: &mut AutoCommit,
    note: NoteId,
    edit: &TextEdit<'_>,
    now: Timestamp,
) -> Result<Option<String>, DocError> {
    let Some(obj) = note_obj(doc, note)? else {
        return Ok(None);
    };
    let text = child(doc, &obj, "text")?;
    match edit {
        TextEdit::Replace(t) => doc.update_text(&text, *t)?,
        TextEdit::Splice { pos, delete, insert } => {
            let len = doc.length(&text);
            if pos.checked_add(*delete).is_none_or(|end| end > len) {
                return Err(DocError::TextRange { pos: *pos, delete: *delete, len });
            }
            doc.splice_text(&text, *pos, *delete as isize, insert)?;
        }
    }
    let new_text = doc.text(&text)?;
    if doc.pending_ops() == 0 {
        return Ok(Some(new_text));
    }
    doc.put(&obj, "edited_at", now)?;
    touch(doc, now)?;
    commit(doc, format!("Edited note “{}”", short_text(&new_text)), now);
    Ok(Some(new_text))
}

/// Reads a case (without notes).
pub(crate) fn read_case(doc: &AutoCommit) -> Result<Case, DocError> {
    let h = expect_kind(doc, DocKind::Case)?;
    let r: CaseRoot = autosurgeon::hydrate(doc)?;
    let consent_obj = child(doc, &ROOT, "consent")?;
    let conflicts = conflicts(
        doc,
        &[
            (&ROOT, "subject", "subject"),
            (&ROOT, "status", "status"),
            (&consent_obj, "status", "consent.status"),
            (&consent_obj, "scope", "consent.scope"),
            (&consent_obj, "date", "consent.date"),
        ],
    )?;
    let mut conflicts = conflicts;
    conflicts.extend(agreement_conflicts(doc)?);
    Ok(Case {
        id: h.id,
        subject: r.subject,
        status: CaseStatus::parse(&r.status).map_err(|e| DocError::Malformed(e.to_string()))?,
        tags: r.tags.into_keys().collect(),
        at_stake: r.at_stake.as_str().to_string(),
        opgaven: sorted_items(&r.opgaven, |t| t.at)
            .into_iter()
            .map(|(id, t)| TextItem { id, text: t.text })
            .collect(),
        turning_points: sorted_items(&r.turning_points, |t| t.at)
            .into_iter()
            .map(|(id, t)| TurningPoint { id, when: t.when, description: t.description })
            .collect(),
        client_voice: r.client_voice.as_str().to_string(),
        actors: sorted_items(&r.actors, |a| a.at)
            .into_iter()
            .map(|(id, a)| CaseActor { id, name: a.name, relation: a.relation })
            .collect(),
        caimer: Caimer {
            context: r.caimer.context.as_str().to_string(),
            actors: r.caimer.actors.as_str().to_string(),
            interventions: r.caimer.interventions.as_str().to_string(),
            mechanisms: r.caimer.mechanisms.as_str().to_string(),
            results: r.caimer.results.as_str().to_string(),
        },
        agreements: agreements(&r.agreements),
        consent: Consent {
            status: ConsentStatus::parse(&r.consent.status)
                .map_err(|e| DocError::Malformed(e.to_string()))?,
            scope: r.consent.scope,
            date: r.consent.date,
        },
        networks: doc_ids(r.networks.into_keys()),
        created_at: r.created_at,
        created_by: r.created_by.to_author()?,
        updated_at: updated_at(doc)?,
        conflicts,
    })
}

fn note_from(case_id: DocId, id: NoteId, n: NoteDoc) -> Result<Note, DocError> {
    let bad = |e: crate::ids::ParseIdError| DocError::Malformed(format!("note author: {e}"));
    let (member, device) =
        n.by.split_once(':')
            .ok_or_else(|| DocError::Malformed("note author is not member:device".into()))?;
    Ok(Note {
        id,
        case_id,
        author: Author {
            member: member.parse().map_err(bad)?,
            name: n.by_name,
            device: device.parse().map_err(bad)?,
        },
        created_at: n.created_at,
        edited_at: n.edited_at.unwrap_or(n.created_at),
        kind: NoteKind::parse(&n.kind).map_err(|e| DocError::Malformed(e.to_string()))?,
        text: n.text.as_str().to_string(),
    })
}

/// Reads one note, if it exists.
pub(crate) fn read_note(
    doc: &AutoCommit,
    case_id: DocId,
    note: NoteId,
) -> Result<Option<Note>, DocError> {
    let notes = child(doc, &ROOT, "notes")?;
    let key = note.to_string();
    if doc.get(&notes, key.as_str())?.is_none() {
        return Ok(None);
    }
    let n: NoteDoc = hydrate_prop(doc, &notes, key.as_str())?;
    note_from(case_id, note, n).map(Some)
}

/// Reads every note of a case, oldest first.
pub(crate) fn read_notes(doc: &AutoCommit, case_id: DocId) -> Result<Vec<Note>, DocError> {
    let notes_obj = child(doc, &ROOT, "notes")?;
    let keys: Vec<String> = doc.keys(&notes_obj).collect();
    let mut notes = Vec::with_capacity(keys.len());
    for k in keys {
        let id: NoteId = k.parse().map_err(|e| DocError::Malformed(format!("note id: {e}")))?;
        let n: NoteDoc = hydrate_prop(doc, &notes_obj, k.as_str())?;
        notes.push(note_from(case_id, id, n)?);
    }
    notes.sort_by_key(|n| (n.created_at, n.id));
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::tests::{author, new_case, new_note};

    #[test]
    fn concurrent_note_edits_both_survive_and_conflicts_are_visible() {
        let (a, b) = (author(1), author(2));
        let (mut d1, id) = new_case(&a);
        let note = NoteId::random();
        add_note(
            &mut d1,
            note,
            &new_note(NoteKind::Observation, "Joke wast alles op tachtig graden."),
            &a,
            2_000,
        )
        .unwrap();
        let mut d2 = load(&d1.save(), &b.device).unwrap();

        edit_note(
            &mut d1,
            note,
            &TextEdit::Replace("Joke wast alles samen op tachtig graden."),
            3_000,
        )
        .unwrap();
        edit_note(
            &mut d2,
            note,
            &TextEdit::Replace("Joke wast alles op tachtig graden, zegt Michelle."),
            3_000,
        )
        .unwrap();
        update_case(
            &mut d1,
            &CaseUpdate { subject: Some("Joke en Michelle".into()), ..Default::default() }
                .parse()
                .unwrap(),
            &[],
            3_000,
        )
        .unwrap();
        update_case(
            &mut d2,
            &CaseUpdate { subject: Some("Gezin K.".into()), ..Default::default() }.parse().unwrap(),
            &[],
            3_000,
        )
        .unwrap();

        d1.merge(&mut d2).unwrap();
        d2.merge(&mut d1).unwrap();
        let t1 = read_note(&d1, id, note).unwrap().unwrap().text;
        assert_eq!(t1, read_note(&d2, id, note).unwrap().unwrap().text);
        assert_eq!(t1, "Joke wast alles samen op tachtig graden, zegt Michelle.");
        let case = read_case(&d1).unwrap();
        let c =
            case.conflicts.iter().find(|c| c.field == "subject").expect("subject conflict shown");
        assert_eq!(c.values.len(), 2);
        assert!(
            c.values.contains(&"Joke en Michelle".to_string())
                && c.values.contains(&"Gezin K.".to_string())
        );
        assert_eq!(c.values[0], case.subject, "the current value is listed first");
    }

    #[test]
    fn splice_out_of_range_is_refused_without_changing_the_note() {
        let a = author(1);
        let (mut d, id) = new_case(&a);
        let note = NoteId::random();
        add_note(&mut d, note, &new_note(NoteKind::Reflection, "ë is één teken"), &a, 2_000)
            .unwrap();
        let err =
            edit_note(&mut d, note, &TextEdit::Splice { pos: 10, delete: 10, insert: "x" }, 3_000);
        assert!(matches!(err, Err(DocError::TextRange { len: 14, .. })));
        // Positions count characters, not bytes.
        edit_note(&mut d, note, &TextEdit::Splice { pos: 0, delete: 1, insert: "E" }, 3_000)
            .unwrap();
        assert_eq!(read_note(&d, id, note).unwrap().unwrap().text, "E is één teken");
    }
}
