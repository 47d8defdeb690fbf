//! A blob sealed under a key this device does not hold yet (a new key epoch, after a removal,
//! whose network document comes later: a relay that hands blobs out of order, or removals
//! while apart) is kept and opened once the key comes, not passed over for good.
//!
//! Driven through the device's real relay session against the relay's own rules in process,
//! with the relay's answers reordered the way a relay operator may.

use nabij_core::{Device, model::Reason};
use nabij_relay_proto::wire::Response;
use nabij_sync_server::{Limits, Relay, storage::MemoryStorage};
use nabij_tests::{case_with_notes, network_of, observation, open_device};

const RELAY_KEY: [u8; 32] = [0x52; 32];

/// One relay sync of `d`; `reorder` may change each answer before the device sees it.
fn sync(
    d: &Device,
    relay: &Relay<MemoryStorage>,
    reorder: impl FnMut(&mut Response),
) -> nabij_core::relay::RelayReport {
    nabij_tests::relay::sync_in_memory(d, relay, RELAY_KEY, reorder)
}

#[test]
fn a_blob_sealed_under_a_key_not_here_yet_opens_once_the_key_comes() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = Relay::new(MemoryStorage::new(), Limits::default());
    let ([anna, bram, kees], network) = network_of(dir.path(), ["Anna", "Bram", "Kees"]);
    let case = case_with_notes(&anna, network, "Mevrouw B.", 1);
    for d in [&anna, &bram, &kees] {
        sync(d, &relay, |_| {});
    }
    assert!(bram.case(case).is_ok(), "Bram holds the case");

    // Kees's phone is lost: a new key epoch. Anna writes under it and syncs.
    anna.remove_device(network, kees.device_key(), Reason::Lost).expect("remove");
    let text = "Na de verwijdering: mevrouw B. verhuist";
    anna.add_note(case, observation(text)).expect("note");
    sync(&anna, &relay, |_| {});

    // The relay hands Bram the case's blob before the network document's (whose change
    // carries the new epoch's key, sealed to him), in one answer: it waits for the key.
    let mut reordered = false;
    let report = sync(&bram, &relay, |a| {
        if let Response::Blobs { blobs, .. } = a
            && blobs.len() > 1
        {
            // Numbers stay in order (the session checks them); what they carry is swapped.
            let (first, rest) = blobs.split_at_mut(1);
            std::mem::swap(&mut first[0].doc, &mut rest[0].doc);
            std::mem::swap(&mut first[0].bytes, &mut rest[0].bytes);
            reordered = true;
        }
    });
    assert!(reordered, "the pull brought both blobs at once");
    assert!(report.rejected.is_empty() && report.deferred == 0, "nothing refused: {report:?}");
    let has = |d: &Device, text: &str| {
        d.case_timeline(case).expect("timeline").iter().any(|n| n.text == text)
    };
    assert!(has(&bram, text), "the note written under the new key is here");

    // Anna writes again, with another removal (a third epoch) while Carl is apart. The relay
    // withholds the network document's blob from Carl: the case's blob waits, kept, until
    // the key comes (here the network document alone, from Anna by hand: a file, or a
    // colleague), and opens at his next relay sync.
    let carl = open_device(dir.path(), "Carl");
    let inv = anna.invite(network, carl.member_id(), "Carl", carl.device_key());
    carl.join(&inv.expect("invite")).expect("join");
    sync(&anna, &relay, |_| {});
    sync(&carl, &relay, |_| {});
    assert!(has(&carl, text), "Carl caught up");
    anna.remove_device(network, bram.device_key(), Reason::Left).expect("remove");
    let later = "Mevrouw B. heeft een nieuwe huisarts";
    anna.add_note(case, observation(later)).expect("note");
    sync(&anna, &relay, |_| {});
    let withheld = sync(&carl, &relay, |a| {
        if let Response::Blobs { blobs, .. } = a {
            let last = blobs.last().map(|b| b.seq);
            // The network document went first; keep the numbers, drop what it carried.
            blobs.retain(|b| Some(b.seq) == last);
        }
    });
    assert_eq!((withheld.deferred, withheld.opened_later), (1, 0), "{withheld:?}");
    assert!(!has(&carl, later), "not readable yet");
    let heads = carl.heads(network).expect("heads");
    let changes = anna.changes_since(network, &heads).expect("changes");
    carl.merge_changes(network, &changes).expect("the network document");
    assert!(!has(&carl, later), "still not: only the network document came");
    let report = sync(&carl, &relay, |_| {});
    assert_eq!(report.opened_later, 1, "{report:?}");
    assert!(has(&carl, later), "kept, then opened once the key came");
}
