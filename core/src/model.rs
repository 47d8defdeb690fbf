//! Domain types: cases and their notes, learning points, meetings and networks, as the app
//! sees them, plus the inputs that create and change them and their validation.
//!
//! Owns what a valid value is (required fields, sizes, ids, dates): `valid` parses inputs into
//! the values the document layer takes; `screens` holds the read models of list, detail and
//! search screens. Knows nothing of Automerge or SQLite: `doc` maps these types into
//! documents, `store` into index rows.

use std::fmt;

use serde::Serialize;

use crate::ids::{DeviceKey, DocId, ItemId, MemberId, NoteId};

mod screens;
mod valid;

pub use screens::*;

pub use crate::membership::{Reason, Role};
pub(crate) use valid::Valid;

/// Milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// Longest subject label, title, place, name or short item text, in characters.
pub const MAX_SHORT: usize = 200;
/// Longest free text (a note, an insight, minutes), in bytes.
pub const MAX_TEXT: usize = 100 * 1024;
/// Longest tag, in characters.
pub const MAX_TAG: usize = 64;
/// Most tags on one case or learning point.
pub const MAX_TAGS: usize = 50;

/// Why an input was refused. Nothing is written when validation fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A required field is empty.
    #[error("{0} is required")]
    Required(&'static str),
    /// A field is longer than allowed.
    #[error("{field} is too long ({len} > {max})")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Too many entries in a list.
    #[error("too many {field} ({len} > {max})")]
    TooMany {
        /// The field.
        field: &'static str,
        /// The count given.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A value that is not one of the allowed ones, or not in the right format.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An id that does not parse.
    #[error(transparent)]
    Id(#[from] crate::ids::ParseIdError),
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The stable name stored in documents and indexes.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            /// Parses the stable name.
            pub fn parse(s: &str) -> Result<Self, ValidationError> {
                match s { $($s => Ok($name::$variant),)+
                    other => Err(ValidationError::Invalid {
                        field: $field,
                        reason: format!("`{other}` is not one of: {}", [$($s),+].join(", ")),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

string_enum!(
    /// What a document holds.
    DocKind, "document kind" {
        /// A case and its notes.
        Case = "case",
        /// A learning point.
        LearningPoint = "learning_point",
        /// A network meeting.
        Meeting = "meeting",
        /// A neighbourhood network: its name and members.
        Network = "network",
    }
);
string_enum!(
    /// Whether a case is being worked on.
    CaseStatus, "case status" {
        /// Being worked on.
        Open = "open",
        /// Closed.
        Closed = "closed",
    }
);
string_enum!(
    /// What a note records.
    NoteKind, "note kind" {
        /// An observation or a contact with the person.
        Observation = "observation",
        /// A reflection (in or on action).
        Reflection = "reflection",
        /// An agreement made.
        Agreement = "agreement",
        /// A question to put to the network.
        Question = "question",
    }
);
string_enum!(
    /// Where a learning point stands.
    LearningPointStatus, "learning point status" {
        /// Proposed, not yet discussed.
        Proposed = "proposed",
        /// Discussed in a meeting.
        Discussed = "discussed",
        /// Adopted into practice.
        Adopted = "adopted",
        /// Set aside.
        SetAside = "set_aside",
    }
);
string_enum!(
    /// Whose view a perspective on a learning point gives.
    PerspectiveKind, "perspective kind" {
        /// The client's own voice and experiential knowledge.
        ClientVoice = "client_voice",
        /// A professional's view.
        Professional = "professional",
        /// A dissenting view, kept against tunnel vision.
        Dissent = "dissent",
    }
);
string_enum!(
    /// Whether the person agreed to their case being shared.
    ConsentStatus, "consent status" {
        /// Not (yet) asked or recorded.
        Unknown = "unknown",
        /// Given, for the scope recorded.
        Given = "given",
        /// Withdrawn.
        Withdrawn = "withdrawn",
    }
);

/// Who wrote something: a member of a network, on one of their devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Author {
    /// The member (person).
    pub member: MemberId,
    /// The member's display name when they wrote it.
    pub name: String,
    /// The device it was written on.
    pub device: DeviceKey,
}

/// Several values written concurrently to one field: all of them, so the app can show the
/// conflict instead of one silently winning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The field, as a path (`subject`, `consent.status`).
    pub field: String,
    /// Every concurrent value; the first is the one shown as current.
    pub values: Vec<String>,
}

/// An agreement (afspraak): what, who, by when, done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// Its id inside the document.
    pub id: ItemId,
    /// What was agreed.
    pub text: String,
    /// Who acts on it.
    pub owner: String,
    /// Due date, `YYYY-MM-DD`.
    pub due: Option<String>,
    /// Whether it is done.
    pub done: bool,
}

/// A short text item with an id: an opgave, or a source of a learning point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextItem {
    /// Its id inside the document.
    pub id: ItemId,
    /// The text.
    pub text: String,
}

/// A turning point (keerpunt) in the person's life story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TurningPoint {
    /// Its id inside the document.
    pub id: ItemId,
    /// When, as the worker knows it (a date, a year, "after the divorce").
    pub when: String,
    /// What happened.
    pub description: String,
}

/// Someone in the network around the person: family, informal network, care providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseActor {
    /// Its id inside the document.
    pub id: ItemId,
    /// Name or role label.
    pub name: String,
    /// Relation to the person (mother, GP, housing association).
    pub relation: String,
}

/// The CAIMeR analysis of a case (Blom & Morén).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Caimer {
    /// Context.
    pub context: String,
    /// Actors.
    pub actors: String,
    /// Interventions.
    pub interventions: String,
    /// Mechanisms.
    pub mechanisms: String,
    /// Results: short/long term, intended/unintended, wanted/unwanted.
    pub results: String,
}

