//! Small text helpers for human output: dates from millisecond timestamps (UTC), short ids,
//! word wrapping and truncation. No dependencies: the calendar arithmetic is Howard Hinnant's
//! `days_from_civil` / `civil_from_days`.

use std::fmt::Display;

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Days since 1970-01-01 of a calendar date.
#[cfg(test)]
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar date of a day number (days since 1970-01-01).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of a timestamp (UTC).
pub(crate) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Today's date, `YYYY-MM-DD` (UTC).
pub(crate) fn today() -> String {
    date_of_day(day_of(now_ms()))
}

/// A timestamp as `YYYY-MM-DD HH:MM` (UTC).
pub(crate) fn datetime(ms: i64) -> String {
    let day = day_of(ms);
    let minutes = ms.rem_euclid(86_400_000) / 60_000;
    format!("{} {:02}:{:02}", date_of_day(day), minutes / 60, minutes % 60)
}

/// The first eight characters of an id: enough to tell documents apart on one device, and
/// accepted back as an id prefix by every command.
pub(crate) fn short(id: impl Display) -> String {
    id.to_string().chars().take(8).collect()
}

/// At most `max` characters of `s` on one line, `…` marking a cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The terminal width to wrap to: `$COLUMNS` if set and sane, else 88.
pub(crate) fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| (40..=400).contains(w))
        .unwrap_or(88)
}

/// Word-wraps `text` to `width` columns, each line indented by `indent` spaces. Keeps the
/// text's own line breaks; a blank text gives no lines.
pub(crate) fn wrap(text: &str, indent: usize, width: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let room = width.saturating_sub(indent).max(20);
    let mut out = Vec::new();
    for para in text.trim_end().lines() {
        let mut line = String::new();
        let mut len = 0;
        for word in para.split_whitespace() {
            let wlen = word.chars().count();
            if len > 0 && len + 1 + wlen > room {
                out.push(format!("{pad}{line}"));
                line.clear();
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.push_str(word);
            len += wlen;
        }
        out.push(if line.is_empty() { String::new() } else { format!("{pad}{line}") });
    }
    out
}

/// Like [`wrap`], but at most `max_lines` lines, the last ending in `…` if cut.
pub(crate) fn wrap_max(text: &str, indent: usize, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines = wrap(text, indent, width);
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            last.push_str(" …");
        }
    }
    lines
}

/// "1 note", "3 notes".
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(date_of_day(days_from_civil(2024, 2, 29)), "2024-02-29");
        for z in [-1_000_000, -1, 59, 10_957, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(datetime(1_732_885_500_000), "2024-11-29 13:05");
        assert_eq!(datetime(-60_000), "1969-12-31 23:59");
    }

    #[test]
    fn wrapping_keeps_words_and_paragraphs() {
        let lines = wrap("een twee drie vier\n\nvijf", 2, 30);
        assert_eq!(lines, vec!["  een twee drie vier", "", "  vijf"]);
        let long = "woord ".repeat(40);
        let lines = wrap_max(&long, 4, 40, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('…'));
        assert!(lines.iter().all(|l| l.chars().count() <= 42));
        assert_eq!(truncate("a  b\nc", 10), "a b c");
        assert_eq!(truncate("abcdefghij", 5), "abcd…");
    }
}
