//! The results.json document (docs/CONTRACT.md §6): its records, built from what the measuring
//! code produced, and the document as a whole. Formatting only.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use std::collections::BTreeMap;

use crate::measure::schedule::Distribution;
use crate::measure::search::{Interval, SearchResult};
use crate::measure::stats::{EncodedHistograms, Lateness};
use crate::measure::step::StepSummary;
use crate::output::accuracy::AccuracyReport;
use crate::output::lines::{py_float, FinalResults};
use crate::tune::candidates::Candidate;
use crate::tune::predict::Calibration;

/// What the search found for one target: the answer's step (`None`: FAIL), where the
/// highest passing rate lies, and whether the answer's pooled evidence is confident.
#[derive(Debug, Clone)]
pub struct TargetResult {
    pub target: f64,
    pub best: Option<StepSummary>,
    pub interval: Interval,
    /// Why an end is unknown (see [`crate::output::lines::interval_note`]).
    pub interval_note: Option<String>,
    /// The two-sided confidence of the interval's shown ends
    /// ([`crate::measure::policy::interval_confidence`]).
    pub interval_confidence: f64,
    pub confident: bool,
    /// The search's share of `--search-time` ran out before its confirmations.
    pub budget_spent: bool,
    /// The configuration that answered, when the run tuned.
    pub config: Option<Candidate>,
}

/// One tuning candidate (docs/CONTRACT.md §7.2): its settings, what its calibration measured, and
/// its predicted and measured answers per distribution and target.
#[derive(Debug, Clone)]
pub struct ConfigReport {
    pub candidate: Candidate,
    pub calibration: Option<Calibration>,
    /// Why it could not be calibrated (its sessions failed to load, say).
    pub error: Option<String>,
    /// `(distribution, target, qps)`.
    pub predicted: Vec<(Distribution, f64, f64)>,
    /// `(distribution, target, qps)`, -1 for FAIL; only where it was searched.
    pub measured: Vec<(Distribution, f64, f64)>,
}

pub fn candidate_json(c: &Candidate) -> Value {
    json!({
        "name": c.to_string(),
        "workers": c.workers,
        "intra_threads": c.intra_threads,
        "inter_threads": c.inter_threads,
        "batch_size": c.batch_size,
    })
}

fn per_target_json(v: &[(Distribution, f64, f64)]) -> Value {
    let mut out = serde_json::Map::new();
    for d in [Distribution::Linear, Distribution::Exponential] {
        let m: serde_json::Map<String, Value> = v
            .iter()
            .filter(|(x, _, _)| *x == d)
            .map(|(_, t, q)| (py_float(*t), rate_json(*q)))
            .collect();
        if !m.is_empty() {
            out.insert(d.as_str().into(), Value::Object(m));
        }
    }
    Value::Object(out)
}

impl ConfigReport {
    pub fn to_json(&self) -> Value {
        let mut v = candidate_json(&self.candidate);
        if let Some(c) = &self.calibration {
            v["calibration"] = json!({
                "capacity": c.capacity,
                "closed_loop": c.closed_loop,
                "unloaded_mean": c.unloaded_mean,
                "unloaded_p50": c.unloaded_p50,
                "unloaded_p99": c.unloaded_p99,
                "unloaded_cv2": c.unloaded_cv2,
            });
        }
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        v["predicted"] = per_target_json(&self.predicted);
        v["measured"] = per_target_json(&self.measured);
        v
    }
}

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
    /// What the user must know about the answers (a generator that fell behind).
    pub warnings: Vec<String>,
    /// The tuning candidates, when the run tuned.
    pub configurations: Vec<ConfigReport>,
    /// The model server's metadata (`kserve`): its name, version, extensions, model.
    pub server: Option<Value>,
    /// What an in-process runtime settled on (OpenVINO's compiled model).
    pub runtime_info: Option<Value>,
    /// The run ended on a failure (a broken server): its sentence, and the targets
    /// it did not finish (`failed` in results.json).
    pub failed: Option<Failed>,
    /// `--agents`: each agent's address, clock and figures per step.
    pub agents: Option<Value>,
}

