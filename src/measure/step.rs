//! One measured step: an open-loop run at a fixed offered rate (the issuer on this
//! thread, the workers serving), or a closed-loop run (`--threads` batches in flight).
//! Produces a [`StepSummary`]; it never formats anything.
//!
//! An open-loop step with a target is a sequential test (docs/CONTRACT.md §7.1): it plans
//! `max(qps × time, min_queries)` queries, stops at once when its failure is certain or
//! confident, passes when its pass is confident once the planned queries are judged,
//! and otherwise runs on (up to [`EXTENSION`] × the planned queries, within the time
//! cap) only while its late fraction is near 1 % and a confident pass is still
//! reachable; elsewhere, and at the cap, it is decided on its point estimate and
//! marked not confident. The decisions are made by [`Monitor`] and [`judge`], pure
//! functions of exact counts that the virtual-clock steps of the tests share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::sut::BackendError;
use crate::measure::issuer::{self, BacklogProbe, StopCheck};
use crate::measure::pool::{unpack_busy, LiveCounters, WorkerPool};
use crate::measure::schedule::{Distribution, Schedule};
use crate::measure::stats::{
    EncodedHistograms, Lateness, NsHistogram, Percentiles, ServiceTimes, WorkerStats,
};
use crate::measure::verdict::{point_pass, Evidence, Rule, LATE_FRACTION};

/// How far a step whose verdict is still open may run past its planned queries (and
/// past `--time`): 4×, as MLPerf-style early stopping needs ~460–840 queries to be
/// confident near the boundary and most steps plan fewer.
pub const EXTENSION: u64 = 4;

/// The steps for the interval's ends ([`RunOn::ToPass`], [`RunOn::ToFail`]) may run
/// this many times further than an ordinary step (8 × `--time` by default): near the
/// answer late queries come in bursts of 5–20, so a confident verdict at a rate 10–15 %
/// from it needs 3,000–6,000 queries, more than an ordinary step's cap holds at the
/// default `--time`. The policy asks for one only where the search's budget has room.
pub const END_STRETCH: u64 = 2;

/// The time cap is never below this, so that a very short `--time` still sends a
/// few queries.
pub const MIN_TIME_CAP_S: f64 = 1.0;

/// How the step is run.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub distribution: Distribution,
    pub offered_qps: f64,
    /// Queries planned: `max(qps × time, min_queries)`.
    pub planned: u64,
    /// Most queries the step may issue while its verdict is open (≥ `planned`).
    pub cap: u64,
    /// No query is issued later than this after the step's start.
    pub time_cap: Duration,
    /// The p99 target, for the verdict (none for `fixed` without a target).
    pub target: Option<Duration>,
    /// Other latencies whose exceedances are counted exactly too (the run's other
    /// targets), so that a step can be read against them later.
    pub also_count: Vec<Duration>,
    pub seed: u64,
    pub confidence: f64,
    /// Expected size of bursts of late queries (≥ 1, from earlier steps): counts are
    /// divided by it before the confidence rule, since bursty lateness carries less
    /// information than independent queries would.
    pub burst: f64,
    /// The backend's call times at full load when the machine was at its usual speed
    /// (the capacity probe's), for in-process runtimes: a failed step whose calls ran
    /// clearly slower is put down to the machine (see [`ServiceTimes`]).
    pub service_ref: Option<ServiceTimes>,
    /// How far the step runs on while its verdict is open: an ordinary step only near
    /// 1 %, the interval's end steps to a confident verdict.
    pub run_on: RunOn,
    /// Set on an agent: the step is this agent's share of a step split over agents
    /// (see `crate::agents`), run at the instant every agent agreed on.
    pub share: Option<Share>,
}

/// How far a step whose verdict is still open runs on past its planned queries
/// (within its cap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunOn {
    /// While its point estimate is within a factor of two of 1 % and a confident pass
    /// is still reachable: only there does running on change verdicts often enough
    /// to pay (an ordinary step).
    #[default]
    NearBoundary,
    /// While a confident pass is reachable, however far the late fraction is from
    /// 1 %: the step for the interval's low end.
    ToPass,
    /// While its point estimate fails, until the fail is confident: the step for the
    /// interval's high end.
    ToFail,
}

/// An agent's share of a distributed step. The verdict belongs to the coordinator, on
/// the merged exact counts, so the share runs its plan without stopping early (an
/// agent's own counts are a fraction of the evidence: stopping on them would judge by
/// another rule than one process does), and keeps its episodes of late queries so
/// that bursts that hit every agent at once count as one burst in the merge.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    /// The step's first planned send on this agent.
    pub start: Instant,
}

impl StepSpec {
    /// A rise of the late count this long after the previous one starts a new episode
    /// of late queries: the target (a queue that stayed below it that long has
    /// cleared), and at least four mean arrival gaps (at low rates a single episode
    /// has late queries that far apart).
    pub fn episode_gap(&self) -> Duration {
        let arrivals = Duration::try_from_secs_f64(4.0 / self.offered_qps).unwrap_or(Duration::MAX);
        self.target.unwrap_or(Duration::ZERO).max(arrivals)
    }

    /// The time cap of a step of `seconds`: [`EXTENSION`] × `seconds`, at least
    /// [`MIN_TIME_CAP_S`].
    pub fn time_cap_seconds(seconds: f64) -> f64 {
        (EXTENSION as f64 * seconds).max(MIN_TIME_CAP_S)
    }

    /// The lowest rate a step of `seconds` can measure: the first query is planned at
    /// the step's start and the next one a mean gap (1/rate) later, so below this the
    /// next query falls beyond the time cap and the step has one query, not a rate.
    pub fn min_usable_qps(seconds: f64) -> f64 {
        1.0 / Self::time_cap_seconds(seconds)
    }

    /// Queries for a step of `seconds` at `qps`, at least `min_queries` (and 1).
    pub fn query_count(qps: f64, seconds: f64, min_queries: u64) -> u64 {
        let n = (qps * seconds).ceil();
        let n = if n.is_finite() && n < 1e15 {
            n as u64
        } else {
            1_000_000_000_000_000
        };
        n.max(min_queries).max(1)
    }

    /// A step judged against `target`: planned queries as [`StepSpec::query_count`];
    /// while undecided it may run to [`EXTENSION`] × `seconds` of schedule (or the
    /// planned queries, if more), and it never issues past [`EXTENSION`] × `seconds`
    /// (at least [`MIN_TIME_CAP_S`]).
    pub fn judged(
        distribution: Distribution,
        offered_qps: f64,
        seconds: f64,
        min_queries: u64,
        target: Option<Duration>,
        seed: u64,
        confidence: f64,
    ) -> StepSpec {
        let planned = Self::query_count(offered_qps, seconds, min_queries);
        let by_time = Self::query_count(offered_qps, EXTENSION as f64 * seconds, 0);
        let cap = if target.is_some() {
            planned.max(by_time.min(planned.saturating_mul(EXTENSION)))
        } else {
            planned
        };
        // The time cap depends on `--time` alone, so no step outlives it whatever the
        // rate or the minimum query count (a step that cannot gather its planned
        // queries by then is judged on what it has, and says so).
        let limit = Self::time_cap_seconds(seconds);
        StepSpec {
            distribution,
            offered_qps,
            planned,
            cap,
            time_cap: Duration::try_from_secs_f64(limit).unwrap_or(Duration::MAX),
            target,
            also_count: Vec::new(),
            seed,
            confidence,
            burst: 1.0,
            service_ref: None,
            run_on: RunOn::NearBoundary,
            share: None,
        }
    }
}

