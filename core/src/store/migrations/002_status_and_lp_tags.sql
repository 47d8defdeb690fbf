-- Version 2: the case list filtered by status without a scan, and learning points by tag.
CREATE INDEX cases_by_status ON cases (status, last_activity DESC);

CREATE TABLE learning_point_tags (
    tag TEXT NOT NULL,
    lp_id BLOB NOT NULL,
    PRIMARY KEY (tag, lp_id)
) WITHOUT ROWID;
CREATE INDEX learning_point_tags_by_lp ON learning_point_tags (lp_id);

-- A new derived table is filled from the documents themselves at the next open.
INSERT OR REPLACE INTO meta (key, value) VALUES ('needs_reindex', 1);
