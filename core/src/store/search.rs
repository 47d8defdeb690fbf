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
    // One statement writes the row, or leaves it when nothing changed (then it returns no id
    // and the index is left as it is); the index entry is replaced under the same rowid.
    let id: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO search_items (kind, doc_id, item_id, title, body) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (doc_id, item_id) DO UPDATE SET title = excluded.title, body = excluded.body
             WHERE title IS NOT excluded.title OR body IS NOT excluded.body
             RETURNING id",
        )?
        .query_row(params![kind, doc.as_bytes(), item, title, body], |r| r.get(0))
        .optional()?;
    if let Some(id) = id {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO search_fts (rowid, title, body) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![id, folded_words(title), folded_words(body)])?;
    }
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

/// Rebuilds the index from the text `search_items` holds (after the upgrade to folded words).
pub(super) fn refold_search(tx: &Transaction<'_>) -> Result<()> {
    tx.execute("INSERT INTO search_fts (search_fts) VALUES ('delete-all')", [])?;
    let mut rows = tx.prepare("SELECT id, title, body FROM search_items")?;
    let mut insert =
        tx.prepare("INSERT INTO search_fts (rowid, title, body) VALUES (?1, ?2, ?3)")?;
    let mut all = rows.query([])?;
    while let Some(r) = all.next()? {
        let (id, title, body): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        insert.execute(params![id, folded_words(&title), folded_words(&body)])?;
    }
    Ok(())
}

