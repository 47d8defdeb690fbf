//! A document's history: every change, who wrote it, when, and what it changed.

// The kinds share the layout's vocabulary: shapes, helpers and imports of `doc`.
use super::*;

/// One change in a document's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Change {
    /// The change hash (hex).
    pub hash: String,
    /// The device that wrote it (its actor id), if it is a Nabij device key.
    pub device: Option<DeviceKey>,
    /// When, as the writing device's clock said (milliseconds since the epoch).
    pub time: i64,
    /// What changed, in words.
    pub summary: String,
}

/// Every change of a document, oldest first: a change always after the changes it builds on,
/// and among changes whose predecessors are all listed, the earliest by its writer's clock
/// (then by hash). Every device lists the same history in the same order, whatever order the
/// changes arrived in; Automerge's own order is the order this device applied them.
pub(crate) fn history(doc: &mut AutoCommit) -> Vec<Change> {
    use std::collections::{BTreeSet, HashMap};

    use automerge::ChangeHash;
    let changes = doc.get_changes_meta(&[]);
    let index: HashMap<ChangeHash, usize> =
        changes.iter().enumerate().map(|(i, c)| (c.hash, i)).collect();
    // How many of each change's predecessors are not yet listed, and who waits on whom.
    let mut waiting_on: Vec<usize> = vec![0; changes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
    for (i, c) in changes.iter().enumerate() {
        for d in &c.deps {
            // A predecessor this document lacks cannot be listed; it holds nothing back.
            if let Some(&j) = index.get(d) {
                waiting_on[i] += 1;
                dependents[j].push(i);
            }
        }
    }
    let key = |i: usize| (changes[i].timestamp, changes[i].hash, i);
    let mut ready: BTreeSet<_> =
        (0..changes.len()).filter(|&i| waiting_on[i] == 0).map(key).collect();
    let mut out = Vec::with_capacity(changes.len());
    while let Some((_, _, i)) = ready.pop_first() {
        let c = &changes[i];
        out.push(Change {
            hash: c.hash.to_string(),
            device: DeviceKey::from_slice(c.actor.to_bytes()),
            time: c.timestamp,
            summary: c.message.as_deref().unwrap_or_default().to_string(),
        });
        for &j in &dependents[i] {
            waiting_on[j] -= 1;
            if waiting_on[j] == 0 {
                ready.insert(key(j));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::tests::{author, new_case, new_note};

    #[test]
    fn history_names_the_device_and_says_what_changed() {
        let a = author(3);
        let (mut d, _) = new_case(&a);
        add_note(
            &mut d,
            NoteId::random(),
            &new_note(NoteKind::Question, "Wie kent de huisarts?"),
            &a,
            5_000,
        )
        .unwrap();
        let h = history(&mut d);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].device, Some(a.device));
        assert!(h[1].summary.contains("question note"));
        assert_eq!(h[1].time, 5_000);
    }
}
