-- Version 10: documents erased or unshared here whose blobs the relays should delete, by the
-- network's relay id and the document's relay id (keyed hashes under the network key: neither
-- names the document to anyone without that key). A row goes once a relay confirmed the
-- deletion.
CREATE TABLE relay_deletions (
    network BLOB NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (network, doc)
) WITHOUT ROWID;
