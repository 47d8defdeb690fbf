//! What the app's screens rely on, through the public API of `nabij-core` only:
//!
//! - `search`: ranking (title 5× body), hit kinds and ids, snippets, the limit, all words
//!   required with the last one a prefix, typed text never taken as FTS5 syntax, an index that
//!   follows local edits and merges, and `reindex` giving the same results.
//! - `listeners`: who is told what, when, and what is never announced.
//! - `history`: order, change messages, the writer's clock, names through rosters.
//!
//! Every device has a settable clock and a seeded random source, so each run is the same.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicI64, Ordering},
};

use nabij_core::{
    Clock, Device, DeviceOptions, DocId, Error, NoteId,
    model::{HitKind, NewCase, NewNote, SearchHit},
    test_utils::observation,
};
use tempfile::TempDir;

/// Tuesday 14 November 2023, 22:13:20 UTC.
const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// A clock that says what it is told: each write's time is known exactly.
struct SetClock(AtomicI64);

impl SetClock {
    fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }
    fn advance(&self, ms: i64) -> i64 {
        self.0.fetch_add(ms, Ordering::SeqCst) + ms
    }
}

impl Clock for SetClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A directory of device stores that disappears with the test.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// A device on its own clock, ids and key from `seed`.
    fn device_on(&self, name: &str, seed: u64, clock: &Arc<SetClock>) -> Device {
        let clock: Arc<dyn Clock> = clock.clone();
        let options = DeviceOptions::deterministic_for_tests(clock, seed);
        Device::open_with(self.dir.path().join(format!("{name}.db")), options).expect("open")
    }

    /// A device whose clock stands at [`T0`].
    fn device(&self, name: &str, seed: u64) -> Device {
        self.device_on(name, seed, &SetClock::at(T0))
    }
}

fn new_case(d: &Device, subject: &str) -> DocId {
    d.create_case(NewCase { subject: subject.into(), ..NewCase::default() }).expect("case")
}

fn add_note(d: &Device, case: DocId, text: &str) -> NoteId {
    d.add_note(case, observation(text)).expect("note")
}

fn search(d: &Device, query: &str) -> Vec<SearchHit> {
    d.search(query, 100).unwrap_or_else(|e| panic!("search {query:?}: {e}"))
}

/// What a hit points at: the screen the app opens when it is tapped.
type Target = (HitKind, DocId, Option<NoteId>);

fn targets(d: &Device, query: &str) -> Vec<Target> {
    search(d, query).iter().map(|h| (h.kind, h.doc_id, h.note_id)).collect()
}

fn sorted(mut v: Vec<Target>) -> Vec<Target> {
    v.sort_by_key(|(k, d, n)| (format!("{k:?}"), *d, *n));
    v
}

/// Hits as ranked, checked best first; hits with exactly the same score (which the store
/// orders by its own row ids) put in a fixed order, so two stores can be compared.
fn ranked(mut hits: Vec<SearchHit>) -> Vec<SearchHit> {
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "best first: {hits:#?}");
    hits.sort_by(|x, y| {
        y.score.total_cmp(&x.score).then_with(|| {
            (format!("{:?}", x.kind), x.doc_id, x.note_id).cmp(&(
                format!("{:?}", y.kind),
                y.doc_id,
                y.note_id,
            ))
        })
    });
    hits
}

fn note_hits(d: &Device, query: &str) -> Vec<NoteId> {
    let mut notes: Vec<NoteId> = search(d, query)
        .iter()
        .filter(|h| h.kind == HitKind::Note)
        .map(|h| h.note_id.expect("a note hit names its note"))
        .collect();
    notes.sort();
    notes
}

/// Brings `to` up to date with everything `from` holds of `doc`.
fn send_changes(from: &Device, to: &Device, doc: DocId) {
    let delta = from.changes_since(doc, &to.heads(doc).expect("heads")).expect("changes");
    to.merge_changes(doc, &delta).expect("merge changes");
}

/// Hands a whole document to another device.
fn send_document(from: &Device, to: &Device, doc: DocId) {
    to.merge_document(&from.export_document(doc).expect("export")).expect("merge document");
}

/// Starts a network on `devices[0]` with every other device invited and holding it: a device
/// takes changes to a document only from devices of a network the document is shared with.
fn team(devices: &[&Device]) -> DocId {
    let net = devices[0].create_network("Team").expect("network");
    for d in &devices[1..] {
        let invitation = devices[0]
            .invite(net, d.member_id(), &d.display_name(), d.device_key())
            .expect("invite");
        d.join(&invitation).expect("join");
    }
    for d in &devices[1..] {
        send_document(devices[0], d, net);
    }
    net
}

/// A case shared with `network`.
fn shared_case(d: &Device, subject: &str, network: DocId) -> DocId {
    let case = NewCase { subject: subject.into(), networks: vec![network], ..NewCase::default() };
    d.create_case(case).expect("case")
}

// ---------------------------------------------------------------------------------------------

mod search {
    use nabij_core::model::{
        CaseItem, CaseUpdate, LearningPointUpdate, MeetingUpdate, NewLearningPoint, NewMeeting,
        PerspectiveKind,
    };
    use proptest::{
        collection::vec,
        prelude::*,
        test_runner::{Config, RngSeed, TestRunner},
    };

    use super::*;

    fn learning_point(d: &Device, title: &str, insight: &str) -> DocId {
        d.create_learning_point(NewLearningPoint {
            title: title.into(),
            insight: insight.into(),
            ..NewLearningPoint::default()
        })
        .expect("learning point")
    }

    fn meeting(d: &Device, date: &str, place: &str) -> DocId {
        d.create_meeting(NewMeeting {
            date: date.into(),
            place: place.into(),
            ..NewMeeting::default()
        })
        .expect("meeting")
    }