/// The verdict of a step, as results.json names it (`verdict`): a read-only view of
/// its [`StepOutcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// More than 1 % of the judged queries exceeded the target (confidently, certainly,
    /// or on the point estimate at the cap).
    TooManyLate,
    Errors,
    /// The step failed while the load generator or the machine fell behind (issue
    /// lateness or a simulated server's stalls above tolerance): not the system's
    /// failure. The search runs such steps again.
    GeneratorLate,
    /// The step failed while the backend's calls ran clearly slower than in the
    /// capacity probe (see [`ServiceTimes::slower_than`]): the machine slowed down,
    /// not the system. The search runs such steps again, after a pause.
    MachineSlow,
    /// Queries were still outstanding when the drain timeout ran out.
    DrainTimeout,
    Interrupted,
    /// Closed-loop runs and steps without a target are not judged.
    NotJudged,
}

impl Verdict {
    /// The machine or the load generator, not the system, failed the step.
    pub fn spoiled(self) -> bool {
        matches!(self, Verdict::GeneratorLate | Verdict::MachineSlow)
    }

    /// The name results.json writes (`verdict`).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::TooManyLate => "too_many_late",
            Verdict::Errors => "errors",
            Verdict::GeneratorLate => "generator_late",
            Verdict::MachineSlow => "machine_slow",
            Verdict::DrainTimeout => "drain_timeout",
            Verdict::Interrupted => "interrupted",
            Verdict::NotJudged => "not_judged",
        }
    }
}

/// Why a step stopped issuing, as results.json names it (`stop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every query it planned was issued and the counts had decided.
    Planned,
    /// Confident pass once the planned queries were judged.
    ConfidentPass,
    /// Confident fail (far from the boundary: stopped without running to the end).
    ConfidentFail,
    /// More late queries than even the cap allows: it cannot pass.
    CertainFail,
    /// Ran to the query cap still undecided: decided on the point estimate.
    Cap,
    /// Undecided at its planned length, with no confident pass reachable within the
    /// cap (too few queries left for the late ones seen): decided on the point
    /// estimate without running on.
    PointEstimate,
    /// Issuing stopped at the time cap.
    TimeCap,
    Interrupted,
    /// Closed loop.
    Closed,
}

impl StopReason {
    /// The step stopped because it failed: its verdict is a failure, whatever the
    /// queries that finish after the stop say.
    pub fn is_failure(self) -> bool {
        matches!(self, StopReason::ConfidentFail | StopReason::CertainFail)
    }

    /// The name results.json writes (`stop`).
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Planned => "planned",
            StopReason::ConfidentPass => "confident_pass",
            StopReason::ConfidentFail => "confident_fail",
            StopReason::CertainFail => "certain_fail",
            StopReason::Cap => "cap",
            StopReason::PointEstimate => "point_estimate",
            StopReason::TimeCap => "time_cap",
            StopReason::Interrupted => "interrupted",
            StopReason::Closed => "closed_loop",
        }
    }
}

/// The stops a passing step can have: every [`StopReason`] of a judged open-loop
/// step but the failures (and the interrupt, which judges nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassStop {
    Planned,
    ConfidentPass,
    Cap,
    PointEstimate,
    TimeCap,
}

impl PassStop {
    /// `stop` as a pass's stop; `None` for a failure, an interrupt or a closed loop.
    pub fn of(stop: StopReason) -> Option<PassStop> {
        Some(match stop {
            StopReason::Planned => PassStop::Planned,
            StopReason::ConfidentPass => PassStop::ConfidentPass,
            StopReason::Cap => PassStop::Cap,
            StopReason::PointEstimate => PassStop::PointEstimate,
            StopReason::TimeCap => PassStop::TimeCap,
            StopReason::ConfidentFail
            | StopReason::CertainFail
            | StopReason::Interrupted
            | StopReason::Closed => return None,
        })
    }
}

impl From<PassStop> for StopReason {
    fn from(s: PassStop) -> StopReason {
        match s {
            PassStop::Planned => StopReason::Planned,
            PassStop::ConfidentPass => StopReason::ConfidentPass,
            PassStop::Cap => StopReason::Cap,
            PassStop::PointEstimate => StopReason::PointEstimate,
            PassStop::TimeCap => StopReason::TimeCap,
        }
    }
}

/// What spoiled a failed step: not the system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoiler {
    /// Issue lateness or a simulated server's stalls above tolerance.
    GeneratorLate,
    /// The backend's calls ran clearly slower than in the capacity probe.
    MachineSlow,
}

/// The share of a step's queries that may fail before the step is spoiled by errors
/// (and the run ends: [`crate::measure::fault`]). Up to it, each failed query counts as a late one (an answer the
/// user never got is not an answer within the target); beyond it, the errors alone
/// would fail the step, which would then measure the errors, not the latency.
pub const ERROR_FRACTION: f64 = 0.01;

/// Fewer failed queries than this never spoil a step: one reset connection in a
/// step of fifty queries is a late answer, not a broken server.
pub const MIN_SPOILING_ERRORS: u64 = 3;

/// Whether `errors` failed queries of `issued` spoil a step.
pub fn errors_spoil(errors: u64, issued: u64) -> bool {
    errors >= MIN_SPOILING_ERRORS && errors as f64 > ERROR_FRACTION * issued as f64
}

/// How one step ended: the one record of its verdict, why it stopped and how sure it
/// is. results.json's `verdict`, `stop`, `passed` and `confident` are all read off it
/// ([`StepOutcome::verdict`], [`StepOutcome::stop`], [`StepOutcome::passed`],
/// [`StepOutcome::confident`]). The legal cases:
///
/// | variant                      | `verdict`                        | `passed` | `confident` | `stop`                                                      |
/// |------------------------------|----------------------------------|----------|-------------|-------------------------------------------------------------|
/// | `Pass { confident, stop }`   | `pass`                           | true     | `confident` | a [`PassStop`]: planned, confident_pass, cap, point_estimate, time_cap — never a failure |
/// | `TooManyLate { confident, stop }` | `too_many_late`             | false    | `confident` (true whenever `stop` is a failure) | any but interrupted, closed_loop |
/// | `Spoiled { by, stop }`       | `generator_late`, `machine_slow` | false    | false       | any but interrupted, closed_loop                            |
/// | `Errors { stop }`            | `errors`                         | false    | false       | any but interrupted                                         |
/// | `DrainTimeout { stop }`      | `drain_timeout`                  | false    | false       | planned, confident_pass, cap, point_estimate, time_cap       |
/// | `Interrupted`                | `interrupted`                    | false    | false       | interrupted                                                 |
/// | `NotJudged { stop }`         | `not_judged`                     | false    | false       | closed_loop (closed loop); planned, time_cap (no target)    |
///
/// A step stopped as a failure (`certain_fail`, `confident_fail`) cannot be a pass:
/// `Pass` carries a [`PassStop`], and [`StepOutcome::decided`], the one way a judged
/// step gets its outcome, turns a failing stop into a confident `TooManyLate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// At most 1 % of the judged queries late: with the stated confidence, or on the
    /// point estimate (`confident: false`).
    Pass { confident: bool, stop: PassStop },
    /// More than 1 % late: the system failed at this rate.
    TooManyLate { confident: bool, stop: StopReason },
    /// Failed while the generator or the machine fell behind: run again, never
    /// counted as the system's failure.
    Spoiled { by: Spoiler, stop: StopReason },
    /// More than [`ERROR_FRACTION`] of the queries failed (a
    /// closed loop: any): the step says nothing about latency.
    Errors { stop: StopReason },
    /// Queries were still outstanding when the drain timeout ran out.
    DrainTimeout { stop: StopReason },
    /// A signal ended the step: it says nothing.
    Interrupted,
    /// Closed-loop runs and steps without a target.
    NotJudged { stop: StopReason },
}

