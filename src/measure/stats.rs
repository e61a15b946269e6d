//! Latency statistics: HDR histograms (3 significant digits, nanoseconds), one set per
//! worker, merged after a step. Recording is O(1) and allocation-free.

use std::collections::BTreeMap;

use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
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

    /// The smallest value, in seconds; 0 when empty.
    pub fn min_s(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.min() as f64 / 1e9
        }
    }

    /// The `rank`-th smallest value (1-based), in seconds: an order statistic, to the
    /// histogram's precision. The quantile asked sits half a rank below, so that
    /// rounding cannot move it to the next rank.
    pub fn value_at_rank_s(&self, rank: u64) -> f64 {
        let n = self.0.len();
        if n == 0 {
            return 0.0;
        }
        let q = (rank.clamp(1, n) as f64 - 0.5) / n as f64;
        self.0.value_at_quantile(q) as f64 / 1e9
    }

    /// Values above `ns`.
    pub fn count_above(&self, ns: u64) -> u64 {
        self.0.len() - self.0.count_between(0, ns)
    }

    /// The histogram in HdrHistogram's compressed V2 encoding ("V2 + DEFLATE", the
    /// bytes that the Java and Python `encode()` base64), so that other HDR tools can
    /// read a step's whole distribution, not only the percentiles we chose. `None`
    /// only if the encoder fails, which writing to memory does not.
    pub fn encode_v2_deflate(&self) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .ok()?;
        Some(bytes)
    }

    /// The recorded buckets as `(value, count)` pairs, each value one the bucket
    /// holds: how an agent sends a histogram to its coordinator. Re-recorded with
    /// [`NsHistogram::from_buckets`] into a histogram of our own bounds, so a
    /// misbehaving peer cannot make the receiver allocate what it likes (a V2 header
    /// names its own range).
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// A histogram of `(value, count)` pairs ([`NsHistogram::buckets`]); values
    /// beyond one hour saturate, as recording does.
    pub fn from_buckets(pairs: &[(u64, u64)]) -> NsHistogram {
        let mut h = NsHistogram::new();
        for &(v, n) in pairs {
            h.record_n(v, n);
        }
        h
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

/// A step's two latency histograms (nanoseconds), encoded once when the step is
/// summarised (see [`NsHistogram::encode_v2_deflate`]): a few kilobytes a step
/// instead of the ~270 KB of counts an [`NsHistogram`] holds, so that summaries stay
/// cheap to clone and keep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedHistograms {
    /// completion − planned send, including abandoned queries at their age.
    pub corrected: Vec<u8>,
    /// completion − actual hand-off (served queries only).
    pub uncorrected: Vec<u8>,
}

impl EncodedHistograms {
    pub fn of(corrected: &NsHistogram, uncorrected: &NsHistogram) -> Option<EncodedHistograms> {
        Some(EncodedHistograms {
            corrected: corrected.encode_v2_deflate()?,
            uncorrected: uncorrected.encode_v2_deflate()?,
        })
    }
}

/// Percentile key (`"99.9"`) → seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Percentiles(pub BTreeMap<String, f64>);

impl Percentiles {
    /// The `p`-th percentile, 0 if this step recorded none.
    pub fn get(&self, p: f64) -> f64 {
        self.find(p).unwrap_or(0.0)
    }

    /// The `p`-th percentile, if this step recorded it.
    pub fn find(&self, p: f64) -> Option<f64> {
        self.0.get(&format!("{p:.1}")).copied()
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
    /// How long the backend's calls took (blocking sessions only): the machine's
    /// speed during the step, against the capacity probe's.
    pub service: ServiceTimes,
    /// Latest completion, ns from the step start.
    pub last_completion_ns: u64,
    /// First failure message, to explain a failed step.
    pub first_error: Option<String>,
    /// Ages (ns, from the planned send) of queries abandoned while being served (a
    /// network request not yet answered when the step stopped), recorded like
    /// latencies: lower bounds of the latencies they would have had.
    pub censored: NsHistogram,
    /// Exact count of those ages above each of `thresholds`.
    pub censored_late: Vec<u64>,
    /// Requests the server still held when, after the step, none of them had been
    /// answered for [`crate::measure::pool::settle_idle`]: a server that stopped
    /// answering (see [`crate::measure::fault`]). 0 when it kept answering.
    pub stalled: u64,
}

/// Running mean and spread of the time one backend call takes (whatever its batch),
/// in O(1) state. A step that fails while its calls take much longer than they did in
/// the capacity probe failed because the machine slowed down (another tenant, a
/// throttled vCPU), not because the system was overloaded: queueing at a higher rate
/// makes queries wait, never a call itself slower than with every worker busy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ServiceTimes {
    pub calls: u64,
    sum_s: f64,
    sum_sq_s: f64,
}

