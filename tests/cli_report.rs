//! The report: `loadgen run` leaves report.html beside results.json, `loadgen report`
//! draws one or several runs again, and the page works in a real browser (Debian's
//! headless Chromium, driven by tests/browser/report_check.mjs).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A short search on the simulated server (two distributions, two targets, about
/// 15 s): passing and failing steps for every plot. Its answers do not matter here.
fn sim_run(dir: &Path) -> PathBuf {
    let results = dir.join("results.json");
    let o = loadgen()
        .args([
            "run",
            "--backend",
            "sim",
            "--sim-service-time",
            "exp:5ms",
            "--threads",
            "1",
            "--time",
            "1",
            "--search-time",
            "6",
            "--warmup",
            "0",
            "--max-latency",
            "0.02,0.05",
            "--distributions",
            "linear,exponential",
            "--output",
        ])
        .arg(&results)
        .output()
        .expect("loadgen runs");
    assert!(o.status.success(), "{}", text(&o.stderr));
    results
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// What each plot must hold, counted from results.json itself: one point per step of
/// the distribution and target (`search-…`), one per step of the distribution
/// (`achieved-…`).
fn expected_points(doc: &Value) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (dist, steps) in doc["scan"].as_object().unwrap() {
        let steps = steps.as_object().unwrap();
        if steps.is_empty() {
            continue;
        }
        let mut targets: Vec<f64> = steps
            .values()
            .map(|s| s["target_latency"].as_f64().unwrap())
            .collect();
        targets.sort_by(f64::total_cmp);
        targets.dedup();
        for t in targets {
            let n = (steps.values())
                .filter(|s| s["target_latency"].as_f64() == Some(t))
                .count();
            out.push((format!("search-{dist}-{t:?}"), n));
        }
        out.push((format!("achieved-{dist}"), steps.len()));
    }
    out
}

/// The `data-points` of each `<figure data-plot=ID>` in a page.
fn page_points(page: &str, id: &str) -> Option<usize> {
    let at = page.find(&format!("data-plot=\"{id}\" data-points=\""))?;
    let rest = &page[at..].split("data-points=\"").nth(1)?;
    rest.split('"').next()?.parse().ok()
}

/// Circles drawn in one figure of the page.
fn page_circles(page: &str, id: &str) -> usize {
    let start = page.find(&format!("data-plot=\"{id}\"")).expect(id);
    let end = start + page[start..].find("</figure>").unwrap();
    page[start..end].matches("<circle class=\"pt").count()
}