impl StepOutcome {
    /// The outcome of a judged step whose counts say `pass` (with `confident`) and
    /// that stopped for `stop`. A failing stop is decisive: the step failed,
    /// confidently, whatever the queries that finished after the stop say.
    pub fn decided(pass: bool, confident: bool, stop: StopReason) -> StepOutcome {
        match PassStop::of(stop) {
            Some(stop) if pass => StepOutcome::Pass { confident, stop },
            _ => StepOutcome::TooManyLate {
                confident: confident || stop.is_failure(),
                stop,
            },
        }
    }

    pub fn passed(self) -> bool {
        matches!(self, StepOutcome::Pass { .. })
    }

    /// Whether a pass or a failure of the system holds with the stated confidence.
    pub fn confident(self) -> bool {
        match self {
            StepOutcome::Pass { confident, .. } | StepOutcome::TooManyLate { confident, .. } => {
                confident
            }
            _ => false,
        }
    }

    /// The machine or the load generator, not the system, failed the step.
    pub fn spoiled(self) -> bool {
        matches!(self, StepOutcome::Spoiled { .. })
    }

    pub fn verdict(self) -> Verdict {
        match self {
            StepOutcome::Pass { .. } => Verdict::Pass,
            StepOutcome::TooManyLate { .. } => Verdict::TooManyLate,
            StepOutcome::Spoiled {
                by: Spoiler::GeneratorLate,
                ..
            } => Verdict::GeneratorLate,
            StepOutcome::Spoiled {
                by: Spoiler::MachineSlow,
                ..
            } => Verdict::MachineSlow,
            StepOutcome::Errors { .. } => Verdict::Errors,
            StepOutcome::DrainTimeout { .. } => Verdict::DrainTimeout,
            StepOutcome::Interrupted => Verdict::Interrupted,
            StepOutcome::NotJudged { .. } => Verdict::NotJudged,
        }
    }

    pub fn stop(self) -> StopReason {
        match self {
            StepOutcome::Pass { stop, .. } => stop.into(),
            StepOutcome::TooManyLate { stop, .. }
            | StepOutcome::Spoiled { stop, .. }
            | StepOutcome::Errors { stop }
            | StepOutcome::DrainTimeout { stop }
            | StepOutcome::NotJudged { stop } => stop,
            StepOutcome::Interrupted => StopReason::Interrupted,
        }
    }
}

/// The measurement core's record of one step. `output` turns it into the `<step>`
/// object of results.json; all times in seconds.
#[derive(Clone, Debug)]
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
    pub cap: u64,
    pub issued: u64,
    /// Issued but never answered: waiting in the queue or being served (a network
    /// request not yet answered) when the step stopped on a failure, at the drain
    /// timeout or on an interrupt. Each is judged at its age when dropped (late if
    /// that exceeds the target) and is in the percentiles (a lower bound of its
    /// latency): `issued == count + errors + abandoned`.
    pub abandoned: u64,
    /// Queries the verdict counts: completed, abandoned and failed (each failed
    /// query counts as late).
    pub judged: u64,
    /// Exact count of judged queries above the target (abandoned ones by their age,
    /// failed ones all).
    pub late: u64,
    /// Exact late counts against the other latencies of [`StepSpec::also_count`].
    pub late_also: Vec<(f64, u64)>,
    /// Episodes of late queries (see [`Monitor`]).
    pub late_episodes: u64,
    /// Sum of the squared episode sizes: `late_episode_sq / late` is the design
    /// effect of clustered lateness (see [`Monitor::burst`]).
    pub late_episode_sq: u64,
    pub runtime: f64,
    pub mean: f64,
    /// completion − planned send (coordinated-omission free).
    pub percentiles: Percentiles,
    /// completion − actual hand-off.
    pub percentiles_uncorrected: Percentiles,
    /// The histograms behind `percentiles` and `percentiles_uncorrected`, whole, for
    /// other HDR tools (`None` where a step was not measured, as in tests).
    pub histograms: Option<EncodedHistograms>,
    pub lateness: Lateness,
    /// A simulated server's overshoot beyond its drawn service times (the machine's).
    pub stalls: Lateness,
    /// The backend's call times in this step (in-process runtimes), and the
    /// reference it was judged against (see [`StepSpec::service_ref`]).
    pub service: ServiceTimes,
    pub service_ref: Option<ServiceTimes>,
    /// How the step ended: verdict, stop and confidence in one.
    pub outcome: StepOutcome,
    pub confidence: f64,
    /// Times the search ran this step again because the generator fell behind.
    pub retries: u32,
    /// Set when this step was run for another target and is reported for this one
    /// (its exact count against this target): that other target.
    pub carried_from: Option<f64>,
    pub seed: u64,
    /// First backend error, if any.
    pub error: Option<String>,
    /// Requests a server held without answering any after the step (see
    /// [`crate::measure::fault`]).
    pub stalled: u64,
}

impl Default for StepSummary {
    fn default() -> Self {
        StepSummary {
            distribution: None,
            target_latency: None,
            offered_qps: None,
            qps: 0.0,
            count: 0,
            errors: 0,
            planned: 0,
            cap: 0,
            issued: 0,
            abandoned: 0,
            judged: 0,
            late: 0,
            late_also: Vec::new(),
            late_episodes: 0,
            late_episode_sq: 0,
            runtime: 0.0,
            mean: 0.0,
            percentiles: Percentiles::default(),
            percentiles_uncorrected: Percentiles::default(),
            histograms: None,
            lateness: Lateness::default(),
            stalls: Lateness::default(),
            service: ServiceTimes::default(),
            service_ref: None,
            outcome: StepOutcome::NotJudged {
                stop: StopReason::Planned,
            },
            confidence: 0.99,
            retries: 0,
            carried_from: None,
            seed: 0,
            error: None,
            stalled: 0,
        }
    }
}

impl StepSummary {
    pub fn p99(&self) -> f64 {
        self.percentiles.get(99.0)
    }

    pub fn passed(&self) -> bool {
        self.outcome.passed()
    }

    pub fn confident(&self) -> bool {
        self.outcome.confident()
    }

    pub fn spoiled(&self) -> bool {
        self.outcome.spoiled()
    }

    pub fn verdict(&self) -> Verdict {
        self.outcome.verdict()
    }

    pub fn stop(&self) -> StopReason {
        self.outcome.stop()
    }

    /// This step read against another target it counted exactly (`None` if it did
    /// not count it): the record results.json keeps under that target. It keeps every
    /// count, so that it can be read against a third target in turn (a tuned run's
    /// answer lifted from 0.05 s to 0.1 s bounds the 0.2 s answer too). A step
    /// stopped on its own target's failure holds a truncated sample: it still fails
    /// a target its counts fail, and says nothing (`None`) about one they would pass.
    pub fn against(&self, target: f64) -> Option<StepSummary> {
        if self.target_latency == Some(target) {
            return Some(self.clone());
        }
        let late = self.late_against(target)?;
        let mut s = self.clone();
        s.carried_from = self.target_latency;
        s.late_also.retain(|&(t, _)| t != target);
        s.late_also.push((self.target_latency?, self.late));
        s.target_latency = Some(target);
        s.late = late;
        // Judged again against this target, on its exact count.
        if let StepOutcome::Pass { .. } | StepOutcome::TooManyLate { .. } = self.outcome {
            let (pass, confident) = judge(
                &mut Rule::new(self.confidence),
                self.cap,
                self.judged,
                late,
                1.0,
            );
            let stop = self.stop();
            if pass && stop.is_failure() {
                return None;
            }
            s.outcome = StepOutcome::decided(pass, confident, stop);
        }
        Some(s)
    }

