-- Version 5: search folds words in Rust (Ødegaard is found by odegaard; see store/search.rs),
-- so the FTS5 index no longer reads search_items through triggers: a contentless table the
-- store writes itself. The store refills it from search_items right after this migration
-- (`refold_search`), without loading a document.
DROP TRIGGER search_items_ai;
DROP TRIGGER search_items_ad;
DROP TRIGGER search_items_au;
DROP TABLE search_fts;
CREATE VIRTUAL TABLE search_fts USING fts5 (
    title, body,
    content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT OR REPLACE INTO meta (key, value) VALUES ('refold_search', 1);
