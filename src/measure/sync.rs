//! One query at a time, back to back: OpenVINO benchmark_app's `-api sync` and MLPerf
//! LoadGen's SingleStream. The question is "how long does one query take", so there
//! is no schedule and no queue: one worker calls the backend again as soon as an
//! answer returns, for a time or a number of queries. Its p90 comes with MLPerf's
//! early-stopping estimate, an upper bound on the true p90 at a stated confidence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::base::sut::BackendError;
use crate::measure::pool::WorkerPool;
use crate::measure::stats::{EncodedHistograms, WorkerStats};
use crate::measure::verdict::binomial_cdf;

/// What the sync run measured; times in seconds.
#[derive(Clone, Debug)]
pub struct SyncLatency {
    pub count: u64,
    pub errors: u64,
    pub runtime: f64,
    pub min: f64,
    pub median: f64,
    pub mean: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// The p90 that holds at [`SyncLatency::confidence`]: the latency of the rank
    /// [`early_stopping_rank`] gives; `Err(n)`: too few queries, `n` would give one.
    pub p90_estimate: Result<f64, u64>,
    pub confidence: f64,
    pub histograms: Option<EncodedHistograms>,
    pub first_error: Option<String>,
}

impl Default for SyncLatency {
    fn default() -> Self {
        SyncLatency {
            count: 0,
            errors: 0,
            runtime: 0.0,
            min: 0.0,
            median: 0.0,
            mean: 0.0,
            p90: 0.0,
            p99: 0.0,
            max: 0.0,
            p90_estimate: Err(queries_for_estimate(SINGLE_STREAM_PERCENTILE, 0.99)),
            confidence: 0.99,
            histograms: None,
            first_error: None,
        }
    }
}

/// The percentile SingleStream reports.
pub const SINGLE_STREAM_PERCENTILE: f64 = 0.9;

/// The rank (1-based, ascending) of the smallest latency that bounds the true
/// `percentile` from above with `confidence`, among `n` independent latencies; None
/// when `n` is too small for any.
///
/// The `r`-th smallest of `n` is at least the true p-quantile unless `r` or more fall
/// below it, so it bounds the quantile with probability P[Binomial(n, p) ≤ r − 1].
/// With `t = n − r` latencies above the bound, that is P[Binomial(n, 1 − p) ≥ t + 1],
/// and the most `t` that keeps it at least `confidence` is the largest `t` with
/// P[Binomial(n, 1 − p) ≤ t] ≤ 1 − confidence. This is MLPerf LoadGen's early-stopping
/// estimate for SingleStream (with no tolerance).
pub fn early_stopping_rank(n: u64, percentile: f64, confidence: f64) -> Option<u64> {
    let tail = 1.0 - percentile;
    let ok = |t: u64| binomial_cdf(n, t, tail) <= 1.0 - confidence;
    if n == 0 || !ok(0) {
        return None;
    }
    // ok(t) holds up to some t and not beyond: the CDF grows with t.
    let (mut lo, mut hi) = (0, n);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(n - lo)
}

/// The fewest queries for which [`early_stopping_rank`] gives a rank.
pub fn queries_for_estimate(percentile: f64, confidence: f64) -> u64 {
    // 0 latencies above the bound: P[none above] = p^n ≤ 1 − confidence.
    ((1.0 - confidence).ln() / percentile.ln()).ceil().max(1.0) as u64
}

/// How often [`run_sync`]'s caller wakes to check for the end and for Ctrl-C.
const POLL: Duration = Duration::from_millis(20);