/// Problems with the index as a whole that SQLite's own check cannot see: with a contentless
/// table, only the store keeps `search_items` and the index in step.
pub(crate) fn check_search(conn: &Connection) -> Result<Vec<String>> {
    let unindexed: i64 = conn.query_row(
        "SELECT count(*) FROM search_items s
         WHERE NOT EXISTS (SELECT 1 FROM search_fts_docsize d WHERE d.id = s.id)",
        [],
        |r| r.get(0),
    )?;
    let stray: i64 = conn.query_row(
        "SELECT count(*) FROM search_fts_docsize d
         WHERE NOT EXISTS (SELECT 1 FROM search_items s WHERE s.id = d.id)",
        [],
        |r| r.get(0),
    )?;
    let mut problems = Vec::new();
    if unindexed > 0 {
        problems.push(format!("search: {unindexed} items missing from the index (run reindex)"));
    }
    if stray > 0 {
        problems.push(format!("search: {stray} index entries for no item (run reindex)"));
    }
    Ok(problems)
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

/// Whether a word carries an acute or grave accent (`één`, `vóór`, `crème`): Dutch writers put
/// those on whole words, for stress. A trema sits inside words (`coördinatie`, `financiële`,
/// `ideeën`) and says nothing about where the word ends.
fn has_stress_accent(word: &str) -> bool {
    word.nfd().any(|c| matches!(c, '\u{0300}' | '\u{0301}'))
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

/// What a user typed: one phrase per typed word (its folded parts: `foto's` is `foto s`, to be
/// found side by side), all required, the last one's last part perhaps a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    phrases: Vec<Vec<String>>,
    last_is_prefix: bool,
}

impl Query {
    fn parse(input: &str) -> Option<Query> {
        let typed: Vec<&str> = input
            .split_whitespace()
            .filter(|w| words(w).next().is_some())
            .take(MAX_QUERY_WORDS)
            .collect();
        let phrases: Vec<Vec<String>> = typed
            .iter()
            .map(|w| words(w).map(|(_, part)| fold(part)).filter(|f| !f.is_empty()).collect())
            .filter(|p: &Vec<String>| !p.is_empty())
            .collect();
        let last = typed.last()?;
        if phrases.is_empty() {
            return None;
        }
        // A space after the last word says it is finished; so does a stress accent on it.
        let finished = input.ends_with(char::is_whitespace) || has_stress_accent(last);
        Some(Query { phrases, last_is_prefix: !finished })
    }

    /// The FTS5 query: each phrase quoted (folded parts are letters and digits only, so no
    /// quote can close early), the last one with `*` when it is a prefix.
    fn fts(&self) -> String {
        let quoted: Vec<String> =
            self.phrases.iter().map(|p| format!("\"{}\"", p.join(" "))).collect();
        let mut q = quoted.join(" ");
        if self.last_is_prefix {
            q.push('*');
        }
        q
    }

    /// Whether the folded words from `at` on spell phrase `p`: its length if so.
    fn phrase_at(&self, p: usize, folded: &[String], at: usize) -> Option<usize> {
        let phrase = &self.phrases[p];
        let prefix_last = self.last_is_prefix && p == self.phrases.len() - 1;
        let ok = phrase.iter().enumerate().all(|(k, part)| match folded.get(at + k) {
            Some(w) if prefix_last && k == phrase.len() - 1 => w.starts_with(part.as_str()),
            Some(w) => w == part,
            None => false,
        });
        ok.then_some(phrase.len())
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
    let ws: Vec<(usize, &str)> = words(text).collect();
    let folded: Vec<String> = ws.iter().map(|(_, w)| fold(w)).collect();
    // Where a phrase is found whole: each word of it marked with (phrase, occurrence), so an
    // occurrence is bracketed as one (`[foto's]`) and two in a row stay two.
    let mut hit: Vec<Option<(usize, usize)>> = vec![None; ws.len()];
    let mut i = 0;
    while i < ws.len() {
        match (0..q.phrases.len()).find_map(|p| q.phrase_at(p, &folded, i).map(|n| (p, n))) {
            Some((p, n)) => {
                hit[i..i + n].fill(Some((p, i)));
                i += n;
            }
            None => i += 1,
        }
    }
    let first_hit = hit.iter().position(Option::is_some)?;
    // The window of SNIPPET_WORDS words with the most distinct phrases, then the most matched
    // words; the earliest such window.
    let window = SNIPPET_WORDS.min(ws.len());
    let score = |start: usize| {
        let mut seen = vec![false; q.phrases.len()];
        let mut words = 0;
        for (p, _) in hit[start..start + window].iter().flatten() {
            seen[*p] = true;
            words += 1;
        }
        (seen.iter().filter(|s| **s).count(), words)
    };
    let mut best = first_hit.min(ws.len() - window);
    let mut best_score = score(best);
    for start in best + 1..=ws.len() - window {
        let s = score(start);
        if s > best_score {
            (best, best_score) = (start, s);
        }
    }
    // Centre the matches in the window, as FTS5 does: context on both sides.
    let in_window = |i: &usize| hit[*i].is_some();
    let lo = (best..best + window).find(in_window).unwrap_or(best);
    let hi = (best..best + window).rev().find(in_window).unwrap_or(lo);
    let start = lo.saturating_sub((window - (hi - lo + 1)) / 2).min(ws.len() - window);
    let end = start + window;
    let mut out = String::new();
    // Before the first word: the text's own opening (a quote) at its start, `…` elsewhere.
    let mut at = if start == 0 { 0 } else { ws[start].0 };
    if start > 0 {
        out.push('…');
    }
    for (k, (begin, w)) in ws[start..end].iter().enumerate() {
        out.push_str(&text[at..*begin]);
        let marked = hit[start + k].is_some();
        let opens = marked && (k == 0 || hit[start + k - 1] != hit[start + k]);
        let closes = marked && (start + k + 1 >= end || hit[start + k + 1] != hit[start + k]);
        if opens {
            out.push('[');
        }
        out.push_str(w);
        if closes {
            out.push(']');
        }
        at = begin + w.len();
    }
    if end < ws.len() {
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
    // Rank in FTS5, then read the original text and cut snippets for the top rows only. Equal
    // scores are listed by document and item, so two phones show them in one order. (Which of
    // several equal scores make the cut at the limit is FTS5's choice: ordering every match
    // by document before the limit made a median query 2.6 times slower.)
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
        // A typed word split by an apostrophe or hyphen stays one phrase: side by side.
        assert_eq!(fts_query("auto's"), Some("\"auto s\"*".into()));
        assert_eq!(
            fts_query("ex-partner 2026-03-01 "),
            Some("\"ex partner\" \"2026 03 01\"".into())
        );
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
        // A trema sits inside words: typing goes on.
        assert!(Query::parse("coörd").expect("query").last_is_prefix);
        assert!(Query::parse("financië").expect("query").last_is_prefix);
        assert!(!Query::parse("vóór").expect("query").last_is_prefix);
    }

    #[test]
    fn snippets_show_the_best_window_with_its_matches_marked() {
        let q = Query::parse("wasmachine kapot").expect("query");
        let text = "Eerst over school gesproken, daarna lang over de buren, de trap en de \
                    lift. Toen bleek de wasmachine al weken kapot te zijn. Verder niets.";
        let s = snippet(text, &q).expect("matches");
        assert!(s.starts_with('…') && s.ends_with("Verder niets."), "{s}");
        assert!(s.contains("[wasmachine]") && s.contains("[kapot]"), "{s}");
        assert_eq!(snippet("Niets hier.", &q), None);
        assert_eq!(snippet("Wasmachine kapot.", &q).as_deref(), Some("[Wasmachine] [kapot]."));
        // The text's own opening is kept when the passage starts at its first word.
        assert_eq!(
            snippet("“Wasmachine kapot” zei ze.", &q).as_deref(),
            Some("“[Wasmachine] [kapot]” zei ze.")
        );
    }

    #[test]
    fn the_match_sits_in_the_middle_of_its_passage() {
        let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
        let mut text = words.join(" ");
        text = text.replace("w25", "wasmachine");
        let s = snippet(&text, &Query::parse("wasmachine").expect("query")).expect("match");
        let shown: Vec<&str> = s.trim_matches('…').split(' ').collect();
        let at = shown.iter().position(|w| *w == "[wasmachine]").expect("marked");
        assert_eq!(shown.len(), SNIPPET_WORDS, "{s}");
        assert!((6..=9).contains(&at), "the match at {at} of {}: {s}", shown.len());
    }

    #[test]
    fn a_phrase_is_marked_only_whole_and_each_occurrence_apart() {
        let q = Query::parse("foto's").expect("query");
        assert_eq!(snippet("De foto is van Sara, samen.", &q), None);
        assert_eq!(
            snippet("Twee foto's van Sara.", &q).as_deref(),
            Some("Twee [foto's] van Sara.")
        );
        let q = Query::parse("zonnebloem").expect("query");
        assert_eq!(
            snippet("Zonnebloem, zonnebloem.", &q).as_deref(),
            Some("[Zonnebloem], [zonnebloem].")
        );
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
                // `"a b" "c"*`: quoted phrases of words of letters and digits, nothing else.
                let inner = q.strip_suffix('*').unwrap_or(&q);
                prop_assert!(inner.starts_with('"') && inner.ends_with('"'), "{q}");
                for phrase in inner[1..inner.len() - 1].split("\" \"") {
                    prop_assert!(!phrase.is_empty(), "{q}");
                    for word in phrase.split(' ') {
                        prop_assert!(!word.is_empty() && word.chars().all(char::is_alphanumeric), "{q}");
                    }
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
