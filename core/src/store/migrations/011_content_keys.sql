-- Version 11: documents' content keys, kept out of the network documents (whose Automerge
-- history keeps every value for ever) so that erasing a document deletes its keys. By the
-- network's and the document's relay ids, each key by its id and the epoch whose network key
-- seals it (`sealed`: the key sealed under that epoch's key, bound to the document).
CREATE TABLE content_keys (
    network BLOB NOT NULL,
    doc BLOB NOT NULL,
    key_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (network, doc, key_id, epoch)
) WITHOUT ROWID;
-- Content keys a relay holds (carried in a blob this device pushed or pulled there): a blob
-- under a key the relay does not hold yet carries it.
CREATE TABLE relay_keys (
    relay BLOB NOT NULL,
    network BLOB NOT NULL,
    doc BLOB NOT NULL,
    key_id BLOB NOT NULL,
    PRIMARY KEY (relay, network, doc, key_id)
) WITHOUT ROWID;
-- Documents replaced here by a new history without redacted words (their tag, as `erased`
-- has it, and the new document), for the erasure window: a link to the old one (a learning
-- point's) leads to the new one.
CREATE TABLE replaced (
    tag BLOB PRIMARY KEY,
    by_doc BLOB NOT NULL,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