impl ServiceTimes {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let s = ns as f64 * 1e-9;
        self.calls += 1;
        self.sum_s += s;
        self.sum_sq_s += s * s;
    }

    pub fn add(&mut self, other: &ServiceTimes) {
        self.calls += other.calls;
        self.sum_s += other.sum_s;
        self.sum_sq_s += other.sum_sq_s;
    }

    /// `(calls, Σ seconds, Σ seconds²)`: what an agent sends of its calls.
    pub fn parts(&self) -> (u64, f64, f64) {
        (self.calls, self.sum_s, self.sum_sq_s)
    }

    /// The figures of [`ServiceTimes::parts`].
    pub fn from_parts((calls, sum_s, sum_sq_s): (u64, f64, f64)) -> ServiceTimes {
        ServiceTimes {
            calls,
            sum_s,
            sum_sq_s,
        }
    }

    /// Mean seconds per call.
    pub fn mean(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.sum_s / self.calls as f64)
    }

    /// Standard deviation of one call's seconds (sample).
    pub fn sd(&self) -> Option<f64> {
        let n = self.calls as f64;
        (self.calls > 1).then(|| {
            let m = self.sum_s / n;
            ((self.sum_sq_s - n * m * m).max(0.0) / (n - 1.0)).sqrt()
        })
    }

    /// Coefficient of variation of one call's seconds (the capacity probe's
    /// precision is this over √calls).
    pub fn cv(&self) -> Option<f64> {
        let m = self.mean()?;
        Some(self.sd()? / m).filter(|cv| cv.is_finite())
    }

    /// Whether calls with these figures are slower than `reference` by more than
    /// [`SLOWDOWN_TOLERANCE`] plus three standard errors of this mean (so that a
    /// few calls of a widely spread service time do not count as a slowdown). Needs
    /// [`MIN_SLOW_CALLS`] calls on both sides.
    pub fn slower_than(&self, reference: &ServiceTimes) -> bool {
        let (Some(m), Some(m0), Some(sd0)) = (self.mean(), reference.mean(), reference.sd()) else {
            return false;
        };
        if self.calls < MIN_SLOW_CALLS || reference.calls < MIN_SLOW_CALLS {
            return false;
        }
        m > m0 * (1.0 + SLOWDOWN_TOLERANCE) + 3.0 * sd0 / (self.calls as f64).sqrt()
    }
}

/// How much slower than in the capacity probe a step's backend calls may run before a
/// failure is put down to the machine (see [`ServiceTimes`]). The spells seen on the
/// development VM made ResNet-50 calls 1.6–1.8× slower for several seconds; turbo and
/// thermal drift stay well under 25 %.
pub const SLOWDOWN_TOLERANCE: f64 = 0.25;

