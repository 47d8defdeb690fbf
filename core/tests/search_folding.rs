//! Search as a Dutch worker expects it: names with letters like ø found without them, a word
//! typed with its accents taken as the whole word, and every hit showing where it matched.

use nabij_core::{
    Device, DocId,
    model::{HitKind, NewCase, NewLearningPoint, NewNote, NoteKind},
};

fn device(dir: &tempfile::TempDir) -> Device {
    Device::open(dir.path().join("phone.db")).expect("open")
}

fn case_with_note(d: &Device, subject: &str, note: &str) -> DocId {
    let c = d.create_case(NewCase { subject: subject.into(), ..NewCase::default() }).expect("case");
    d.add_note(c, NewNote { kind: NoteKind::Observation, text: note.into() }).expect("note");
    c
}

#[test]
fn letters_without_a_decomposition_are_found_by_their_plain_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(&dir);
    case_with_note(&d, "Familie Ødegaard", "Mevrouw Ødegaard belt over de huur.");
    case_with_note(&d, "Straße", "Gesprek met Łukasz en Æsa; cœur van de zaak; Đorđe kwam ook.");
    for (query, wants) in [
        ("odegaard", "Ødegaard"),
        ("Ødegaard", "Ødegaard"),
        ("ødegaard", "Ødegaard"),
        ("strasse", "Straße"),
        ("lukasz", "Łukasz"),
        ("aesa", "Æsa"),
        ("coeur", "cœur"),
        ("dorde", "Đorđe"),
    ] {
        let hits = d.search(query, 10).expect("search");
        assert!(!hits.is_empty(), "{query:?} finds nothing");
        assert!(
            hits.iter().any(|h| h.snippet.contains(&format!("[{wants}]"))),
            "{query:?}: no hit highlights {wants:?}: {hits:?}"
        );
    }
    // Folding runs both ways: a name typed with the special letter finds the plain spelling.
    case_with_note(&d, "Familie Odegaard", "Meneer Odegaard komt langs.");
    let hits = d.search("Ødegaard", 10).expect("search");
    assert!(hits.iter().any(|h| h.snippet.contains("[Odegaard]")), "{hits:?}");
}

#[test]
fn a_word_typed_with_its_accents_is_a_whole_word_not_a_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(&dir);
    let lonely = case_with_note(&d, "Meneer V.", "Zijn eenzaamheid is groot.");
    let one = case_with_note(&d, "Mevrouw B.", "Er is nog maar één kind thuis.");
    let hits = d.search("één", 10).expect("search");
    let docs: Vec<DocId> = hits.iter().map(|h| h.doc_id).collect();
    assert!(docs.contains(&one), "{hits:?}");
    assert!(!docs.contains(&lonely), "één is a whole word, not the start of eenzaamheid: {hits:?}");
    assert!(hits.iter().all(|h| h.snippet.contains("[één]")), "{hits:?}");
    // Typed plainly, the last word is still a prefix: search as you type.
    let hits = d.search("eenzaam", 10).expect("search");
    assert!(hits.iter().any(|h| h.doc_id == lonely && h.snippet.contains("[eenzaamheid]")));
    let hits = d.search("een", 10).expect("search");
    let docs: Vec<DocId> = hits.iter().map(|h| h.doc_id).collect();
    assert!(docs.contains(&lonely) && docs.contains(&one), "{hits:?}");
    // Without accents a word matches its accented spelling: één is found by een.
    assert!(hits.iter().any(|h| h.doc_id == one && h.snippet.contains("[één]")), "{hits:?}");
}

#[test]
fn a_match_in_tags_or_the_title_is_highlighted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(&dir);
    let c = d
        .create_case(NewCase {
            subject: "Joke en Michelle".into(),
            tags: vec!["hygiëne".into(), "school".into()],
            at_stake: "Michelle wordt gepest in de klas.".into(),
            ..NewCase::default()
        })
        .expect("case");
    let lp = d
        .create_learning_point(NewLearningPoint {
            title: "Vraag hoe het thuis gaat".into(),
            insight: "Een open vraag opent meer dan een advies.".into(),
            tags: vec!["gespreksvoering".into()],
            ..NewLearningPoint::default()
        })
        .expect("learning point");
    for (query, doc, kind, wants) in [
        ("hygiene", c, HitKind::Case, "[hygiëne]"),
        ("school", c, HitKind::Case, "[school]"),
        ("gespreks", lp, HitKind::LearningPoint, "[gespreksvoering]"),
        ("michelle", c, HitKind::Case, "[Michelle]"),
        ("thuis", lp, HitKind::LearningPoint, "[thuis]"),
    ] {
        let hits = d.search(query, 10).expect("search");
        let hit =
            hits.iter().find(|h| h.doc_id == doc).unwrap_or_else(|| panic!("{query}: {hits:?}"));
        assert_eq!(hit.kind, kind);
        assert!(hit.snippet.contains(wants), "{query:?}: snippet {:?} lacks {wants}", hit.snippet);
    }
}

#[test]
fn a_word_with_a_trema_is_still_typed_as_a_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(&dir);
    let c = case_with_note(&d, "Buurtteam", "De coördinatie met de financiële hulp loopt.");
    for typed in ["coörd", "coord", "financië", "financi"] {
        let hits = d.search(typed, 10).expect("search");
        assert!(hits.iter().any(|h| h.doc_id == c), "{typed}: {hits:?}");
    }
}

#[test]
fn a_word_with_an_apostrophe_or_hyphen_is_found_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(&dir);
    let photos = case_with_note(&d, "Familie S.", "Twee foto's van de ex-partner.");
    let other = case_with_note(&d, "Familie T.", "De foto is van Sara, samen met haar partner.");
    let hits = d.search("foto's", 10).expect("search");
    let docs: Vec<DocId> = hits.iter().map(|h| h.doc_id).collect();
    assert_eq!(docs, [photos], "{hits:?}");
    assert!(hits[0].snippet.contains("[foto's]"), "{hits:?}");
    let hits = d.search("ex-partner", 10).expect("search");
    assert!(hits.iter().all(|h| h.doc_id != other), "{hits:?}");
    assert!(hits.iter().any(|h| h.snippet.contains("[ex-partner]")), "{hits:?}");
}