/// The CAIMeR fields of a case, by name.
pub const CAIMER_FIELDS: [&str; 5] =
    ["context", "actors", "interventions", "mechanisms", "results"];

/// Whether and with whom the person agreed their case may be shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consent {
    /// Given, withdrawn or unknown.
    pub status: ConsentStatus,
    /// With whom / for what (e.g. "wijknetwerk Noord, casusbespreking").
    pub scope: String,
    /// When it was given or withdrawn, `YYYY-MM-DD`.
    pub date: Option<String>,
}

impl Default for Consent {
    fn default() -> Self {
        Self { status: ConsentStatus::Unknown, scope: String::new(), date: None }
    }
}

/// A case (casus), without its notes (see [`Note`] and the case timeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    /// The case document.
    pub id: DocId,
    /// Pseudonymous label for the person or household.
    pub subject: String,
    /// Open or closed.
    pub status: CaseStatus,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// What is at stake for the person.
    pub at_stake: String,
    /// What the person is struggling with now.
    pub opgaven: Vec<TextItem>,
    /// Turning points in their life story.
    pub turning_points: Vec<TurningPoint>,
    /// The person's own words, kept apart from the worker's interpretation.
    pub client_voice: String,
    /// The network around the person.
    pub actors: Vec<CaseActor>,
    /// CAIMeR analysis.
    pub caimer: Caimer,
    /// Agreements and actions.
    pub agreements: Vec<Agreement>,
    /// Consent to share.
    pub consent: Consent,
    /// Networks the case is shared with.
    pub networks: Vec<DocId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: Author,
    /// Last activity on the case or its notes.
    pub updated_at: Timestamp,
    /// Fields with concurrent values.
    pub conflicts: Vec<Conflict>,
}

/// A note (casusnotitie) in a case's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// The note.
    pub id: NoteId,
    /// The case it belongs to.
    pub case_id: DocId,
    /// Who wrote it.
    pub author: Author,
    /// When it was written.
    pub created_at: Timestamp,
    /// Last edit of its text.
    pub edited_at: Timestamp,
    /// What it records.
    pub kind: NoteKind,
    /// Its text (an Automerge text: concurrent edits all survive).
    pub text: String,
}

/// A perspective considered in a learning point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Perspective {
    /// Its id inside the document.
    pub id: ItemId,
    /// Whose view.
    pub kind: PerspectiveKind,
    /// Who holds it (a role, never a client's real name).
    pub who: String,
    /// The view.
    pub text: String,
}

/// A learning point (leerpunt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LearningPoint {
    /// The learning point document.
    pub id: DocId,
    /// Title.
    pub title: String,
    /// The insight.
    pub insight: String,
    /// Cases it came from.
    pub cases: Vec<DocId>,
    /// Those of `cases` that were erased: the insight stays, the link reads "erased".
    pub erased_cases: Vec<DocId>,
    /// Literature, guidelines.
    pub sources: Vec<TextItem>,
    /// Perspectives considered (client's voice, dissent).
    pub perspectives: Vec<Perspective>,
    /// Where it stands.
    pub status: LearningPointStatus,
    /// The meeting where it was discussed.
    pub meeting: Option<DocId>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Networks it is shared with.
    pub networks: Vec<DocId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: Author,
    /// Last change.
    pub updated_at: Timestamp,
    /// Fields with concurrent values.
    pub conflicts: Vec<Conflict>,
}

