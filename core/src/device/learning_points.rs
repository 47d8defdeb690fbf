//! Learning points: the façade's operations on learning point documents.

use super::*;

impl Device {
    /// Proposes a learning point.
    pub fn create_learning_point(&self, input: NewLearningPoint) -> Result<DocId, Error> {
        let lp = input.parse()?;
        self.create(DocKind::LearningPoint, |d, id, a, now| {
            doc::create_learning_point(d, id, &lp, a, now, &self.randomness)
        })
    }

    /// Changes a learning point.
    pub fn update_learning_point(&self, id: DocId, u: LearningPointUpdate) -> Result<(), Error> {
        let change = u.parse()?;
        self.edit(id, DocKind::LearningPoint, |d, _, now| {
            Ok(doc::update_learning_point(d, &change, now, &self.randomness)?)
        })?;
        Ok(())
    }

    /// Reads a learning point. A cited case that a redaction replaced is cited by its new id
    /// (for the erasure window); cited cases that were erased are listed in `erased_cases`.
    pub fn learning_point(&self, id: DocId) -> Result<LearningPoint, Error> {
        let mut lp = self.read(id, DocKind::LearningPoint, |d| Ok(doc::read_learning_point(d)?))?;
        let r = self.reader.lock();
        for c in &mut lp.cases {
            // A case redacted again was replaced again; a few steps at most.
            for _ in 0..16 {
                match store::replacement_of(&r, *c)? {
                    Some(new) => *c = new,
                    None => break,
                }
            }
            if store::is_erased(&r, *c)? {
                lp.erased_cases.push(*c);
            }
        }
        Ok(lp)
    }
}
