//! `loadgen compare A B`: the rows it prints for two hand-made results.json, and its
//! exit codes (0; 1 with `--fail-on-regression` when a target is slower; 2 on a file
//! that is not a results.json).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn compare(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("compare")
        .args(args)
        .output()
        .expect("loadgen runs")
}

/// A results.json reduced to what `compare` reads: the `results` records (with their
/// interval) and `final_results` (-1: FAIL).
fn results(
    dir: &Path,
    name: &str,
    linear: &[(&str, f64, Value)],
    exp: &[(&str, f64, Value)],
) -> std::path::PathBuf {
    let section = |v: &[(&str, f64, Value)]| {
        let rec: serde_json::Map<String, Value> = v
            .iter()
            .map(|(t, q, i)| {
                (
                    t.to_string(),
                    json!({"qps": q, "interval": i, "confident": true}),
                )
            })
            .collect();
        let fin: serde_json::Map<String, Value> = v
            .iter()
            .map(|(t, q, _)| (t.to_string(), json!(q)))
            .collect();
        (Value::Object(rec), Value::Object(fin))
    };
    let (lr, lf) = section(linear);
    let (er, ef) = section(exp);
    let doc = json!({
        "runtime": "sim", "version": "0", "time": 0, "cmdline": "loadgen run",
        "scan": {"linear": {}, "exponential": {}},
        "results": {"linear": lr, "exponential": er},
        "final_results": {"linear": lf, "exponential": ef},
        "settings": {}, "system": {}, "warnings": [],
    });
    let p = dir.join(name);
    std::fs::write(&p, doc.to_string()).unwrap();
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn compare_prints_a_row_per_target_and_exits_1_on_a_regression_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let a = results(
        tmp.path(),
        "a.json",
        &[
            ("0.05", 128.0, json!([128, 140])),
            ("0.1", 300.0, json!([300, 320])),
        ],
        &[("0.05", -1.0, json!([null, 10]))],
    );
    let b = results(
        tmp.path(),
        "b.json",
        &[
            ("0.05", 142.0, json!([142, 150])),
            ("0.1", 200.0, json!([200, 210])),
        ],
        &[
            ("0.05", 12.0, json!([12, null])),
            ("0.2", 50.0, json!([50, 55])),
        ],
    );
    let o = compare(&[a.as_os_str(), b.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["linear", "0.05", "128", "142", "1.11", "faster"],
            vec!["linear", "0.1", "300", "200", "0.67", "slower"],
            vec!["exponential", "0.05", "FAIL", "12", "-", "faster"],
            vec!["exponential", "0.2", "-", "50", "-", "cannot tell"],
        ],
        "{out}"
    );
    assert!(out.starts_with("distribution"), "{out}");

    let flag = std::ffi::OsStr::new("--fail-on-regression");
    let o = compare(&[a.as_os_str(), b.as_os_str(), flag]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("slower than A at 1 target"),
        "{}",
        text(&o.stderr)
    );
    // B against itself: nothing slower, exit 0 even with the flag.
    let o = compare(&[b.as_os_str(), b.as_os_str(), flag]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let o = compare(&[a.as_os_str(), b.as_os_str(), std::ffi::OsStr::new("--json")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let doc: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let rows = doc.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{doc}");
    assert_eq!(rows[1]["verdict"], "slower");
    assert_eq!(rows[2]["a"]["qps"], -1.0);
    assert_eq!(rows[3]["a"], Value::Null);
}

#[test]
fn compare_refuses_what_is_not_a_results_json_with_one_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = results(d, "good.json", &[("0.05", 1.0, json!([1, 2]))], &[]);
    std::fs::write(d.join("text.json"), "not json").unwrap();
    std::fs::write(d.join("other.json"), r#"{"hello": 1}"#).unwrap();
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (bad, words) in [
        (d.join("missing.json"), "cannot read results file"),
        (d.join("text.json"), "it is not JSON"),
        (d.join("other.json"), "is not a loadgen results.json"),
        (d.to_path_buf(), "is a folder"),
        (fifo.clone(), "not a regular file"),
    ] {
        for args in [
            [good.as_os_str(), bad.as_os_str()],
            [bad.as_os_str(), good.as_os_str()],
        ] {
            let o = compare(&args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{bad:?}: {err}");
            assert!(err.contains(words), "{bad:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            assert!(o.stdout.is_empty(), "{bad:?}");
        }
    }
}
