//! One measured step: an open-loop run at a fixed offered rate (the issuer on this
//! thread, the workers serving), or a closed-loop run (`--threads` batches in flight).
//! Produces a [`StepSummary`]; it never formats anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backend::BackendError;
use crate::measure::issuer::{self, BacklogProbe, StopCheck};
use crate::measure::pool::{LiveCounters, WorkerPool};
use crate::measure::schedule::{Distribution, Schedule};
use crate::measure::stats::{Lateness, NsHistogram, Percentiles, WorkerStats};

/// How the step is run.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub distribution: Distribution,
    pub offered_qps: f64,
    /// Queries planned: `max(qps × time, min_queries)`.
    pub queries: u64,
    /// The p99 target, for the early verdict (none for `fixed` without a target).
    pub target: Option<Duration>,
    pub seed: u64,
}

impl StepSpec {
    /// Queries for a step of `seconds` at `qps`, at least `min_queries` (and 1).
    pub fn query_count(qps: f64, seconds: f64, min_queries: u64) -> u64 {
        ((qps * seconds).ceil() as u64).max(min_queries).max(1)
    }
}

/// Why a step did not pass.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// More than 1 % of the planned queries exceeded the target: stopped early.
    TooManyLate,
    /// The completed queries' p99 is above the target.
    P99AboveTarget,
    /// Achieved rate below 90 % of the offered rate.
    BelowOfferedRate,
    Errors,
    /// The issuer's own lateness p99 exceeded its tolerance: the generator, not the
    /// system under test, limited the step.
    IssuerLate,
    /// Queries were still outstanding when the drain timeout ran out.
    DrainTimeout,
    Interrupted,
    /// Closed-loop runs and steps without a target are not judged.
    NotJudged,
}

/// The `<step>` object of results.json (SPEC §4), all times in seconds.
#[derive(Clone, Debug, Serialize)]
pub struct StepSummary {
    pub distribution: Option<Distribution>,
    pub target_latency: Option<f64>,
    /// Offered rate; `None` for closed-loop runs.
    pub offered_qps: Option<f64>,
    /// Achieved: completed / (last completion − first planned send).
    pub qps: f64,
    /// Completed queries (without errors).
    pub count: u64,
    pub errors: u64,
    pub planned: u64,
    /// Planned but never completed: not issued, or dropped from the backlog by the
    /// early verdict, or outstanding at the drain timeout.
    pub abandoned: u64,
    pub runtime: f64,
    pub mean: f64,
    /// completion − planned send (coordinated-omission free).
    pub percentiles: Percentiles,
    /// completion − actual hand-off.
    pub percentiles_uncorrected: Percentiles,
    pub lateness: Lateness,
    pub early_stop: bool,
    pub passed: bool,
    pub verdict: Verdict,
    /// First backend error, if any.
    pub error: Option<String>,
}

impl StepSummary {
    pub fn p99(&self) -> f64 {
        self.percentiles.get(99.0)
    }
}

/// Result of [`run_open`] before judging.
struct OpenOutcome {
    stats: WorkerStats,
    lateness: NsHistogram,
    planned: u64,
    early_stop: bool,
    drain_timeout: bool,
    interrupted: bool,
}

/// The early verdict (SPEC §5): stop once more than 1 % of the planned queries have
/// exceeded the target — completed late, being served and already older than the
/// target, or waiting in the backlog and older than the target.
struct EarlyVerdict<'a> {
    live: &'a [crossbeam_utils::CachePadded<LiveCounters>],
    target_ns: Option<u64>,
    budget: u64,
    interrupt: &'a AtomicBool,
    tripped: bool,
}