    /// Exact late count against `target` seconds, if this step counted it.
    pub fn late_against(&self, target: f64) -> Option<u64> {
        if self.target_latency == Some(target) {
            return Some(self.late);
        }
        self.late_also
            .iter()
            .find(|(t, _)| *t == target)
            .map(|&(_, n)| n)
    }
}

/// The sequential decision of a running step: stop now, and why? Shared by real and
/// virtual-clock steps.
///
/// Late queries come in episodes (the queue stays long for a while and every query
/// in it is late), so their count is far more variable than a binomial one. The
/// monitor sees the live late count every check; a rise more than `gap` after the
/// previous rise starts a new episode. Counts are divided by the episode size (the
/// larger of the earlier steps' and this step's own) before the confidence rule: a
/// design effect, as for cluster samples.
#[derive(Clone, Debug)]
pub struct Monitor {
    planned: u64,
    cap: u64,
    burst: f64,
    rule: Rule,
    gap_ns: u64,
    seen_late: u64,
    last_rise_ns: Option<u64>,
    episodes: u64,
    /// Late count when the current episode began.
    episode_start: u64,
    /// Sum of the squared sizes of the finished episodes.
    closed_sq: u64,
    /// See [`StepSpec::run_on`].
    run_on: RunOn,
    /// Every episode, kept only on an agent's share (see [`Share`]): O(episodes).
    log: Option<Vec<Episode>>,
}

/// One episode of late queries: when it began and last grew (ns since the step's
/// start) and how many late queries it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    pub start_ns: u64,
    pub last_ns: u64,
    pub size: u64,
}

/// Counts discounted for bursts: `(judged / burst, late / burst)`, rounded against a
/// pass.
pub fn discounted(judged: u64, late: u64, burst: f64) -> (u64, u64) {
    let b = burst.max(1.0);
    (
        (judged as f64 / b).floor() as u64,
        (late as f64 / b).ceil() as u64,
    )
}

/// The episodes of several agents' shares of one step as one process would have seen
/// them: sorted by start, an episode that begins within `gap_ns` of the previous
/// one's last rise joins it (a server's stall makes every agent's queries late at
/// once: one burst, not one per agent).
pub fn merge_episodes(mut all: Vec<Episode>, gap_ns: u64) -> Vec<Episode> {
    all.sort_by_key(|e| (e.start_ns, e.last_ns));
    let mut out: Vec<Episode> = Vec::with_capacity(all.len());
    for e in all {
        match out.last_mut() {
            Some(m) if e.start_ns <= m.last_ns.saturating_add(gap_ns) => {
                m.last_ns = m.last_ns.max(e.last_ns);
                m.size += e.size;
            }
            _ => out.push(e),
        }
    }
    out
}

impl Monitor {
    /// `burst`: the episode size seen in earlier steps (≥ 1); `gap`: see the type.
    pub fn new(planned: u64, cap: u64, confidence: f64, burst: f64, gap: Duration) -> Monitor {
        Monitor {
            planned,
            cap: cap.max(planned),
            burst,
            rule: Rule::new(confidence),
            gap_ns: u64::try_from(gap.as_nanos()).unwrap_or(u64::MAX),
            seen_late: 0,
            last_rise_ns: None,
            episodes: 0,
            episode_start: 0,
            closed_sq: 0,
            run_on: RunOn::NearBoundary,
            log: None,
        }
    }

    /// The monitor of a step merged from agents' shares: `episodes` from
    /// [`merge_episodes`], whose sizes sum to the late queries the agents saw.
    pub fn merged(spec: &StepSpec, episodes: &[Episode]) -> Monitor {
        let mut m = Monitor::for_step(spec);
        let (last, closed) = episodes
            .split_last()
            .map_or((0, &[][..]), |(l, c)| (l.size, c));
        m.episodes = episodes.len() as u64;
        m.closed_sq = closed.iter().map(|e| e.size * e.size).sum();
        m.episode_start = closed.iter().map(|e| e.size).sum();
        m.seen_late = m.episode_start + last;
        m.last_rise_ns = episodes.last().map(|e| e.last_ns);
        m
    }

    /// The episodes seen, the last one grown to the final exact `late` count (late
    /// queries that finish after the last check belong to it); empty unless the
    /// step was an agent's share.
    pub fn episode_log(&self, late: u64) -> Vec<Episode> {
        let mut log = self.log.clone().unwrap_or_default();
        if let Some(e) = log.last_mut() {
            e.size += late.saturating_sub(self.seen_late);
        }
        log
    }

    /// The monitor of `spec`'s step.
    pub fn for_step(spec: &StepSpec) -> Monitor {
        Monitor {
            run_on: spec.run_on,
            log: spec.share.map(|_| Vec::new()),
            ..Monitor::new(
                spec.planned,
                spec.cap,
                spec.confidence,
                spec.burst,
                spec.episode_gap(),
            )
        }
    }

    /// Records the live late count at `now_ns` (since the step's start).
    pub fn observe(&mut self, now_ns: u64, late: u64) {
        if late > self.seen_late {
            let new_episode = self
                .last_rise_ns
                .is_none_or(|t| now_ns.saturating_sub(t) > self.gap_ns);
            if new_episode {
                let size = self.seen_late - self.episode_start;
                self.closed_sq += size * size;
                self.episode_start = self.seen_late;
                self.episodes += 1;
                if let Some(log) = &mut self.log {
                    log.push(Episode {
                        start_ns: now_ns,
                        last_ns: now_ns,
                        size: 0,
                    });
                }
            }
            self.last_rise_ns = Some(now_ns);
            if let Some(e) = self.log.as_mut().and_then(|l| l.last_mut()) {
                e.last_ns = now_ns;
                e.size += late - self.seen_late;
            }
            self.seen_late = late;
        }
    }

    /// Episodes of late queries seen so far; with `late` the final exact count (late
    /// queries can finish after the last check), at least one when any is late.
    pub fn episodes(&self, late: u64) -> u64 {
        if late > 0 {
            self.episodes.max(1)
        } else {
            self.episodes
        }
    }

    /// Sum of the squared episode sizes, with `late` the final exact count (late
    /// queries after the last check belong to the last episode).
    pub fn episode_sq(&self, late: u64) -> u64 {
        let current = late.max(self.seen_late) - self.episode_start;
        self.closed_sq + current * current
    }

    /// The design effect the counts are discounted by: the earlier steps' or this
    /// step's own so far, whichever is larger. For episodes of sizes `m`, the
    /// variance of the late count is that of `Σm²/Σm`-sized independent lumps
    /// (at least the mean size; larger when sizes vary).
    pub fn burst(&self, late: u64) -> f64 {
        let own = if late > 0 {
            self.episode_sq(late) as f64 / late as f64
        } else {
            1.0
        };
        self.burst.max(own).max(1.0)
    }

