-- The current schema (version 3), for a fresh store. A test checks that upgrading a version-1
-- store by the numbered migrations gives exactly this.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- One row per Automerge document. `heads` is the concatenated 32-byte change hashes persisted.
CREATE TABLE documents (
    doc_id BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    heads BLOB NOT NULL,
    snapshot_bytes INTEGER NOT NULL,
    incremental_bytes INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    next_seq INTEGER NOT NULL
) WITHOUT ROWID;

-- A snapshot (seq of the compaction) followed by incremental chunks, in seq order.
CREATE TABLE doc_chunks (
    doc_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    snapshot INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
);

CREATE TABLE cases (
    doc_id BLOB PRIMARY KEY,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_activity INTEGER NOT NULL,
    has_conflicts INTEGER NOT NULL
);
CREATE INDEX cases_by_activity ON cases (last_activity DESC, doc_id);
CREATE INDEX cases_by_status ON cases (status, last_activity DESC);

CREATE TABLE case_tags (
    tag TEXT NOT NULL,
    case_id BLOB NOT NULL,
    PRIMARY KEY (tag, case_id)
) WITHOUT ROWID;
CREATE INDEX case_tags_by_case ON case_tags (case_id);

-- Which documents (cases, learning points, meetings) are shared with which network.
CREATE TABLE doc_networks (
    network_id BLOB NOT NULL,
    doc_id BLOB NOT NULL,
    PRIMARY KEY (network_id, doc_id)
) WITHOUT ROWID;
CREATE INDEX doc_networks_by_doc ON doc_networks (doc_id);

-- Quoted as SQLite writes a renamed table (migration 8), so both schemas read alike.
CREATE TABLE "notes" (
    case_id BLOB NOT NULL,
    note_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    edited_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    author_member BLOB NOT NULL,
    author_name TEXT NOT NULL,
    author_device BLOB NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (case_id, note_id)
);
CREATE INDEX notes_by_case ON notes (case_id, created_at);

