//! Learning points: layout, first change, edits and reading back.

// The kinds share the layout's vocabulary: shapes, helpers and imports of `doc`.
use super::*;

// Stored shapes

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct PerspectiveDoc {
    kind: String,
    who: String,
    text: String,
    at: i64,
}

#[derive(Debug, Clone, Hydrate)]
struct LearningPointRoot {
    created_at: i64,
    created_by: AuthorDoc,
    title: String,
    insight: Text,
    cases: BTreeMap<String, OrderedRef>,
    sources: BTreeMap<String, TextItemDoc>,
    perspectives: BTreeMap<String, PerspectiveDoc>,
    status: String,
    meeting: Option<String>,
    tags: BTreeMap<String, bool>,
    networks: BTreeMap<String, bool>,
}

/// Writes a new learning point's first change.
pub(crate) fn create_learning_point(
    doc: &mut AutoCommit,
    id: DocId,
    init: &Valid<NewLearningPoint>,
    author: &Author,
    now: Timestamp,
    ids: &Randomness,
) -> Result<(), DocError> {
    put_root_header(doc, id, DocKind::LearningPoint, now)?;
    put_author(doc, &ROOT, "created_by", author)?;
    doc.put(ROOT, "title", init.title.as_str())?;
    put_text(doc, &ROOT, "insight", &init.insight)?;
    let cases = new_map(doc, &ROOT, "cases")?;
    ordered_refs(doc, &cases, &init.cases, now)?;
    let sources = new_map(doc, &ROOT, "sources")?;
    for (i, s) in init.sources.iter().enumerate() {
        let item = TextItemDoc { text: s.clone(), at: now * 1000 + i as i64 };
        reconcile_prop(doc, &sources, ItemId::random_from(ids).to_string().as_str(), item)?;
    }
    new_map(doc, &ROOT, "perspectives")?;
    doc.put(ROOT, "status", LearningPointStatus::Proposed.as_str())?;
    doc.put(ROOT, "meeting", ScalarValue::Null)?;
    let tags = new_map(doc, &ROOT, "tags")?;
    set_keys(doc, &tags, init.tags.iter().map(String::as_str))?;
    let nets = new_map(doc, &ROOT, "networks")?;
    let net_keys: Vec<String> = init.networks.iter().map(DocId::to_string).collect();
    set_keys(doc, &nets, net_keys.iter().map(String::as_str))?;
    commit(doc, format!("Proposed learning point “{}”", init.title), now);
    Ok(())
}

/// Applies a change to a learning point. Returns whether anything changed.
pub(crate) fn update_learning_point(
    doc: &mut AutoCommit,
    c: &Valid<LearningPointUpdate>,
    now: Timestamp,
    ids: &Randomness,
) -> Result<bool, DocError> {
    let mut what = Changed::new(doc);
    if let Some(t) = &c.title {
        put_if_changed(doc, &ROOT, "title", ScalarValue::Str(t.as_str().into()))?;
        what.push(doc, "title".to_string());
    }
    if let Some(t) = &c.insight {
        update_text(doc, &ROOT, "insight", t)?;
        what.push(doc, "insight".to_string());
    }
    if let Some(s) = c.status {
        put_if_changed(doc, &ROOT, "status", ScalarValue::Str(s.as_str().into()))?;
        what.push(doc, format!("status to {s}"));
    }
    if let Some(m) = c.meeting {
        put_if_changed(doc, &ROOT, "meeting", ScalarValue::Str(m.to_string().into()))?;
        what.push(doc, "meeting".to_string());
    }
    if !c.add_cases.is_empty() {
        let cases = child(doc, &ROOT, "cases")?;
        ordered_refs(doc, &cases, &c.add_cases, now)?;
        what.push(doc, "cases".to_string());
    }
    if !c.add_sources.is_empty() {
        let sources = child(doc, &ROOT, "sources")?;
        for (i, s) in c.add_sources.iter().enumerate() {
            let item = TextItemDoc { text: s.clone(), at: now * 1000 + i as i64 };
            reconcile_prop(doc, &sources, ItemId::random_from(ids).to_string().as_str(), item)?;
        }
        what.push(doc, "sources".to_string());
    }
    if !c.add_perspectives.is_empty() {
        let obj = child(doc, &ROOT, "perspectives")?;
        for (i, (kind, who, text)) in c.add_perspectives.iter().enumerate() {
            let p = PerspectiveDoc {
                kind: kind.as_str().to_string(),
                who: who.clone(),
                text: text.clone(),
                at: now * 1000 + i as i64,
            };
            reconcile_prop(doc, &obj, ItemId::random_from(ids).to_string().as_str(), p)?;
        }
        what.push(doc, "perspectives".to_string());
    }
    if !c.add_tags.is_empty() {
        let tags = child(doc, &ROOT, "tags")?;
        set_keys(doc, &tags, c.add_tags.iter().map(String::as_str))?;
        what.push(doc, "tags".to_string());
    }
    if doc.pending_ops() == 0 {
        return Ok(false);
    }
    touch(doc, now)?;
    commit(doc, format!("Changed {}", what.names.join(", ")), now);
    Ok(true)
}

/// Reads a learning point.
pub(crate) fn read_learning_point(doc: &AutoCommit) -> Result<LearningPoint, DocError> {
    let h = expect_kind(doc, DocKind::LearningPoint)?;
    let r: LearningPointRoot = autosurgeon::hydrate(doc)?;
    let conflicts = conflicts(
        doc,
        &[(&ROOT, "title", "title"), (&ROOT, "status", "status"), (&ROOT, "meeting", "meeting")],
    )?;
    let mut perspectives = Vec::new();
    for (id, p) in sorted_items(&r.perspectives, |p| p.at) {
        perspectives.push(Perspective {
            id,
            kind: PerspectiveKind::parse(&p.kind)
                .map_err(|e| DocError::Malformed(e.to_string()))?,
            who: p.who,
            text: p.text,
        });
    }
    Ok(LearningPoint {
        id: h.id,
        title: r.title,
        insight: r.insight.as_str().to_string(),
        cases: ordered_doc_ids(&r.cases),
        // The store knows what was erased; the device fills this in.
        erased_cases: Vec::new(),
        sources: sorted_items(&r.sources, |s| s.at)
            .into_iter()
            .map(|(id, s)| TextItem { id, text: s.text })
            .collect(),
        perspectives,
        status: LearningPointStatus::parse(&r.status)
            .map_err(|e| DocError::Malformed(e.to_string()))?,
        meeting: r.meeting.and_then(|m| m.parse().ok()),
        tags: r.tags.into_keys().collect(),
        networks: doc_ids(r.networks.into_keys()),
        created_at: r.created_at,
        created_by: r.created_by.to_author()?,
        updated_at: updated_at(doc)?,
        conflicts,
    })
}