    /// Whether the point estimate is near the 1 % budget (within a factor of two):
    /// only there can running on change the verdict often enough to pay.
    fn near(&self, judged: u64, late: u64) -> bool {
        let f = late as f64 / judged.max(1) as f64;
        (0.5 * LATE_FRACTION..=2.0 * LATE_FRACTION).contains(&f)
    }

    /// Whether `late` late queries (discounted) still allow a confident pass within
    /// the cap.
    fn pass_reachable(&mut self, late: u64) -> bool {
        let burst = self.burst(late);
        let (_, dl) = discounted(0, late, burst);
        self.rule.min_total_for_pass(dl) as f64 * burst <= self.cap as f64
    }

    /// At `now_ns`, `judged` queries are finished or certainly late, `late` of them
    /// over the target. `Some` when the step should stop issuing.
    pub fn check(&mut self, now_ns: u64, judged: u64, late: u64) -> Option<StopReason> {
        self.observe(now_ns, late);
        if late as f64 > LATE_FRACTION * self.cap as f64 {
            return Some(StopReason::CertainFail);
        }
        let (dj, dl) = discounted(judged, late, self.burst(late));
        let evidence = self.rule.evidence(dj, dl);
        if judged >= self.planned {
            match evidence {
                Evidence::ConfidentPass => Some(StopReason::ConfidentPass),
                Evidence::ConfidentFail => Some(StopReason::ConfidentFail),
                // Running on is worth it only while a confident pass can still be
                // reached within the cap with the late queries seen so far (a
                // confident fail needs more late queries, which would come sooner).
                Evidence::Undecided => {
                    let on = match self.run_on {
                        RunOn::NearBoundary => self.near(judged, late) && self.pass_reachable(late),
                        RunOn::ToPass => self.pass_reachable(late),
                        // A fail needs only more late queries, which come while the
                        // point estimate stays above 1 %.
                        RunOn::ToFail => !point_pass(judged, late),
                    };
                    (!on).then_some(StopReason::PointEstimate)
                }
            }
        } else if evidence == Evidence::ConfidentFail
            && late as f64 > LATE_FRACTION * self.planned as f64
        {
            // Far from the boundary: more late than the planned step allows, and the
            // excess is confident already.
            Some(StopReason::ConfidentFail)
        } else {
            None
        }
    }
}

/// The final verdict on exact counts: `(passed, confident)`. A certain failure (more
/// late than even the cap allows) is confident; an undecided step is judged on its
/// point estimate and is not.
pub fn judge(rule: &mut Rule, cap: u64, judged: u64, late: u64, burst: f64) -> (bool, bool) {
    if late as f64 > LATE_FRACTION * cap as f64 {
        return (false, true);
    }
    let (dj, dl) = discounted(judged, late, burst);
    match rule.evidence(dj, dl) {
        Evidence::ConfidentPass => (true, true),
        Evidence::ConfidentFail => (false, true),
        Evidence::Undecided => (point_pass(judged, late), false),
    }
}

/// Issue lateness (p99) or a simulated-server stall tolerated before a failing
/// step is blamed on the generator or the machine: a quarter of the target. A late
/// issuer never flatters a step (latency counts from the planned time), so this only
/// matters for steps that failed.
pub fn generator_tolerance(target: Duration) -> Duration {
    target / 4
}

/// Counts of a finished open-loop step, before summarising.
pub struct OpenCounts {
    pub stats: WorkerStats,
    pub lateness: NsHistogram,
    pub issued: u64,
    /// Ages (ns) of queries dropped unserved, recorded like latencies.
    pub censored: NsHistogram,
    pub censored_late: Vec<u64>,
    pub stop: StopReason,
    pub drain_timeout: bool,
    pub interrupted: bool,
    /// The step's monitor (its episodes of late queries).
    pub monitor: Monitor,
}

/// Builds the summary of an open-loop step from its counts (shared with the virtual
/// clock).
pub fn summarize_open(spec: &StepSpec, mut o: OpenCounts) -> StepSummary {
    let s = &mut o.stats;
    let runtime = s.last_completion_ns as f64 / 1e9;
    let qps = if runtime > 0.0 {
        s.completed as f64 / runtime
    } else {
        0.0
    };
    // Abandoned: the queries never handed out (the step's queue) and those being
    // served when it stopped (a network request not yet answered), each at its age.
    let mut censored = std::mem::take(&mut o.censored);
    censored.add(&s.censored);
    let abandoned = censored.len();
    s.corrected.add(&censored);
    // A failed query counts as a late one (see [`crate::measure::fault`]): below the
    // fraction that spoils the step, the errors are judged with the latencies.
    let late_of = |i: usize| {
        let get = |v: &[u64]| v.get(i).copied().unwrap_or(0);
        get(&s.late) + get(&o.censored_late) + get(&s.censored_late) + s.errors
    };
    let judged = s.completed + abandoned + s.errors;
    let late = late_of(0);
    let late_also = spec
        .also_count
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_secs_f64(), late_of(i + 1)))
        .collect();
    let lateness = Lateness::from_histogram(&o.lateness);
    let stalls = Lateness::from_histogram(&s.stalls);
    let mut rule = Rule::new(spec.confidence);
    let (point, confident) = judge(&mut rule, spec.cap, judged, late, o.monitor.burst(late));
    let stop = if o.interrupted {
        StopReason::Interrupted
    } else if o.stop == StopReason::Planned && o.issued >= spec.cap && !confident {
        StopReason::Cap
    } else {
        o.stop
    };
    // A step stopped on a failure failed: the queries that finish after the stop
    // cannot turn it into a pass (they are counted, the verdict stays).
    let point = point && !stop.is_failure();
    // The issuer spoils a step when more than 1 % of its queries left late by more
    // than the tolerance; a simulated server when any one stall exceeded it (a single
    // stall that long makes a burst of late queries behind it).
    let spoiled = spec.target.is_some_and(|t| {
        let tol = generator_tolerance(t).as_secs_f64();
        lateness.p99 > tol || stalls.max > tol
    });
    let outcome = match spec.target {
        _ if o.interrupted => StepOutcome::Interrupted,
        _ if errors_spoil(s.errors, o.issued) => StepOutcome::Errors { stop },
        _ if o.drain_timeout => StepOutcome::DrainTimeout { stop },
        None => StepOutcome::NotJudged { stop },
        Some(_) if point => StepOutcome::decided(true, confident, stop),
        Some(_) if spoiled => StepOutcome::Spoiled {
            by: Spoiler::GeneratorLate,
            stop,
        },
        Some(_) if spec.service_ref.is_some_and(|r| s.service.slower_than(&r)) => {
            StepOutcome::Spoiled {
                by: Spoiler::MachineSlow,
                stop,
            }
        }
        Some(_) => StepOutcome::decided(false, confident, stop),
    };
    StepSummary {
        distribution: Some(spec.distribution),
        target_latency: spec.target.map(|t| t.as_secs_f64()),
        offered_qps: Some(spec.offered_qps),
        qps,
        count: s.completed,
        errors: s.errors,
        planned: spec.planned,
        cap: spec.cap,
        issued: o.issued,
        abandoned,
        judged,
        late,
        late_also,
        late_episodes: o.monitor.episodes(late),
        late_episode_sq: o.monitor.episode_sq(late),
        runtime,
        mean: s.corrected.mean_s(),
        percentiles: s.corrected.percentiles(),
        percentiles_uncorrected: s.uncorrected.percentiles(),
        // After `censored` was added: the abandoned queries are in it, as in the
        // percentiles.
        histograms: EncodedHistograms::of(&s.corrected, &s.uncorrected),
        lateness,
        stalls,
        service: s.service,
        service_ref: spec.service_ref,
        outcome,
        confidence: spec.confidence,
        retries: 0,
        carried_from: None,
        seed: spec.seed,
        error: s.first_error.clone(),
        stalled: s.stalled,
    }
}