    #[test]
    fn title_matches_rank_above_body_matches() {
        let env = Env::new();
        let d = env.device("a", 1);
        // Body matches that would win on term frequency alone: the word twice, in short texts.
        let body_case = d
            .create_case(NewCase {
                subject: "Meneer J.".into(),
                at_stake: "Zonnebloem, zonnebloem.".into(),
                ..NewCase::default()
            })
            .unwrap();
        let noted = new_case(&d, "Familie K.");
        let note = add_note(&d, noted, "Zonnebloem en nog eens zonnebloem.");
        let body_lp = learning_point(&d, "Buurtnetwerk", "Zonnebloem zonnebloem");
        // Title matches, once each.
        let title_case = new_case(&d, "Zonnebloem");
        let title_lp = learning_point(&d, "Zonnebloem in de wijk", "Iets heel anders.");

        let hits = search(&d, "zonnebloem");
        let got: Vec<Target> = hits.iter().map(|h| (h.kind, h.doc_id, h.note_id)).collect();
        assert_eq!(got.len(), 5, "{hits:#?}");
        assert_eq!(
            sorted(got[..2].to_vec()),
            sorted(vec![
                (HitKind::Case, title_case, None),
                (HitKind::LearningPoint, title_lp, None)
            ]),
            "title matches first: {hits:#?}"
        );
        assert_eq!(
            sorted(got[2..].to_vec()),
            sorted(vec![
                (HitKind::Case, body_case, None),
                (HitKind::Note, noted, Some(note)),
                (HitKind::LearningPoint, body_lp, None),
            ])
        );
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "score order: {hits:#?}");
        assert!(hits[1].score > hits[2].score, "a title match outscores every body match");
    }

    #[test]
    fn every_kind_is_found_with_its_ids_and_title() {
        let env = Env::new();
        let d = env.device("a", 2);
        let case = d
            .create_case(NewCase {
                subject: "Familie Kwikstaart".into(),
                at_stake: "Zij wil weer naar het buurthuis.".into(),
                ..NewCase::default()
            })
            .unwrap();
        let other = new_case(&d, "Meneer J.");
        add_note(&d, other, "Geen buurt-activiteiten.");
        let note = add_note(&d, case, "Samen naar het buurthuis geweest.");
        let lp = learning_point(&d, "Samen optrekken", "Het buurthuis verbindt.");
        let m = meeting(&d, "2024-05-01", "De Linde");
        d.update_meeting(
            m,
            MeetingUpdate {
                minutes: Some("Volgende keer in het buurthuis.".into()),
                ..Default::default()
            },
        )
        .unwrap();

        let hits = search(&d, "buurthuis");
        assert_eq!(hits.len(), 4, "{hits:#?}");
        let by_kind = |kind| {
            let found: Vec<&SearchHit> = hits.iter().filter(|h| h.kind == kind).collect();
            assert_eq!(found.len(), 1, "{kind:?}: {hits:#?}");
            (found[0].doc_id, found[0].note_id, found[0].title.clone())
        };
        assert_eq!(by_kind(HitKind::Case), (case, None, "Familie Kwikstaart".into()));
        assert_eq!(by_kind(HitKind::Note), (case, Some(note), "Familie Kwikstaart".into()));
        assert_eq!(by_kind(HitKind::LearningPoint), (lp, None, "Samen optrekken".into()));
        assert_eq!(by_kind(HitKind::Meeting), (m, None, "2024-05-01 De Linde".into()));
        assert!(hits.iter().all(|h| h.snippet.contains("[buurthuis]")), "{hits:#?}");

        // A meeting is found by its place and by its date as typed.
        assert_eq!(targets(&d, "linde"), vec![(HitKind::Meeting, m, None)]);
        assert_eq!(targets(&d, "2024-05-01"), vec![(HitKind::Meeting, m, None)]);
    }

    #[test]
    fn every_text_field_is_searchable_under_its_document() {
        let env = Env::new();
        let d = env.device("a", 3);
        let case = d
            .create_case(NewCase {
                subject: "Familie K.".into(),
                at_stake: "inzet".into(),
                client_voice: "stemgeluid".into(),
                ..NewCase::default()
            })
            .unwrap();
        d.update_case(
            case,
            CaseUpdate {
                caimer: vec![
                    ("context".into(), "contextwoord".into()),
                    ("actors".into(), "actorwoord".into()),
                    ("interventions".into(), "interventiewoord".into()),
                    ("mechanisms".into(), "mechanismewoord".into()),
                    ("results".into(), "resultaatwoord".into()),
                ],
                ..Default::default()
            },
        )
        .unwrap();
        for item in [
            CaseItem::Opgave { text: "opgavewoord".into() },
            CaseItem::TurningPoint { when: "2019".into(), description: "keerpuntwoord".into() },
            CaseItem::Agreement { text: "afspraakwoord".into(), owner: "Anna".into(), due: None },
        ] {
            d.add_case_item(case, item).unwrap();
        }
        for word in [
            "inzet",
            "stemgeluid",
            "contextwoord",
            "actorwoord",
            "interventiewoord",
            "mechanismewoord",
            "resultaatwoord",
            "opgavewoord",
            "keerpuntwoord",
            "afspraakwoord",
        ] {
            assert_eq!(targets(&d, word), vec![(HitKind::Case, case, None)], "{word}");
        }

        let lp = learning_point(&d, "Leerpunt", "inzichtwoord");
        d.update_learning_point(
            lp,
            LearningPointUpdate {
                add_sources: vec!["bronwoord".into()],
                add_perspectives: vec![(
                    PerspectiveKind::Dissent,
                    "wijkagent".into(),
                    "tegengeluidwoord".into(),
                )],
                ..Default::default()
            },
        )
        .unwrap();
        for word in ["inzichtwoord", "bronwoord", "wijkagent", "tegengeluidwoord"] {
            assert_eq!(targets(&d, word), vec![(HitKind::LearningPoint, lp, None)], "{word}");
        }

        let m = d
            .create_meeting(NewMeeting {
                date: "2024-05-01".into(),
                place: "De Linde".into(),
                participants: vec!["deelnemerwoord".into()],
                ..NewMeeting::default()
            })
            .unwrap();
        d.update_meeting(
            m,
            MeetingUpdate {
                minutes: Some("notulenwoord".into()),
                add_agreements: vec![("besluitwoord".into(), "Bram".into(), None)],
                ..Default::default()
            },
        )
        .unwrap();
        for word in ["deelnemerwoord", "notulenwoord", "besluitwoord"] {
            assert_eq!(targets(&d, word), vec![(HitKind::Meeting, m, None)], "{word}");
        }
    }

    #[test]
    fn snippets_mark_the_matched_words() {
        let env = Env::new();
        let d = env.device("a", 4);
        let case = new_case(&d, "Familie K.");
        add_note(&d, case, "Huurachterstand loopt op. Moeder belt de woningcorporatie morgen.");

        let hits = search(&d, "huurachterstand");
        assert_eq!(hits.len(), 1);
        // The word as written, marked; nothing else marked.
        assert!(hits[0].snippet.contains("[Huurachterstand]"), "{:?}", hits[0].snippet);
        assert_eq!(hits[0].snippet.matches('[').count(), 1, "{:?}", hits[0].snippet);
        assert_eq!(hits[0].snippet.matches(']').count(), 1, "{:?}", hits[0].snippet);

        // Every word of the query is marked; a prefix marks the whole word it matched.
        let hits = search(&d, "moeder woningcorp");
        assert_eq!(hits.len(), 1);
        let s = &hits[0].snippet;
        assert!(s.contains("[Moeder]") && s.contains("[woningcorporatie]"), "{s:?}");
        assert_eq!(s.matches('[').count(), 2, "{s:?}");

        // A long note gives a short passage around the match, cut with an ellipsis.
        let before: Vec<String> = (0..60).map(|i| format!("voor{}", letters(i))).collect();
        let after: Vec<String> = (0..60).map(|i| format!("na{}", letters(i))).collect();
        let long = format!("{} zonnebloem {}", before.join(" "), after.join(" "));
        let long_note = add_note(&d, case, &long);
        let hits = search(&d, "zonnebloem");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].note_id, Some(long_note));
        let s = &hits[0].snippet;
        assert!(s.contains("[zonnebloem]"), "{s:?}");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s:?}");
        assert!(s.split_whitespace().count() <= 20, "a passage, not the note: {s:?}");
    }

    /// A snippet without its match marks.
    fn unmarked(snippet: &str) -> String {
        snippet.replace(['[', ']'], "")
    }

    /// (The title may come with its match marked or not.)
    #[test]
    fn a_title_only_match_shows_the_title() {
        let env = Env::new();
        let d = env.device("a", 5);
        let case = new_case(&d, "Familie Zonnebloem");
        let lp = learning_point(&d, "Mantelzorg verlichten", "");
        let hits = search(&d, "zonnebloem");
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].doc_id, unmarked(&hits[0].snippet)),
            (case, "Familie Zonnebloem".into())
        );
        let hits = search(&d, "mantelzorg");
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].doc_id, unmarked(&hits[0].snippet)),
            (lp, "Mantelzorg verlichten".into())
        );
    }

    #[test]
    fn a_meeting_found_by_date_or_place_shows_its_title() {
        let env = Env::new();
        let d = env.device("a", 16);
        let m = meeting(&d, "2024-05-01", "De Linde");
        for query in ["linde", "2024-05-01"] {
            let hits = search(&d, query);
            assert_eq!(hits.len(), 1, "{query}");
            assert_eq!(hits[0].doc_id, m);
            assert_eq!(unmarked(&hits[0].snippet), "2024-05-01 De Linde", "{query}");
        }
    }

    #[test]
    fn a_title_only_match_shows_the_title_even_when_the_body_has_text() {
        let env = Env::new();
        let d = env.device("a", 6);
        let case = d
            .create_case(NewCase {
                subject: "Familie Zonnebloem".into(),
                at_stake: "Huur is te hoog, de verhuurder dreigt met ontruiming.".into(),
                ..NewCase::default()
            })
            .unwrap();
        let lp = learning_point(&d, "Mantelzorg verlichten", "Vraag het netwerk eerder om hulp.");
        let m = meeting(&d, "2024-05-01", "De Linde");
        d.update_meeting(
            m,
            MeetingUpdate {
                minutes: Some("Drie casussen besproken.".into()),
                ..Default::default()
            },
        )
        .unwrap();
        for (query, doc, title) in [
            ("zonnebloem", case, "Familie Zonnebloem"),
            ("mantelzorg", lp, "Mantelzorg verlichten"),
            ("linde", m, "2024-05-01 De Linde"),
        ] {
            let hits = search(&d, query);
            assert_eq!(hits.len(), 1, "{query}");
            assert_eq!(hits[0].doc_id, doc);
            assert_eq!(
                unmarked(&hits[0].snippet),
                title,
                "{query}: the snippet shows why it matched"
            );
        }
    }

    #[test]
    fn the_limit_keeps_the_best_hits() {
        let env = Env::new();
        let d = env.device("a", 7);
        let case = new_case(&d, "Familie K.");
        // Twelve notes with the word among ever more other words: a strict ranking.
        let notes: Vec<NewNote> = (0..12)
            .map(|i| {
                let filler: Vec<String> =
                    (0..i * 3).map(|j| format!("vul{}", letters(j))).collect();
                observation(&format!("kwartet {}", filler.join(" ")))
            })
            .collect();
        let ids = d.add_notes(case, notes).unwrap();
        let all = search(&d, "kwartet");
        assert_eq!(all.iter().map(|h| h.note_id.unwrap()).collect::<Vec<_>>(), ids);
        for limit in [1, 5, 11, 12, 13] {
            let some = d.search("kwartet", limit).unwrap();
            assert_eq!(some, all[..(limit as usize).min(12)], "limit {limit}");
        }

        // At most 500 hits, whatever is asked.
        let many = (0..520).map(|i| observation(&format!("veelvoud {i}"))).collect();
        d.add_notes(case, many).unwrap();
        assert_eq!(d.search("veelvoud", 10_000).unwrap().len(), 500);
    }

    #[test]
    fn every_word_is_required_and_only_the_last_is_a_prefix() {
        let env = Env::new();
        let d = env.device("a", 8);
        let case = new_case(&d, "Familie K.");
        let rb = add_note(&d, case, "rood blauw");
        let rg = add_note(&d, case, "rood groen");
        let bg = add_note(&d, case, "blauw groen");
        let rbg = add_note(&d, case, "groen, blauw en rood");
        let huur = add_note(&d, case, "Huurachterstand van drie maanden.");

        let set = |v: &[NoteId]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        assert_eq!(note_hits(&d, "rood"), set(&[rb, rg, rbg]));
        assert_eq!(note_hits(&d, "rood blauw"), set(&[rb, rbg]));
        assert_eq!(note_hits(&d, "blauw rood"), set(&[rb, rbg]));
        assert_eq!(note_hits(&d, "groen blauw"), set(&[bg, rbg]));
        assert_eq!(note_hits(&d, "rood blauw groen"), set(&[rbg]));
        assert_eq!(note_hits(&d, "rood paars"), set(&[]));

        assert_eq!(note_hits(&d, "huurachter"), set(&[huur]), "the last word is a prefix");
        assert_eq!(note_hits(&d, "drie huurachter"), set(&[huur]));
        assert_eq!(note_hits(&d, "huurachter drie"), set(&[]), "an earlier word is whole");
        assert_eq!(note_hits(&d, "maand"), set(&[huur]));
        assert_eq!(note_hits(&d, "aanden"), set(&[]), "a prefix, not any part of a word");
        assert_eq!(note_hits(&d, "huurachterstanden"), set(&[]));
        assert_eq!(note_hits(&d, "HUURACHTERSTAND DRIE"), set(&[huur]), "case is ignored");
        assert_eq!(note_hits(&d, "  drie\t\nmaanden  "), set(&[huur]), "any white space");
    }

    #[test]
    fn typed_text_is_never_fts_syntax() {
        let env = Env::new();
        let d = env.device("a", 9);
        let case = new_case(&d, "Familie K.");
        let both = add_note(&d, case, "Huur betaald, fiets gestolen.");
        let huur = add_note(&d, case, "Huur achterstand.");
        let set = |v: &[NoteId]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };

        // Operators are words like any other: required, never obeyed.
        assert_eq!(note_hits(&d, "huur OR fiets"), set(&[]), "OR is a word, not a union");
        assert_eq!(note_hits(&d, "huur NOT fiets"), set(&[]), "NOT is a word");
        assert_eq!(note_hits(&d, "huur AND"), set(&[]), "AND is a word");
        assert_eq!(note_hits(&d, "huur -fiets"), set(&[both]), "`-` does not exclude");
        assert_eq!(note_hits(&d, "\"huur fiets\""), set(&[both]), "quotes do not make a phrase");
        assert_eq!(note_hits(&d, "NEAR(huur fiets)"), set(&[]), "NEAR( is a word");
        assert_eq!(note_hits(&d, "(huur"), set(&[both, huur]));
        assert_eq!(note_hits(&d, "fiets)"), set(&[both]));
        assert_eq!(note_hits(&d, "huur*"), set(&[both, huur]));
        assert_eq!(note_hits(&d, "gest*len"), set(&[]), "`*` inside a word is no wildcard");
        assert_eq!(note_hits(&d, "body:fiets"), set(&[]), "no column filter");
        assert_eq!(note_hits(&d, "^huur"), set(&[both, huur]));

        // Nothing searchable at all: nothing found, no error.
        for q in ["", "   ", "*", "-", "()", "\"", "\"\"", "^", ":", "+", "' OR 1=1 --", "…", "🙂"]
        {
            assert_eq!(targets(&d, q), vec![], "{q:?}");
        }
        for q in [
            "NEAR(\"x OR",
            "huur\"",
            "\"huur",
            "{title body}: huur",
            "title:huur",
            "huur NEAR/2 fiets",
            "huur + fiets",
            "huur\\",
            "huur'",
            "huur; DROP TABLE notes",
            "%huur_",
            "a:b:c",
            "[huur]",
        ] {
            if let Err(e) = d.search(q, 10) {
                panic!("{q:?} gave an error: {e}");
            }
        }

        // The length limit is a refusal of the input, not a storage failure.
        let long = "huur ".repeat(200);
        assert_eq!(long.len(), 1_000);
        assert!(d.search(&long, 10).is_ok());
        assert!(matches!(d.search(&format!("{long}x"), 10), Err(Error::Invalid(_))));
    }

    #[test]
    fn a_query_with_a_nul_character_is_not_an_error() {
        let env = Env::new();
        let d = env.device("a", 17);
        let case = new_case(&d, "Familie K.");
        let note = add_note(&d, case, "Huur betaald, fiets gestolen.");
        assert_eq!(targets(&d, "\u{0}"), vec![]);
        for q in ["huur\u{0}", "huur\u{0}fiets", "huur \u{0}", "\u{0}huur fiets"] {
            match d.search(q, 10) {
                Ok(hits) => assert!(hits.iter().all(|h| h.note_id == Some(note)), "{q:?}"),
                Err(e) => panic!("{q:?} gave an error: {e}"),
            }
        }
    }

    #[test]
    fn any_typed_text_gives_results_or_nothing_never_an_error() {
        let env = Env::new();
        let d = env.device("a", 10);
        let case = new_case(&d, "Familie Kwikstaart");
        add_note(&d, case, "Huur betaald, fiets \"gestolen\" (NEAR het station) - OR niet?");
        add_note(&d, case, "Ødegaard * ^ : { } [ ] één café");
        learning_point(&d, "Samen optrekken", "NEAR AND OR NOT");

        let syntax: Vec<String> = [
            "\"", "*", "(", ")", "-", "^", ":", "+", "{", "}", "NEAR", "NEAR/3", "OR", "AND",
            "NOT", "title", "body", "huur", "fiets", " ", "'", ";", "/", "%", "_", "\\",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let fragments = prop_oneof![
            proptest::sample::select(syntax),
            "[a-zA-Z0-9]{1,6}",
            any::<char>().prop_map(String::from),
        ];
        let query = vec(fragments, 0..24).prop_map(|parts| parts.concat());
        let config = Config {
            cases: 400,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x5eed_0001),
            ..Config::default()
        };
        TestRunner::new(config)
            .run(&query, |q| {
                let hits = d.search(&q, 20);
                prop_assert!(hits.is_ok(), "{:?} gave {:?}", q, hits.err());
                for h in hits.unwrap() {
                    prop_assert!(!h.snippet.is_empty(), "{:?}: empty snippet in {:?}", q, h);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn local_edits_replace_what_is_found() {
        let env = Env::new();
        let d = env.device("a", 11);
        let case = new_case(&d, "Familie Kwikstaart");
        let note = add_note(&d, case, "Fiets gestolen bij het station.");
        assert_eq!(note_hits(&d, "fiets"), vec![note]);

        d.edit_note(case, note, "Scooter gestolen bij het station.").unwrap();
        assert_eq!(note_hits(&d, "fiets"), vec![], "the old word is gone");
        assert_eq!(note_hits(&d, "scooter"), vec![note]);
        assert_eq!(note_hits(&d, "gestolen"), vec![note], "one row per note, no stale copy");

        // "Scooter gestolen bij het " is 25 code points; replace "station".
        let text = d.splice_note(case, note, 25, 7, "winkelcentrum").unwrap();
        assert_eq!(text, "Scooter gestolen bij het winkelcentrum.");
        assert_eq!(note_hits(&d, "station"), vec![]);
        assert_eq!(note_hits(&d, "winkelcentrum"), vec![note]);

        // A new subject: the case and its notes' hits carry it; the old one finds nothing.
        d.update_case(
            case,
            CaseUpdate {
                subject: Some("Familie Zonnebloem".into()),
                at_stake: Some("Schulden bij de energieleverancier.".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(targets(&d, "kwikstaart"), vec![]);
        assert_eq!(targets(&d, "zonnebloem"), vec![(HitKind::Case, case, None)]);
        assert_eq!(search(&d, "winkelcentrum")[0].title, "Familie Zonnebloem");
        assert_eq!(targets(&d, "energieleverancier"), vec![(HitKind::Case, case, None)]);
        d.update_case(
            case,
            CaseUpdate {
                at_stake: Some("Schulden bij de zorgverzekeraar.".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(targets(&d, "energieleverancier"), vec![]);
        assert_eq!(targets(&d, "zorgverzekeraar"), vec![(HitKind::Case, case, None)]);

        let lp = learning_point(&d, "Eerste titel", "Oud inzicht.");
        d.update_learning_point(
            lp,
            LearningPointUpdate {
                title: Some("Tweede titel".into()),
                insight: Some("Nieuw inzicht.".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(targets(&d, "eerste"), vec![]);
        assert_eq!(targets(&d, "oud"), vec![]);
        assert_eq!(targets(&d, "tweede nieuw"), vec![(HitKind::LearningPoint, lp, None)]);

        let m = meeting(&d, "2024-05-01", "De Linde");
        d.update_meeting(
            m,
            MeetingUpdate { minutes: Some("Concept.".into()), ..Default::default() },
        )
        .unwrap();
        d.update_meeting(
            m,
            MeetingUpdate {
                place: Some("Het Anker".into()),
                minutes: Some("Vastgesteld.".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(targets(&d, "linde"), vec![]);
        assert_eq!(targets(&d, "concept"), vec![]);
        assert_eq!(targets(&d, "anker vastgesteld"), vec![(HitKind::Meeting, m, None)]);
        assert_eq!(search(&d, "anker")[0].title, "2024-05-01 Het Anker");
    }

    #[test]
    fn what_arrives_from_another_device_is_found() {
        let env = Env::new();
        let a = env.device("a", 12);
        let b = env.device("b", 13);
        let net = team(&[&a, &b]);
        let case = shared_case(&a, "Familie Kwikstaart", net);
        let first = add_note(&a, case, "Fiets gestolen bij het station.");
        let lp = a
            .create_learning_point(NewLearningPoint {
                title: "Samen optrekken".into(),
                insight: "Wijkagent eerder betrekken.".into(),
                networks: vec![net],
                ..NewLearningPoint::default()
            })
            .expect("learning point");
        let m = a
            .create_meeting(NewMeeting {
                date: "2024-05-01".into(),
                place: "De Linde".into(),
                network: Some(net),
                ..NewMeeting::default()
            })
            .expect("meeting");

        for doc in [case, lp, m] {
            send_document(&a, &b, doc);
        }
        assert_eq!(
            search(&b, "fiets")
                .iter()
                .map(|h| (h.kind, h.doc_id, h.note_id, h.title.as_str()))
                .collect::<Vec<_>>(),
            vec![(HitKind::Note, case, Some(first), "Familie Kwikstaart")]
        );
        assert_eq!(targets(&b, "wijkagent"), vec![(HitKind::LearningPoint, lp, None)]);
        assert_eq!(targets(&b, "linde"), vec![(HitKind::Meeting, m, None)]);

        // Changes since: an edit, a new note, a new subject.
        a.edit_note(case, first, "Scooter gestolen bij het station.").unwrap();
        let second = add_note(&a, case, "Buurman helpt met boodschappen.");
        a.update_case(
            case,
            CaseUpdate { subject: Some("Familie Zonnebloem".into()), ..Default::default() },
        )
        .unwrap();
        send_changes(&a, &b, case);
        assert_eq!(note_hits(&b, "fiets"), vec![]);
        assert_eq!(note_hits(&b, "scooter"), vec![first]);
        assert_eq!(note_hits(&b, "buurman"), vec![second]);
        assert_eq!(targets(&b, "kwikstaart"), vec![]);
        assert_eq!(targets(&b, "zonnebloem"), vec![(HitKind::Case, case, None)]);
        assert!(search(&b, "buurman").iter().all(|h| h.title == "Familie Zonnebloem"));

        // Both edit the same note apart; after exchanging, both find what both wrote, alike.
        a.edit_note(case, second, "Maandag: buurman helpt met boodschappen.").unwrap();
        b.edit_note(case, second, "Buurman helpt met boodschappen en de post.").unwrap();
        send_changes(&a, &b, case);
        send_changes(&b, &a, case);
        for d in [&a, &b] {
            assert_eq!(note_hits(d, "maandag post"), vec![second]);
            assert_eq!(note_hits(d, "boodschappen"), vec![second]);
        }
        for q in ["buurman", "maandag", "post", "scooter", "zonnebloem", "gestolen"] {
            assert_eq!(ranked(search(&a, q)), ranked(search(&b, q)), "{q}");
        }
    }

    #[test]
    fn reindex_gives_the_same_results() {
        let env = Env::new();
        let a = env.device("a", 14);
        let b = env.device("b", 15);
        let net = team(&[&a, &b]);
        let case = a
            .create_case(NewCase {
                subject: "Familie Kwikstaart".into(),
                at_stake: "Huurachterstand en schulden.".into(),
                networks: vec![net],
                ..NewCase::default()
            })
            .unwrap();
        let n1 = add_note(&a, case, "Huurachterstand loopt op; moeder belt de corporatie.");
        add_note(&a, case, "Buurman helpt met boodschappen en de huur.");
        send_document(&a, &b, case);
        b.edit_note(case, n1, "Huurachterstand loopt op; moeder belde de corporatie maandag.")
            .unwrap();
        add_note(&b, case, "Gesprek met de wijkagent over de huur.");
        send_changes(&b, &a, case);
        let other = new_case(&a, "Meneer J.");
        add_note(&a, other, "Huur op tijd betaald.");
        learning_point(&a, "Huur en schulden", "Vroeg signaleren met de corporatie.");
        let m = meeting(&a, "2024-05-01", "De Linde");
        a.update_meeting(
            m,
            MeetingUpdate { minutes: Some("Huur besproken.".into()), ..Default::default() },
        )
        .unwrap();

        let queries =
            ["huur", "huurachterstand", "corporatie", "moeder maandag", "linde", "kwik", "x"];
        let before: Vec<Vec<SearchHit>> = queries.iter().map(|q| ranked(search(&a, q))).collect();
        assert!(before[0].len() >= 6, "the corpus is searchable: {:#?}", before[0]);
        assert_eq!(a.reindex().unwrap(), 5, "the network, two cases, a learning point, a meeting");
        let after: Vec<Vec<SearchHit>> = queries.iter().map(|q| ranked(search(&a, q))).collect();
        assert_eq!(before, after);
    }

    /// Six letters for `i`, so generated words are never prefixes of one another.
    fn letters(mut i: usize) -> String {
        let mut s = String::new();
        for _ in 0..6 {
            s.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
        }
        s
    }

    /// Made-up words, none a prefix of another or of anything else written below.
    const VOCAB: [&str; 10] = [
        "fietsen",
        "kapster",
        "molenaar",
        "zwaluw",
        "tulpen",
        "grachten",
        "bakkerij",
        "schaats",
        "polder",
        "dijkgraaf",
    ];

    fn words_of(mask: u16) -> Vec<&'static str> {
        VOCAB.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, w)| *w).collect()
    }

    /// One note of the property test: its words, the device that writes it, an edit.
    #[derive(Debug, Clone)]
    struct Plan {
        words: u16,
        on_b: bool,
        edit: Option<u16>,
    }

    #[test]
    fn every_note_is_found_by_its_words_and_by_no_other() {
        let plan =
            (0u16..1 << VOCAB.len(), any::<bool>(), proptest::option::of(0u16..1 << VOCAB.len()))
                .prop_map(|(words, on_b, edit)| Plan { words, on_b, edit });
        let strategy = (any::<u32>(), vec(plan, 1..8));
        let config = Config {
            cases: 16,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x5eed_0002),
            ..Config::default()
        };
        TestRunner::new(config)
            .run(&strategy, |(seed, plans)| {
                let seed = u64::from(seed) * 2;
                let env = Env::new();
                let a = env.device("a", seed);
                let b = env.device("b", seed + 1);
                let net = team(&[&a, &b]);
                let case = shared_case(&a, "Casus", net);
                send_document(&a, &b, case);
                let text = |i: usize, mask: u16| {
                    format!("uniek{} {}", letters(i), words_of(mask).join(" en "))
                };
                let mut notes = Vec::new();
                for (i, p) in plans.iter().enumerate() {
                    let (writer, reader) = if p.on_b { (&b, &a) } else { (&a, &b) };
                    let id = add_note(writer, case, &text(i, p.words));
                    let mut words = p.words;
                    if let Some(edit) = p.edit {
                        // Edited on the other device, after the note reached it.
                        send_changes(writer, reader, case);
                        reader.edit_note(case, id, &text(i, edit)).unwrap();
                        words = edit;
                    }
                    notes.push((id, words));
                }
                send_changes(&a, &b, case);
                send_changes(&b, &a, case);

                for d in [&a, &b] {
                    for (i, (id, _)) in notes.iter().enumerate() {
                        let hits = targets(d, &format!("uniek{}", letters(i)));
                        prop_assert_eq!(hits, vec![(HitKind::Note, case, Some(*id))]);
                    }
                    for (w, word) in VOCAB.iter().enumerate() {
                        let mut expected: Vec<NoteId> = notes
                            .iter()
                            .filter(|(_, mask)| mask & (1 << w) != 0)
                            .map(|(id, _)| *id)
                            .collect();
                        expected.sort();
                        prop_assert_eq!(note_hits(d, word), expected, "word {}", word);
                        prop_assert!(
                            search(d, word).iter().all(|h| h.kind == HitKind::Note),
                            "only notes hold {}",
                            word
                        );
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------

mod listeners {
    use std::{
        sync::{Weak, mpsc},
        time::Duration,
    };

    use nabij_core::{
        Subscription,
        model::{
            CaseItem, CaseStatus, CaseUpdate, LearningPointStatus, LearningPointUpdate,
            MeetingUpdate, NewLearningPoint, NewMeeting,
        },
    };

    use super::*;

    /// How long a test waits for a thread before calling it stuck.
    const STUCK: Duration = Duration::from_secs(20);

    /// A listener that records every call.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<DocId>>>>);

    impl Recorder {
        fn listen(&self, d: &Device) -> Subscription {
            let calls = self.0.clone();
            d.subscribe(move |ids| calls.lock().expect("recorder").push(ids.to_vec()))
        }
        /// The calls since the last take.
        fn take(&self) -> Vec<Vec<DocId>> {
            std::mem::take(&mut *self.0.lock().expect("recorder"))
        }
    }

    #[test]
    fn every_local_write_announces_its_document_before_returning() {
        let env = Env::new();
        let d = env.device("a", 20);
        let rec = Recorder::default();
        let _sub = rec.listen(&d);

        let case = new_case(&d, "Familie K.");
        assert_eq!(rec.take(), vec![vec![case]], "create_case");
        let note = add_note(&d, case, "Eerste gesprek.");
        assert_eq!(rec.take(), vec![vec![case]], "add_note");
        d.add_notes(case, vec![observation("twee"), observation("drie")]).unwrap();
        assert_eq!(rec.take(), vec![vec![case]], "add_notes: one call for one commit");
        d.edit_note(case, note, "Eerste gesprek, thuis.").unwrap();
        assert_eq!(rec.take(), vec![vec![case]], "edit_note");
        d.splice_note(case, note, 0, 0, "Maandag: ").unwrap();
        assert_eq!(rec.take(), vec![vec![case]], "splice_note");
        d.update_case(case, CaseUpdate { status: Some(CaseStatus::Closed), ..Default::default() })
            .unwrap();
        assert_eq!(rec.take(), vec![vec![case]], "update_case");
        let agreement = d
            .add_case_item(
                case,
                CaseItem::Agreement { text: "Bellen".into(), owner: "Anna".into(), due: None },
            )
            .unwrap();
        assert_eq!(rec.take(), vec![vec![case]], "add_case_item");
        d.set_case_agreement_done(case, agreement, true).unwrap();
        assert_eq!(rec.take(), vec![vec![case]], "set_case_agreement_done");

        let lp = d
            .create_learning_point(NewLearningPoint {
                title: "Leerpunt".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rec.take(), vec![vec![lp]], "create_learning_point");
        d.update_learning_point(
            lp,
            LearningPointUpdate {
                status: Some(LearningPointStatus::Discussed),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rec.take(), vec![vec![lp]], "update_learning_point");

        let m = d
            .create_meeting(NewMeeting { date: "2024-05-01".into(), ..Default::default() })
            .unwrap();
        assert_eq!(rec.take(), vec![vec![m]], "create_meeting");
        d.update_meeting(
            m,
            MeetingUpdate {
                add_agreements: vec![("Terugkoppelen".into(), String::new(), None)],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rec.take(), vec![vec![m]], "update_meeting");
        let made = d.meeting(m).unwrap().agreements[0].id;
        d.set_meeting_agreement_done(m, made, true).unwrap();
        assert_eq!(rec.take(), vec![vec![m]], "set_meeting_agreement_done");

        let net = d.create_network("Wijknetwerk Noord").unwrap();
        assert_eq!(rec.take(), vec![vec![net]], "create_network");
        let other = env.device("b", 21);
        other
            .join(&d.invite(net, other.member_id(), "Bram", other.device_key()).expect("invite"))
            .unwrap();
        assert_eq!(rec.take(), vec![vec![net]], "add_member");

        // Reads and settings announce nothing.
        d.case(case).unwrap();
        d.case_timeline(case).unwrap();
        d.history(case).unwrap();
        d.search("gesprek", 10).unwrap();
        d.set_display_name("Anna").unwrap();
        d.reindex().unwrap();
        assert_eq!(rec.take(), Vec::<Vec<DocId>>::new());
    }

    #[test]
    fn a_listener_sees_the_committed_write_and_may_use_the_device() {
        let env = Env::new();
        let d = Arc::new(env.device("a", 22));
        let seen: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let device: Weak<Device> = Arc::downgrade(&d);
        let log = seen.clone();
        let _sub = d.subscribe(move |ids| {
            let d = device.upgrade().expect("device alive");
            for id in ids {
                let notes = d.case_timeline(*id).map(|t| t.len()).unwrap_or(0);
                let hits = d.search("boodschappen", 10).unwrap().len();
                // Writing from a listener works too (it is announced in turn).
                if notes == 1 {
                    d.add_note(*id, observation("Tweede, vanuit de listener.")).unwrap();
                }
                log.lock().unwrap().push((notes, hits));
            }
        });
        let case = new_case(&d, "Familie K.");
        add_note(&d, case, "Buurman doet de boodschappen.");
        assert_eq!(*seen.lock().unwrap(), vec![(0, 0), (2, 1), (1, 1)]);
        assert_eq!(d.case_timeline(case).unwrap().len(), 2);
    }

    #[test]
    fn refused_and_empty_writes_announce_nothing() {
        let env = Env::new();
        let d = env.device("a", 23);
        let case = new_case(&d, "Familie K.");
        let note = add_note(&d, case, "Eerste gesprek.");
        let lp = d
            .create_learning_point(NewLearningPoint {
                title: "Leerpunt".into(),
                ..Default::default()
            })
            .unwrap();
        let rec = Recorder::default();
        let _sub = rec.listen(&d);

        // Refused input.
        assert!(d.add_note(case, observation("  \n")).is_err());
        assert!(d.create_case(NewCase { subject: " ".into(), ..NewCase::default() }).is_err());
        assert!(d.edit_note(case, note, "").is_err());
        assert!(d.splice_note(case, note, 1_000, 1, "x").is_err());
        assert!(
            d.update_case(
                case,
                CaseUpdate { caimer: vec![("gossip".into(), "x".into())], ..Default::default() }
            )
            .is_err()
        );
        // Unknown documents, notes, items; the wrong kind of document.
        let stranger = env.device("b", 24);
        let elsewhere = new_case(&stranger, "Elders");
        assert!(matches!(d.add_note(elsewhere, observation("x")), Err(Error::NotFound { .. })));
        let unknown_note = stranger.add_note(elsewhere, observation("x")).unwrap();
        assert!(matches!(d.edit_note(case, unknown_note, "x"), Err(Error::NotFound { .. })));
        let unknown_item =
            stranger.add_case_item(elsewhere, CaseItem::Opgave { text: "x".into() }).unwrap();
        assert!(d.set_case_agreement_done(case, unknown_item, true).is_err());
        assert!(d.update_learning_point(case, LearningPointUpdate::default()).is_err());
        assert!(
            d.update_case(
                lp,
                CaseUpdate { status: Some(CaseStatus::Closed), ..Default::default() }
            )
            .is_err()
        );
        // An edit the document accepts but the text limit refuses afterwards: rolled back.
        let big = "x".repeat(nabij_core::model::MAX_TEXT - 3);
        assert!(d.splice_note(case, note, 0, 0, &big).is_err());
        assert_eq!(d.note(case, note).unwrap().text, "Eerste gesprek.");
        // Writes that change nothing.
        d.edit_note(case, note, "Eerste gesprek.").unwrap();
        d.splice_note(case, note, 3, 0, "").unwrap();
        d.update_case(case, CaseUpdate::default()).unwrap();
        d.update_case(
            case,
            CaseUpdate { subject: Some("Familie K.".into()), ..Default::default() },
        )
        .unwrap();
        d.update_learning_point(
            lp,
            LearningPointUpdate { title: Some("Leerpunt".into()), ..Default::default() },
        )
        .unwrap();

        assert_eq!(rec.take(), Vec::<Vec<DocId>>::new());
        // And the listener still hears the next real write.
        add_note(&d, case, "Tweede gesprek.");
        assert_eq!(rec.take(), vec![vec![case]]);
    }

    #[test]
    fn merges_announce_only_what_brought_something_new() {
        let env = Env::new();
        let a = env.device("a", 25);
        let b = env.device("b", 26);
        let net = team(&[&a, &b]);
        let rec = Recorder::default();
        let _sub = rec.listen(&b);

        let case = shared_case(&a, "Familie K.", net);
        send_document(&a, &b, case);
        assert_eq!(rec.take(), vec![vec![case]], "a new document");
        send_document(&a, &b, case);
        assert_eq!(rec.take(), Vec::<Vec<DocId>>::new(), "the same document again");

        add_note(&a, case, "Nieuw.");
        send_changes(&a, &b, case);
        assert_eq!(rec.take(), vec![vec![case]], "new changes");
        send_changes(&a, &b, case);
        b.merge_changes(case, &[]).unwrap();
        let all = a.changes_since(case, &[]).unwrap();
        assert!(!b.merge_changes(case, &all).unwrap().changed);
        assert_eq!(rec.take(), Vec::<Vec<DocId>>::new(), "changes it already holds");

        // Refused merges: garbage, and changes whose predecessors are missing.
        assert!(b.merge_document(b"not a document").is_err());
        assert!(b.merge_changes(case, b"not changes").is_err());
        let before = a.heads(case).unwrap();
        add_note(&a, case, "Tussendoor.");
        let middle = a.heads(case).unwrap();
        add_note(&a, case, "Zonder voorganger.");
        let gap = a.changes_since(case, &middle).unwrap();
        assert_eq!(b.heads(case).unwrap(), before);
        assert!(b.merge_changes(case, &gap).is_err());
        assert_eq!(rec.take(), Vec::<Vec<DocId>>::new(), "refused merges");
        assert_eq!(note_hits(&b, "voorganger"), vec![], "nothing of a refused merge is found");
    }

    #[test]
    fn a_dropped_subscription_is_not_called_again() {
        let env = Env::new();
        let d = env.device("a", 27);
        let (first, second, third) =
            (Recorder::default(), Recorder::default(), Recorder::default());
        let s1 = first.listen(&d);
        let s2 = second.listen(&d);
        let s3 = third.listen(&d);

        let case = new_case(&d, "Familie K.");
        for r in [&first, &second, &third] {
            assert_eq!(r.take(), vec![vec![case]], "each listener is told");
        }
        drop(s2);
        add_note(&d, case, "Na het opzeggen.");
        assert_eq!(first.take(), vec![vec![case]]);
        assert_eq!(second.take(), Vec::<Vec<DocId>>::new(), "dropped");
        assert_eq!(third.take(), vec![vec![case]]);
        drop((s1, s3));
        add_note(&d, case, "Niemand luistert.");
        assert!(first.take().is_empty() && third.take().is_empty());

        // A subscription may outlive its device.
        let s4 = first.listen(&d);
        drop(d);
        drop(s4);
    }

    #[test]
    fn a_listener_may_unsubscribe_and_subscribe_from_inside_a_call() {
        let env = Env::new();
        let d = Arc::new(env.device("a", 28));
        let rec = Recorder::default();
        let own: Arc<Mutex<Option<Subscription>>> = Arc::default();
        let added: Arc<Mutex<Vec<Subscription>>> = Arc::default();
        let calls = Arc::new(AtomicI64::new(0));
        {
            let (own2, added2, calls2, rec2) =
                (own.clone(), added.clone(), calls.clone(), rec.clone());
            let device: Weak<Device> = Arc::downgrade(&d);
            let sub = d.subscribe(move |_| {
                calls2.fetch_add(1, Ordering::SeqCst);
                // Unsubscribe itself and subscribe another listener, once.
                if let Some(me) = own2.lock().unwrap().take() {
                    let d = device.upgrade().expect("device alive");
                    added2.lock().unwrap().push(rec2.listen(&d));
                    drop(me);
                }
            });
            *own.lock().unwrap() = Some(sub);
        }
        // Run the writes on another thread: a deadlock fails the test instead of hanging it.
        let (done, finished) = mpsc::channel();
        let writer = d.clone();
        let worker = std::thread::spawn(move || {
            let case = new_case(&writer, "Familie K.");
            add_note(&writer, case, "Tweede.");
            done.send(case).unwrap();
        });
        let case = finished.recv_timeout(STUCK).expect("writes with re-entrant listeners finish");
        worker.join().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "unsubscribed after its first call");
        assert_eq!(rec.take(), vec![vec![case]], "the listener it added hears the next write");
        assert!(own.lock().unwrap().is_none());
    }

    #[test]
    fn writes_from_several_threads_are_each_announced() {
        let env = Env::new();
        let d = Arc::new(env.device("a", 29));
        let case = new_case(&d, "Familie K.");
        let (tx, rx) = mpsc::channel::<Vec<DocId>>();
        let _sub = d.subscribe(move |ids| tx.send(ids.to_vec()).unwrap());
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let d = d.clone();
                std::thread::spawn(move || {
                    for i in 0..5 {
                        add_note(&d, case, &format!("draad {t} notitie {i}"));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(rx.recv_timeout(STUCK).expect("one announcement per write"));
        }
        assert!(got.iter().all(|ids| ids == &vec![case]));
        assert!(rx.try_recv().is_err(), "no more than one per write");
        assert_eq!(d.case_timeline(case).unwrap().len(), 20);
    }

    #[test]
    fn a_panicking_listener_leaves_the_write_committed_and_the_device_usable() {
        let env = Env::new();
        let d = env.device("a", 30);
        let case = new_case(&d, "Familie K.");
        let rec = Recorder::default();
        let boom = d.subscribe(|_| panic!("listener bug"));
        let keep = rec.listen(&d);

        // Whether the panic reaches the caller is not promised by the core (the FFI catches
        // it); what the write did must stand either way.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            d.add_note(case, observation("Geschreven ondanks de listener.")).map(|_| ())
        }));
        assert_eq!(note_hits(&d, "ondanks").len(), 1, "the write was committed and indexed");
        assert_eq!(d.case_timeline(case).unwrap().len(), 1);
        rec.take();

        drop(boom);
        let next = add_note(&d, case, "Daarna gewoon verder.");
        assert_eq!(rec.take(), vec![vec![case]]);
        assert_eq!(d.note(case, next).unwrap().text, "Daarna gewoon verder.");
        drop(keep);
    }
}

// ---------------------------------------------------------------------------------------------

mod history {
    use std::collections::BTreeMap;

    use nabij_core::{
        DeviceKey,
        device::HistoryEntry,
        model::{
            CaseItem, CaseStatus, CaseUpdate, LearningPointStatus, LearningPointUpdate,
            MeetingUpdate, NewLearningPoint, NewMeeting, Reason,
        },
    };
    use proptest::{
        collection::vec,
        prelude::*,
        test_runner::{Config, RngSeed, TestRunner},
    };

    use super::*;

    fn summaries(h: &[HistoryEntry]) -> Vec<&str> {
        h.iter().map(|e| e.summary.as_str()).collect()
    }

    /// Each writing device and the name shown for it.
    fn names(h: &[HistoryEntry]) -> BTreeMap<DeviceKey, Option<String>> {
        h.iter()
            .map(|e| (e.device.expect("every change names its device"), e.author.clone()))
            .collect()
    }

    #[test]
    fn history_is_oldest_first_with_messages_and_the_writers_times() {
        let env = Env::new();
        let clock = SetClock::at(T0);
        let d = env.device_on("a", 40, &clock);
        d.set_display_name("Anna").unwrap();

        let case = new_case(&d, "Familie K.");
        let t1 = clock.advance(MINUTE);
        let note = add_note(&d, case, "Moeder belt\n\n  elke   dag.");
        let t2 = clock.advance(MINUTE);
        d.edit_note(
            case,
            note,
            "Moeder belt elke dag over de huur, de post en de buurman die helpt.",
        )
        .unwrap();
        let t3 = clock.advance(3_600_000);
        d.update_case(case, CaseUpdate { status: Some(CaseStatus::Closed), ..Default::default() })
            .unwrap();
        let t4 = clock.advance(1);
        d.add_case_item(case, CaseItem::Opgave { text: "Schulden".into() }).unwrap();
        // A write that changes nothing is no history.
        clock.advance(MINUTE);
        d.edit_note(
            case,
            note,
            "Moeder belt elke dag over de huur, de post en de buurman die helpt.",
        )
        .unwrap();

        let h = d.history(case).unwrap();
        assert_eq!(
            summaries(&h),
            [
                "Created case “Familie K.”",
                "Added observation note “Moeder belt elke dag.”",
                "Edited note “Moeder belt elke dag over de huur, de po…”",
                "Changed status",
                "Added opgave “Schulden”",
            ]
        );
        assert_eq!(h.iter().map(|e| e.time).collect::<Vec<_>>(), [T0, t1, t2, t3, t4]);
        assert!(h.iter().all(|e| e.device == Some(d.device_key())));
        assert!(h.iter().all(|e| e.author.as_deref() == Some("Anna")));
        let mut hashes: Vec<&str> = h.iter().map(|e| e.hash.as_str()).collect();
        assert_eq!(hashes.last().copied(), Some(d.heads(case).unwrap()[0].to_string().as_str()));
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), 5, "one hash per change");

        // The other kinds of document.
        let lp = d
            .create_learning_point(NewLearningPoint {
                title: "Samen optrekken".into(),
                ..Default::default()
            })
            .unwrap();
        d.update_learning_point(
            lp,
            LearningPointUpdate {
                status: Some(LearningPointStatus::Discussed),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            summaries(&d.history(lp).unwrap()),
            ["Proposed learning point “Samen optrekken”", "Changed status to discussed"]
        );
        let m = d
            .create_meeting(NewMeeting {
                date: "2024-05-01".into(),
                place: "De Linde".into(),
                ..Default::default()
            })
            .unwrap();
        d.update_meeting(
            m,
            MeetingUpdate { minutes: Some("Besproken.".into()), ..Default::default() },
        )
        .unwrap();
        assert_eq!(
            summaries(&d.history(m).unwrap()),
            ["Planned meeting on 2024-05-01 at De Linde", "Changed minutes"]
        );
        let b = env.device("b", 41);
        let net = d.create_network("Wijknetwerk Noord").unwrap();
        b.join(&d.invite(net, b.member_id(), "Bram", b.device_key()).expect("invite")).unwrap();
        assert_eq!(
            summaries(&d.history(net).unwrap()),
            [
                "Started network “Wijknetwerk Noord”".to_string(),
                format!("Added Bram (device {}) to the network", b.device_key().short()),
            ]
        );

        // A document this device does not hold.
        let elsewhere = new_case(&b, "Elders");
        assert!(matches!(d.history(elsewhere), Err(Error::NotFound { .. })));
    }

    #[test]
    fn a_change_message_names_only_what_changed() {
        let env = Env::new();
        let d = env.device("a", 42);
        let case = new_case(&d, "Familie K.");
        // The case form is saved with its subject as it was and a new status.
        d.update_case(
            case,
            CaseUpdate {
                subject: Some("Familie K.".into()),
                status: Some(CaseStatus::Closed),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.history(case).unwrap()[1].summary, "Changed status");
        let lp = d
            .create_learning_point(NewLearningPoint {
                title: "Leerpunt".into(),
                ..Default::default()
            })
            .unwrap();
        d.update_learning_point(
            lp,
            LearningPointUpdate {
                title: Some("Leerpunt".into()),
                insight: Some("Nieuw inzicht.".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.history(lp).unwrap()[1].summary, "Changed insight");
    }

    #[test]
    fn concurrent_changes_are_listed_oldest_first_alike_on_both_phones() {
        let env = Env::new();
        let (ca, cb) = (SetClock::at(T0), SetClock::at(T0));
        let a = env.device_on("a", 47, &ca);
        let b = env.device_on("b", 48, &cb);
        let net = team(&[&a, &b]);
        let case = shared_case(&a, "Familie K.", net);
        send_document(&a, &b, case);
        // Apart: b writes first, a a minute later; then they meet.
        cb.advance(MINUTE);
        add_note(&b, case, "Eerst, op b.");
        ca.advance(2 * MINUTE);
        add_note(&a, case, "Later, op a.");
        send_changes(&a, &b, case);
        send_changes(&b, &a, case);

        let (ha, hb) = (a.history(case).unwrap(), b.history(case).unwrap());
        let times = |h: &[HistoryEntry]| h.iter().map(|e| e.time).collect::<Vec<_>>();
        let hashes = |h: &[HistoryEntry]| h.iter().map(|e| e.hash.clone()).collect::<Vec<_>>();
        assert_eq!(times(&hb), [T0, T0 + MINUTE, T0 + 2 * MINUTE], "on b");
        assert_eq!(times(&ha), [T0, T0 + MINUTE, T0 + 2 * MINUTE], "on a");
        assert_eq!(hashes(&ha), hashes(&hb), "the same order on both phones");
    }

    #[test]
    fn names_come_from_the_rosters_this_device_holds() {
        let env = Env::new();
        let (ca, cb, cc) = (SetClock::at(T0), SetClock::at(T0 - 3_600_000), SetClock::at(T0 + 7));
        let anna = env.device_on("anna", 43, &ca);
        let bram = env.device_on("bram", 44, &cb);
        let bram2 = env.device_on("bram-tablet", 45, &cb);
        let cees = env.device_on("cees", 46, &cc);
        anna.set_display_name("Anna").unwrap();
        bram.set_display_name("Bram").unwrap();
        cees.set_display_name("Cees").unwrap();

        // Anna starts a network and adds Bram under the name the network knows him by.
        let net = anna.create_network("Wijknetwerk Noord").unwrap();
        bram.join(
            &anna.invite(net, bram.member_id(), "Bram K.", bram.device_key()).expect("invite"),
        )
        .unwrap();
        let case = anna
            .create_case(NewCase {
                subject: "Familie K.".into(),
                networks: vec![net],
                ..Default::default()
            })
            .unwrap();
        // Cees is in the network when he writes, and leaves it afterwards.
        cees.join(
            &anna.invite(net, cees.member_id(), "Cees de V.", cees.device_key()).expect("invite"),
        )
        .unwrap();
        for d in [&bram, &cees] {
            send_document(&anna, d, net);
            send_document(&anna, d, case);
        }

        cb.advance(MINUTE);
        add_note(&bram, case, "Van Bram.");
        cc.advance(MINUTE);
        add_note(&cees, case, "Van Cees, die het netwerk daarna verlaat.");
        send_changes(&bram, &anna, case);
        send_changes(&cees, &anna, case);
        anna.remove_member(net, cees.member_id(), Reason::Left).unwrap();

        let h = anna.history(case).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].device, Some(anna.device_key()), "the first change comes first");
        assert_eq!(
            names(&h),
            BTreeMap::from([
                (anna.device_key(), Some("Anna".to_string())),
                (bram.device_key(), Some("Bram K.".to_string())),
                (cees.device_key(), None),
            ]),
            "own name; a roster's member name; nothing for a device no roster lists (now)"
        );
        // Times are the writer's clock, whatever this device's clock says.
        let time_of = |h: &[HistoryEntry], dev: DeviceKey| {
            h.iter().find(|e| e.device == Some(dev)).map(|e| e.time).unwrap()
        };
        assert_eq!(time_of(&h, bram.device_key()), T0 - 3_600_000 + MINUTE);
        assert_eq!(time_of(&h, cees.device_key()), T0 + 7 + MINUTE);

        // On Bram's phone (which holds the removal: a removed device's earlier changes stay
        // his): his own display name, Anna as the roster lists her.
        send_changes(&anna, &bram, net);
        send_changes(&anna, &bram, case);
        let hb = bram.history(case).unwrap();
        assert_eq!(
            names(&hb),
            BTreeMap::from([
                (anna.device_key(), Some("Anna".to_string())),
                (bram.device_key(), Some("Bram".to_string())),
                (cees.device_key(), None),
            ])
        );
        assert_eq!(hb.len(), 3);
        let same = |e: &HistoryEntry| (e.hash.clone(), e.device, e.time, e.summary.clone());
        let mut on_anna: Vec<_> = h.iter().map(same).collect();
        let mut on_bram: Vec<_> = hb.iter().map(same).collect();
        on_anna.sort();
        on_bram.sort();
        assert_eq!(on_anna, on_bram, "the same changes, times and messages on both phones");

        // Names are looked up when history is read: adding Cees again names his old change.
        anna.add_member(net, cees.member_id(), "Cees de V.", cees.device_key()).unwrap();
        assert_eq!(
            names(&anna.history(case).unwrap())[&cees.device_key()].as_deref(),
            Some("Cees de V.")
        );
        assert_eq!(names(&bram.history(case).unwrap())[&cees.device_key()], None, "not yet here");
        send_changes(&anna, &bram, net);
        assert_eq!(
            names(&bram.history(case).unwrap())[&cees.device_key()].as_deref(),
            Some("Cees de V.")
        );

        // A second phone of a member carries the member's name.
        anna.add_member(net, bram.member_id(), "Bram K.", bram2.device_key()).unwrap();
        send_document(&anna, &bram2, net);
        send_document(&anna, &bram2, case);
        add_note(&bram2, case, "Van Brams tablet.");
        send_changes(&bram2, &anna, case);
        assert_eq!(
            names(&anna.history(case).unwrap())[&bram2.device_key()].as_deref(),
            Some("Bram K.")
        );

        // A device's own entries follow its display name.
        anna.set_display_name("Anna V.").unwrap();
        assert_eq!(
            names(&anna.history(case).unwrap())[&anna.device_key()].as_deref(),
            Some("Anna V.")
        );
        assert_eq!(
            names(&bram.history(case).unwrap())[&anna.device_key()].as_deref(),
            Some("Anna")
        );
    }

    /// A write in the property test: which device, how far its clock moves first.
    #[derive(Debug, Clone)]
    struct Step {
        device: usize,
        wait: i64,
        exchange: bool,
    }

    #[test]
    fn every_write_appears_once_in_order_with_its_time() {
        let step = (0usize..3, 1i64..10 * MINUTE, any::<bool>())
            .prop_map(|(device, wait, exchange)| Step { device, wait, exchange });
        let strategy = (any::<u32>(), vec(step, 1..12));
        let config = Config {
            cases: 12,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x5eed_0003),
            ..Config::default()
        };
        TestRunner::new(config)
            .run(&strategy, |(seed, steps)| {
                let seed = u64::from(seed) * 3;
                let env = Env::new();
                let clocks =
                    [SetClock::at(T0), SetClock::at(T0 - 5 * MINUTE), SetClock::at(T0 + MINUTE)];
                let devices: Vec<Device> = (0..3)
                    .map(|i| env.device_on(&format!("d{i}"), seed + i as u64, &clocks[i]))
                    .collect();
                let net = team(&[&devices[0], &devices[1], &devices[2]]);
                let case = shared_case(&devices[0], "Familie K.", net);
                for d in &devices[1..] {
                    send_document(&devices[0], d, case);
                }
                // What each device wrote, in order: (time, message).
                let mut written: Vec<Vec<(i64, String)>> = vec![Vec::new(); 3];
                written[0].push((T0, "Created case “Familie K.”".into()));
                for (i, s) in steps.iter().enumerate() {
                    let t = clocks[s.device].advance(s.wait);
                    let text = format!("Notitie {i}");
                    add_note(&devices[s.device], case, &text);
                    written[s.device].push((t, format!("Added observation note “{text}”")));
                    if s.exchange {
                        for other in 0..3 {
                            if other != s.device {
                                send_changes(&devices[s.device], &devices[other], case);
                            }
                        }
                    }
                }
                for from in 0..3 {
                    for to in 0..3 {
                        if from != to {
                            send_changes(&devices[from], &devices[to], case);
                        }
                    }
                }
                for d in &devices {
                    let h = d.history(case).unwrap();
                    prop_assert_eq!(h.len(), 1 + steps.len());
                    for (i, dev) in devices.iter().enumerate() {
                        let mine: Vec<(i64, String)> = h
                            .iter()
                            .filter(|e| e.device == Some(dev.device_key()))
                            .map(|e| (e.time, e.summary.clone()))
                            .collect();
                        prop_assert_eq!(&mine, &written[i], "device {} as seen on {:?}", i, d);
                    }
                    prop_assert_eq!(h[0].summary.as_str(), "Created case “Familie K.”");
                }
                Ok(())
            })
            .unwrap();
    }
}
