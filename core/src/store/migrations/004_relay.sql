-- Version 4: what this device knows is at each relay. Per relay, network and document, the
-- heads of the changes the relay holds in that network (pushed from here or pulled from it),
-- so nothing is uploaded twice; per relay and network, the cursor of the last blob pulled.
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