impl StopCheck for EarlyVerdict<'_> {
    fn should_stop(&mut self, now_ns: u64, backlog: &BacklogProbe<'_>) -> bool {
        if self.interrupt.load(Ordering::Relaxed) {
            return true;
        }
        let Some(target) = self.target_ns else {
            return false;
        };
        let mut late: u64 = self
            .live
            .iter()
            .map(|w| w.late.load(Ordering::Relaxed))
            .sum();
        // A query is late once now − planned > target, i.e. planned < now − target.
        if now_ns > target {
            let cut = now_ns - target;
            late += backlog.planned_before(cut);
            for w in self.live {
                if w.busy_newest_planned.load(Ordering::Relaxed) < cut {
                    late += w.busy_len.load(Ordering::Relaxed);
                }
            }
        }
        if late > self.budget {
            self.tripped = true;
        }
        self.tripped
    }
}

/// How long to wait for outstanding queries after the last one was issued.
fn drain_timeout(spec: &StepSpec) -> Duration {
    let base = Duration::from_secs(10);
    spec.target.map_or(base, |t| base.max(t * 20))
}

/// Runs one open-loop step on `pool`. `interrupt` stops it early (Ctrl-C).
pub fn run_open(
    pool: &WorkerPool,
    spec: &StepSpec,
    interrupt: &AtomicBool,
) -> Result<StepSummary, BackendError> {
    let outcome = run_open_raw(pool, spec, interrupt)?;
    Ok(summarize_open(spec, outcome))
}