CREATE TABLE learning_points (
    doc_id BLOB PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    meeting_id BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE learning_point_cases (
    case_id BLOB NOT NULL,
    lp_id BLOB NOT NULL,
    PRIMARY KEY (case_id, lp_id)
) WITHOUT ROWID;
CREATE INDEX learning_point_cases_by_lp ON learning_point_cases (lp_id);

CREATE TABLE learning_point_tags (
    tag TEXT NOT NULL,
    lp_id BLOB NOT NULL,
    PRIMARY KEY (tag, lp_id)
) WITHOUT ROWID;
CREATE INDEX learning_point_tags_by_lp ON learning_point_tags (lp_id);

CREATE TABLE meetings (
    doc_id BLOB PRIMARY KEY,
    network_id BLOB,
    date TEXT NOT NULL,
    place TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Agenda cases and captured learning points of a meeting, in order.
CREATE TABLE meeting_items (
    meeting_id BLOB NOT NULL,
    item_kind TEXT NOT NULL,
    item_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (meeting_id, item_kind, item_id)
) WITHOUT ROWID;

CREATE TABLE networks (
    doc_id BLOB PRIMARY KEY,
    name TEXT NOT NULL
);

-- Resolved from the signed operations (network_ops) on every change of the network document.
CREATE TABLE network_devices (
    network_id BLOB NOT NULL,
    member_id BLOB NOT NULL,
    device BLOB NOT NULL,
    member_name TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (network_id, member_id, device)
) WITHOUT ROWID;
CREATE INDEX network_devices_by_device ON network_devices (device);
CREATE TABLE network_removed (
    network_id BLOB NOT NULL,
    device BLOB NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (network_id, device)
) WITHOUT ROWID;

-- Signed membership operations this device has seen, grow-only (never cleared by a reindex:
-- a member who deletes one from the network document cannot make this device forget it).
CREATE TABLE network_ops (
    network_id BLOB NOT NULL,
    op_id BLOB NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (network_id, op_id)
) WITHOUT ROWID;
-- Signed authorship: per document and device, the device's newest signature over its latest
-- change there (it covers all its earlier ones). Sent with the document's changes.
CREATE TABLE doc_signatures (
    doc_id BLOB NOT NULL,
    actor BLOB NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    -- For a document shared with several networks: proof the device is in one (postcard), as
    -- it came, to pass on to devices that do not hold that network either.
    proof BLOB,
    PRIMARY KEY (doc_id, actor)
) WITHOUT ROWID;
-- Invitations this device's user accepted: only these networks may arrive by sync.
CREATE TABLE invitations (
    network_id BLOB PRIMARY KEY,
    invitation TEXT NOT NULL,
    accepted_at INTEGER NOT NULL
) WITHOUT ROWID;
-- The creator trusted for the genesis of a network made before signed membership.
CREATE TABLE network_roots (
    network_id BLOB PRIMARY KEY,
    creator BLOB NOT NULL
) WITHOUT ROWID;

-- Automerge sync states per peer and document, so a cut session resumes.
CREATE TABLE sync_states (
    peer BLOB NOT NULL,
    doc_id BLOB NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
) WITHOUT ROWID;

-- What this device knows is at each relay: per network and document, the heads of the changes
-- the relay holds there (pushed from here or pulled from it); per network, the cursor of the
-- last blob pulled.
CREATE TABLE relay_pushed (
    relay BLOB NOT NULL,
    network BLOB NOT NULL,
    doc_id BLOB NOT NULL,
    heads BLOB NOT NULL,
    PRIMARY KEY (relay, network, doc_id)
) WITHOUT ROWID;
CREATE TABLE relay_cursors (
    relay BLOB NOT NULL,
    network BLOB NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (relay, network)
) WITHOUT ROWID;
-- Pulled blobs no key held here opens yet (a new epoch's key not arrived): opened when it comes.
CREATE TABLE relay_deferred (
    relay BLOB NOT NULL,
    network BLOB NOT NULL,
    seq INTEGER NOT NULL,
    doc BLOB NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (relay, network, seq)
) WITHOUT ROWID;

-- Full-text search: one row per case, note, learning point and meeting; FTS5 over it.
CREATE TABLE search_items (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    doc_id BLOB NOT NULL,
    item_id BLOB NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX search_items_by_item ON search_items (doc_id, item_id);
-- Contentless: the index holds the words as Rust folds them (lower case, no accents, ø → o),
-- written by the store beside each search_items row; snippets are cut from search_items.
CREATE VIRTUAL TABLE search_fts USING fts5 (
    title, body,
    content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
-- stale copy must not bring them back: every merge of one is refused.
CREATE TABLE erased (
    tag BLOB PRIMARY KEY,
    network_id BLOB NOT NULL,
    erased_at INTEGER NOT NULL,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
-- Documents erased or unshared here whose blobs the relays should delete, by the network's and
-- the document's relay ids (keyed hashes under the network key). A row goes once a relay
-- confirmed the deletion.
CREATE TABLE relay_deletions (
    network BLOB NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (network, doc)
) WITHOUT ROWID;
-- Documents' content keys, out of the network documents' Automerge history so that erasure
-- deletes them: by the network's and the document's relay ids, the key's id and the epoch
-- whose network key seals it.
CREATE TABLE content_keys (
    network BLOB NOT NULL,
    doc BLOB NOT NULL,
    key_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (network, doc, key_id, epoch)
) WITHOUT ROWID;
-- Content keys a relay holds (carried in a blob pushed or pulled there).
CREATE TABLE relay_keys (
    relay BLOB NOT NULL,
    network BLOB NOT NULL,
    doc BLOB NOT NULL,
    key_id BLOB NOT NULL,
    PRIMARY KEY (relay, network, doc, key_id)
) WITHOUT ROWID;
-- Documents replaced here by a new history without redacted words (by tag, as `erased`), for
-- the erasure window: a link to the old one leads to the new one.
CREATE TABLE replaced (
    tag BLOB PRIMARY KEY,
    by_doc BLOB NOT NULL,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
