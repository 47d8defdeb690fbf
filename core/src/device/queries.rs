//! Queries for the app's screens (derived tables only, through the reader connection), and a
//! document's history.

use super::*;

impl Device {
    /// Cases, newest activity first (the case list screen).
    pub fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, Error> {
        Ok(store::list_cases(&self.reader.lock(), filter)?)
    }

    /// A case's notes, oldest first (the case screen).
    pub fn case_timeline(&self, case: DocId) -> Result<Vec<Note>, Error> {
        let r = self.reader.lock();
        if store::case_summary(&r, case)?.is_none() {
            return Err(Error::NotFound { kind: "case", id: case.to_string() });
        }
        Ok(store::timeline(&r, case)?)
    }

    /// Learning points citing a case.
    pub fn learning_points_citing(&self, case: DocId) -> Result<Vec<LearningPointSummary>, Error> {
        Ok(store::learning_points_citing(&self.reader.lock(), case)?)
    }

    /// Learning points, optionally by status or tag.
    pub fn list_learning_points(
        &self,
        status: Option<model::LearningPointStatus>,
        tag: Option<&str>,
    ) -> Result<Vec<LearningPointSummary>, Error> {
        Ok(store::list_learning_points(&self.reader.lock(), status, tag)?)
    }

    /// Meetings, newest first.
    pub fn list_meetings(&self) -> Result<Vec<MeetingSummary>, Error> {
        Ok(store::list_meetings(&self.reader.lock())?)
    }

    /// Everything discussed in a meeting.
    pub fn meeting_contents(&self, id: DocId) -> Result<MeetingContents, Error> {
        store::meeting_contents(&self.reader.lock(), id)?
            .ok_or(Error::NotFound { kind: "meeting", id: id.to_string() })
    }

    /// Networks on this device.
    pub fn list_networks(&self) -> Result<Vec<NetworkSummary>, Error> {
        Ok(store::list_networks(&self.reader.lock())?)
    }

    /// Ranked full-text search over cases, notes, learning points and meetings. Any text is a
    /// valid query. Every word must match; words fold (`odegaard` finds `Ødegaard`); the last
    /// word also matches as a prefix while being typed (not after a space, nor when typed with
    /// a stress accent, as in `één`).
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<SearchHit>, Error> {
        if query.len() > 1_000 {
            return Err(
                ValidationError::TooLong { field: "query", len: query.len(), max: 1_000 }.into()
            );
        }
        Ok(store::search(&self.reader.lock(), query, limit.clamp(1, 500))?)
    }

    /// A document's history, oldest first: who (device and member name), when, what.
    pub fn history(&self, id: DocId) -> Result<Vec<HistoryEntry>, Error> {
        let kind = self.kind_of(id)?;
        let changes = self.read(id, kind, |d| Ok(doc::history(d)))?;
        let r = self.reader.lock();
        let me = self.device_key();
        let mut names: HashMap<DeviceKey, Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            let author = match c.device {
                Some(d) if d == me => Some(self.display_name()),
                Some(d) => match names.get(&d) {
                    Some(n) => n.clone(),
                    None => {
                        let n = store::member_name_for_device(&r, &d)?;
                        names.insert(d, n.clone());
                        n
                    }
                },
                None => None,
            };
            out.push(HistoryEntry {
                hash: c.hash,
                device: c.device,
                author,
                time: c.time,
                summary: c.summary,
            });
        }
        Ok(out)
    }

    /// The kind of a stored document.
    pub fn kind_of(&self, id: DocId) -> Result<DocKind, Error> {
        Ok(store::doc_state(&self.reader.lock(), id)?
            .ok_or(Error::NotFound { kind: "document", id: id.to_string() })?
            .kind)
    }

    /// Every document on this device.
    pub fn document_ids(&self) -> Result<Vec<(DocId, DocKind)>, Error> {
        Ok(store::document_ids(&self.reader.lock())?)
    }
}
