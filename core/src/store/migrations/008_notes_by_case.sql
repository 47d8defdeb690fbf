-- Version 8: a note's row is keyed by its case and its id. A case split in two (one of its
-- writers made two histories of it: device/forks.rs) holds the notes written before the split
-- in both. The rows are copied, not rebuilt: a damaged document must not empty the others'.
CREATE TABLE notes_by_case_and_id (
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
INSERT INTO notes_by_case_and_id
    SELECT case_id, note_id, created_at, edited_at, kind, author_member, author_name,
           author_device, text
    FROM notes;
DROP TABLE notes;
ALTER TABLE notes_by_case_and_id RENAME TO notes;
CREATE INDEX notes_by_case ON notes (case_id, created_at);
