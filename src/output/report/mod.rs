//! `report.html`: one self-contained page (inline SVG and CSS, nothing fetched) that
//! shows why each answer is what it is: the steps each search ran against the target,
//! the answering step's whole percentile spectrum beside the failing step above it,
//! achieved against offered rate, the tuning candidates, and what ran where. Built
//! from results.json documents alone, so a finished run and `loadgen report` draw the
//! same page, and several runs overlay in one.

mod html;
mod plot;
mod sections;
mod spectrum;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::output::compare;
use html::{esc, table};
pub use sections::Source;
use sections::{flatten, target_text, utc};

/// Where a run's report goes: `report.html` beside `results.json`, or `NAME.html`
/// beside `NAME.json` (so that runs written to one folder under other names keep
/// their own reports).
pub fn path_beside(results: &Path) -> PathBuf {
    let stem = results
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    let name = match stem.as_deref() {
        None | Some("results") => "report.html".to_string(),
        Some(s) => format!("{s}.html"),
    };
    results.with_file_name(name)
}

/// The page for one or more results.json documents.
pub fn render(sources: &[Source]) -> String {
    let mut b = String::new();
    let title = if sources.len() == 1 {
        format!("loadgen report: {}", sources[0].label)
    } else {
        format!("loadgen report: {} runs", sources.len())
    };
    let _ = write!(b, "<h1>{}</h1>", esc(&title));
    b.push_str(&answers(sources));
    for dist in sections::distributions(sources) {
        let _ = write!(b, "<h2 id=\"{0}\">{0}</h2>", esc(&dist));
        for t in sections::targets(sources, &dist) {
            let _ = write!(
                b,
                "<h3>{} target {} s</h3><div class=\"plots\">{}{}</div>",
                esc(&dist),
                esc(&target_text(t)),
                sections::search_plot(sources, &dist, t).svg(),
                sections::spectrum_plot(sources, &dist, t).svg()
            );
        }
        let _ = write!(
            b,
            "<div class=\"plots\">{}</div>",
            sections::achieved_plot(sources, &dist).svg()
        );
    }
    b.push_str(&tuning(sources));
    for src in sources {
        b.push_str(&details(src));
    }
    b.push_str(
        "<p class=\"note\">Filled points passed, hollow ones failed; hover a point for its \
step. Latency is measured from each query's planned send time (corrected); the dashed \
spectrum is from its actual send (uncorrected). The shaded band is the interval that \
holds the highest passing rate.</p>",
    );
    html::page(&title, &b)
}

