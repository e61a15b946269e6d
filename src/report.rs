//! Output: the log lines parsers depend on (SPEC §5) and `results.json`. Nothing here
//! measures; it only formats what the measuring code produced.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::schedule::Distribution;
use crate::stats::PERCENTILES;
use crate::step::StepSummary;

/// A float as Python's `repr` writes it: `0.01`, `0.1`, `1.0`, `1e-05`.
pub fn py_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Python: shortest digits in exponent form, exponent at least two digits.
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A rate as FINAL_RESULT writes it: whole numbers as ints (`128`), else a float.
pub fn py_rate(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        py_float(v)
    }
}

/// `linear/0.01/129`: distribution, target, offered rate.
pub fn step_name(dist: Distribution, target: Option<f64>, qps: f64) -> String {
    let t = target.map_or_else(|| "fixed".to_string(), py_float);
    format!("{}/{t}/{}", dist.as_str(), py_rate(qps))
}

/// `linear/0.01/129 qps=128.72, mean=0.008433, time=3.89, tiles=50:0.0083,…`
pub fn step_line(name: &str, s: &StepSummary) -> String {
    let tiles: Vec<String> = PERCENTILES
        .iter()
        .map(|&p| format!("{p}:{:.4}", s.percentiles.get(p)))
        .collect();
    format!(
        "{name} qps={:.2}, mean={:.6}, time={:.2}, tiles={}",
        s.qps,
        s.mean,
        s.runtime,
        tiles.join(",")
    )
}

/// Why a step failed, in words with its numbers (stderr).
pub fn verdict_text(s: &StepSummary) -> String {
    use crate::step::Verdict as V;
    let ms = |v: f64| format!("{:.2} ms", v * 1e3);
    let target = s.target_latency.unwrap_or(0.0);
    match s.verdict {
        V::Pass => "passed".into(),
        V::NotJudged => "not judged".into(),
        V::TooManyLate => format!(
            "stopped early: more than 1 % of {} planned queries exceeded {}",
            s.planned,
            ms(target)
        ),
        V::P99AboveTarget => format!("p99 {} is above the target {}", ms(s.p99()), ms(target)),
        V::BelowOfferedRate => format!(
            "achieved {:.1} qps, below 90 % of the {} offered",
            s.qps,
            py_rate(s.offered_qps.unwrap_or(0.0))
        ),
        V::Errors => format!(
            "{} queries failed: {}",
            s.errors,
            s.error.as_deref().unwrap_or("unknown error")
        ),
        V::IssuerLate => format!(
            "the load generator fell behind (issue lateness p99 {}): the machine is too busy to judge this step",
            ms(s.lateness.p99)
        ),
        V::DrainTimeout => format!("{} queries were still outstanding at the drain timeout", s.abandoned),
        V::Interrupted => "interrupted".into(),
    }
}

/// The line after a step that passed: the search takes it as a candidate answer.
pub const TAKEN: &str = "^taken";

/// `===RESULT: linear target_latency=0.01 measured_latency=0.0094… qps=127` or `qps=FAIL`.
pub fn result_line(dist: Distribution, target: f64, best: Option<&StepSummary>) -> String {
    match best {
        Some(s) => format!(
            "===RESULT: {} target_latency={} measured_latency={} qps={}",
            dist.as_str(),
            py_float(target),
            py_float(s.p99()),
            py_rate(s.offered_qps.unwrap_or(s.qps))
        ),
        None => format!(
            "===RESULT: {} target_latency={} qps=FAIL",
            dist.as_str(),
            py_float(target)
        ),
    }
}

/// Best offered rate per distribution and target; -1 for FAIL. Targets in the order run.
#[derive(Debug, Default, Clone)]
pub struct FinalResults(pub Vec<(Distribution, Vec<(f64, f64)>)>);

impl FinalResults {
    pub fn set(&mut self, dist: Distribution, target: f64, qps: f64) {
        let i = match self.0.iter().position(|(d, _)| *d == dist) {
            Some(i) => i,
            None => {
                self.0.push((dist, Vec::new()));
                self.0.len() - 1
            }
        };
        self.0[i].1.push((target, qps));
    }

    pub fn get(&self, dist: Distribution) -> &[(f64, f64)] {
        self.0
            .iter()
            .find(|(d, _)| *d == dist)
            .map_or(&[], |(_, v)| v)
    }

    /// `===FINAL_RESULT: {'linear': {'0.01': 128}, 'exponential': {}}` (a Python dict).
    pub fn line(&self) -> String {
        let dists = [Distribution::Linear, Distribution::Exponential];
        let parts: Vec<String> = dists
            .iter()
            .map(|&d| {
                let inner: Vec<String> = self
                    .get(d)
                    .iter()
                    .map(|(t, q)| format!("'{}': {}", py_float(*t), py_rate(*q)))
                    .collect();
                format!("'{}': {{{}}}", d.as_str(), inner.join(", "))
            })
            .collect();
        format!("===FINAL_RESULT: {{{}}}", parts.join(", "))
    }
}