fn run_open_raw(
    pool: &WorkerPool,
    spec: &StepSpec,
    interrupt: &AtomicBool,
) -> Result<OpenOutcome, BackendError> {
    let target_ns = spec.target.map(|t| t.as_nanos() as u64);
    // Start a little in the future so that the first query is not born late.
    let epoch = Instant::now() + Duration::from_millis(2);
    pool.begin_open(epoch, target_ns.unwrap_or(u64::MAX));
    let mut check = EarlyVerdict {
        live: pool.live(),
        target_ns,
        budget: spec.queries / 100,
        interrupt,
        tripped: false,
    };
    let mut schedule = Schedule::new(spec.distribution, spec.offered_qps, spec.seed);
    let report = issuer::issue(pool.queue(), &mut schedule, spec.queries, epoch, &mut check);

    // Drain: wait for outstanding queries unless the verdict is already certain.
    let mut drain_timed_out = false;
    let deadline = Instant::now() + drain_timeout(spec);
    if !report.stopped_early {
        loop {
            let done: u64 = pool
                .live()
                .iter()
                .map(|w| w.completed.load(Ordering::Relaxed))
                .sum();
            if done >= report.issued {
                break;
            }
            let now_ns = Instant::now().saturating_duration_since(epoch).as_nanos() as u64;
            if check.should_stop(now_ns, &pool_probe(pool)) {
                break;
            }
            if Instant::now() > deadline {
                drain_timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    pool.stop();
    let stats = pool.collect()?;
    Ok(OpenOutcome {
        stats,
        lateness: report.lateness,
        planned: spec.queries,
        early_stop: check.tripped,
        drain_timeout: drain_timed_out,
        interrupted: interrupt.load(Ordering::Relaxed),
    })
}

fn pool_probe(pool: &WorkerPool) -> BacklogProbe<'_> {
    BacklogProbe::new(pool.queue())
}

/// Issue lateness (p99) tolerated before a step is blamed on the generator: a quarter
/// of the target. A late issuer never flatters a step (latency counts from the planned
/// time), so this only marks steps where the generator's own delay took a real share
/// of the latency budget; a tighter bound failed sound steps on busy machines.
pub fn issuer_tolerance(target: Duration) -> Duration {
    target / 4
}

fn summarize_open(spec: &StepSpec, o: OpenOutcome) -> StepSummary {
    let s = &o.stats;
    let runtime = s.last_completion_ns as f64 / 1e9;
    let qps = if runtime > 0.0 {
        s.completed as f64 / runtime
    } else {
        0.0
    };
    let lateness = Lateness::from_histogram(&o.lateness);
    let p99 = s.corrected.percentile_s(99.0);
    let verdict = match spec.target {
        _ if o.interrupted => Verdict::Interrupted,
        _ if o.early_stop => Verdict::TooManyLate,
        _ if o.drain_timeout => Verdict::DrainTimeout,
        _ if s.errors > 0 => Verdict::Errors,
        None => Verdict::NotJudged,
        Some(t) if p99 > t.as_secs_f64() => Verdict::P99AboveTarget,
        Some(_) if qps < 0.9 * spec.offered_qps => Verdict::BelowOfferedRate,
        Some(t) if lateness.p99 > issuer_tolerance(t).as_secs_f64() => Verdict::IssuerLate,
        Some(_) => Verdict::Pass,
    };
    StepSummary {
        distribution: Some(spec.distribution),
        target_latency: spec.target.map(|t| t.as_secs_f64()),
        offered_qps: Some(spec.offered_qps),
        qps,
        count: s.completed,
        errors: s.errors,
        planned: o.planned,
        abandoned: o.planned.saturating_sub(s.completed + s.errors),
        runtime,
        mean: s.corrected.mean_s(),
        percentiles: s.corrected.percentiles(),
        percentiles_uncorrected: s.uncorrected.percentiles(),
        lateness,
        early_stop: o.early_stop,
        passed: verdict == Verdict::Pass,
        verdict,
        error: s.first_error.clone(),
    }
}

/// Runs the pool closed-loop for `duration`: every worker sends its next batch as soon
/// as the previous one returns. Latency = that batch's service time.
pub fn run_closed(
    pool: &WorkerPool,
    duration: Duration,
    interrupt: &AtomicBool,
) -> Result<StepSummary, BackendError> {
    let epoch = Instant::now();
    let until = epoch + duration;
    pool.begin_closed(epoch, until);
    while Instant::now() < until && !interrupt.load(Ordering::Relaxed) {
        std::thread::sleep(
            Duration::from_millis(5).min(until.saturating_duration_since(Instant::now())),
        );
    }
    pool.stop();
    let s = pool.collect()?;
    let runtime = s.last_completion_ns as f64 / 1e9;
    let interrupted = interrupt.load(Ordering::Relaxed);
    Ok(StepSummary {
        distribution: None,
        target_latency: None,
        offered_qps: None,
        qps: if runtime > 0.0 {
            s.completed as f64 / runtime
        } else {
            0.0
        },
        count: s.completed,
        errors: s.errors,
        planned: s.completed + s.errors,
        abandoned: 0,
        runtime,
        mean: s.corrected.mean_s(),
        percentiles: s.corrected.percentiles(),
        percentiles_uncorrected: s.uncorrected.percentiles(),
        lateness: Lateness::default(),
        early_stop: false,
        passed: false,
        verdict: if interrupted {
            Verdict::Interrupted
        } else if s.errors > 0 {
            Verdict::Errors
        } else {
            Verdict::NotJudged
        },
        error: s.first_error.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::queue::QueryQueue;
    use crossbeam_utils::CachePadded;

    #[test]
    fn nothing_is_late_before_the_target_has_elapsed() {
        let queue = QueryQueue::new(16);
        let live: Vec<CachePadded<LiveCounters>> = vec![CachePadded::new(LiveCounters::default())];
        // One query planned at 0 is being served.
        live[0].busy_newest_planned.store(0, Ordering::Relaxed);
        live[0].busy_len.store(1, Ordering::Relaxed);
        let interrupt = AtomicBool::new(false);
        let mut verdict = EarlyVerdict {
            live: &live,
            target_ns: Some(500_000_000),
            budget: 0,
            interrupt: &interrupt,
            tripped: false,
        };
        assert!(!verdict.should_stop(1_000_000, &BacklogProbe::new(&queue)));
        assert!(!verdict.should_stop(500_000_000, &BacklogProbe::new(&queue)));
        assert!(
            verdict.should_stop(600_000_000, &BacklogProbe::new(&queue)),
            "600 ms old > 500 ms target"
        );
    }

    #[test]
    fn step_sizes_respect_the_minimum() {
        assert_eq!(StepSpec::query_count(55.0, 1.0, 10), 55);
        assert_eq!(StepSpec::query_count(0.4, 1.0, 10), 10);
        assert_eq!(StepSpec::query_count(0.4, 1.0, 0), 1);
    }
}
