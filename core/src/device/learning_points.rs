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

    /// Reads a learning point. Cited cases that were erased are listed in `erased_cases`.
    pub fn learning_point(&self, id: DocId) -> Result<LearningPoint, Error> {
        let mut lp = self.read(id, DocKind::LearningPoint, |d| Ok(doc::read_learning_point(d)?))?;
        let r = self.reader.lock();
        for c in &lp.cases {
            if store::is_erased(&r, *c)? {
                lp.erased_cases.push(*c);
            }
        }
        Ok(lp)
    }
}