/// The accuracy pass's outcome (`check_accuracy` block).
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyReport {
    pub accuracy: f64,
    /// The old tool's misspelt key, kept for its readers.
    pub accuacy: f64,
    pub good_items: u64,
    pub total_items: u64,
    pub mean: f64,
    pub qps: f64,
    pub count: u64,
    pub runtime: f64,
    pub percentiles: crate::stats::Percentiles,
    /// Images that could not be decoded and were left out.
    pub skipped_items: u64,
}

/// `check_accuracy accuracy=76.46, good_items=382, total_items=500`
pub fn accuracy_line(a: &AccuracyReport) -> String {
    format!(
        "check_accuracy accuracy={:.2}, good_items={}, total_items={}",
        a.accuracy, a.good_items, a.total_items
    )
}

/// A target latency and the best step that met it (`None`: FAIL).
pub type TargetResult = (f64, Option<StepSummary>);

/// Everything `results.json` holds; filled in as the run goes.
#[derive(Debug, Default)]
pub struct Results {
    pub runtime: String,
    pub version: String,
    pub time: u64,
    pub cmdline: String,
    pub check_accuracy: Option<AccuracyReport>,
    /// Per distribution, each step's name and summary in the order run.
    pub scan: Vec<(Distribution, Vec<(String, StepSummary)>)>,
    /// Per distribution and target: the best step, or `None` for FAIL.
    pub results: Vec<(Distribution, Vec<TargetResult>)>,
    pub final_results: FinalResults,
    pub settings: Value,
    pub system: Value,
    /// The closed-loop capacity probe that bounded the search.
    pub capacity: Option<StepSummary>,
    pub interrupted: bool,
}

impl Results {
    /// Adds a step under a unique name and returns that name.
    pub fn add_step(&mut self, dist: Distribution, name: String, s: StepSummary) -> String {
        let i = match self.scan.iter().position(|(d, _)| *d == dist) {
            Some(i) => i,
            None => {
                self.scan.push((dist, Vec::new()));
                self.scan.len() - 1
            }
        };
        let list = &mut self.scan[i].1;
        let mut unique = name.clone();
        let mut n = 2;
        while list.iter().any(|(k, _)| *k == unique) {
            unique = format!("{name}#{n}");
            n += 1;
        }
        list.push((unique.clone(), s));
        unique
    }

    pub fn set_result(&mut self, dist: Distribution, target: f64, best: Option<StepSummary>) {
        let q = best
            .as_ref()
            .map_or(-1.0, |s| s.offered_qps.unwrap_or(s.qps));
        self.final_results.set(dist, target, q);
        match self.results.iter_mut().find(|(d, _)| *d == dist) {
            Some((_, v)) => v.push((target, best)),
            None => self.results.push((dist, vec![(target, best)])),
        }
    }

    /// The JSON document (keys sorted: serde_json's map is ordered by key).
    pub fn to_json(&self) -> Value {
        let mut scan = serde_json::Map::new();
        let mut results = serde_json::Map::new();
        let mut finals = serde_json::Map::new();
        for d in [Distribution::Linear, Distribution::Exponential] {
            let steps: serde_json::Map<String, Value> = self
                .scan
                .iter()
                .filter(|(x, _)| *x == d)
                .flat_map(|(_, v)| v.iter())
                .map(|(k, s)| (k.clone(), step_json(s)))
                .collect();
            scan.insert(d.as_str().into(), Value::Object(steps));
            let best: serde_json::Map<String, Value> = self
                .results
                .iter()
                .filter(|(x, _)| *x == d)
                .flat_map(|(_, v)| v.iter())
                .map(|(t, s)| {
                    let v = match s {
                        Some(s) => step_json(s),
                        None => json!({
                            "target_latency": t, "qps": -1, "count": 0, "mean": 0.0,
                            "runtime": 0.0, "percentiles": {}, "passed": false
                        }),
                    };
                    (py_float(*t), v)
                })
                .collect();
            results.insert(d.as_str().into(), Value::Object(best));
            let f: serde_json::Map<String, Value> = self
                .final_results
                .get(d)
                .iter()
                .map(|(t, q)| (py_float(*t), rate_json(*q)))
                .collect();
            finals.insert(d.as_str().into(), Value::Object(f));
        }
        let mut doc = json!({
            "runtime": self.runtime,
            "version": self.version,
            "time": self.time,
            "cmdline": self.cmdline,
            "scan": scan,
            "results": results,
            "final_results": finals,
            "settings": self.settings,
            "system": self.system,
            "interrupted": self.interrupted,
        });
        if let Some(c) = &self.capacity {
            doc["capacity_probe"] = step_json(c);
        }
        if let Some(a) = &self.check_accuracy {
            doc["check_accuracy"] = serde_json::to_value(a).unwrap_or(Value::Null);
        }
        doc
    }
}