/// A network meeting (netwerkbijeenkomst, casusbespreking, intervisie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meeting {
    /// The meeting document.
    pub id: DocId,
    /// The network that meets.
    pub network: Option<DocId>,
    /// Date, `YYYY-MM-DD`.
    pub date: String,
    /// Place.
    pub place: String,
    /// Who took part (names or roles).
    pub participants: Vec<String>,
    /// Cases on the agenda, in agenda order.
    pub agenda: Vec<DocId>,
    /// Minutes.
    pub minutes: String,
    /// Learning points captured.
    pub learning_points: Vec<DocId>,
    /// Actions agreed.
    pub agreements: Vec<Agreement>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: Author,
    /// Last change.
    pub updated_at: Timestamp,
    /// Fields with concurrent values.
    pub conflicts: Vec<Conflict>,
}

/// A member of a network and their devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The member.
    pub id: MemberId,
    /// Display name.
    pub name: String,
    /// What they may do in the network.
    pub role: Role,
    /// Their devices' public keys.
    pub devices: Vec<DeviceKey>,
}

/// A device removed from a network (alone, or with its member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedDevice {
    /// The device's key.
    pub device: DeviceKey,
    /// Why it was removed.
    pub reason: Reason,
}

/// A neighbourhood network (wijknetwerk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    /// The network document.
    pub id: DocId,
    /// Name.
    pub name: String,
    /// Members, in the order they joined (as the signed membership has them).
    pub members: Vec<Member>,
    /// Devices removed from the network.
    pub removed: Vec<RemovedDevice>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Input for a new case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewCase {
    /// Pseudonymous label (required).
    pub subject: String,
    /// Tags.
    pub tags: Vec<String>,
    /// What is at stake.
    pub at_stake: String,
    /// The person's own words.
    pub client_voice: String,
    /// Networks to share it with.
    pub networks: Vec<DocId>,
}

/// A change to a case's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseUpdate {
    /// New subject label.
    pub subject: Option<String>,
    /// New status.
    pub status: Option<CaseStatus>,
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// New text for what is at stake (merged into the text by a diff).
    pub at_stake: Option<String>,
    /// New text for the client's voice.
    pub client_voice: Option<String>,
    /// New CAIMeR texts, by field name (see [`CAIMER_FIELDS`]).
    pub caimer: Vec<(String, String)>,
    /// New consent.
    pub consent: Option<Consent>,
    /// Networks to share with (refused while consent is withdrawn).
    pub share_with: Vec<DocId>,
    /// Networks to stop sharing with: their members' copies are deleted at their next sync
    /// (consent narrowed). Withdrawing consent unshares from every network.
    pub unshare_from: Vec<DocId>,
}

/// An item to add to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseItem {
    /// An opgave.
    Opgave {
        /// The text.
        text: String,
    },
    /// A turning point.
    TurningPoint {
        /// When.
        when: String,
        /// What.
        description: String,
    },
    /// Someone around the person.
    Actor {
        /// Name or role.
        name: String,
        /// Relation.
        relation: String,
    },
    /// An agreement.
    Agreement {
        /// What.
        text: String,
        /// Who.
        owner: String,
        /// Due date.
        due: Option<String>,
    },
}

/// Input for a new note.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNote {
    /// What it records.
    pub kind: NoteKind,
    /// The text (required).
    pub text: String,
}

/// Input for a new learning point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewLearningPoint {
    /// Title (required).
    pub title: String,
    /// The insight.
    pub insight: String,
    /// Cases it came from.
    pub cases: Vec<DocId>,
    /// Sources.
    pub sources: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Networks to share it with.
    pub networks: Vec<DocId>,
}

/// A change to a learning point; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearningPointUpdate {
    /// New title.
    pub title: Option<String>,
    /// New insight text.
    pub insight: Option<String>,
    /// New status.
    pub status: Option<LearningPointStatus>,
    /// The meeting where it was discussed.
    pub meeting: Option<DocId>,
    /// Cases to link.
    pub add_cases: Vec<DocId>,
    /// Sources to add.
    pub add_sources: Vec<String>,
    /// Perspectives to add: kind, who, text.
    pub add_perspectives: Vec<(PerspectiveKind, String, String)>,
    /// Tags to add.
    pub add_tags: Vec<String>,
}

/// Input for a new meeting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMeeting {
    /// The network that meets.
    pub network: Option<DocId>,
    /// Date, `YYYY-MM-DD` (required).
    pub date: String,
    /// Place.
    pub place: String,
    /// Participants.
    pub participants: Vec<String>,
    /// Cases on the agenda.
    pub agenda: Vec<DocId>,
}

/// A change to a meeting; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeetingUpdate {
    /// New place.
    pub place: Option<String>,
    /// New minutes text.
    pub minutes: Option<String>,
    /// Participants to add.
    pub add_participants: Vec<String>,
    /// Cases to add to the agenda.
    pub add_agenda: Vec<DocId>,
    /// Learning points captured.
    pub add_learning_points: Vec<DocId>,
    /// Agreements made: text, owner, due.
    pub add_agreements: Vec<(String, String, Option<String>)>,
}