/// The live verdict the issuer asks every millisecond: exact counts of finished and
/// certainly-late queries, read without counting any query twice (see
/// [`LiveCounters`] for the ordering contract), fed to the [`Monitor`].
struct LiveJudge<'a> {
    live: &'a [crossbeam_utils::CachePadded<LiveCounters>],
    target_ns: Option<u64>,
    /// An agent's share (see [`Share`]): watch the late count, never stop on it.
    share: bool,
    monitor: Monitor,
    interrupt: &'a AtomicBool,
    stop: Option<StopReason>,
}

/// `(judged, late)` right now: finished queries plus those still waiting or in
/// service that are already older than the target.
fn live_tally(
    live: &[crossbeam_utils::CachePadded<LiveCounters>],
    probe: &BacklogProbe<'_>,
    now_ns: u64,
    target_ns: u64,
) -> (u64, u64) {
    // One snapshot of the claim boundary: below it queries are with workers, from it
    // they wait. A batch claimed after the snapshot is counted as waiting only.
    let claimed = probe.claimed();
    #[cfg(test)]
    tests::after_snapshot();
    let cut = now_ns.checked_sub(target_ns);
    let (mut done, mut late, mut pending_late) = (0u64, 0u64, 0u64);
    for w in live {
        late += w.late.load(Ordering::Acquire);
        done += w.done.load(Ordering::Acquire);
        let (first, len) = unpack_busy(w.busy.load(Ordering::Acquire));
        if let Some(cut) = cut {
            let end = (first + len).min(claimed);
            pending_late += (first..end).filter(|&i| probe.planned_of(i) < cut).count() as u64;
        }
    }
    if let Some(cut) = cut {
        pending_late += probe.planned_before(claimed, cut);
    }
    (done + pending_late, late + pending_late)
}

impl StopCheck for LiveJudge<'_> {
    fn should_stop(&mut self, now_ns: u64, probe: &BacklogProbe<'_>) -> bool {
        if self.interrupt.load(Ordering::Relaxed) {
            return true;
        }
        if self.stop.is_some() {
            return true;
        }
        let Some(target) = self.target_ns else {
            return false;
        };
        let (judged, late) = live_tally(self.live, probe, now_ns, target);
        if self.share {
            self.monitor.observe(now_ns, late);
            return false;
        }
        self.stop = self.monitor.check(now_ns, judged, late);
        self.stop.is_some()
    }
}

/// How long to wait for outstanding queries after the last one was issued.
pub fn drain_timeout(spec: &StepSpec) -> Duration {
    let base = Duration::from_secs(10);
    spec.target.map_or(base, |t| base.max(t.saturating_mul(20)))
}

/// Runs one open-loop step on `pool`. `interrupt` stops it early (a signal).
pub fn run_open(
    pool: &WorkerPool,
    spec: &StepSpec,
    interrupt: &AtomicBool,
) -> Result<StepSummary, BackendError> {
    let counts = run_open_counts(pool, spec, interrupt)?;
    Ok(summarize_open(spec, counts))
}

