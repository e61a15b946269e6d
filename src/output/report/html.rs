//! The page around the plots: escaping, tables and the one self-contained document
//! (inline CSS, no script, nothing fetched), so that it opens from disk anywhere.

use std::fmt::Write as _;

/// Text made safe for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table with a header row; cells are escaped here.
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!(r#"<table class="{}"><thead><tr>"#, esc(class));
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

const STYLE: &str =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}\
h3{font-size:15px}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.k{font-weight:600}code,pre{font:12px ui-monospace,monospace}\
pre{white-space:pre-wrap;word-break:break-all;background:#f7f7f7;padding:6px}\
.plots{display:flex;flex-wrap:wrap;gap:12px}figure.plot{margin:0}\
svg{background:#fff;border:1px solid #eee}svg text{font:11px system-ui,sans-serif;fill:#333}\
svg text.title{font-size:13px;font-weight:600}svg .grid{stroke:#eee}\
svg .frame{stroke:#999}svg .ln{fill:none;stroke-width:1.6}\
svg .rule{stroke-width:1.2;stroke-dasharray:6 3}svg .diagonal{stroke:#aaa;stroke-dasharray:2 3}\
svg .key{stroke-width:2}.warn{color:#a40}.fail{color:#b00}.note{color:#666}";

/// The whole document.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_reads_as_markup() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let t = table("t", &["a<b"], &[vec!["<script>".into()]]);
        assert!(
            !t.contains("<script>") && t.contains("&lt;script&gt;"),
            "{t}"
        );
    }

    #[test]
    fn the_page_fetches_nothing() {
        let p = page("x", "<p>y</p>");
        // The policy forbids every fetch; inline styles only.
        assert!(p.contains("default-src 'none'"));
        assert!(
            !p.contains("http:") && !p.contains("https:"),
            "no address to fetch"
        );
        assert!(!p.contains("<script"));
    }
}