// ---------------------------------------------------------------------------------------------
// Validation

/// A required short field: trimmed, non-empty, at most [`MAX_SHORT`] characters.
pub fn required_short(field: &'static str, value: &str) -> Result<String, ValidationError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ValidationError::Required(field));
    }
    short(field, v)
}

/// An optional short field: trimmed, at most [`MAX_SHORT`] characters.
pub fn short(field: &'static str, value: &str) -> Result<String, ValidationError> {
    let v = value.trim();
    let len = v.chars().count();
    if len > MAX_SHORT {
        return Err(ValidationError::TooLong { field, len, max: MAX_SHORT });
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(ValidationError::Invalid {
            field,
            reason: "contains control characters".into(),
        });
    }
    Ok(v.to_string())
}

/// A free text: at most [`MAX_TEXT`] bytes; kept as typed (leading spaces and newlines matter).
pub fn text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_TEXT {
        return Err(ValidationError::TooLong { field, len: value.len(), max: MAX_TEXT });
    }
    if value.contains('\0') {
        return Err(ValidationError::Invalid { field, reason: "contains a NUL character".into() });
    }
    Ok(())
}

/// A required free text: not blank, at most [`MAX_TEXT`] bytes.
pub fn required_text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Required(field));
    }
    text(field, value)
}

/// Tags: lower-cased, trimmed, non-empty, at most [`MAX_TAG`] characters and [`MAX_TAGS`] tags.
pub fn tags(values: &[String]) -> Result<Vec<String>, ValidationError> {
    if values.len() > MAX_TAGS {
        return Err(ValidationError::TooMany { field: "tags", len: values.len(), max: MAX_TAGS });
    }
    let mut out = Vec::with_capacity(values.len());
    for t in values {
        let t = t.trim().to_lowercase();
        if t.is_empty() {
            return Err(ValidationError::Required("tag"));
        }
        let len = t.chars().count();
        if len > MAX_TAG {
            return Err(ValidationError::TooLong { field: "tag", len, max: MAX_TAG });
        }
        if t.chars().any(|c| c.is_control()) {
            return Err(ValidationError::Invalid {
                field: "tag",
                reason: "contains control characters".into(),
            });
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A calendar date `YYYY-MM-DD` with a real month and day.
pub fn date(field: &'static str, value: &str) -> Result<String, ValidationError> {
    let v = value.trim();
    let bad = |reason: &str| ValidationError::Invalid { field, reason: format!("`{v}`: {reason}") };
    let parts: Vec<&str> = v.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad("expected YYYY-MM-DD"));
    }
    let num = |s: &str| {
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected YYYY-MM-DD"));
        }
        s.parse::<u32>().map_err(|_| bad("expected YYYY-MM-DD"))
    };
    let (y, m, d) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad("no such month")),
    };
    if d == 0 || d > days {
        return Err(bad("no such day"));
    }
    Ok(v.to_string())
}

/// At most `max` entries.
pub fn at_most<T>(field: &'static str, values: &[T], max: usize) -> Result<(), ValidationError> {
    if values.len() > max {
        return Err(ValidationError::TooMany { field, len: values.len(), max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_refuses_bad_input_with_the_field_named() {
        assert_eq!(required_short("subject", "  "), Err(ValidationError::Required("subject")));
        assert!(matches!(
            required_short("subject", &"x".repeat(MAX_SHORT + 1)),
            Err(ValidationError::TooLong { field: "subject", .. })
        ));
        assert!(matches!(short("place", "a\u{7}b"), Err(ValidationError::Invalid { .. })));
        assert!(matches!(
            text("text", &"x".repeat(MAX_TEXT + 1)),
            Err(ValidationError::TooLong { .. })
        ));
        assert_eq!(required_text("text", "\n \t"), Err(ValidationError::Required("text")));
        assert_eq!(
            tags(&["Wonen".into(), " wonen ".into(), "werk".into()]),
            Ok(vec!["werk".into(), "wonen".into()])
        );
        assert!(matches!(
            tags(&vec!["t".to_string(); MAX_TAGS + 1]),
            Err(ValidationError::TooMany { .. })
        ));
        assert_eq!(date("date", "2024-02-29"), Ok("2024-02-29".into()));
        assert!(date("date", "2023-02-29").is_err());
        assert!(date("date", "2023-13-01").is_err());
        assert!(date("date", "1-1-2023").is_err());
        assert!(date("date", "+024-01-01").is_err());
        assert_eq!(CaseStatus::parse("closed"), Ok(CaseStatus::Closed));
        assert!(NoteKind::parse("gossip").is_err());
    }
}
