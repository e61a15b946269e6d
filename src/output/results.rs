//! The results.json document (SPEC §5): its records, built from what the measuring
//! code produced, and the document as a whole. Formatting only.

use serde::Serialize;
use serde_json::{json, Value};

use crate::measure::schedule::Distribution;
use crate::measure::step::StepSummary;
use crate::output::lines::{py_float, FinalResults};

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
    pub percentiles: crate::measure::stats::Percentiles,
    /// Images that could not be decoded and were left out.
    pub skipped_items: u64,
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

/// Settings as JSON for the `settings` block.
pub fn settings_json<T: Serialize>(s: &T) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stats::{Lateness, Percentiles};
    use crate::measure::step::Verdict;

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
    fn duplicate_step_names_stay_distinct() {
        let mut r = Results::default();
        let a = r.add_step(Distribution::Linear, "linear/0.01/5".into(), step(5.0));
        let b = r.add_step(Distribution::Linear, "linear/0.01/5".into(), step(5.0));
        assert_ne!(a, b);
    }
}