fn as_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs one open-loop step on `pool` and returns its counts unsummarised: an agent
/// sends them to the coordinator, which merges every agent's before judging.
pub fn run_open_counts(
    pool: &WorkerPool,
    spec: &StepSpec,
    interrupt: &AtomicBool,
) -> Result<OpenCounts, BackendError> {
    let target_ns = spec.target.map(as_ns);
    let thresholds: Arc<[u64]> = std::iter::once(target_ns.unwrap_or(u64::MAX))
        .chain(spec.also_count.iter().map(|&d| as_ns(d)))
        .collect();
    // Start a little in the future so that the first query is not born late; an
    // agent's share at the instant agreed with the coordinator.
    let epoch = spec
        .share
        .map_or_else(|| Instant::now() + Duration::from_millis(2), |s| s.start);
    pool.begin_open(epoch, Arc::clone(&thresholds));
    let mut check = LiveJudge {
        live: pool.live(),
        target_ns,
        share: spec.share.is_some(),
        monitor: Monitor::for_step(spec),
        interrupt,
        stop: None,
    };
    let mut schedule = Schedule::new(spec.distribution, spec.offered_qps, spec.seed);
    // `--cores`: the issuer sends from CPUs the workers do not use, where there are any.
    let pinned = crate::base::placement::IssuerGuard::enter();
    let report = issuer::issue(
        pool.queue(),
        &mut schedule,
        spec.cap,
        epoch,
        as_ns(spec.time_cap),
        &mut check,
    );
    drop(pinned);

    // Drain: wait for outstanding queries unless the failure is already settled.
    let mut drain_timed_out = false;
    let deadline = Instant::now() + drain_timeout(spec);
    let failed = |s: Option<StopReason>| {
        matches!(s, Some(StopReason::CertainFail | StopReason::ConfidentFail))
    };
    if !failed(check.stop) {
        loop {
            let done: u64 = pool
                .live()
                .iter()
                .map(|w| w.done.load(Ordering::Acquire))
                .sum();
            if done >= report.issued {
                break;
            }
            let now_ns = Instant::now().saturating_duration_since(epoch).as_nanos() as u64;
            // Only a certain failure may cut the drain short: the queries in flight
            // belong to the verdict (an agent's share leaves that to the coordinator).
            if let Some(t) = target_ns {
                let (_, late) =
                    live_tally(pool.live(), &BacklogProbe::new(pool.queue()), now_ns, t);
                check.monitor.observe(now_ns, late);
                if spec.share.is_none() && late as f64 > LATE_FRACTION * spec.cap as f64 {
                    check.stop = Some(StopReason::CertainFail);
                    break;
                }
            }
            if interrupt.load(Ordering::Relaxed) {
                break;
            }
            if Instant::now() > deadline {
                drain_timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let abort_ns = Instant::now().saturating_duration_since(epoch).as_nanos() as u64;
    pool.stop();
    let stats = pool.collect()?;
    // Workers are idle now: whatever was released and never claimed was dropped.
    // Record each at its age, a lower bound of the latency it would have had.
    let mut censored = NsHistogram::new();
    let mut censored_late = vec![0u64; thresholds.len()];
    let probe = BacklogProbe::new(pool.queue());
    for i in probe.claimed()..report.issued {
        let age = abort_ns.saturating_sub(probe.planned_of(i));
        censored.record(age);
        for (c, &t) in censored_late.iter_mut().zip(thresholds.iter()) {
            *c += u64::from(age > t);
        }
    }
    let stop = match check.stop {
        Some(s) => s,
        None if report.time_capped => StopReason::TimeCap,
        None => StopReason::Planned,
    };
    Ok(OpenCounts {
        stats,
        lateness: report.lateness,
        issued: report.issued,
        censored,
        censored_late,
        stop,
        drain_timeout: drain_timed_out,
        interrupted: interrupt.load(Ordering::Relaxed),
        monitor: check.monitor,
    })
}

/// How long the closed-loop capacity probe runs at least for steps of `step_seconds`:
/// a quarter of a step, 1–5 s (enough for a steady service, short next to the search).
pub fn probe_seconds(step_seconds: f64) -> f64 {
    (step_seconds / 4.0).clamp(1.0, 5.0)
}

/// The relative standard error the capacity probe runs on until it reaches: the
/// search halves from the probe, so a probe a few percent low moves every rate it tries.
pub const PROBE_PRECISION: f64 = 0.015;

/// Seconds to add to a probe that ran `elapsed` s and made `calls` calls with
/// coefficient of variation `cv`, so that its capacity's relative standard error
/// (`cv / √calls`) reaches [`PROBE_PRECISION`]; the whole probe runs at most 2 steps
/// (30 s). A steady service (ResNet-50's calls here, cv ≈ 0.05) needs no more;
/// an exponential one (cv = 1) needs 4,444 calls.
pub fn probe_extension(step_seconds: f64, elapsed: f64, calls: u64, cv: f64) -> f64 {
    if calls == 0 || elapsed <= 0.0 || !cv.is_finite() {
        return 0.0;
    }
    let needed = (cv / PROBE_PRECISION).powi(2);
    let longest = (2.0 * step_seconds).clamp(probe_seconds(step_seconds), 30.0);
    let wanted = elapsed * needed / calls as f64;
    (wanted.min(longest) - elapsed).max(0.0)
}

/// Runs the pool closed-loop for `duration`: every worker sends its next batch as soon
/// as the previous one returns. Latency = that batch's service time.
pub fn run_closed(
    pool: &WorkerPool,
    duration: Duration,
    interrupt: &AtomicBool,
) -> Result<StepSummary, BackendError> {
    let (stats, runtime) = run_closed_counts(pool, duration, interrupt)?;
    Ok(closed_summary(&stats, runtime, interrupt))
}

/// The closed-loop capacity probe for steps of `step_seconds`: [`probe_seconds`],
/// then, when the calls vary so much that the capacity is not yet known to
/// [`PROBE_PRECISION`], the [`probe_extension`] (announced through `extending`
/// with its seconds first), pooled with the first part.
pub fn run_probe(
    pool: &WorkerPool,
    step_seconds: f64,
    interrupt: &AtomicBool,
    mut extending: impl FnMut(f64),
) -> Result<StepSummary, BackendError> {
    let first = Duration::from_secs_f64(probe_seconds(step_seconds));
    let (mut stats, mut runtime) = run_closed_counts(pool, first, interrupt)?;
    let cv = stats.service.cv().unwrap_or(0.0);
    let extra = probe_extension(step_seconds, runtime, stats.service.calls, cv);
    if extra > 0.0 && stats.errors == 0 && !interrupt.load(Ordering::Relaxed) {
        extending(extra);
        let (more, more_runtime) =
            run_closed_counts(pool, Duration::from_secs_f64(extra), interrupt)?;
        stats.merge(&more);
        runtime += more_runtime;
    }
    Ok(closed_summary(&stats, runtime, interrupt))
}

/// One closed-loop run's merged figures and its seconds (to the last completion):
/// what an agent sends of its share of the capacity probe.
pub fn run_closed_counts(
    pool: &WorkerPool,
    duration: Duration,
    interrupt: &AtomicBool,
) -> Result<(WorkerStats, f64), BackendError> {
    let epoch = Instant::now();
    let until = epoch + duration;
    pool.begin_closed(epoch, until);
    // The workers stop themselves at `until`; wake rarely meanwhile (see
    // `sync::run_sync`: a runtime's pinned threads lose work to each wake-up).
    while Instant::now() < until && !interrupt.load(Ordering::Relaxed) {
        std::thread::sleep(
            Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())),
        );
    }
    pool.stop();
    let s = pool.collect()?;
    let runtime = s.last_completion_ns as f64 / 1e9;
    Ok((s, runtime))
}

/// A closed loop's summary from its merged figures and seconds.
pub fn closed_summary(s: &WorkerStats, runtime: f64, interrupt: &AtomicBool) -> StepSummary {
    let interrupted = interrupt.load(Ordering::Relaxed);
    StepSummary {
        qps: if runtime > 0.0 {
            s.completed as f64 / runtime
        } else {
            0.0
        },
        count: s.completed,
        errors: s.errors,
        planned: s.completed + s.errors,
        issued: s.completed + s.errors,
        judged: s.completed,
        runtime,
        mean: s.corrected.mean_s(),
        percentiles: s.corrected.percentiles(),
        percentiles_uncorrected: s.uncorrected.percentiles(),
        histograms: EncodedHistograms::of(&s.corrected, &s.uncorrected),
        outcome: if interrupted {
            StepOutcome::Interrupted
        } else if s.errors > 0 {
            StepOutcome::Errors {
                stop: StopReason::Closed,
            }
        } else {
            StepOutcome::NotJudged {
                stop: StopReason::Closed,
            }
        },
        service: s.service,
        error: s.first_error.clone(),
        stalled: s.stalled,
        ..StepSummary::default()
    }
}

/// A passing step with known figures, for the tests of the output formats.
#[cfg(test)]
pub(crate) fn example_step(qps: f64) -> StepSummary {
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
        planned: 500,
        issued: 500,
        cap: 2000,
        judged: 500,
        runtime: 3.891,
        mean: 0.0084334,
        percentiles: p.clone(),
        percentiles_uncorrected: p,
        outcome: StepOutcome::Pass {
            confident: true,
            stop: PassStop::Planned,
        },
        ..StepSummary::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::pool::pack_busy;
    use crate::measure::queue::{Claim, Query, QueryQueue};
    use crossbeam_utils::CachePadded;

    fn live(n: usize) -> Vec<CachePadded<LiveCounters>> {
        (0..n)
            .map(|_| CachePadded::new(LiveCounters::default()))
            .collect()
    }

    #[test]
    fn the_probe_runs_on_until_its_capacity_is_known_to_1_5_percent() {
        // Exponential calls at 200/s (cv 1): 4,444 calls, 22.2 s, cut at 2 steps.
        assert!((probe_extension(10.0, 2.5, 500, 1.0) - 17.5).abs() < 1e-9);
        // cv 0.5: 1,111 calls at 200/s are 5.56 s, 3.06 s more than the first 2.5.
        let half = probe_extension(10.0, 2.5, 500, 0.5);
        assert!(
            (half - (2.5 * 1111.11 / 500.0 - 2.5)).abs() < 1e-3,
            "{half}"
        );
        // ResNet-50's steady calls (cv 0.05, 11 needed) and a fixed law need no more.
        assert_eq!(probe_extension(10.0, 2.5, 52, 0.05), 0.0);
        assert_eq!(probe_extension(10.0, 2.5, 500, 0.0), 0.0);
        // The longest probe is 2 steps, never below the first part nor above 30 s.
        assert!((probe_extension(1.0, 1.0, 100, 1.0) - 1.0).abs() < 1e-9);
        assert!((probe_extension(0.2, 1.0, 100, 1.0)).abs() < 1e-9);
        assert!((probe_extension(60.0, 5.0, 100, 1.0) - 25.0).abs() < 1e-9);
        // Nothing measured, nothing to extend.
        assert_eq!(probe_extension(10.0, 2.5, 0, 1.0), 0.0);
        assert_eq!(probe_extension(10.0, 2.5, 500, f64::NAN), 0.0);
    }

    #[test]
    fn nothing_is_late_before_the_target_has_elapsed() {
        let queue = QueryQueue::new(16);
        queue.write(0, 0, 0);
        queue.publish(1, 1);
        let mut buf = [Query::default(); 1];
        assert_eq!(queue.claim(&mut buf, Duration::ZERO), Claim::Got(1));
        let live = live(1);
        live[0].busy.store(pack_busy(0, 1), Ordering::Relaxed);
        let probe = BacklogProbe::new(&queue);
        assert_eq!(live_tally(&live, &probe, 1_000_000, 500_000_000), (0, 0));
        assert_eq!(live_tally(&live, &probe, 500_000_000, 500_000_000), (0, 0));
        assert_eq!(
            live_tally(&live, &probe, 600_000_000, 500_000_000),
            (1, 1),
            "600 ms old > 500 ms target"
        );
    }

    thread_local! {
        static HOOK: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// Runs (once) what a test injected between the tally's snapshot and its reads.
    pub(super) fn after_snapshot() {
        if let Some(f) = HOOK.with(|h| h.borrow_mut().take()) {
            f();
        }
    }

    #[test]
    fn a_claim_during_the_tally_is_counted_once() {
        // Ten late queries wait; a worker claims four of them and marks them busy
        // while the tally runs. Each must be counted once (the old early verdict read
        // the backlog, then the busy counters, and counted the four twice: 14).
        let queue = Arc::new(QueryQueue::new(16));
        for i in 0..10 {
            queue.write(i, i, i);
        }
        queue.publish(10, 10);
        let live: Arc<Vec<CachePadded<LiveCounters>>> = Arc::new(live(1));
        {
            let (queue, live) = (Arc::clone(&queue), Arc::clone(&live));
            HOOK.with(|h| {
                *h.borrow_mut() = Some(Box::new(move || {
                    let mut buf = [Query::default(); 4];
                    assert_eq!(queue.claim(&mut buf, Duration::ZERO), Claim::Got(4));
                    live[0].busy.store(pack_busy(0, 4), Ordering::Release);
                }));
            });
        }
        let probe = BacklogProbe::new(&queue);
        assert_eq!(live_tally(&live, &probe, 1_000, 100), (10, 10));
        // And once the claim is old news, the four count as busy, the six as waiting.
        assert_eq!(live_tally(&live, &probe, 1_000, 100), (10, 10));
    }

    /// Feeds `m` late queries one at a time, `spacing_ms` apart from `*t`, with
    /// `judged` queries judged; returns the last decision.
    fn feed(
        m: &mut Monitor,
        t: &mut u64,
        judged: u64,
        late: std::ops::RangeInclusive<u64>,
        spacing_ms: u64,
    ) -> Option<StopReason> {
        let mut last = None;
        for l in late {
            *t += spacing_ms * 1_000_000;
            last = m.check(*t, judged, l);
        }
        last
    }

    #[test]
    fn monitor_stops_far_from_the_boundary_and_waits_near_it() {
        // 1000 planned, cap 4000 (40 late would be certain); episodes end after 50 ms.
        let gap = Duration::from_millis(50);
        let mut m = Monitor::new(1000, 4000, 0.99, 1.0, gap);
        let mut t = 0;
        assert_eq!(m.check(0, 100, 0), None, "not before the planned queries");
        // Late queries a second apart are independent episodes.
        assert_eq!(
            feed(&mut m, &mut t, 100, 1..=5, 1000),
            None,
            "5 late: within the planned 1 %"
        );
        assert_eq!(
            feed(&mut m, &mut t, 100, 6..=11, 1000),
            Some(StopReason::ConfidentFail),
            "over the planned 1 % and confident"
        );
        assert_eq!(m.episodes(11), 11);
        assert_eq!(m.check(t, 900, 41), Some(StopReason::CertainFail));
        let mut m = Monitor::new(1000, 4000, 0.99, 1.0, gap);
        assert_eq!(m.check(0, 1000, 0), Some(StopReason::ConfidentPass));
        let mut t = 0;
        assert_eq!(
            feed(&mut m, &mut t, 1000, 1..=12, 1000),
            None,
            "12 of 1000: undecided, runs on"
        );
        assert_eq!(m.check(t, 3000, 12), Some(StopReason::ConfidentPass));
        let mut rule = Rule::new(0.99);
        assert_eq!(
            judge(&mut rule, 4000, 4000, 39, 1.0),
            (true, false),
            "point estimate at the cap"
        );
        assert_eq!(judge(&mut rule, 4000, 4000, 41, 1.0), (false, true));
        // Episodes of 10 seen before: 0 late in 1000 is 100 independent-ish queries,
        // not confident; but 0 % is far from the budget, so no running on.
        let mut m = Monitor::new(1000, 4000, 0.99, 10.0, gap);
        assert_eq!(m.check(0, 999, 0), None);
        assert_eq!(m.check(0, 1000, 0), Some(StopReason::PointEstimate));
        // Near the budget (8 of 1000) but no room to run on (cap = planned): a
        // confident pass is out of reach, so decided now.
        let mut m = Monitor::new(1000, 1000, 0.99, 1.0, gap);
        let mut t = 0;
        assert_eq!(
            feed(&mut m, &mut t, 1000, 1..=8, 1000),
            Some(StopReason::PointEstimate)
        );
    }

    #[test]
    fn one_episode_of_late_queries_is_not_a_confident_failure() {
        // Eleven late queries 10 ms apart (one congestion episode) among the first 100
        // of 1000: counted as independent they would be a confident fail; as one
        // episode they are one unlucky event, and the step runs on.
        let mut m = Monitor::new(1000, 4000, 0.99, 1.0, Duration::from_millis(50));
        let mut t = 0;
        assert_eq!(feed(&mut m, &mut t, 100, 1..=11, 10), None);
        assert_eq!(m.episodes(11), 1);
        assert_eq!(m.burst(11), 11.0);
        // A second episode much later starts a new count.
        t += 1_000_000_000;
        m.observe(t, 12);
        assert_eq!(m.episodes(12), 2);
    }

    #[test]
    fn episodes_end_after_the_target_or_four_arrival_gaps() {
        let spec = |qps: f64| {
            StepSpec::judged(
                Distribution::Linear,
                qps,
                10.0,
                100,
                Some(Duration::from_millis(50)),
                1,
                0.99,
            )
        };
        assert_eq!(spec(1000.0).episode_gap(), Duration::from_millis(50));
        assert_eq!(spec(10.0).episode_gap(), Duration::from_millis(400));
    }

    #[test]
    fn step_sizes_respect_the_minimum_and_the_caps() {
        assert_eq!(StepSpec::query_count(55.0, 1.0, 10), 55);
        assert_eq!(StepSpec::query_count(0.4, 1.0, 10), 10);
        assert_eq!(StepSpec::query_count(0.4, 1.0, 0), 1);
        let s = StepSpec::judged(
            Distribution::Linear,
            100.0,
            10.0,
            100,
            Some(Duration::from_millis(50)),
            1,
            0.99,
        );
        assert_eq!((s.planned, s.cap), (1000, 4000));
        assert_eq!(s.time_cap, Duration::from_secs(40));
        // At the floor (min queries take 4 × time) there is no room to extend.
        let s = StepSpec::judged(
            Distribution::Linear,
            2.5,
            10.0,
            100,
            Some(Duration::from_millis(50)),
            1,
            0.99,
        );
        assert_eq!((s.planned, s.cap), (100, 100));
        assert_eq!(s.time_cap, Duration::from_secs(40));
        let s = StepSpec::judged(Distribution::Linear, 100.0, 10.0, 100, None, 1, 0.99);
        assert_eq!(s.cap, s.planned, "no target, no extension");
    }
}