/// Fewest calls on which a slowdown is judged.
pub const MIN_SLOW_CALLS: u64 = 5;

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

    /// Records one query abandoned while being served, `age_ns` after its planned
    /// send: it is judged at that age (late if the age already exceeds a threshold).
    pub fn record_censored(&mut self, age_ns: u64) {
        self.censored.record(age_ns);
        self.censored_late.resize(self.thresholds.len(), 0);
        for (count, &t) in self.censored_late.iter_mut().zip(&self.thresholds) {
            *count += u64::from(age_ns > t);
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
        self.service = ServiceTimes::default();
        self.last_completion_ns = 0;
        self.first_error = None;
        self.censored.reset();
        self.censored_late.clear();
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
        self.censored.add(&other.censored);
        if self.censored_late.len() < other.censored_late.len() {
            self.censored_late.resize(other.censored_late.len(), 0);
        }
        for (a, b) in self.censored_late.iter_mut().zip(&other.censored_late) {
            *a += b;
        }
        self.stalls.add(&other.stalls);
        self.stalled += other.stalled;
        self.service.add(&other.service);
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
    /// The histogram's figures, with its floor of 1 ns (it cannot hold 0, so an
    /// on-time release is recorded as 1 ns) read back as the 0 it stands for: a
    /// `1e-9` in results.json read as a time something took.
    pub fn from_histogram(h: &NsHistogram) -> Lateness {
        let zero_floor = |s: f64| if s <= 1e-9 { 0.0 } else { s };
        Lateness {
            p50: zero_floor(h.percentile_s(50.0)),
            p99: zero_floor(h.percentile_s(99.0)),
            max: zero_floor(h.max_s()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(ms: &[f64]) -> ServiceTimes {
        let mut t = ServiceTimes::default();
        for &m in ms {
            t.record((m * 1e6) as u64);
        }
        t
    }

    #[test]
    fn service_times_keep_mean_and_spread() {
        let t = times(&[40.0, 44.0, 48.0]);
        assert_eq!(t.calls, 3);
        assert!((t.mean().unwrap() - 0.044).abs() < 1e-9);
        assert!((t.sd().unwrap() - 0.004).abs() < 1e-9);
        let mut u = t;
        u.add(&times(&[44.0]));
        assert_eq!(u.calls, 4);
        assert!((u.mean().unwrap() - 0.044).abs() < 1e-9);
        assert_eq!(ServiceTimes::default().mean(), None);
    }

    #[test]
    fn a_slowdown_is_judged_against_the_reference_spread_and_the_step_calls() {
        // ResNet-50 on this VM: ~44 ms a call, a few ms of spread.
        let reference = times(&[40.0, 42.0, 44.0, 46.0, 48.0, 43.0, 45.0, 44.0]);
        // A slow spell: 1.6× for ten calls.
        assert!(times(&[70.0; 10]).slower_than(&reference));
        // 10 % slower is drift, not a spell.
        assert!(!times(&[48.4; 10]).slower_than(&reference));
        // Too few calls to say.
        assert!(!times(&[90.0; 4]).slower_than(&reference));
        // A widely spread service (sd = mean, as an exponential law): 1.9 times the
        // mean over ten calls is within three standard errors of chance.
        let wide = times(&[1.0, 2.0, 3.0, 5.0, 9.0, 14.0, 0.5, 4.0, 6.0, 5.5]);
        let sd = wide.sd().unwrap();
        assert!(sd > 0.7 * wide.mean().unwrap(), "sd {sd}");
        assert!(!times(&[1.9 * wide.mean().unwrap() * 1e3; 10]).slower_than(&wide));
        assert!(times(&[1.9 * wide.mean().unwrap() * 1e3; 100]).slower_than(&wide));
        // No reference, no judgement.
        assert!(!times(&[70.0; 10]).slower_than(&ServiceTimes::default()));
    }

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

    fn decode(bytes: &[u8]) -> Histogram<u64> {
        hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .expect("a V2 histogram")
    }

    #[test]
    fn a_histogram_encodes_as_hdr_v2_compressed_and_decodes_to_the_same_counts() {
        let mut h = NsHistogram::new();
        for ms in 1..=1000u64 {
            h.record(ms * 1_000_000);
        }
        h.record_n(5_000, 7);
        h.record(u64::MAX);
        let bytes = h.encode_v2_deflate().unwrap();
        // The V2 compressed cookie (0x1c849304 | 0x10), which other tools check
        // first: base64 of it is the "HISTF" every HdrHistogram string starts with.
        assert_eq!(bytes[..4], [0x1c, 0x84, 0x93, 0x14]);
        let back = decode(&bytes);
        assert_eq!(back, h.0, "every count, bucket for bucket");
        assert_eq!((back.len(), back.count_at(5_000)), (1008, 7));
        assert_eq!((back.low(), back.high(), back.sigfig()), (1, MAX_NS, 3));
        for p in PERCENTILES {
            assert_eq!(back.value_at_percentile(p), h.0.value_at_percentile(p));
        }
        assert_eq!(back.max(), h.0.max());
        // An empty histogram (a step in which nothing finished) encodes too.
        assert!(decode(&NsHistogram::new().encode_v2_deflate().unwrap()).is_empty());
    }

    #[test]
    fn a_step_of_ten_thousand_widely_spread_latencies_encodes_in_a_few_kilobytes() {
        use rand::{Rng, SeedableRng};
        // 10,000 latencies log-uniform over 1 ms – 1 s: three decades, far more
        // distinct buckets than a real step fills (its latencies sit within about
        // one), so the size of a wide step. results.json must stay under 5 MB with
        // two of these for each of a run's 20–60 steps.
        let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
        let mut h = NsHistogram::new();
        for _ in 0..10_000 {
            h.record((1e6 * 1e3f64.powf(rng.random::<f64>())) as u64);
        }
        let bytes = h.encode_v2_deflate().unwrap().len();
        let base64 = bytes.div_ceil(3) * 4;
        println!("10,000 latencies over 1 ms – 1 s: {bytes} bytes, {base64} in base64");
        assert!(base64 < 20_000, "{base64} bytes of base64");
        assert!(
            base64 > 1_000,
            "{base64} bytes: not the counts of 10,000 values"
        );
    }

    #[test]
    fn huge_values_saturate_instead_of_failing() {
        let mut h = NsHistogram::new();
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn on_time_releases_read_as_zero_lateness_not_one_nanosecond() {
        let mut h = NsHistogram::new();
        h.record(0);
        assert_eq!(Lateness::from_histogram(&h).max, 0.0);
        h.record(2_000);
        assert!(Lateness::from_histogram(&h).max > 1.9e-6);
    }
}
