//! Promise 6 of `THREAT-MODEL.md`: a thief reads nothing. A phone's store (the database, its
//! WAL and shared memory, whatever SQLite keeps beside it) is encrypted with a key the app
//! keeps in the platform keystore: a byte scan of every file finds none of a day's words, no
//! document id and no key material, while the same scan of a plain store finds them all (so
//! the scan can see what it looks for). Without the key, a copy of the files opens nothing and
//! cannot act as the device.

use std::path::Path;

use nabij_core::{
    Device, DeviceOptions, Error, StoreKey,
    error::OpenError,
    model::{NewLearningPoint, NewMeeting, NewNote, NoteKind},
    test_utils::{shared_case, signing_key},
};
use nabij_tests::{attack::copy_store_files, meet};

/// Something the day leaves in a store, by name, and the bytes that give it away.
struct Needle {
    what: String,
    bytes: Vec<u8>,
}

fn needle(what: impl Into<String>, bytes: impl AsRef<[u8]>) -> Needle {
    Needle { what: what.into(), bytes: bytes.as_ref().to_vec() }
}

fn open(path: &Path, key: Option<StoreKey>, name: &str) -> Device {
    let d =
        Device::open_with(path, DeviceOptions { key, ..DeviceOptions::default() }).expect("open");
    d.set_display_name(name).expect("name");
    d
}

/// A worker's day on two phones that meet: a network, a shared case with notes, a learning
/// point and a meeting. The phones stay open (their WALs hold the day). Returns the phones and
/// what each store must not show a thief.
fn a_day(dir: &Path, key: Option<StoreKey>) -> ([Device; 2], Vec<Needle>) {
    let anna = open(&dir.join("anna.db"), key.clone(), "Annelies Verhoeven");
    let bram = open(&dir.join("bram.db"), key, "Bram Oosterhuis");
    let network = anna.create_network("Wijknetwerk Zeeheldenbuurt").expect("network");
    let inv = anna
        .invite(network, bram.member_id(), &bram.display_name(), bram.device_key())
        .expect("invite");
    bram.join(&inv).expect("join");
    let case = shared_case(&anna, network, "Familie Oudeweg-Smits");
    for text in [
        "Mevrouw Oudeweg vertelt over de deurwaarder en de achterstallige huur.",
        "Zoon Kees verzuimt school sinds de scheiding; afspraak met leerplicht.",
    ] {
        anna.add_note(case, NewNote { kind: NoteKind::Observation, text: text.into() })
            .expect("note");
    }
    let lp = anna
        .create_learning_point(NewLearningPoint {
            title: "Huisbezoek op dinsdagochtend".into(),
            insight: "Schuldeisers bellen minder als de budgetcoach meeleest.".into(),
            cases: vec![case],
            networks: vec![network],
            ..NewLearningPoint::default()
        })
        .expect("learning point");
    let meeting = anna
        .create_meeting(NewMeeting {
            network: Some(network),
            date: "2026-11-30".into(),
            place: "Buurthuis De Kaap".into(),
            participants: vec!["Annelies".into(), "Bram".into()],
            agenda: vec![case],
        })
        .expect("meeting");
    meet(&anna, &bram).expect("meet");
    bram.add_note(
        case,
        NewNote {
            kind: NoteKind::Agreement,
            text: "Bram belt Woonstede over een regeling.".into(),
        },
    )
    .expect("bram's note");
    meet(&anna, &bram).expect("meet again");

    let mut needles = vec![
        needle("a name", "Oudeweg"),
        needle("a note's words", "deurwaarder"),
        needle("a note's words", "leerplicht"),
        needle("the other phone's note", "Woonstede"),
        needle("a learning point's insight", "budgetcoach"),
        needle("a meeting's place", "De Kaap"),
        needle("the network's name", "Zeeheldenbuurt"),
        needle("a worker's name", "Verhoeven"),
        needle("a worker's name", "Oosterhuis"),
    ];
    for (what, id) in [("case", case), ("learning point", lp), ("meeting", meeting)] {
        needles.push(needle(format!("the {what}'s id"), id.to_string()));
        needles.push(needle(format!("the {what}'s id (bytes)"), id.as_bytes()));
    }
    needles.push(needle("the network's id (bytes)", network.as_bytes()));
    for d in [&anna, &bram] {
        let secret = signing_key(d).to_bytes();
        needles.push(needle(format!("{}'s secret key", d.display_name()), secret));
    }
    ([anna, bram], needles)
}

/// Every file in `dir`, and which needles each holds.
fn scan(dir: &Path, needles: &[Needle]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        for n in needles {
            if nabij_core::test_utils::contains(&bytes, &n.bytes) {
                found.push(format!("{} in {}", n.what, path.display()));
            }
        }
    }
    found
}

fn files_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn promise_6_a_scan_of_every_file_of_an_encrypted_store_finds_nothing_of_the_day() {
    // The control: a plain store shows every needle, so a scan that finds nothing below means
    // the bytes are not there, not that the scan is blind.
    let plain = tempfile::tempdir().expect("tempdir");
    let (phones, needles) = a_day(plain.path(), None);
    let found = scan(plain.path(), &needles);
    for n in &needles {
        assert!(
            found.iter().any(|f| f.starts_with(&format!("{} in", n.what))),
            "the plain store should show {}: the scan would be blind to it",
            n.what
        );
    }
    drop(phones);

    let dir = tempfile::tempdir().expect("tempdir");
    let key = StoreKey::generate().expect("key");
    let (phones, needles) = a_day(dir.path(), Some(key.clone()));
    let files = files_of(dir.path());
    assert!(files.iter().any(|f| f.ends_with("-wal")), "the WALs are scanned too: {files:?}");
    assert_eq!(scan(dir.path(), &needles), Vec::<String>::new(), "files: {files:?}");
    // The store key is not written anywhere either.
    let key_needles = [needle("the store key", key.to_hex().as_bytes())];
    assert_eq!(scan(dir.path(), &key_needles), Vec::<String>::new());
    drop(phones);
    // Closed: the WAL folded into the store; still nothing.
    assert_eq!(scan(dir.path(), &needles), Vec::<String>::new(), "after close");
}

#[test]
fn promise_6_a_copy_of_the_files_without_the_key_opens_nothing_and_cannot_act_as_the_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StoreKey::generate().expect("key");
    let (phones, _) = a_day(dir.path(), Some(key.clone()));
    let thief = dir.path().join("thief");
    std::fs::create_dir(&thief).expect("dir");
    copy_store_files(&dir.path().join("anna.db"), &thief.join("anna.db"));
    drop(phones);
    let copy = thief.join("anna.db");
    for attempt in [None, Some(StoreKey::generate().expect("key"))] {
        let opened =
            Device::open_with(&copy, DeviceOptions { key: attempt, ..DeviceOptions::default() });
        assert!(matches!(opened, Err(Error::Open(OpenError::WrongKey(_)))), "{opened:?}");
    }
    // With the key it is the device (the thief of the phone *and* its keystore is out of
    // scope: ARCHITECTURE.md says what an unlocked phone gives away).
    let d = Device::open_with(&copy, DeviceOptions { key: Some(key), ..DeviceOptions::default() })
        .expect("the owner's key opens it");
    assert_eq!(d.display_name(), "Annelies Verhoeven");
}