/// Runs the pool's worker back to back, one query at a time, until `duration` has
/// passed, `max_queries` samples have finished, or `interrupt` is set. The pool should
/// have one worker: each worker runs its own queries one at a time.
pub fn run_sync(
    pool: &WorkerPool,
    duration: Duration,
    max_queries: Option<u64>,
    confidence: f64,
    interrupt: &AtomicBool,
) -> Result<SyncLatency, BackendError> {
    let live = pool.live_handle();
    let epoch = Instant::now();
    let until = epoch + duration;
    let limit = max_queries.unwrap_or(u64::MAX);
    pool.begin_sync(epoch, until, limit);
    // The worker stops itself at the limit; this loop only waits for it, waking rarely:
    // a runtime that pins its threads to every core (OpenVINO's latency hint) loses a
    // barrier's worth of work each time this thread takes a core from one of them
    // (waking every 1 ms cost ResNet-50's 6.3-ms sync latency 10 %).
    let enough = || {
        let done: u64 = live.iter().map(|w| w.done.load(Ordering::Acquire)).sum();
        done >= limit
    };
    while Instant::now() < until && !interrupt.load(Ordering::Relaxed) && !enough() {
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
    pool.stop();
    let s = pool.collect()?;
    Ok(summarise(&s, confidence))
}

/// The figures of a sync run's merged stats.
pub fn summarise(s: &WorkerStats, confidence: f64) -> SyncLatency {
    let h = &s.corrected;
    let n = h.len();
    let p90_estimate = match early_stopping_rank(n, SINGLE_STREAM_PERCENTILE, confidence) {
        Some(rank) => Ok(h.value_at_rank_s(rank)),
        None => Err(queries_for_estimate(SINGLE_STREAM_PERCENTILE, confidence)),
    };
    SyncLatency {
        count: s.completed,
        errors: s.errors,
        runtime: s.last_completion_ns as f64 / 1e9,
        min: h.min_s(),
        median: h.percentile_s(50.0),
        mean: h.mean_s(),
        p90: h.percentile_s(90.0),
        p99: h.percentile_s(99.0),
        max: h.max_s(),
        p90_estimate,
        confidence,
        histograms: EncodedHistograms::of(&s.corrected, &s.uncorrected),
        first_error: s.first_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_the_rank_binomial_confidence_allows() {
        // (n, confidence, rank): checked against the definition by brute force below.
        let cases: &[(u64, f64, Option<u64>)] = &[
            (0, 0.99, None),
            (43, 0.99, None), // 0.9^43 = 0.0108 > 0.01
            (44, 0.99, Some(44)),
            (64, 0.99, Some(63)),
            (1000, 0.99, Some(922)),
            (100, 0.95, Some(96)),
        ];
        for &(n, c, want) in cases {
            assert_eq!(early_stopping_rank(n, 0.9, c), want, "n={n} c={c}");
        }
        assert_eq!(queries_for_estimate(0.9, 0.99), 44);
        assert_eq!(queries_for_estimate(0.9, 0.95), 29);
    }

    #[test]
    fn brute_force_agrees() {
        for n in [44u64, 50, 64, 100, 257, 1000] {
            let r = early_stopping_rank(n, 0.9, 0.99).unwrap();
            let t = n - r;
            // t latencies above is allowed, t + 1 is not.
            assert!(binomial_cdf(n, t, 0.1) <= 0.01, "n={n}");
            assert!(binomial_cdf(n, t + 1, 0.1) > 0.01, "n={n}");
        }
    }

    #[test]
    fn figures_of_a_run() {
        let mut s = WorkerStats::default();
        for ms in 1..=100u64 {
            s.record_served(ms * 1_000_000, ms * 1_000_000);
            s.completed += 1;
        }
        s.last_completion_ns = 5_050_000_000;
        let l = summarise(&s, 0.99);
        assert_eq!(l.count, 100);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 1e-9;
        assert!(close(l.min, 0.001) && close(l.max, 0.1), "{l:?}");
        assert!(close(l.median, 0.050) && close(l.p90, 0.090) && close(l.p99, 0.099));
        assert!(close(l.mean, 0.0505), "{}", l.mean);
        // 100 queries at 99 %: at most t above the bound where P[Bin(100, 0.1) ≤ t] ≤ 1 %.
        let rank = early_stopping_rank(100, 0.9, 0.99).unwrap();
        assert!(
            close(l.p90_estimate.unwrap(), rank as f64 / 1000.0),
            "{l:?}"
        );
        assert!(l.p90_estimate.unwrap() > l.p90);
        let few = summarise(&WorkerStats::default(), 0.99);
        assert_eq!(few.p90_estimate, Err(44));
    }
}
