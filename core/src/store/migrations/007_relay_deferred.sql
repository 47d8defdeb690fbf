-- Version 7: blobs pulled from a relay that no key held here opens yet (sealed under a new key
-- epoch whose key had not reached this device: removals while apart). Kept, ciphertext only,
-- to open once the key comes, instead of being passed over for good.
CREATE TABLE relay_deferred (
    relay BLOB NOT NULL,
    network BLOB NOT NULL,
    seq INTEGER NOT NULL,
    doc BLOB NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (relay, network, seq)
) WITHOUT ROWID;
