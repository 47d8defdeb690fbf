//! Full-text search: the FTS5 index over cases, notes, learning points and meetings, the query
//! built from what a user typed, and ranked hits with highlighted snippets.
//!
//! Words are folded here, in Rust, the same way for the index, the query and the highlight:
//! lower case, compatibility decomposition with the accents dropped (`één` → `een`), and the
//! letters that have no decomposition spelled out (`Ø` → `o`, `ß` → `ss`, `æ` → `ae`, `ł` → `l`).
//! SQLite's `unicode61` tokenizer removes accents but keeps `ø`, so a worker typing `odegaard`
//! would not find mevrouw Ødegaard. The FTS5 table is contentless (it holds only the folded
//! words' index); the original text stays in `search_items`, and snippets are cut from it here,
//! so every hit shows the words that matched it, whichever field they were in.
//!
//! Query rules: every word is required; the last word is a prefix (search as you type) unless
//! the query ends in a space or the word was typed with an accent, which a Dutch writer types
//! on whole words (`één`, `vóór`, `café`), so `één` does not find `eenzaamheid`. User input is
//! never passed to FTS5 as syntax: the query is built from folded words, each quoted.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

use super::{Result, doc_id_col};
use crate::{
    ids::{DocId, NoteId},
    model::{HitKind, SearchHit},
};

/// Words in a snippet (FTS5's own snippet used the same).
const SNIPPET_WORDS: usize = 16;
/// Words of a query that count; more are ignored (a pasted paragraph is not a search).
const MAX_QUERY_WORDS: usize = 16;

/// Writes (or rewrites, if it changed) the search entry of one item: a case's own fields, a
/// note, a learning point or a meeting.
pub(super) fn put_search(
    tx: &Transaction<'_>,
    kind: &str,
    doc: DocId,
    item: &[u8],
    title: &str,
    body: &str,
) -> Result<()> {
    let existing: Option<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT id, title, body FROM search_items WHERE doc_id = ?1 AND item_id = ?2",
        )?
        .query_row(params![doc.as_bytes(), item], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let id = match existing {
        Some((_, t, b)) if t == title && b == body => return Ok(()),
        Some((id, _, _)) => {
            tx.prepare_cached("UPDATE search_items SET title = ?2, body = ?3 WHERE id = ?1")?
                .execute(params![id, title, body])?;
            tx.prepare_cached("DELETE FROM search_fts WHERE rowid = ?1")?.execute([id])?;
            id
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO search_items (kind, doc_id, item_id, title, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![kind, doc.as_bytes(), item, title, body])?;
            tx.last_insert_rowid()
        }
    };
    tx.prepare_cached("INSERT INTO search_fts (rowid, title, body) VALUES (?1, ?2, ?3)")?
        .execute(params![id, folded_words(title), folded_words(body)])?;
    Ok(())
}

/// Removes the search entry of one item.
pub(super) fn delete_search(tx: &Transaction<'_>, doc: DocId, item: &[u8]) -> Result<()> {
    let id: Option<i64> = tx
        .prepare_cached("SELECT id FROM search_items WHERE doc_id = ?1 AND item_id = ?2")?
        .query_row(params![doc.as_bytes(), item], |r| r.get(0))
        .optional()?;
    if let Some(id) = id {
        tx.prepare_cached("DELETE FROM search_items WHERE id = ?1")?.execute([id])?;
        tx.prepare_cached("DELETE FROM search_fts WHERE rowid = ?1")?.execute([id])?;
    }
    Ok(())
}

/// Removes every search entry (for `reindex`).
pub(super) fn clear_search(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "DELETE FROM search_items; INSERT INTO search_fts (search_fts) VALUES ('delete-all');",
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Words and folding

/// The words of a text with their byte ranges: runs of letters and digits (apostrophes,
/// hyphens and punctuation separate words, as in FTS5's `unicode61`).
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while rest.next_if(|(_, c)| !is_word_char(*c)).is_some() {}
        let (start, _) = *rest.peek()?;
        let mut end = start;
        while let Some((i, c)) = rest.next_if(|(_, c)| is_word_char(*c)) {
            end = i + c.len_utf8();
        }
        Some((start, &text[start..end]))
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// A word as the index holds it: lower case, accents dropped, special letters spelled out.
fn fold(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        for c in c.to_lowercase() {
            match c {
                'ø' => out.push('o'),
                'æ' => out.push_str("ae"),
                'œ' => out.push_str("oe"),
                'ß' => out.push_str("ss"),
                'ł' => out.push('l'),
                'đ' | 'ð' => out.push('d'),
                'þ' => out.push_str("th"),
                'ı' => out.push('i'),
                c if c.is_alphanumeric() => out.push(c),
                // What compatibility decomposition makes of symbols (a fraction slash): not
                // part of a word.
                _ => {}
            }
        }
    }
    out
}

