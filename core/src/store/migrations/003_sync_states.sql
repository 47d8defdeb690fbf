-- Version 3: Automerge sync states per peer and document, so a cut session resumes.
CREATE TABLE sync_states (
    peer BLOB NOT NULL,
    doc_id BLOB NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
) WITHOUT ROWID;