#[test]
fn a_run_writes_its_report_and_loadgen_report_overlays_runs() {
    let dir = tempfile::tempdir().unwrap();
    let results = sim_run(dir.path());
    let report = dir.path().join("report.html");
    let page = std::fs::read_to_string(&report).expect("report.html beside results.json");
    let doc = read_json(&results);
    let expected = expected_points(&doc);
    assert_eq!(expected.len(), 6, "{expected:?}");
    for (id, n) in &expected {
        assert_eq!(page_points(&page, id), Some(*n), "{id}");
        assert_eq!(page_circles(&page, id), *n, "{id}");
    }
    for t in ["0.02", "0.05"] {
        for d in ["linear", "exponential"] {
            let id = format!("spectrum-{d}-{t}");
            assert!(page.contains(&format!("data-plot=\"{id}\"")), "{id}");
        }
    }
    assert!(
        page.contains("--sim-service-time exp:5ms"),
        "the command line"
    );

    // Two runs overlaid: every plot holds both runs' points.
    let b = dir.path().join("b.json");
    std::fs::copy(&results, &b).unwrap();
    let overlay = dir.path().join("both.html");
    let o = loadgen()
        .arg("report")
        .arg(&results)
        .arg(&b)
        .arg("-o")
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("both.html"), "{}", text(&o.stderr));
    let both = std::fs::read_to_string(&overlay).unwrap();
    for (id, n) in &expected {
        assert_eq!(page_points(&both, id), Some(2 * n), "{id}");
    }
    assert_eq!(both.matches("<h2>Run: ").count(), 2);
    // Rendering one file again replaces its report beside it.
    std::fs::remove_file(&report).unwrap();
    let o = loadgen().arg("report").arg(&results).output().unwrap();
    assert!(
        o.status.success() && report.is_file(),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn report_refuses_bad_input_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let not_json = d.join("x.json");
    std::fs::write(&not_json, "{nope").unwrap();
    let other_json = d.join("y.json");
    std::fs::write(&other_json, r#"{"hello": 1}"#).unwrap();
    let good = d.join("results.json");
    std::fs::write(&good, r#"{"results": {}, "final_results": {}}"#).unwrap();
    let nine: Vec<PathBuf> = (0..9).map(|_| good.clone()).collect();
    let cases: Vec<(Vec<PathBuf>, Vec<&str>, &str)> = vec![
        (vec![not_json.clone()], vec![], "it is not JSON"),
        (
            vec![other_json.clone()],
            vec![],
            "is not a loadgen results.json",
        ),
        (
            vec![d.join("missing.json")],
            vec![],
            "cannot read results file",
        ),
        (
            vec![d.to_path_buf()],
            vec!["-o", "/dev/null/x.html"],
            "cannot write",
        ),
        (vec![good.clone()], vec!["-o", "/dev/null"], "/dev/null"),
        (
            vec![good.clone()],
            vec!["-o", d.to_str().unwrap()],
            "folder",
        ),
        (nine, vec![], "at most 8 results files"),
    ];
    for (files, extra, want) in cases {
        let o = loadgen()
            .arg("report")
            .args(&files)
            .args(&extra)
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{files:?} {extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one sentence: {err}");
        assert!(err.contains(want), "{files:?} {extra:?}: {err}");
    }
    // A bare results.json renders (no steps: the answers table alone).
    let o = loadgen().arg("report").arg(&good).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(d.join("report.html").is_file());
}

/// The page in a real browser: it loads from disk with no console error and no
/// request, each plot holds one point per step, and a screenshot is not blank. Needs
/// Debian's chromium and `npm ci` in tests/browser (scripts/test.sh installs both).
#[test]
#[ignore = "needs Debian's chromium and tests/browser/node_modules (scripts/test.sh)"]
fn the_report_opens_in_chromium() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let results = sim_run(dir.path());
    let doc = read_json(&results);
    let shot = dir.path().join("shot.png");
    let o = Command::new("node")
        .arg(browser_dir.join("report_check.mjs"))
        .arg(dir.path().join("report.html"))
        .arg(&shot)
        .output()
        .expect("node runs");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let seen: Value = serde_json::from_str(text(&o.stdout).trim()).expect("one JSON line");
    assert_eq!(seen["loaded"], true, "{seen}");
    assert_eq!(
        seen["console"],
        serde_json::json!([]),
        "console errors: {seen}"
    );
    assert_eq!(
        seen["requests"],
        serde_json::json!([]),
        "network requests: {seen}"
    );
    assert_eq!(seen["visible"], true, "every plot is drawn at size: {seen}");
    for (id, n) in expected_points(&doc) {
        assert_eq!(
            seen["plots"][&id]["points"].as_u64(),
            Some(n as u64),
            "{id}: {seen}"
        );
    }
    // Each target's spectrum draws lines (corrected and uncorrected, at least for
    // the answering or the failing step).
    let spectra: Vec<(&String, &Value)> = (seen["plots"].as_object().unwrap().iter())
        .filter(|(id, _)| id.starts_with("spectrum-"))
        .collect();
    assert_eq!(spectra.len(), 4, "{seen}");
    for (id, p) in spectra {
        assert!(p["lines"].as_u64().unwrap() >= 2, "{id}: {seen}");
    }
    // Not blank: the screenshot holds text and plots (some ink, many colours), and
    // is not one colour either.
    let s = &seen["screenshot"];
    let inked = s["inked"].as_f64().unwrap();
    assert!((0.02..0.9).contains(&inked), "{seen}");
    assert!(s["colours"].as_u64().unwrap() > 16, "{seen}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

/// The histograms a step stores read the same in another implementation: the PyPI
/// `hdrhistogram` package (scripts/check_histograms.py) finds each step's counts and
/// percentiles. Needs .venv with that package (scripts/test.sh installs it).
#[test]
#[ignore = "needs .venv with PyPI's hdrhistogram (scripts/setup_checks.sh hdrhistogram)"]
fn stored_histograms_read_the_same_with_pypi_hdrhistogram() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(python.is_file(), "run scripts/setup.sh onnxruntime");
    let o = loadgen()
        .args(["fixed", "--backend", "sim", "--sim-service-time", "exp:4ms"])
        .args([
            "--threads",
            "1",
            "--qps",
            "150",
            "--time",
            "2",
            "--warmup",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let step: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let count = step["count"].as_u64().unwrap();
    assert!(count > 100, "{step}");
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("results.json");
    let wrapped = serde_json::json!({"scan": {"linear": {"fixed": step}}});
    std::fs::write(&doc, wrapped.to_string()).unwrap();
    let o = Command::new(&python)
        .arg(root.join("scripts/check_histograms.py"))
        .arg(&doc)
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(out.contains("1 with histograms, 0 mismatches"), "{out}");
}