/// Whether a word carries an accent (a combining mark once decomposed): `één`, not `Ødegaard`.
fn has_accent(word: &str) -> bool {
    word.nfd().any(is_combining_mark)
}

/// A text as the index is given it: its folded words, separated by spaces.
fn folded_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (_, w) in words(text) {
        let f = fold(w);
        if !f.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&f);
        }
    }
    out
}

/// What a user typed, as folded terms: all required, the last perhaps a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    terms: Vec<String>,
    last_is_prefix: bool,
}

impl Query {
    fn parse(input: &str) -> Option<Query> {
        let typed: Vec<&str> = words(input).map(|(_, w)| w).take(MAX_QUERY_WORDS).collect();
        let terms: Vec<String> = typed.iter().map(|w| fold(w)).filter(|t| !t.is_empty()).collect();
        let last = typed.last()?;
        if terms.is_empty() {
            return None;
        }
        let finished = input.ends_with(char::is_whitespace) || has_accent(last);
        Some(Query { terms, last_is_prefix: !finished })
    }

    /// The FTS5 query: each term quoted (folded terms are letters and digits only, so no
    /// quote can close early), the last one with `*` when it is a prefix.
    fn fts(&self) -> String {
        let mut q = self.terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" ");
        if self.last_is_prefix {
            q.push('*');
        }
        q
    }

    /// Which term a (folded) word of a text matches, if any.
    fn matches(&self, folded: &str) -> Option<usize> {
        let last = self.terms.len() - 1;
        self.terms.iter().position(|t| t == folded).or_else(|| {
            (self.last_is_prefix && folded.starts_with(&self.terms[last])).then_some(last)
        })
    }
}

/// Turns what a user typed into an FTS5 query that cannot be a syntax error.
#[cfg(test)]
fn fts_query(input: &str) -> Option<String> {
    Query::parse(input).map(|q| q.fts())
}

/// The passage of `text` around its best cluster of matches, matched words in `[` `]`, and
/// `…` where the text goes on; `None` when nothing in it matches.
fn snippet(text: &str, q: &Query) -> Option<String> {
    let ws: Vec<(usize, &str, Option<usize>)> =
        words(text).map(|(at, w)| (at, w, q.matches(&fold(w)))).collect();
    if ws.iter().all(|w| w.2.is_none()) {
        return None;
    }
    // The window of SNIPPET_WORDS words with the most distinct terms, then the most matches;
    // the earliest such window.
    let window = SNIPPET_WORDS.min(ws.len());
    let score = |start: usize| {
        let mut seen = vec![false; q.terms.len()];
        let mut hits = 0;
        for (_, _, m) in &ws[start..start + window] {
            if let Some(t) = m {
                seen[*t] = true;
                hits += 1;
            }
        }
        (seen.iter().filter(|s| **s).count(), hits)
    };
    let mut best = 0;
    let mut best_score = score(0);
    for start in 1..=ws.len() - window {
        let s = score(start);
        if s > best_score {
            (best, best_score) = (start, s);
        }
    }
    let shown = &ws[best..best + window];
    let mut out = String::new();
    if best > 0 {
        out.push('…');
    }
    let mut at = shown[0].0;
    for (start, w, m) in shown {
        out.push_str(&text[at..*start]);
        if m.is_some() {
            out.push('[');
            out.push_str(w);
            out.push(']');
        } else {
            out.push_str(w);
        }
        at = start + w.len();
    }
    if best + window < ws.len() {
        out.push('…');
    } else {
        // The text's own ending after the last word (a full stop), as FTS5 showed it.
        out.push_str(&text[at..]);
    }
    Some(out)
}

