-- Version 6: signed membership (issue 10). A network's members, devices and roles are what its
-- signed operations resolve to. The operations this device has seen are kept here, grow-only:
-- a member who deletes one from the network document cannot make this device forget it.
-- `network_roots` pins the creator of a network made before signed membership (trusted for
-- its genesis); `network_devices` gains the member's role; removed devices are listed.
CREATE TABLE network_ops (
    network_id BLOB NOT NULL,
    op_id BLOB NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (network_id, op_id)
) WITHOUT ROWID;
CREATE TABLE network_roots (
    network_id BLOB PRIMARY KEY,
    creator BLOB NOT NULL
) WITHOUT ROWID;
DROP TABLE network_devices;
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
INSERT OR REPLACE INTO meta (key, value) VALUES ('needs_reindex', 1);
INSERT OR REPLACE INTO meta (key, value) VALUES ('upgrade_networks', 1);
-- Invitations this device's user accepted: only these networks may arrive by sync.
CREATE TABLE invitations (
    network_id BLOB PRIMARY KEY,
    invitation TEXT NOT NULL,
    accepted_at INTEGER NOT NULL
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
INSERT OR REPLACE INTO meta (key, value) VALUES ('sign_heads', 1);