/// The answers side by side: one row per distribution and target, one column per run.
fn answers(sources: &[Source]) -> String {
    let per: Vec<Option<compare::Answers>> = sources
        .iter()
        .map(|s| compare::answers(&s.doc).ok())
        .collect();
    let mut keys: Vec<(String, String)> = Vec::new();
    for a in per.iter().flatten() {
        for (d, ts) in a {
            for (t, _) in ts {
                if !keys.contains(&(d.clone(), t.clone())) {
                    keys.push((d.clone(), t.clone()));
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|(d, t)| {
            let mut row = vec![d.clone(), t.clone()];
            for a in &per {
                let found = a.as_ref().and_then(|a| {
                    (a.iter().find(|(x, _)| x == d))
                        .and_then(|(_, v)| v.iter().find(|(y, _)| y == t).map(|(_, ans)| *ans))
                });
                row.push(found.map_or("-".into(), |ans| ans.to_string()));
            }
            row
        })
        .collect();
    let labels: Vec<String> = sources.iter().map(|s| s.label.clone()).collect();
    let mut head: Vec<&str> = vec!["distribution", "target (s)"];
    head.extend(labels.iter().map(String::as_str));
    let mut out = String::from("<h2 id=\"answers\">Answers</h2>");
    out.push_str(
        "<p class=\"note\">qps [low, high]: the highest rate that met the target, and the \
interval that holds it (? where an end was not shown).</p>",
    );
    out.push_str(&table("answers", &head, &rows));
    out
}

/// The tuning candidates of each run: a table and predicted against measured.
fn tuning(sources: &[Source]) -> String {
    let mut out = String::new();
    let with: Vec<&Source> = sources
        .iter()
        .filter(|s| !sections::tuning_rows(&s.doc).is_empty())
        .collect();
    if with.is_empty() {
        return out;
    }
    out.push_str("<h2 id=\"tuning\">Tuning</h2>");
    for s in with {
        if sources.len() > 1 {
            let _ = write!(out, "<h3>{}</h3>", esc(&s.label));
        }
        out.push_str(&table(
            "tuning",
            &[
                "candidate",
                "capacity (qps)",
                "unloaded p50 (ms)",
                "unloaded p99 (ms)",
                "predicted",
                "measured",
                "error",
            ],
            &sections::tuning_rows(&s.doc),
        ));
    }
    if let Some(p) = sections::tuning_plot(sources) {
        let _ = write!(out, "<div class=\"plots\">{}</div>", p.svg());
    }
    out
}

/// What ran where: the command line, runtime, time, warnings, failure, system and
/// settings of one run.
fn details(src: &Source) -> String {
    let d = &src.doc;
    let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    let mut out = format!("<h2>Run: {}</h2>", esc(&src.label));
    let _ = write!(
        out,
        "<pre class=\"cmdline\">{}</pre>",
        esc(&text("cmdline"))
    );
    let when = d
        .get("time")
        .and_then(Value::as_u64)
        .map_or("-".into(), utc);
    let rows = vec![
        vec!["runtime".into(), text("runtime")],
        vec!["version".into(), text("version")],
        vec!["started".into(), when],
        vec![
            "interrupted".into(),
            d.get("interrupted").map_or("-".into(), |v| v.to_string()),
        ],
    ];
    out.push_str(&table("run", &["", ""], &rows));
    if let Some(f) = d.get("failed") {
        let _ = write!(
            out,
            "<p class=\"fail\">The run ended early: {}</p>",
            esc(f.get("error").and_then(Value::as_str).unwrap_or("-"))
        );
    }
    let warnings: Vec<&str> = (d.get("warnings").and_then(Value::as_array))
        .map(|w| w.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !warnings.is_empty() {
        out.push_str("<h3>Warnings</h3><ul class=\"warn\">");
        for w in warnings {
            let _ = write!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul>");
    }
    for (key, title) in [
        ("system", "System"),
        ("server", "Server"),
        ("settings", "Settings"),
    ] {
        if let Some(v) = d.get(key).filter(|v| v.is_object()) {
            let _ = write!(
                out,
                "<details><summary>{title}</summary>{}</details>",
                table(key, &["key", "value"], &flatten(v))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_sits_beside_its_results() {
        let cases = [
            ("out/results.json", "out/report.html"),
            ("out/run-a.json", "out/run-a.html"),
            ("results.json", "report.html"),
        ];
        for (results, want) in cases {
            assert_eq!(path_beside(Path::new(results)), PathBuf::from(want));
        }
    }

    #[test]
    fn a_page_names_each_run_and_escapes_what_it_shows() {
        let doc = json!({
            "cmdline": "loadgen run --model '<x>'", "runtime": "sim", "time": 0,
            "results": {"linear": {"0.1": {"offered_qps": 5, "qps": 5, "interval": [5, 6]}}},
            "final_results": {"linear": {"0.1": 5}},
            "scan": {"linear": {"linear/0.1/5": {"target_latency": 0.1, "offered_qps": 5,
                "qps": 5, "percentiles": {"99.0": 0.05}, "verdict": "pass"}}},
            "warnings": ["<b>slow</b>"], "failed": {"error": "gone"}
        });
        let page = render(&[
            Source {
                label: "a.json".into(),
                doc: doc.clone(),
            },
            Source {
                label: "b.json".into(),
                doc,
            },
        ]);
        assert!(page.contains("&lt;x&gt;") && !page.contains("<x>"));
        assert!(page.contains("&lt;b&gt;slow"));
        assert!(page.contains("The run ended early: gone"));
        assert!(page.contains("data-plot=\"search-linear-0.1\" data-points=\"2\""));
        assert!(page.contains("data-plot=\"achieved-linear\""));
        assert_eq!(page.matches("<h2>Run: ").count(), 2);
        assert!(page.contains("1970-01-01 00:00:00 UTC"));
    }
}
