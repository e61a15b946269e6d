//! Where an inference's time goes, operation by operation (`--op-profile`): what a
//! runtime's own profiler reports (OpenVINO's per-node performance counters, ONNX
//! Runtime's session profile, TensorFlow's step stats), summed per node over every
//! profiled inference. Backends fill an [`OpTotals`] as they run; the command reads
//! the [`OpProfile`] after the workers are gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One node of the executed graph, over every profiled inference.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    /// The node's name in the executed graph (after the runtime's fusions).
    pub name: String,
    /// Its operation type (`Convolution`, `Conv`, `FusedConv`, `Conv2D`, …).
    pub kind: String,
    /// The runtime's implementation, where it names one (OpenVINO's `exec_type`,
    /// e.g. `brgconv_avx2_BF16`; ONNX Runtime's execution provider).
    pub exec: Option<String>,
    /// Time the node ran, summed over its runs, in microseconds.
    pub total_us: f64,
    /// How many times it ran.
    pub count: u64,
}

/// Per-node sums, added to as inferences finish (by several workers: see
/// [`SharedTotals`]).
#[derive(Debug, Default)]
pub struct OpTotals {
    ops: Vec<OpTime>,
    index: HashMap<String, usize>,
    /// Inferences the sums cover.
    pub inferences: u64,
    /// Why a part of the profile is missing (a session whose trace could not be read).
    pub problems: Vec<String>,
}

impl OpTotals {
    /// Adds one run of node `name` that took `us` microseconds.
    pub fn add(&mut self, name: &str, kind: &str, exec: Option<&str>, us: f64) {
        self.add_runs(name, kind, exec, us, 1);
    }

    /// Adds `count` runs of node `name` that took `us` microseconds together.
    pub fn add_runs(&mut self, name: &str, kind: &str, exec: Option<&str>, us: f64, count: u64) {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.ops.push(OpTime {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    exec: exec.map(str::to_string),
                    total_us: 0.0,
                    count: 0,
                });
                self.index.insert(name.to_string(), self.ops.len() - 1);
                self.ops.len() - 1
            }
        };
        self.ops[i].total_us += us.max(0.0);
        self.ops[i].count += count;
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: OpTotals) {
        for op in other.ops {
            self.add_runs(
                &op.name,
                &op.kind,
                op.exec.as_deref(),
                op.total_us,
                op.count,
            );
        }
        self.inferences += other.inferences;
        self.problems.extend(other.problems);
    }

    /// The profile, longest node first (ties by name, so that it reads the same twice).
    pub fn profile(&self) -> OpProfile {
        let mut ops = self.ops.clone();
        ops.sort_by(|a, b| {
            b.total_us
                .total_cmp(&a.total_us)
                .then_with(|| a.name.cmp(&b.name))
        });
        OpProfile {
            ops,
            inferences: self.inferences,
            problems: self.problems.clone(),
        }
    }
}

/// The totals the workers of one backend add to.
pub type SharedTotals = Arc<Mutex<OpTotals>>;

/// Adds `totals` to `shared`, whatever another worker did to the lock.
pub fn merge_into(shared: &SharedTotals, totals: OpTotals) {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .merge(totals);
}

/// What a run's profiler saw, longest node first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpProfile {
    pub ops: Vec<OpTime>,
    pub inferences: u64,
    pub problems: Vec<String>,
}

impl OpProfile {
    /// Every node's time together, in microseconds.
    pub fn total_us(&self) -> f64 {
        self.ops.iter().map(|o| o.total_us).sum()
    }

    /// The nodes' time per inference, in milliseconds (`None` before any inference).
    pub fn per_inference_ms(&self) -> Option<f64> {
        (self.inferences > 0).then(|| self.total_us() / self.inferences as f64 / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_node_and_sorts_longest_first() {
        let mut a = OpTotals::default();
        a.add("conv1", "Conv", None, 300.0);
        a.add("relu1", "Relu", None, 10.0);
        a.add("conv1", "Conv", None, 100.0);
        a.inferences = 2;
        let mut b = OpTotals::default();
        b.add("relu1", "Relu", None, 20.0);
        b.add("fc", "Gemm", Some("cpu"), 25.0);
        b.add("neg", "Odd", None, -5.0);
        b.inferences = 1;
        a.merge(b);
        let p = a.profile();
        let names: Vec<_> = p.ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["conv1", "relu1", "fc", "neg"]);
        assert_eq!((p.ops[0].total_us, p.ops[0].count), (400.0, 2));
        assert_eq!((p.ops[1].total_us, p.ops[1].count), (30.0, 2));
        assert_eq!(p.ops[2].exec.as_deref(), Some("cpu"));
        assert_eq!(p.ops[3].total_us, 0.0, "a negative time counts as none");
        assert_eq!(p.inferences, 3);
        assert_eq!(p.total_us(), 455.0);
        assert!((p.per_inference_ms().unwrap() - 455.0 / 3.0 / 1e3).abs() < 1e-12);
        assert_eq!(OpProfile::default().per_inference_ms(), None);
    }

    #[test]
    fn equal_times_sort_by_name() {
        let mut t = OpTotals::default();
        t.add("b", "X", None, 1.0);
        t.add("a", "X", None, 1.0);
        let p = t.profile();
        assert_eq!(p.ops[0].name, "a");
    }
}