/// Why a run ended before its last target, and which targets it left unanswered.
#[derive(Debug, Default)]
pub struct Failed {
    pub error: String,
    pub unfinished: Vec<(Distribution, f64)>,
}

impl Results {
    /// Records that the run ends on `error`: every target of `targets` without a
    /// result is unfinished.
    pub fn mark_failed(
        &mut self,
        error: String,
        targets: impl Iterator<Item = (Distribution, f64)>,
    ) {
        let done = |d: Distribution, t: f64| {
            (self.results.iter()).any(|(rd, v)| *rd == d && v.iter().any(|r| r.target == t))
        };
        let unfinished = targets.filter(|&(d, t)| !done(d, t)).collect();
        self.failed = Some(Failed { error, unfinished });
    }

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

    pub fn set_result(
        &mut self,
        dist: Distribution,
        target: f64,
        found: &SearchResult,
        config: Option<Candidate>,
        interval_note: Option<String>,
        interval_confidence: f64,
    ) {
        let best = found.best.clone();
        let q = best
            .as_ref()
            .map_or(-1.0, |s| s.offered_qps.unwrap_or(s.qps));
        self.final_results.set(dist, target, q);
        self.warnings.extend(found.warnings.iter().cloned());
        let r = TargetResult {
            target,
            best,
            interval: found.interval,
            interval_note,
            interval_confidence,
            confident: found.confident,
            budget_spent: found.budget_spent,
            config,
        };
        match self.results.iter_mut().find(|(d, _)| *d == dist) {
            Some((_, v)) => v.push(r),
            None => self.results.push((dist, vec![r])),
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
                .map(|r| {
                    let mut v = match &r.best {
                        Some(s) => step_json(s),
                        None => json!({
                            "target_latency": r.target, "qps": -1, "count": 0, "mean": 0.0,
                            "runtime": 0.0, "percentiles": {}, "passed": false
                        }),
                    };
                    let (low, high) = r.interval.ends();
                    v["interval"] = json!([low.map(rate_json), high.map(rate_json)]);
                    v["interval_confidence"] = json!(r.interval_confidence);
                    if let Some(n) = &r.interval_note {
                        v["interval_note"] = json!(n);
                    }
                    v["confident"] = json!(r.confident);
                    v["budget_spent"] = json!(r.budget_spent);
                    if let Some(c) = &r.config {
                        v["config"] = candidate_json(c);
                    }
                    (py_float(r.target), v)
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
            "warnings": self.warnings,
        });
        if let Some(s) = &self.server {
            doc["server"] = s.clone();
        }
        if let Some(a) = &self.agents {
            doc["agents"] = a.clone();
        }
        if let Some(r) = &self.runtime_info {
            doc["runtime_info"] = r.clone();
        }
        if let Some(f) = &self.failed {
            let unfinished: Vec<Value> = (f.unfinished.iter())
                .map(|(d, t)| json!({"distribution": d.as_str(), "target_latency": t}))
                .collect();
            doc["failed"] = json!({"error": f.error, "unfinished": unfinished});
        }
        if let Some(c) = &self.capacity {
            doc["capacity_probe"] = step_json(c);
        }
        if !self.configurations.is_empty() {
            doc["configurations"] =
                Value::Array(self.configurations.iter().map(|c| c.to_json()).collect());
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

/// The `<step>` record of results.json (docs/CONTRACT.md §6.3), built from the measurement
/// core's [`StepSummary`]; all times in seconds.
#[derive(Serialize)]
struct StepRecord<'a> {
    distribution: Option<&'static str>,
    target_latency: Option<f64>,
    offered_qps: Option<f64>,
    qps: f64,
    count: u64,
    errors: u64,
    planned: u64,
    cap: u64,
    issued: u64,
    abandoned: u64,
    judged: u64,
    late: u64,
    late_fraction: f64,
    runtime: f64,
    mean: f64,
    percentiles: &'a BTreeMap<String, f64>,
    /// `None` (null) when no query finished: the histogram is empty, and zeros would
    /// read as answers given at once.
    percentiles_uncorrected: Option<&'a BTreeMap<String, f64>>,
    /// The percentiles include abandoned queries at their age when dropped.
    percentiles_include_abandoned: bool,
    /// The step's whole latency histograms, for other HDR tools: absent where none
    /// was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    histograms: Option<HistogramsRecord>,
    lateness: LatenessRecord,
    stalls: LatenessRecord,
    /// Backend call times (in-process runtimes): absent where none were timed.
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<ServiceRecord>,
    stop: &'static str,
    confident: bool,
    confidence: f64,
    passed: bool,
    verdict: &'static str,
    retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    carried_from: Option<f64>,
    seed: u64,
    error: Option<&'a str>,
}

/// A step's latency histograms in HdrHistogram's standard compressed form (V2 +
/// DEFLATE, base64: what HdrHistogram Java's `encodeIntoCompressedByteBuffer` and
/// Python's `encode()` write, and their `decode` reads), values in nanoseconds.
#[derive(Serialize)]
struct HistogramsRecord {
    /// Always `"ns"`: the unit of the recorded values (our percentiles are seconds).
    unit: &'static str,
    /// Always [`HISTOGRAM_ENCODING`], so that a reader can tell the format.
    encoding: &'static str,
    corrected: String,
    uncorrected: String,
}

/// The `encoding` of a step's `histograms`.
const HISTOGRAM_ENCODING: &str = "hdrhistogram-v2-deflate-base64";

impl From<&EncodedHistograms> for HistogramsRecord {
    fn from(h: &EncodedHistograms) -> Self {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        HistogramsRecord {
            unit: "ns",
            encoding: HISTOGRAM_ENCODING,
            corrected: b64(&h.corrected),
            uncorrected: b64(&h.uncorrected),
        }
    }
}

/// The step's backend call times and the capacity probe's they were judged against.
#[derive(Serialize)]
struct ServiceRecord {
    calls: u64,
    mean: f64,
    reference_mean: Option<f64>,
}

#[derive(Serialize)]
struct LatenessRecord {
    p50: f64,
    p99: f64,
    max: f64,
}

impl From<&Lateness> for LatenessRecord {
    fn from(l: &Lateness) -> Self {
        LatenessRecord {
            p50: l.p50,
            p99: l.p99,
            max: l.max,
        }
    }
}

/// A step as JSON (shared by results.json and `--json` output).
pub fn step_json(s: &StepSummary) -> Value {
    let record = StepRecord {
        distribution: s.distribution.map(Distribution::as_str),
        target_latency: s.target_latency,
        offered_qps: s.offered_qps,
        qps: s.qps,
        count: s.count,
        errors: s.errors,
        planned: s.planned,
        cap: s.cap,
        issued: s.issued,
        abandoned: s.abandoned,
        judged: s.judged,
        late: s.late,
        late_fraction: if s.judged > 0 {
            s.late as f64 / s.judged as f64
        } else {
            0.0
        },
        runtime: s.runtime,
        mean: s.mean,
        percentiles: &s.percentiles.0,
        percentiles_uncorrected: (s.count > 0).then_some(&s.percentiles_uncorrected.0),
        percentiles_include_abandoned: s.abandoned > 0,
        histograms: s.histograms.as_ref().map(HistogramsRecord::from),
        lateness: (&s.lateness).into(),
        stalls: (&s.stalls).into(),
        service: s.service.mean().map(|mean| ServiceRecord {
            calls: s.service.calls,
            mean,
            reference_mean: s.service_ref.and_then(|r| r.mean()),
        }),
        stop: s.stop().name(),
        confident: s.confident(),
        confidence: s.confidence,
        passed: s.passed(),
        verdict: s.verdict().name(),
        retries: s.retries,
        carried_from: s.carried_from,
        seed: s.seed,
        error: s.error.as_deref(),
    };
    serde_json::to_value(record).unwrap_or(Value::Null)
}

/// Settings as JSON for the `settings` block.
pub fn settings_json<T: Serialize>(s: &T) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_step_names_stay_distinct() {
        let mut r = Results::default();
        let a = r.add_step(
            Distribution::Linear,
            "linear/0.01/5".into(),
            crate::measure::step::example_step(5.0),
        );
        let b = r.add_step(
            Distribution::Linear,
            "linear/0.01/5".into(),
            crate::measure::step::example_step(5.0),
        );
        assert_ne!(a, b);
    }

    /// The schema's step definition, as a schema of its own.
    fn step_validator() -> jsonschema::Validator {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/results.schema.json");
        let root: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let schema = json!({"definitions": root["definitions"], "$ref": "#/definitions/step"});
        jsonschema::validator_for(&schema).unwrap()
    }

    fn decode(b64: &Value) -> hdrhistogram::Histogram<u64> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("a base64 string"))
            .expect("base64");
        hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .expect("a V2 histogram")
    }

