//! Meetings: layout, first change, edits (minutes, participants, agenda, agreements) and
//! reading back.

// The kinds share the layout's vocabulary: shapes, helpers and imports of `doc`.
use super::*;

// Stored shapes

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct ParticipantDoc {
    name: String,
    at: i64,
}

#[derive(Debug, Clone, Hydrate)]
struct MeetingRoot {
    created_at: i64,
    created_by: AuthorDoc,
    network: Option<String>,
    date: String,
    place: String,
    participants: BTreeMap<String, ParticipantDoc>,
    agenda: BTreeMap<String, OrderedRef>,
    minutes: Text,
    learning_points: BTreeMap<String, OrderedRef>,
    agreements: BTreeMap<String, AgreementDoc>,
}

fn add_participants(
    doc: &mut AutoCommit,
    names: &[String],
    now: Timestamp,
    ids: &Randomness,
) -> Result<(), DocError> {
    let obj = child(doc, &ROOT, "participants")?;
    let existing: Vec<String> = doc
        .keys(&obj)
        .filter_map(|k| hydrate_prop::<_, ParticipantDoc, _, _>(doc, &obj, k.as_str()).ok())
        .map(|p| p.name)
        .collect();
    for (i, name) in names.iter().enumerate() {
        if !existing.contains(name) {
            let p = ParticipantDoc { name: name.clone(), at: now * 1000 + i as i64 };
            reconcile_prop(doc, &obj, ItemId::random_from(ids).to_string().as_str(), p)?;
        }
    }
    Ok(())
}

/// Writes a new meeting's first change.
pub(crate) fn create_meeting(
    doc: &mut AutoCommit,
    id: DocId,
    init: &Valid<NewMeeting>,
    author: &Author,
    now: Timestamp,
    ids: &Randomness,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::Meeting, now)?;
    put_author(doc, &ROOT, "created_by", author)?;
    match init.network {
        Some(n) => doc.put(ROOT, "network", n.to_string())?,
        None => doc.put(ROOT, "network", ScalarValue::Null)?,
    }
    doc.put(ROOT, "date", init.date.as_str())?;
    doc.put(ROOT, "place", init.place.as_str())?;
    new_map(doc, &ROOT, "participants")?;
    add_participants(doc, &init.participants, now, ids)?;
    let agenda = new_map(doc, &ROOT, "agenda")?;
    ordered_refs(doc, &agenda, &init.agenda, now)?;
    put_text(doc, &ROOT, "minutes", "")?;
    new_map(doc, &ROOT, "learning_points")?;
    new_map(doc, &ROOT, "agreements")?;
    commit(doc, format!("Planned meeting on {} at {}", init.date, init.place), now);
    Ok(())
}

/// Applies a change to a meeting. Returns whether anything changed.
pub(crate) fn update_meeting(
    doc: &mut AutoCommit,
    c: &Valid<MeetingUpdate>,
    now: Timestamp,
    ids: &Randomness,
) -> Result<bool, DocError> {
    let mut what = Changed::new(doc);
    if let Some(p) = &c.place {
        put_if_changed(doc, &ROOT, "place", ScalarValue::Str(p.as_str().into()))?;
        what.push(doc, "place");
    }
    if let Some(m) = &c.minutes {
        update_text(doc, &ROOT, "minutes", m)?;
        what.push(doc, "minutes");
    }
    if !c.add_participants.is_empty() {
        add_participants(doc, &c.add_participants, now, ids)?;
        what.push(doc, "participants");
    }
    if !c.add_agenda.is_empty() {
        let obj = child(doc, &ROOT, "agenda")?;
        ordered_refs(doc, &obj, &c.add_agenda, now)?;
        what.push(doc, "agenda");
    }
    if !c.add_learning_points.is_empty() {
        let obj = child(doc, &ROOT, "learning_points")?;
        ordered_refs(doc, &obj, &c.add_learning_points, now)?;
        what.push(doc, "learning points");
    }
    if !c.add_agreements.is_empty() {
        let obj = child(doc, &ROOT, "agreements")?;
        for (i, (text, owner, due)) in c.add_agreements.iter().enumerate() {
            put_agreement(doc, &obj, text, owner, due.as_deref(), now * 1000 + i as i64, ids)?;
        }
        what.push(doc, "agreements");
    }
    if doc.pending_ops() == 0 {
        return Ok(false);
    }
    touch(doc, now)?;
    commit(doc, format!("Changed {}", what.names.join(", ")), now);
    Ok(true)
}

/// Reads a meeting.
pub(crate) fn read_meeting(doc: &AutoCommit) -> Result<Meeting, DocError> {
    let h = expect_kind(doc, DocKind::Meeting)?;
    let r: MeetingRoot = autosurgeon::hydrate(doc)?;
    let mut conflicts = conflicts(doc, &[(&ROOT, "date", "date"), (&ROOT, "place", "place")])?;
    conflicts.extend(agreement_conflicts(doc)?);
    Ok(Meeting {
        id: h.id,
        network: r.network.and_then(|n| n.parse().ok()),
        date: r.date,
        place: r.place,
        participants: sorted_items(&r.participants, |p| p.at)
            .into_iter()
            .map(|(_, p)| p.name)
            .collect(),
        agenda: ordered_doc_ids(&r.agenda),
        minutes: r.minutes.as_str().to_string(),
        learning_points: ordered_doc_ids(&r.learning_points),
        agreements: agreements(&r.agreements),
        created_at: r.created_at,
        created_by: r.created_by.to_author()?,
        updated_at: updated_at(doc)?,
        conflicts,
    })
}
