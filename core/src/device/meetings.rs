//! Meetings: the façade's operations on meeting documents.

use super::*;

impl Device {
    /// Plans a meeting.
    pub fn create_meeting(&self, input: NewMeeting) -> Result<DocId, Error> {
        let meeting = input.parse()?;
        self.create(DocKind::Meeting, |d, id, a, now| {
            doc::create_meeting(d, id, &meeting, a, now, &self.randomness)
        })
    }

    /// Changes a meeting.
    pub fn update_meeting(&self, id: DocId, u: MeetingUpdate) -> Result<(), Error> {
        let change = u.parse()?;
        self.edit(id, DocKind::Meeting, |d, _, now| {
            Ok(doc::update_meeting(d, &change, now, &self.randomness)?)
        })?;
        Ok(())
    }

    /// Marks an agreement made in a meeting done or open.
    pub fn set_meeting_agreement_done(
        &self,
        id: DocId,
        agreement: ItemId,
        done: bool,
    ) -> Result<(), Error> {
        self.set_agreement_done_in(id, DocKind::Meeting, agreement, done)
    }

    /// Reads a meeting.
    pub fn meeting(&self, id: DocId) -> Result<Meeting, Error> {
        self.read(id, DocKind::Meeting, |d| Ok(doc::read_meeting(d)?))
    }
}
