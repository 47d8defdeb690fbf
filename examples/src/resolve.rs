//! Ids from the command line: a full id, or a unique prefix of one (at least 4 characters), the
//! way git takes abbreviated commit hashes. Human output shows 8 characters.
//!
//! A full-length string that does not parse is a typo (the base58check checksum caught it):
//! invalid input. A prefix that names nothing: not found. A prefix naming several: invalid.

use nabij_core::{Device, DocId, ItemId, MemberId, NoteId, ids::DeviceKey, model::DocKind};

use crate::error::{CliError, Result};

/// Shortest prefix accepted.
const MIN_PREFIX: usize = 4;
/// Longer than this is taken as a full id (they are 27 or 28 characters).
const MAX_PREFIX: usize = 20;

const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

pub(crate) fn kind_label(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Case => "case",
        DocKind::LearningPoint => "learning point",
        DocKind::Meeting => "meeting",
        DocKind::Network => "network",
    }
}

fn looks_like_prefix(s: &str) -> bool {
    (MIN_PREFIX..=MAX_PREFIX).contains(&s.chars().count()) && s.chars().all(|c| BASE58.contains(c))
}

/// Picks the one candidate whose display starts with `input`.
fn by_prefix<T: Copy + std::fmt::Display>(
    input: &str,
    what: &str,
    scope: &str,
    candidates: impl IntoIterator<Item = T>,
    parse_error: impl FnOnce() -> CliError,
) -> Result<T> {
    let base58 = !input.is_empty() && input.chars().all(|c| BASE58.contains(c));
    if base58 && input.chars().count() < MIN_PREFIX {
        return Err(CliError::invalid(format!(
            "`{input}` is too short for a {what} id: give at least {MIN_PREFIX} characters"
        )));
    }
    if !looks_like_prefix(input) {
        return Err(parse_error());
    }
    let matches: Vec<T> =
        candidates.into_iter().filter(|c| c.to_string().starts_with(input)).collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => {
            Err(CliError::not_found(format!("no {what}{scope} has an id starting with `{input}`")))
        }
        many => Err(CliError::invalid(format!(
            "`{input}` is ambiguous: {} {what}s{scope} have ids starting with it; \
             give more characters",
            many.len()
        ))),
    }
}

/// A document id of the given kind (any kind if `None`).
pub(crate) fn doc(dev: &Device, input: &str, kind: Option<DocKind>) -> Result<DocId> {
    let input = input.trim();
    let err = match input.parse::<DocId>() {
        Ok(id) => return Ok(id),
        Err(e) => e,
    };
    let what = kind.map_or("document", kind_label);
    let ids = dev.document_ids()?;
    by_prefix(
        input,
        what,
        "",
        ids.into_iter().filter(|(_, k)| kind.is_none_or(|want| *k == want)).map(|(id, _)| id),
        || err.into(),
    )
}

pub(crate) fn case(dev: &Device, input: &str) -> Result<DocId> {
    doc(dev, input, Some(DocKind::Case))
}

pub(crate) fn learning_point(dev: &Device, input: &str) -> Result<DocId> {
    doc(dev, input, Some(DocKind::LearningPoint))
}

pub(crate) fn meeting(dev: &Device, input: &str) -> Result<DocId> {
    doc(dev, input, Some(DocKind::Meeting))
}

pub(crate) fn network(dev: &Device, input: &str) -> Result<DocId> {
    doc(dev, input, Some(DocKind::Network))
}

/// A member of a network: by id, id prefix, or name (case-insensitive, if only one has it).
pub(crate) fn member(dev: &Device, network: DocId, input: &str) -> Result<MemberId> {
    let input = input.trim();
    let n = dev.network(network)?;
    let named: Vec<MemberId> =
        n.members.iter().filter(|m| m.name.eq_ignore_ascii_case(input)).map(|m| m.id).collect();
    if let [one] = named.as_slice() {
        return Ok(*one);
    }
    let err = match input.parse::<MemberId>() {
        Ok(id) => return Ok(id),
        Err(e) => e,
    };
    by_prefix(input, "member", " of this network", n.members.iter().map(|m| m.id), || err.into())
}

/// A device of a network's members: by key or key prefix.
pub(crate) fn device(dev: &Device, network: DocId, input: &str) -> Result<DeviceKey> {
    let input = input.trim();
    let err = match input.parse::<DeviceKey>() {
        Ok(key) => return Ok(key),
        Err(e) => e,
    };
    let n = dev.network(network)?;
    let devices = n.members.iter().flat_map(|m| m.devices.iter().copied());
    by_prefix(input, "device", " of this network", devices, || err.into())
}

/// Several ids of one kind.
pub(crate) fn docs(dev: &Device, inputs: &[String], kind: DocKind) -> Result<Vec<DocId>> {
    inputs.iter().map(|i| doc(dev, i, Some(kind))).collect()
}

/// A note of a case.
pub(crate) fn note(dev: &Device, case: DocId, input: &str) -> Result<NoteId> {
    let input = input.trim();
    let err = match input.parse::<NoteId>() {
        Ok(id) => return Ok(id),
        Err(e) => e,
    };
    let notes = dev.case_timeline(case)?;
    by_prefix(input, "note", " in this case", notes.iter().map(|n| n.id), || err.into())
}

/// An agreement of a case.
pub(crate) fn agreement(dev: &Device, case: DocId, input: &str) -> Result<ItemId> {
    let input = input.trim();
    let err = match input.parse::<ItemId>() {
        Ok(id) => return Ok(id),
        Err(e) => e,
    };
    let c = dev.case(case)?;
    by_prefix(input, "agreement", " in this case", c.agreements.iter().map(|a| a.id), || err.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_base58_and_short() {
        assert!(looks_like_prefix("7Hq3"));
        assert!(!looks_like_prefix("7Hq"));
        assert!(!looks_like_prefix("7Hq0")); // 0 is not base58
        assert!(!looks_like_prefix("not-an-id"));
        let full = DocId::random().to_string();
        assert!(full.len() > MAX_PREFIX);
    }
}
