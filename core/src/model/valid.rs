//! Parse, don't validate: each input an app gives to create or change a case, learning point or
//! meeting (a new document, a form's update, an item, notes) parses into a [`Valid`] value,
//! trimmed and normalised, that the document layer consumes as it is. Only this module can
//! make a `Valid`, so a function that takes one knows every check has passed, and no field is
//! copied between shapes. (Single values — a note's new text, a network or member name, a
//! display name, a search query — are checked where they are taken, with the same functions.)

use std::ops::Deref;

use super::{
    CAIMER_FIELDS, CaseItem, CaseUpdate, LearningPointUpdate, MeetingUpdate, NewCase,
    NewLearningPoint, NewMeeting, NewNote, ValidationError, at_most, date, required_short,
    required_text, short, tags, text,
};

/// An input that passed every check of its kind; see the module doc.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Valid<T>(T);

impl<T> Deref for Valid<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Most networks one document is shared with.
const MAX_NETWORKS: usize = 100;

/// A text kept as typed, if it is within bounds.
fn checked_text(field: &'static str, value: String) -> Result<String, ValidationError> {
    text(field, &value)?;
    Ok(value)
}

fn all_short(field: &'static str, values: &[String]) -> Result<Vec<String>, ValidationError> {
    values.iter().map(|v| required_short(field, v)).collect()
}

impl NewCase {
    /// The case as it will be written: subject trimmed, tags normalised, texts checked.
    pub(crate) fn parse(self) -> Result<Valid<NewCase>, ValidationError> {
        // Fields are checked in the order apps show them, so the first error names the first
        // field a worker must fix.
        let subject = required_short("subject", &self.subject)?;
        let tags = tags(&self.tags)?;
        let at_stake = checked_text("what is at stake", self.at_stake)?;
        let client_voice = checked_text("client's voice", self.client_voice)?;
        at_most("networks", &self.networks, MAX_NETWORKS)?;
        Ok(Valid(NewCase { subject, tags, at_stake, client_voice, networks: self.networks }))
    }
}

impl CaseUpdate {
    /// The fields given, each checked as on a new case; CAIMeR fields by their names.
    pub(crate) fn parse(self) -> Result<Valid<CaseUpdate>, ValidationError> {
        at_most("networks to share with", &self.share_with, MAX_NETWORKS)?;
        at_most("networks to unshare from", &self.unshare_from, MAX_NETWORKS)?;
        if let Some(n) = self.share_with.iter().find(|n| self.unshare_from.contains(n)) {
            return Err(ValidationError::Invalid {
                field: "networks to unshare from",
                reason: format!("network {n} is both shared with and unshared from"),
            });
        }
        Ok(Valid(CaseUpdate {
            subject: self.subject.map(|s| required_short("subject", &s)).transpose()?,
            status: self.status,
            add_tags: tags(&self.add_tags)?,
            remove_tags: tags(&self.remove_tags)?,
            at_stake: self.at_stake.map(|t| checked_text("what is at stake", t)).transpose()?,
            client_voice: self
                .client_voice
                .map(|t| checked_text("client's voice", t))
                .transpose()?,
            caimer: self
                .caimer
                .into_iter()
                .map(|(f, t)| {
                    if !CAIMER_FIELDS.contains(&f.as_str()) {
                        return Err(ValidationError::Invalid {
                            field: "CAIMeR field",
                            reason: format!("`{f}` is not one of {}", CAIMER_FIELDS.join(", ")),
                        });
                    }
                    Ok((f, checked_text("CAIMeR text", t)?))
                })
                .collect::<Result<_, _>>()?,
            consent: self
                .consent
                .map(|mut c| -> Result<_, ValidationError> {
                    c.scope = short("consent scope", &c.scope)?;
                    c.date = c.date.map(|d| date("consent date", &d)).transpose()?;
                    Ok(c)
                })
                .transpose()?,
            share_with: self.share_with,
            unshare_from: self.unshare_from,
        }))
    }
}

impl CaseItem {
    /// The item with its texts trimmed and its dates checked.
    pub(crate) fn parse(self) -> Result<Valid<CaseItem>, ValidationError> {
        Ok(Valid(match self {
            CaseItem::Opgave { text } => {
                CaseItem::Opgave { text: required_short("opgave", &text)? }
            }
            CaseItem::TurningPoint { when, description } => CaseItem::TurningPoint {
                when: short("turning point date", &when)?,
                description: required_short("turning point", &description)?,
            },
            CaseItem::Actor { name, relation } => CaseItem::Actor {
                name: required_short("actor name", &name)?,
                relation: short("relation", &relation)?,
            },
            CaseItem::Agreement { text, owner, due } => CaseItem::Agreement {
                text: required_short("agreement", &text)?,
                owner: short("agreement owner", &owner)?,
                due: due.map(|d| date("due date", &d)).transpose()?,
            },
        }))
    }
}

impl NewNote {
    /// A note with text in it, within bounds (kept as typed).
    pub(crate) fn parse(self) -> Result<Valid<NewNote>, ValidationError> {
        required_text("note text", &self.text)?;
        Ok(Valid(self))
    }

