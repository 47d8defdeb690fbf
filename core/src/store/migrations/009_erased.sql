-- Version 9: documents erased here (a tombstone applied), by tag (a hash of the id: the id
-- itself is kept nowhere after erasure), kept for the window in which a stale copy must not
-- bring them back: every merge of one is refused.
CREATE TABLE erased (
    tag BLOB PRIMARY KEY,
    network_id BLOB NOT NULL,
    erased_at INTEGER NOT NULL,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