fn rate_json(q: f64) -> Value {
    if q.fract() == 0.0 {
        json!(q as i64)
    } else {
        json!(q)
    }
}

/// A step as JSON (shared by results.json and `--json` output).
pub fn step_json(s: &StepSummary) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// Could not write an output file (exit code 2: the user chose the path).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {reason} (choose another --output)")]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
}

/// Checks before any measuring that `path` can be written: creates its folder and a
/// scratch file beside it.
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    let err = |reason: String| WriteError {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        return Err(err("it is a folder".into()));
    }
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
    let probe = dir.join(format!(".loadgen-write-test.{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes pretty JSON atomically: a temp file in the same folder, fsync, rename. A
/// crash leaves either the old file or the new one, never half of one.
pub fn write_json_atomic(path: &Path, value: &Value) -> Result<(), WriteError> {
    let err = |reason: String| WriteError {
        path: path.to_path_buf(),
        reason,
    };
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
    let name = path.file_name().map_or_else(
        || "results.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut text = serde_json::to_string_pretty(value).map_err(|e| err(e.to_string()))?;
    text.push('\n');
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e.to_string())
    })
}

/// Settings as JSON for the `settings` block.
pub fn settings_json<T: Serialize>(s: &T) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Lateness, Percentiles};
    use crate::step::Verdict;

    #[test]
    fn floats_print_like_python() {
        for (v, s) in [
            (0.01, "0.01"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (0.2, "0.2"),
            (0.05, "0.05"),
            (10.0, "10.0"),
            (0.00001, "1e-05"),
            (0.009488344192504883, "0.009488344192504883"),
        ] {
            assert_eq!(py_float(v), s);
        }
        assert_eq!(py_rate(128.0), "128");
        assert_eq!(py_rate(-1.0), "-1");
        assert_eq!(py_rate(2.5), "2.5");
    }

    fn step(qps: f64) -> StepSummary {
        let mut p = Percentiles::default();
        for (k, v) in [
            ("50.0", 0.0083),
            ("80.0", 0.0088),
            ("90.0", 0.0092),
            ("95.0", 0.0097),
            ("99.0", 0.0105),
            ("99.9", 0.0109),
        ] {
            p.0.insert(k.into(), v);
        }
        StepSummary {
            distribution: Some(Distribution::Linear),
            target_latency: Some(0.01),
            offered_qps: Some(qps),
            qps: 128.72,
            count: 500,
            errors: 0,
            planned: 500,
            abandoned: 0,
            runtime: 3.891,
            mean: 0.0084334,
            percentiles: p.clone(),
            percentiles_uncorrected: p,
            lateness: Lateness::default(),
            early_stop: false,
            passed: true,
            verdict: Verdict::Pass,
            error: None,
        }
    }

    #[test]
    fn log_lines_have_the_old_shapes() {
        let s = step(129.0);
        let name = step_name(Distribution::Linear, Some(0.01), 129.0);
        assert_eq!(
            step_line(&name, &s),
            "linear/0.01/129 qps=128.72, mean=0.008433, time=3.89, tiles=50:0.0083,80:0.0088,90:0.0092,95:0.0097,99:0.0105,99.9:0.0109"
        );
        assert_eq!(
            result_line(Distribution::Linear, 0.01, Some(&s)),
            "===RESULT: linear target_latency=0.01 measured_latency=0.0105 qps=129"
        );
        assert_eq!(
            result_line(Distribution::Exponential, 0.01, None),
            "===RESULT: exponential target_latency=0.01 qps=FAIL"
        );
        let mut f = FinalResults::default();
        f.set(Distribution::Linear, 0.01, 128.0);
        f.set(Distribution::Linear, 0.05, 142.0);
        assert_eq!(
            f.line(),
            "===FINAL_RESULT: {'linear': {'0.01': 128, '0.05': 142}, 'exponential': {}}"
        );
        f.set(Distribution::Exponential, 0.01, -1.0);
        assert!(f.line().ends_with("'exponential': {'0.01': -1}}"));
    }

    #[test]
    fn duplicate_step_names_stay_distinct() {
        let mut r = Results::default();
        let a = r.add_step(Distribution::Linear, "linear/0.01/5".into(), step(5.0));
        let b = r.add_step(Distribution::Linear, "linear/0.01/5".into(), step(5.0));
        assert_ne!(a, b);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/results.json");
        write_json_atomic(&p, &json!({"a": 1})).unwrap();
        write_json_atomic(&p, &json!({"a": 2})).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["a"], 2);
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_output_is_refused_with_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_writable(dir.path()).unwrap_err().to_string();
        assert!(e.contains("it is a folder"), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = check_writable(&file.join("results.json"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot write"), "{e}");
    }
}