/// Ranked full-text search over cases, notes, learning points and meetings.
pub(crate) fn search(conn: &Connection, input: &str, limit: u32) -> Result<Vec<SearchHit>> {
    let Some(q) = Query::parse(input) else {
        return Ok(Vec::new());
    };
    // Rank in FTS5, then read the original text and cut snippets for the top rows only.
    let mut stmt = conn.prepare_cached(
        "WITH top AS (
             SELECT rowid AS id, bm25(search_fts, 5.0, 1.0) AS rank FROM search_fts
             WHERE search_fts MATCH ?1 ORDER BY rank LIMIT ?2
         )
         SELECT s.kind, s.doc_id, s.item_id,
                CASE s.kind WHEN 'note' THEN coalesce((SELECT subject FROM cases WHERE doc_id = s.doc_id), '')
                            ELSE s.title END,
                s.title, s.body, top.rank
         FROM top JOIN search_items s ON s.id = top.id
         ORDER BY top.rank, s.doc_id, s.item_id",
    )?;
    let rows = stmt.query_map(params![q.fts(), limit], |r| {
        let kind: String = r.get(0)?;
        let kind = match kind.as_str() {
            "case" => HitKind::Case,
            "note" => HitKind::Note,
            "learning_point" => HitKind::LearningPoint,
            _ => HitKind::Meeting,
        };
        let item: Vec<u8> = r.get(2)?;
        let title: String = r.get(3)?;
        let (own_title, body): (String, String) = (r.get(4)?, r.get(5)?);
        // The body's passage when the body matched; else the title, highlighted.
        let snippet =
            snippet(&body, &q).or_else(|| snippet(&own_title, &q)).unwrap_or_else(|| title.clone());
        Ok(SearchHit {
            kind,
            doc_id: doc_id_col(r, 1)?,
            note_id: if kind == HitKind::Note { NoteId::from_slice(&item).ok() } else { None },
            snippet,
            title,
            score: -r.get::<_, f64>(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fts_query_never_passes_syntax_through() {
        assert_eq!(fts_query("was machine"), Some("\"was\" \"machine\"*".into()));
        assert_eq!(fts_query("NEAR( \"x OR"), Some("\"near\" \"x\" \"or\"*".into()));
        assert_eq!(fts_query("  ) * - "), None);
        assert_eq!(fts_query("auto's"), Some("\"auto\" \"s\"*".into()));
    }

    #[test]
    fn folding_spells_out_what_unicode61_keeps() {
        for (word, folded) in [
            ("Ødegaard", "odegaard"),
            ("één", "een"),
            ("coördinatie", "coordinatie"),
            ("Straße", "strasse"),
            ("Æsa", "aesa"),
            ("Łukasz", "lukasz"),
            ("Đorđe", "dorde"),
            ("ĳs", "ijs"),
            ("ＡＢＣ", "abc"),
            ("HYGIËNE", "hygiene"),
        ] {
            assert_eq!(fold(word), folded, "{word}");
        }
    }

    #[test]
    fn the_last_word_is_a_prefix_unless_finished() {
        assert!(Query::parse("wasm").expect("query").last_is_prefix);
        assert!(!Query::parse("wasm ").expect("query").last_is_prefix);
        assert!(!Query::parse("maar één").expect("query").last_is_prefix);
        assert!(Query::parse("Ødeg").expect("query").last_is_prefix);
    }

    #[test]
    fn snippets_show_the_best_window_with_its_matches_marked() {
        let q = Query::parse("wasmachine kapot").expect("query");
        let text = "Eerst over school gesproken, daarna lang over de buren, de trap en de \
                    lift. Toen bleek de wasmachine al weken kapot te zijn. Verder niets.";
        let s = snippet(text, &q).expect("matches");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[wasmachine]") && s.contains("[kapot]"), "{s}");
        assert_eq!(snippet("Niets hier.", &q), None);
        assert_eq!(snippet("Wasmachine kapot.", &q).as_deref(), Some("[Wasmachine] [kapot]."));
    }

    proptest! {
        /// Whatever is typed, the query is either nothing or only quoted folded words, and
        /// every word of a text is found by its own spelling, by its folded spelling and by
        /// any start of it.
        #[test]
        fn any_input_gives_a_safe_query_and_every_word_finds_itself(
            input in "\\PC{0,40}",
            word in "[\\p{L}\\p{N}]{1,12}",
        ) {
            if let Some(q) = fts_query(&input) {
                let inner = q.trim_end_matches('*');
                for part in inner.split(' ') {
                    prop_assert!(part.len() >= 2 && part.starts_with('"') && part.ends_with('"'));
                    prop_assert!(part[1..part.len() - 1].chars().all(char::is_alphanumeric));
                }
            }
            let f = fold(&word);
            prop_assume!(!f.is_empty() && words(&word).count() == 1);
            let text = format!("voor {word} na");
            for typed in [word.clone(), f.clone()] {
                let q = Query::parse(&typed).expect("a word");
                let s = snippet(&text, &q);
                prop_assert!(s.is_some_and(|s| s.contains(&format!("[{word}]"))), "{typed}");
            }
        }
    }
}
