//! Quoting what a user or a server gave us inside a one-sentence message: a 50 KB URL
//! or a server's garbage must not fill the terminal, and the sentence must still
//! say which value it was.

/// The most characters of a value a message quotes.
pub const QUOTE_MAX: usize = 120;

/// `s` whole when it is short, else its first [`QUOTE_MAX`] characters followed by
/// `… (N bytes in all)`; control characters are escaped so that a value cannot
/// break the sentence's line.
pub fn quote(s: &str) -> String {
    quote_up_to(s, QUOTE_MAX)
}

/// [`quote`] of a path, as `Path::display` shows it.
pub fn quote_path(p: &std::path::Path) -> String {
    quote(&p.display().to_string())
}

/// [`quote`] keeping up to `max` characters: for a message from a library that
/// carries a user's value inside useful words of its own (a parser's "unknown field
/// `…`, expected one of …"), which a cut at [`QUOTE_MAX`] would lose.
pub fn quote_up_to(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    for c in chars.by_ref().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push_str(&format!("… ({} bytes in all)", s.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_as_a_prefix() {
        assert_eq!(quote("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
        let long = "x".repeat(50_000);
        let q = quote(&long);
        assert!(q.starts_with(&"x".repeat(QUOTE_MAX)), "{q}");
        assert!(q.ends_with("… (50000 bytes in all)"), "{q}");
        assert!(q.len() < 200, "{}", q.len());
        // Exactly at the limit: whole.
        assert_eq!(quote(&"y".repeat(QUOTE_MAX)), "y".repeat(QUOTE_MAX));
    }

    #[test]
    fn paths_and_longer_cuts_are_quoted_alike() {
        let long = format!("/tmp/{}", "p".repeat(50_000));
        let q = quote_path(std::path::Path::new(&long));
        assert!(
            q.starts_with("/tmp/ppp") && q.ends_with("(50005 bytes in all)"),
            "{q}"
        );
        assert_eq!(quote_up_to("abcdef", 6), "abcdef");
        assert_eq!(quote_up_to("abcdefg", 6), "abcdef… (7 bytes in all)");
    }

    #[test]
    fn control_characters_cannot_break_the_line() {
        assert_eq!(quote("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }
}