    /// A batch of notes (an import).
    pub(crate) fn parse_all(notes: Vec<NewNote>) -> Result<Vec<Valid<NewNote>>, ValidationError> {
        at_most("notes", &notes, 10_000)?;
        notes.into_iter().map(NewNote::parse).collect()
    }
}

impl NewLearningPoint {
    /// The learning point as it will be written.
    pub(crate) fn parse(self) -> Result<Valid<NewLearningPoint>, ValidationError> {
        let title = required_short("title", &self.title)?;
        let insight = checked_text("insight", self.insight)?;
        at_most("cases", &self.cases, 1_000)?;
        at_most("sources", &self.sources, 100)?;
        Ok(Valid(NewLearningPoint {
            title,
            insight,
            cases: self.cases,
            sources: all_short("source", &self.sources)?,
            tags: tags(&self.tags)?,
            networks: self.networks,
        }))
    }
}

impl LearningPointUpdate {
    /// The fields given, each checked as on a new learning point.
    pub(crate) fn parse(self) -> Result<Valid<LearningPointUpdate>, ValidationError> {
        Ok(Valid(LearningPointUpdate {
            title: self.title.map(|t| required_short("title", &t)).transpose()?,
            insight: self.insight.map(|t| checked_text("insight", t)).transpose()?,
            status: self.status,
            meeting: self.meeting,
            add_cases: self.add_cases,
            add_sources: all_short("source", &self.add_sources)?,
            add_perspectives: self
                .add_perspectives
                .into_iter()
                .map(|(k, who, text)| {
                    let who = short("perspective holder", &who)?;
                    required_text("perspective", &text)?;
                    Ok((k, who, text))
                })
                .collect::<Result<_, ValidationError>>()?,
            add_tags: tags(&self.add_tags)?,
        }))
    }
}

impl NewMeeting {
    /// The meeting as it will be written.
    pub(crate) fn parse(self) -> Result<Valid<NewMeeting>, ValidationError> {
        let date = date("meeting date", &self.date)?;
        let place = short("place", &self.place)?;
        at_most("participants", &self.participants, 200)?;
        at_most("agenda", &self.agenda, 200)?;
        Ok(Valid(NewMeeting {
            network: self.network,
            date,
            place,
            participants: all_short("participant", &self.participants)?,
            agenda: self.agenda,
        }))
    }
}

impl MeetingUpdate {
    /// The fields given, each checked as on a new meeting.
    pub(crate) fn parse(self) -> Result<Valid<MeetingUpdate>, ValidationError> {
        Ok(Valid(MeetingUpdate {
            place: self.place.map(|p| short("place", &p)).transpose()?,
            minutes: self.minutes.map(|m| checked_text("minutes", m)).transpose()?,
            add_participants: all_short("participant", &self.add_participants)?,
            add_agenda: self.add_agenda,
            add_learning_points: self.add_learning_points,
            add_agreements: self
                .add_agreements
                .into_iter()
                .map(|(t, o, d)| {
                    Ok((
                        required_short("agreement", &t)?,
                        short("agreement owner", &o)?,
                        d.map(|d| date("due date", &d)).transpose()?,
                    ))
                })
                .collect::<Result<_, ValidationError>>()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Consent, MAX_SHORT, NoteKind};

    #[test]
    fn parsing_normalises_what_it_keeps_and_names_the_field_it_refuses() {
        let case = NewCase {
            subject: "  Familie K. ".into(),
            tags: vec!["Wonen".into(), "wonen".into()],
            ..NewCase::default()
        }
        .parse()
        .expect("valid");
        assert_eq!(
            (case.subject.as_str(), case.tags.as_slice()),
            ("Familie K.", &["wonen".into()][..])
        );
        assert_eq!(
            NewCase { subject: " ".into(), ..NewCase::default() }.parse(),
            Err(ValidationError::Required("subject"))
        );
        let e = CaseUpdate { caimer: vec![("mood".into(), "x".into())], ..CaseUpdate::default() }
            .parse();
        assert!(matches!(e, Err(ValidationError::Invalid { field: "CAIMeR field", .. })));
        let e = CaseUpdate {
            consent: Some(Consent { date: Some("2026-02-30".into()), ..Consent::default() }),
            ..CaseUpdate::default()
        }
        .parse();
        assert!(matches!(e, Err(ValidationError::Invalid { field: "consent date", .. })));
        assert!(matches!(
            CaseItem::Actor { name: "x".repeat(MAX_SHORT + 1), relation: String::new() }.parse(),
            Err(ValidationError::TooLong { field: "actor name", .. })
        ));
        assert!(
            NewNote::parse_all(vec![NewNote { kind: NoteKind::Question, text: "\n".into() }])
                .is_err()
        );
        let m = MeetingUpdate {
            add_agreements: vec![("  Bellen ".into(), " Anna ".into(), Some("2026-12-01".into()))],
            ..MeetingUpdate::default()
        }
        .parse()
        .expect("valid");
        assert_eq!(
            m.add_agreements,
            [("Bellen".to_string(), "Anna".to_string(), Some("2026-12-01".to_string()))]
        );
    }
}
