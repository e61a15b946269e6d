//! Latency statistics: HDR histograms (3 significant digits, nanoseconds), one set per
//! worker, merged after a step. Recording is O(1) and allocation-free.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Largest latency we can record: one hour. Larger values saturate.
const MAX_NS: u64 = 3_600_000_000_000;

/// The percentiles reported everywhere, as the old tool wrote their keys.
pub const PERCENTILES: [f64; 6] = [50.0, 80.0, 90.0, 95.0, 99.0, 99.9];

/// A histogram of nanosecond values.
#[derive(Clone, Debug)]
pub struct NsHistogram(Histogram<u64>);

impl Default for NsHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl NsHistogram {
    pub fn new() -> NsHistogram {
        // Constant bounds that hdrhistogram accepts (1 ≤ low, high ≥ 2·low, sigfig 3).
        let h = Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid bounds"); // ok: constants
        NsHistogram(h)
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.max(1));
    }

    /// Records `n` equal values (a batch that completed together).
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u64) {
        let _ = self.0.record_n(ns.clamp(1, MAX_NS), n);
    }

    pub fn add(&mut self, other: &NsHistogram) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value at percentile `p` (0–100), in seconds; 0 when empty.
    pub fn percentile_s(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.value_at_percentile(p) as f64 / 1e9
        }
    }

    pub fn mean_s(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.mean() / 1e9
        }
    }

    pub fn max_s(&self) -> f64 {
        self.0.max() as f64 / 1e9
    }

    /// Values above `ns`.
    pub fn count_above(&self, ns: u64) -> u64 {
        self.0.len() - self.0.count_between(0, ns)
    }

    /// `{"50.0": s, "80.0": s, ...}` for [`PERCENTILES`].
    pub fn percentiles(&self) -> Percentiles {
        Percentiles(
            PERCENTILES
                .iter()
                .map(|&p| (format!("{p:.1}"), self.percentile_s(p)))
                .collect(),
        )
    }
}

/// Percentile key (`"99.9"`) → seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Percentiles(pub BTreeMap<String, f64>);

impl Percentiles {
    pub fn get(&self, p: f64) -> f64 {
        self.0.get(&format!("{p:.1}")).copied().unwrap_or(0.0)
    }
}

/// What one worker measured during one step.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    /// completion − planned send time (coordinated-omission free).
    pub corrected: NsHistogram,
    /// completion − actual hand-off to the queue.
    pub uncorrected: NsHistogram,
    pub completed: u64,
    pub errors: u64,
    /// Exact count of served queries above each of `thresholds` (ns); the first
    /// threshold is the step's target. Counted per query, never read off a bucket.
    pub late: Vec<u64>,
    pub thresholds: Vec<u64>,
    /// How late a simulated server finished beyond its drawn service time: the
    /// machine's own hiccups (empty for real runtimes).
    pub stalls: NsHistogram,
    /// Latest completion, ns from the step start.
    pub last_completion_ns: u64,
    /// First failure message, to explain a failed step.
    pub first_error: Option<String>,
}

impl WorkerStats {
    /// Records one served query's latency: histograms, exact late counts per
    /// threshold.
    #[inline]
    pub fn record_served(&mut self, corrected_ns: u64, uncorrected_ns: u64) {
        self.corrected.record(corrected_ns);
        self.uncorrected.record(uncorrected_ns);
        for (count, &t) in self.late.iter_mut().zip(&self.thresholds) {
            *count += u64::from(corrected_ns > t);
        }
    }

    pub fn reset(&mut self) {
        self.corrected.reset();
        self.uncorrected.reset();
        self.completed = 0;
        self.errors = 0;
        self.late.clear();
        self.thresholds.clear();
        self.stalls.reset();
        self.last_completion_ns = 0;
        self.first_error = None;
    }

    /// Adds another worker's figures (used after the step, never on the timed path).
    pub fn merge(&mut self, other: &WorkerStats) {
        self.corrected.add(&other.corrected);
        self.uncorrected.add(&other.uncorrected);
        self.completed += other.completed;
        self.errors += other.errors;
        if self.late.len() < other.late.len() {
            self.late.resize(other.late.len(), 0);
            self.thresholds.clone_from(&other.thresholds);
        }
        for (a, b) in self.late.iter_mut().zip(&other.late) {
            *a += b;
        }
        self.stalls.add(&other.stalls);
        self.last_completion_ns = self.last_completion_ns.max(other.last_completion_ns);
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// Issue lateness (actual hand-off − planned), in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lateness {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Lateness {
    pub fn from_histogram(h: &NsHistogram) -> Lateness {
        Lateness {
            p50: h.percentile_s(50.0),
            p99: h.percentile_s(99.0),
            max: h.max_s(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_have_the_old_keys_and_three_digits() {
        let mut h = NsHistogram::new();
        for ms in 1..=1000u64 {
            h.record(ms * 1_000_000);
        }
        let p = h.percentiles();
        let keys: Vec<&str> = p.0.keys().map(String::as_str).collect();
        assert_eq!(keys, ["50.0", "80.0", "90.0", "95.0", "99.0", "99.9"]);
        assert!((p.get(50.0) - 0.5).abs() < 0.5 * 1e-3);
        assert!((p.get(99.0) - 0.99).abs() < 0.99 * 1e-3);
        assert!((h.mean_s() - 0.5005).abs() < 1e-3);
        assert_eq!(h.count_above(900_000_000), 100);
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_latest_completion() {
        let mut a = WorkerStats::default();
        let mut b = WorkerStats::default();
        a.corrected.record(1_000);
        a.completed = 1;
        a.last_completion_ns = 50;
        b.corrected.record(2_000);
        b.completed = 1;
        b.errors = 1;
        a.late = vec![1, 0];
        b.late = vec![2, 1];
        b.first_error = Some("boom".into());
        b.last_completion_ns = 70;
        a.merge(&b);
        assert_eq!(a.corrected.len(), 2);
        assert_eq!((a.completed, a.errors, a.last_completion_ns), (2, 1, 70));
        assert_eq!(a.late, vec![3, 1], "exact late counts add per threshold");
        assert_eq!(a.first_error.as_deref(), Some("boom"));
    }

    #[test]
    fn huge_values_saturate_instead_of_failing() {
        let mut h = NsHistogram::new();
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.len(), 2);
    }
}