    #[test]
    fn a_step_keeps_its_histograms_with_the_abandoned_queries_in_the_corrected_one() {
        use crate::measure::virtual_clock::{ServiceLaw, VirtualQueue};
        // M/M/1 at 125 % of capacity: the step stops on its late queries with
        // queries still queued, which are abandoned at their age.
        let q = VirtualQueue::new(1, ServiceLaw::Exp(0.005), 10.0, 100);
        let spec = crate::measure::step::StepSpec::judged(
            Distribution::Exponential,
            250.0,
            10.0,
            100,
            Some(std::time::Duration::from_millis(50)),
            1,
            0.99,
        );
        let s = q.run(&spec);
        assert!(s.count > 0 && s.abandoned > 0, "{s:?}");
        let doc = step_json(&s);
        assert!(step_validator().is_valid(&doc), "{doc}");
        let h = &doc["histograms"];
        assert_eq!(
            (h["unit"].as_str(), h["encoding"].as_str()),
            (Some("ns"), Some(HISTOGRAM_ENCODING))
        );
        assert!(h["corrected"].as_str().unwrap().starts_with("HISTF"), "{h}");
        let corrected = decode(&h["corrected"]);
        let uncorrected = decode(&h["uncorrected"]);
        assert_eq!(corrected.len(), s.count + s.abandoned);
        assert_eq!(uncorrected.len(), s.count);
        // The same distribution the percentiles were read from, in nanoseconds.
        let p99 = corrected.value_at_percentile(99.0) as f64 / 1e9;
        assert_eq!(p99, s.percentiles.get(99.0));
        // A summary built without histograms (a test's) writes none.
        let none = step_json(&crate::measure::step::example_step(5.0));
        assert!(none.get("histograms").is_none(), "{none}");
    }

    #[test]
    fn a_step_in_which_no_query_finished_has_no_uncorrected_latencies() {
        let validator = step_validator();
        let done = step_json(&crate::measure::step::example_step(100.0));
        assert!(validator.is_valid(&done), "{done}");
        assert!(done["percentiles_uncorrected"]["99.0"].as_f64().unwrap() > 0.0);
        // Every query dropped when the step stopped: the percentiles are their ages
        // (and say so); the uncorrected ones have nothing and are null, not zeros.
        let mut s = crate::measure::step::example_step(100.0);
        s.count = 0;
        s.abandoned = 500;
        s.percentiles_uncorrected = crate::measure::stats::Percentiles::default();
        let none = step_json(&s);
        assert!(validator.is_valid(&none), "{none}");
        assert!(none["percentiles_uncorrected"].is_null(), "{none}");
        assert_eq!(none["percentiles_include_abandoned"], true);
        assert!(none["percentiles"]["50.0"].as_f64().unwrap() > 0.0);
    }
}
