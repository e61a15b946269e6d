//! The search of SPEC §5: for one distribution and target latency, the highest offered
//! rate whose step passes.
//!
//! A closed-loop capacity probe gives the upper end; halving (down to the floor,
//! which is tried itself) finds a passing rate; bisection narrows to 1 % (or 1 qps).
//! Every step has its own seed, so steps do not share their luck.
//!
//! Near the boundary single steps are noisy, so the answer pools the evidence of all
//! steps of this target: the late fraction can only grow with the offered rate, so the
//! counts are fitted by isotonic (monotone) regression, which pools a lucky pass with
//! the failing steps below it. The answer is the highest rate whose own step passed,
//! whose pooled late fraction is at most 1 % and whose neighbourhood (the steps up to
//! 3 % above it) passes too. A doubtful answer, and a doubtful fail just above it, are
//! measured again with fresh seeds (both sides alike, so luck cannot only lower the
//! answer), within a bounded settling time; a pass at the capacity itself that is not
//! clear of the target is measured again too, and a gap the pooled evidence opens
//! below the answer is searched whatever the settling time (see [`gap_above`]).
//! Where passes stay clear of the target
//! (latency jumps at a capacity instead of creeping up), the bisection tries just
//! below the fail and a clear answer below a confident fail is not measured again
//! (see [`CLEAR`]). The interval runs from the highest rate
//! whose pooled evidence is a confident pass to the lowest whose pooled evidence is a
//! confident fail (the capacity when none is). A budget (the search's share of the
//! run's `--search-time`, see [`Search::budget`]) ends the search once it is spent and
//! a rate has passed.

use std::time::Duration;

use crate::measure::schedule::Distribution;
use crate::measure::step::{StepSummary, StopReason, Verdict};
use crate::measure::verdict::{Evidence, Rule, LATE_FRACTION};

/// The run was interrupted (a signal) or failed; the search gives up.
#[derive(Debug)]
pub enum SearchStop {
    Interrupted,
    Failed(anyhow::Error),
}

/// Runs steps for the search. The real one drives the worker pool; tests use a
/// discrete-event model on a virtual clock ([`crate::measure::virtual_clock`]).
pub trait StepRunner {
    /// One open-loop step at `qps` offered, judged against `target`, with its own
    /// schedule `seed`; `burst` is the size of late bursts seen so far (see
    /// [`crate::measure::step::StepSpec::burst`]).
    fn step(
        &mut self,
        dist: Distribution,
        qps: f64,
        target: Duration,
        seed: u64,
        burst: f64,
    ) -> Result<StepSummary, SearchStop>;

    /// Called before a spoiled step is run again for the `retry`-th time: a real
    /// runner gives the machine [`retry_pause`] to get over its slow spell (a virtual
    /// one has none to get over).
    fn pause_before_retry(&mut self, _retry: u32) -> Result<(), SearchStop> {
        Ok(())
    }
}

/// The pause before the `retry`-th run of a spoiled step: 2 s, then 4 s. The slow
/// spells of the development VM lasted several seconds; a step retried at once ran
/// into the same spell.
pub fn retry_pause(retry: u32) -> Duration {
    Duration::from_secs(1u64 << retry.clamp(1, 4))
}

/// How many times a step spoiled by the generator or the machine is run again.
pub const MAX_RETRIES: u32 = 2;

/// A bound on the steps of one search, whatever the noise does.
const MAX_STEPS: usize = 40;

/// How many confirmation steps one candidate answer may get, and all of them.
const CONFIRMATIONS_PER_RATE: u32 = 2;
const MAX_CONFIRMATIONS: u32 = 5;

/// Settling (confirmations and the re-bisections they cause) may take at most this
/// many times the time the first bracket and bisection took: it bounds the run's
/// length where the late fraction hovers near 1 % over a wide range of rates.
const SETTLING: f64 = 1.5;

/// A passing step is *clear* when its p99.9 stays at or below this share of the
/// target: no query came near it. Where the late fraction creeps up towards 1 %
/// (M/M/1 near its answer: p99.9 ≈ 1.4 × the target) no pass is clear; where latency
/// jumps from far below the target to a growing queue (a server at its capacity,
/// ResNet-50 on this VM: p99.9 at 0.47–0.74 × the target up to the answer, then
/// overload), passes are clear right up to the answer.
const CLEAR: f64 = 0.8;

/// A clear pass is read as a cliff only where its queries barely waited: mean latency
/// at most this much above the mean backend call. Below a capacity cliff a query
/// starts on arrival (ResNet-50 on this VM: 1.0–1.44 × its call, 1.44 at 99 % load);
/// a tail that creeps with the rate comes from queueing (M/M/1 at half load: 2 ×).
/// With ~100 queries a step, a lucky M/M/1 step's p99.9 (its largest latency) can
/// look clear, and the cliff rules then kept answers 20 % high (see README).
const CLIFF_WAIT: f64 = 0.5;

/// Where the bracket's passing end is clear, the next rate tried is this share of its
/// failing end rather than the middle (see [`Search::run`]).
const CLIFF_SPLIT: f64 = 0.93;

/// What the search found for one target.
#[derive(Debug, Default)]
pub struct SearchResult {
    /// The answer's own passing step; `None` when even the lowest rate failed.
    pub best: Option<StepSummary>,
    /// `[low, high]` in qps: where the highest passing rate lies, from the pooled
    /// evidence (see the module doc).
    pub interval: (f64, f64),
    /// The answer's pooled evidence is a confident pass.
    pub confident: bool,
    /// Every step run for this target, in order.
    pub steps: Vec<StepSummary>,
    /// Things the user must know about this answer (a generator that fell behind).
    pub warnings: Vec<String>,
    /// The search's time budget ran out before its confirmations were done: the
    /// answer stands on the steps run so far (see [`Search::budget`]).
    pub budget_spent: bool,
}

impl SearchResult {
    /// Seconds of steps run so far: what the settling time and the budget count.
    pub fn spent(&self) -> f64 {
        self.steps.iter().map(|s| s.runtime).sum()
    }
}

/// Answers are monotone in the target: the queries of a step that met a stricter
/// target met every looser one. A search runs on one configuration and never sees
/// another's steps, so a tuned run whose pick for a looser target answers below
/// `stricter` (another configuration's answer at a stricter target, with its
/// interval) keeps `stricter`, read against `target`, and raises the interval to it.
/// Returns whether `found`'s answer was replaced.
pub fn keep_monotone(found: &mut SearchResult, stricter: &SearchResult, target: f64) -> bool {
    let Some(k) = stricter.best.as_ref().and_then(|b| b.offered_qps) else {
        return false;
    };
    let mine = found.best.as_ref().and_then(|b| b.offered_qps);
    if mine.is_some_and(|m| m >= k) {
        return false;
    }
    let Some(step) = (stricter.best.as_ref())
        .and_then(|b| b.against(target))
        .filter(|s| s.passed())
    else {
        return false;
    };
    found.best = Some(step);
    found.confident = stricter.confident;
    found.interval = (
        found.interval.0.max(stricter.interval.0).min(k),
        found.interval.1.max(stricter.interval.1).max(k),
    );
    true
}

/// Rates are whole numbers from 10 qps up (names like `linear/0.01/129` stay exact),
/// hundredths below.
pub fn round_rate(qps: f64) -> f64 {
    if qps >= 10.0 {
        qps.floor()
    } else {
        ((qps * 100.0).floor() / 100.0).max(0.01)
    }
}

/// How far below the capacity the halving goes before the answer is "FAIL".
const MAX_HALVINGS: u32 = 7;

/// The range of rates the search may try.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Closed-loop capacity: no open-loop answer lies above it.
    pub capacity: f64,
    /// No rate below this is tried (a step there would take too long to gather its
    /// minimum number of queries); failing down to it gives "FAIL".
    pub floor: f64,
}

impl Bounds {
    /// Floor: the larger of capacity / 2^MAX_HALVINGS and the rate at which a step
    /// gathers `min_queries` within 4 × `step_seconds`.
    pub fn new(capacity: f64, min_queries: u64, step_seconds: f64) -> Bounds {
        let by_time = min_queries as f64 / (4.0 * step_seconds);
        Bounds {
            capacity,
            floor: round_rate((capacity / f64::from(1u32 << MAX_HALVINGS)).max(by_time)),
        }
    }
}

/// Splitmix64: independent-looking seeds from a base and a counter.
pub fn mix_seed(base: u64, k: u64) -> u64 {
    let mut z = base ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Counts at one rate: `(rate, judged, late)`, for the pooled fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub rate: f64,
    pub judged: u64,
    pub late: u64,
}

/// Isotonic regression of late fractions over rates (pool-adjacent-violators, weighted
/// by query counts): for each distinct rate, ascending, the pooled `(judged, late)` of
/// the block it falls in.
pub fn pooled(points: &[Point]) -> Vec<Point> {
    let mut pts: Vec<Point> = points.iter().filter(|p| p.judged > 0).copied().collect();
    pts.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    // Same rate: one point.
    let mut merged: Vec<Point> = Vec::new();
    for p in pts {
        match merged.last_mut() {
            Some(m) if m.rate == p.rate => {
                m.judged += p.judged;
                m.late += p.late;
            }
            _ => merged.push(p),
        }
    }
    // Blocks: (first index, last index, judged, late).
    let mut blocks: Vec<(usize, usize, u64, u64)> = Vec::new();
    for (i, p) in merged.iter().enumerate() {
        blocks.push((i, i, p.judged, p.late));
        while blocks.len() >= 2 {
            let b = blocks[blocks.len() - 1];
            let a = blocks[blocks.len() - 2];
            // Violation: the lower block has the higher fraction (cross-multiplied).
            if (a.3 as u128) * (b.2 as u128) > (b.3 as u128) * (a.2 as u128) {
                blocks.pop();
                blocks.pop();
                blocks.push((a.0, b.1, a.2 + b.2, a.3 + b.3));
            } else {
                break;
            }
        }
    }
    let mut out = merged.clone();
    for (first, last, judged, late) in blocks {
        for p in &mut out[first..=last] {
            p.judged = judged;
            p.late = late;
        }
    }
    out
}

/// Every passing step at `rate` is clear of `target` (see [`CLEAR`]) with queries
/// that barely waited (see [`CLIFF_WAIT`]; steps without call times are judged on
/// their p99.9 alone), and one is.
fn clear_at(steps: &[StepSummary], rate: f64, target: f64) -> bool {
    let mut passes = steps
        .iter()
        .filter(|s| s.offered_qps == Some(rate) && s.passed())
        .peekable();
    passes.peek().is_some()
        && passes.all(|s| {
            s.percentiles
                .find(99.9)
                .is_some_and(|p| p <= CLEAR * target)
                && s.service
                    .mean()
                    .is_none_or(|call| s.mean <= (1.0 + CLIFF_WAIT) * call)
        })
}

/// There are steps at `rate`, and none of them had a query later than `target`.
fn clean_at(steps: &[StepSummary], rate: f64, target: f64) -> bool {
    let mut at = steps
        .iter()
        .filter(|s| s.offered_qps == Some(rate))
        .peekable();
    at.peek().is_some()
        && at.all(|s| !s.verdict().spoiled() && s.passed() && s.late_against(target) == Some(0))
}

fn point_of(s: &StepSummary, target: f64) -> Option<Point> {
    // Steps spoiled by the generator say nothing about the system.
    if s.verdict().spoiled() || s.verdict() == Verdict::Interrupted {
        return None;
    }
    // Errors and drain timeouts fail regardless of latency: count them as all late.
    if matches!(s.verdict(), Verdict::Errors | Verdict::DrainTimeout) {
        let n = s.judged.max(s.issued).max(1);
        return Some(Point {
            rate: s.offered_qps?,
            judged: n,
            late: n,
        });
    }
    Some(Point {
        rate: s.offered_qps?,
        judged: s.judged,
        late: s.late_against(target)?,
    })
}

/// The counts against `target` of this search's steps and the carried ones.
fn points(steps: &[StepSummary], carried: &[StepSummary], target: f64) -> Vec<Point> {
    steps
        .iter()
        .chain(carried)
        .filter_map(|s| point_of(s, target))
        .collect()
}

/// How much late queries cluster, pooled over the steps judged against `target`:
/// the design effect `Σm² / Σm` over episodes of sizes `m` (at least 1; see
/// [`crate::measure::step::Monitor`]). Clustered lateness makes counts less
/// informative than independent queries would be, so the confidence of pooled
/// evidence divides both counts by it.
pub fn burst_size(steps: &[StepSummary], target: f64) -> f64 {
    // Overloaded steps (see [`OVERLOADED`]) are one long run of late queries: they
    // say nothing about how bursty lateness is near the boundary, so they do not count.
    let (late, sq) = steps
        .iter()
        .filter(|s| {
            s.target_latency == Some(target)
                && !s.verdict().spoiled()
                && (s.late as f64) <= OVERLOADED * s.judged as f64
        })
        .fold((0u64, 0u64), |(l, q), s| {
            (l + s.late, q + s.late_episode_sq)
        });
    if late == 0 {
        1.0
    } else {
        (sq as f64 / late as f64).max(1.0)
    }
}

/// The evidence of pooled counts, discounted for bursts of size `burst`.
fn pooled_evidence(rule: &mut Rule, p: &Point, burst: f64) -> Evidence {
    let judged = (p.judged as f64 / burst).floor() as u64;
    let late = (p.late as f64 / burst).ceil() as u64;
    rule.evidence(judged, late)
}

/// Whether steps were measured above the answer `rate` but none within
/// [`NEIGHBOURHOOD`] of it.
/// The pooled evidence can take an answer down past rates never measured (passes
/// above it rejected by their neighbourhood, e.g. down to the halving's first pass
/// at half the capacity): the gap is then the search for a pass, which neither the
/// settling budget nor an idle round ends. A gap whose next rate up is
/// [`beyond_reach`] is closed: the bisection would not measure it.
fn gap_above(steps: &[StepSummary], carried: &[StepSummary], rate: f64, target: f64) -> bool {
    let mut above = steps
        .iter()
        .filter_map(|s| s.offered_qps)
        .filter(|&r| r > rate)
        .peekable();
    above.peek().is_some()
        && above.all(|r| r > rate * (1.0 + NEIGHBOURHOOD))
        && !beyond_reach(steps, carried, rate, next_rate(rate), target)
}

/// The next rate up that [`round_rate`] can give: one qps from 10 qps up, a
/// hundredth below.
fn next_rate(rate: f64) -> f64 {
    if rate >= 10.0 {
        rate.floor() + 1.0
    } else {
        ((rate * 100.0).round() + 1.0) / 100.0
    }
}

/// A step with more than this share of its queries late is overloaded: past the
/// boundary, not near it (see [`burst_size`] and [`beyond_reach`]).
const OVERLOADED: f64 = 0.05;

/// A candidate answer's neighbourhood: the steps within 3 % above it must pass
/// together too (see [`decide`]).
const NEIGHBOURHOOD: f64 = 0.03;

/// Whether the bisection may count `rate` as failed without measuring it, just above
/// `lo`: a cliff, where no measurement at `rate` could become the answer or take
/// `lo` back. Every step at `lo` had no late query (creeping tails have some: a
/// step between them could pool `lo` away), the steps within [`NEIGHBOURHOOD`]
/// above `rate` are [`OVERLOADED`] taken together, and they hold more late queries
/// than 1 % of all the queries there plus all the bisection may still gather at
/// `rate` (up to `CONFIRMATIONS_PER_RATE` + 1 steps in all, each its planned
/// length, where a step with no late query stops), so [`decide`] could never take
/// `rate`. Just below
/// ResNet-50's capacity on this VM (linear 0.1), one overloaded step (15 late of 153
/// at 36 qps) took back three clean passes at 35 in a row: 30 s for an answer `decide`
/// had fixed before the first of them.
fn beyond_reach(
    steps: &[StepSummary],
    carried: &[StepSummary],
    lo: f64,
    rate: f64,
    target: f64,
) -> bool {
    if !clean_at(steps, lo, target) {
        return false;
    }
    let near: Vec<Point> = points(steps, carried, target)
        .into_iter()
        .filter(|p| p.rate >= rate && p.rate <= rate * (1.0 + NEIGHBOURHOOD))
        .collect();
    let sum = |above: bool| {
        near.iter()
            .filter(|p| !above || p.rate > rate)
            .fold((0u64, 0u64), |(j, l), p| (j + p.judged, l + p.late))
    };
    let (above_judged, above_late) = sum(true);
    if above_judged == 0 || above_late as f64 <= OVERLOADED * above_judged as f64 {
        return false;
    }
    let (judged, late) = sum(false);
    let times = steps.iter().filter(|s| s.offered_qps == Some(rate)).count() as u32;
    let remaining = (CONFIRMATIONS_PER_RATE + 1).saturating_sub(times);
    // Queries per step at `rate`, from this search's own steps (the largest ratio:
    // a step held up to its minimum query count plans more than its rate times the
    // step's time, and overrating a step only keeps a rate measurable).
    let per_step = steps
        .iter()
        .filter_map(|s| Some(s.planned as f64 * rate / s.offered_qps.filter(|&q| q > 0.0)?))
        .fold(0.0, f64::max);
    late as f64 > LATE_FRACTION * (judged as f64 + f64::from(remaining) * per_step)
}

/// The pooled answer over `steps` (and `carried` steps of stricter targets that count
/// this target exactly): the highest rate whose own step passed, whose pooled
/// fraction is at most 1 % and whose [`NEIGHBOURHOOD`] passes too (else the lowest
/// such candidate), its pooled evidence, the interval, and the lowest rate above the
/// answer whose pooled fraction fails (where to search again).
fn decide(
    steps: &[StepSummary],
    carried: &[StepSummary],
    target: f64,
    capacity: f64,
    rule: &mut Rule,
) -> Decision {
    let all = points(steps, carried, target);
    let burst = burst_size(steps, target);
    let fit = pooled(&all);
    let at = |rate: f64| fit.iter().find(|p| p.rate == rate).copied();
    let mut best: Option<usize> = None;
    // Without a candidate whose neighbourhood passes, the lowest candidate stands.
    let mut lowest: Option<usize> = None;
    for (i, s) in steps.iter().enumerate() {
        let (Some(rate), true) = (s.offered_qps, s.passed()) else {
            continue;
        };
        let Some(p) = at(rate) else { continue };
        if p.late as f64 > LATE_FRACTION * p.judged as f64 {
            continue;
        }
        if lowest.is_none_or(|b| steps[b].offered_qps.unwrap_or(0.0) > rate) {
            lowest = Some(i);
        }
        // The steps just above count too: the late fraction there is at least as
        // high, so a rate whose neighbourhood fails is not believed on its own.
        let (j, l) = all
            .iter()
            .filter(|q| q.rate >= rate && q.rate <= rate * (1.0 + NEIGHBOURHOOD))
            .fold((0u64, 0u64), |(j, l), q| (j + q.judged, l + q.late));
        if l as f64 > LATE_FRACTION * j as f64 {
            continue;
        }
        if best.is_none_or(|b| steps[b].offered_qps.unwrap_or(0.0) < rate) {
            best = Some(i);
        }
    }
    let best = best.or(lowest);
    let best_rate = best.and_then(|b| steps[b].offered_qps).unwrap_or(0.0);
    let mut low = 0.0f64;
    let mut high = round_rate(capacity.max(0.01));
    let mut next_fail = None;
    let mut next_fail_confident = false;
    for p in &fit {
        let e = pooled_evidence(rule, p, burst);
        match e {
            Evidence::ConfidentPass => low = low.max(p.rate),
            Evidence::ConfidentFail => high = high.min(p.rate),
            Evidence::Undecided => {}
        }
        if p.rate > best_rate
            && p.late as f64 > LATE_FRACTION * p.judged as f64
            && next_fail.is_none()
        {
            next_fail = Some(p.rate);
            next_fail_confident = e == Evidence::ConfidentFail;
        }
    }
    let evidence = best
        .and_then(|b| at(steps[b].offered_qps.unwrap_or(0.0)))
        .map_or(Evidence::Undecided, |p| pooled_evidence(rule, &p, burst));
    if best.is_some() {
        low = low.min(best_rate);
        high = high.max(best_rate);
    }
    Decision {
        best,
        evidence,
        interval: (low, high.max(low)),
        next_fail,
        next_fail_confident,
    }
}

struct Decision {
    best: Option<usize>,
    evidence: Evidence,
    interval: (f64, f64),
    /// The lowest rate above the answer whose pooled fraction fails.
    next_fail: Option<f64>,
    next_fail_confident: bool,
}

/// The last step was spoiled by the generator or the machine on its last retry.
fn stayed_spoiled(steps: &[StepSummary]) -> bool {
    steps
        .last()
        .is_some_and(|s| s.verdict().spoiled() && s.retries >= MAX_RETRIES)
}

/// The search for one distribution and target.
pub struct Search<'a> {
    pub runner: &'a mut dyn StepRunner,
    pub dist: Distribution,
    pub target: Duration,
    pub bounds: Bounds,
    /// Base of this target's step seeds (mixed with the step number).
    pub seed: u64,
    pub confidence: f64,
    /// Seconds of steps after which, once a rate has passed, the search measures
    /// nothing more and answers from the steps so far: a run with many targets
    /// answers each in bounded time, saying so (`budget_spent`). The search for a
    /// first pass is not cut: FAIL would claim that even the lowest rate failed.
    pub budget: Option<f64>,
}

impl Search<'_> {
    /// Whether the search ends on a rate that stayed spoiled through its retries
    /// (pauses included): the machine cannot be measured on now, and further steps
    /// would be spoiled too or count its slowness against the system. The caller
    /// stops only where an answer stands; this adds the warning that says so.
    fn stop_spoiled(&self, out: &mut SearchResult) -> bool {
        let Some(rate) = out.steps.last().filter(|_| stayed_spoiled(&out.steps)) else {
            return false;
        };
        let rate = rate.offered_qps.unwrap_or(0.0);
        out.warnings.push(format!(
            "{} {}: the search stopped at {rate} qps, which stayed spoiled; the answer stands on the steps before it",
            self.dist.as_str(),
            self.target.as_secs_f64()
        ));
        true
    }

    /// Whether the steps so far have spent the budget.
    fn over_budget(&self, out: &SearchResult) -> bool {
        self.budget.is_some_and(|b| out.spent() >= b)
    }

    /// Runs one step with a fresh seed, again (up to [`MAX_RETRIES`] times, after a
    /// pause) when the generator or the machine spoiled it.
    fn measure(&mut self, qps: f64, out: &mut SearchResult) -> Result<bool, SearchStop> {
        let mut retries = 0;
        loop {
            let seed = mix_seed(self.seed, out.steps.len() as u64);
            let burst = burst_size(&out.steps, self.target.as_secs_f64());
            let mut s = self.runner.step(self.dist, qps, self.target, seed, burst)?;
            s.retries = retries;
            let spoiled = s.verdict().spoiled();
            let passed = s.passed();
            out.steps.push(s);
            if !spoiled {
                return Ok(passed);
            }
            if retries >= MAX_RETRIES {
                out.warnings.push(format!(
                    "{} {}: {} qps failed {} times while the load generator or the machine fell behind: it says nothing about the system, and the answer for this target may be limited by this machine",
                    self.dist.as_str(),
                    self.target.as_secs_f64(),
                    qps,
                    retries + 1
                ));
                return Ok(false);
            }
            retries += 1;
            self.runner.pause_before_retry(retries)?;
        }
    }

    /// Decides on all steps so far and records the answer, interval and confidence.
    fn settle(&self, out: &mut SearchResult, carried: &[StepSummary], rule: &mut Rule) -> Decision {
        let d = decide(
            &out.steps,
            carried,
            self.target.as_secs_f64(),
            self.bounds.capacity,
            rule,
        );
        out.interval = d.interval;
        out.confident = d.evidence == Evidence::ConfidentPass;
        out.best = d.best.map(|b| out.steps[b].clone());
        d
    }

    /// Brackets from `rate` down: halves until a step passes, the floor itself being
    /// the last rate tried. Returns `(pass, fail above it)`, or `(0, rate)` when
    /// even the floor failed.
    fn descend(
        &mut self,
        mut rate: f64,
        floor: f64,
        out: &mut SearchResult,
    ) -> Result<(f64, f64), SearchStop> {
        let top = round_rate(self.bounds.capacity.max(0.01));
        let mut halvings = 0;
        loop {
            let mut passed = self.measure(rate, out)?;
            let doubtful = |s: &StepSummary| {
                !s.confident()
                    && s.verdict() == Verdict::TooManyLate
                    && (s.late as f64) <= 3.0 * LATE_FRACTION * s.judged as f64
            };
            if !passed && out.steps.last().is_some_and(doubtful) {
                // A doubtful fail halves the rate: measure it again first, and go by
                // the two steps' pooled counts, so one unlucky step costs no half.
                self.measure(rate, out)?;
                let target = self.target.as_secs_f64();
                let (j, l) = out.steps[out.steps.len() - 2..]
                    .iter()
                    .filter_map(|s| point_of(s, target))
                    .fold((0, 0), |(j, l), p| (j + p.judged, l + p.late));
                passed = out.steps[out.steps.len() - 2..].iter().any(|s| s.passed())
                    && l as f64 <= LATE_FRACTION * j as f64;
            }
            if passed {
                return Ok((rate, round_rate(rate * 2.0).min(top)));
            }
            halvings += 1;
            if rate <= floor || halvings > MAX_HALVINGS {
                return Ok((0.0, rate));
            }
            rate = round_rate(rate / 2.0).max(floor);
        }
    }

    /// Searches the highest passing rate in `[floor, capacity]`. `carried` are the
    /// steps of stricter targets with the same distribution: their exact counts
    /// against this target join the evidence, and the best of them that passes this
    /// target starts the search.
    pub fn run(&mut self, carried: &[StepSummary]) -> Result<SearchResult, SearchStop> {
        let mut out = SearchResult::default();
        let target_s = self.target.as_secs_f64();
        let top = round_rate(self.bounds.capacity.max(0.01));
        let floor = self.bounds.floor.min(top);
        let mut rule = Rule::new(self.confidence);

        // A known pass: the highest carried rate whose pooled evidence passes here.
        // Only steps that ran to their natural end say something about another target:
        // one stopped on its own target's failure holds a truncated sample.
        let carried: Vec<StepSummary> = carried
            .iter()
            .filter(|s| {
                s.abandoned == 0
                    && s.late_against(target_s).is_some()
                    && !matches!(
                        s.stop(),
                        StopReason::ConfidentFail
                            | StopReason::CertainFail
                            | StopReason::Interrupted
                    )
                    && matches!(s.verdict(), Verdict::Pass | Verdict::TooManyLate)
            })
            .cloned()
            .collect();
        let known = {
            pooled(&points(&[], &carried, target_s))
                .into_iter()
                .filter(|p| p.late as f64 <= LATE_FRACTION * p.judged as f64)
                .map(|p| p.rate)
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
        };

        let (mut lo, mut hi);
        match known {
            Some(k) if k >= top => {
                lo = top;
                hi = top;
                self.measure(top, &mut out)?;
            }
            Some(k) => {
                if self.measure(top, &mut out)? {
                    lo = top;
                    hi = top;
                } else {
                    lo = k;
                    hi = top;
                }
            }
            None => (lo, hi) = self.descend(top, floor, &mut out)?,
        }

        // Bisect between a passing `lo` and a failing `hi`; then pool the evidence and
        // measure a doubtful answer or a doubtful fail above it again (fresh seeds). If
        // the pooled evidence moves the bracket, bisect the new gap.
        let mut confirmations = 0;
        // Settling may take SETTLING × the first bracket and bisection's time.
        let mut first_pass: Option<f64> = None;
        // Rounds that measured nothing (the bisection reused pooled verdicts): a second
        // one in a row means the bracket cannot move without a new measurement.
        let mut idle_rounds = 0;
        // A bracket opened again below every pass taken back (by halving, or down to
        // a stricter target's known pass): its bisection is the search for a pass,
        // which the settling budget does not cut.
        let mut reopened = false;
        let mut steps_seen = usize::MAX;
        for _round in 0..4 * MAX_STEPS {
            if out.steps.len() == steps_seen {
                idle_rounds += 1;
            } else {
                idle_rounds = 0;
            }
            steps_seen = out.steps.len();
            let spent = out.spent();
            // The budget bounds settling, not the search for a pass: with every pass
            // taken back, FAIL would claim that even the lowest rate failed.
            if !reopened
                && first_pass.is_some_and(|f| spent > f * (1.0 + SETTLING))
                && self
                    .settle(&mut out, &carried, &mut rule)
                    .best
                    .is_some_and(|b| {
                        let rate = out.steps[b].offered_qps.unwrap_or(0.0);
                        !gap_above(&out.steps, &carried, rate, target_s)
                    })
            {
                break;
            }
            // The budget ends the search wherever an answer stands.
            if self.over_budget(&out) && self.settle(&mut out, &carried, &mut rule).best.is_some() {
                out.budget_spent = true;
                break;
            }
            // A confirmation that stayed spoiled (see `stop_spoiled`).
            if stayed_spoiled(&out.steps)
                && self.settle(&mut out, &carried, &mut rule).best.is_some()
                && self.stop_spoiled(&mut out)
            {
                break;
            }
            if out.steps.len() > MAX_STEPS {
                out.warnings.push(format!(
                    "{} {}: the search stopped after {MAX_STEPS} steps without settling",
                    self.dist.as_str(),
                    target_s
                ));
                break;
            }
            while lo > 0.0 && hi - lo > (0.01 * lo).max(1.0) {
                let mut mid = round_rate((lo + hi) / 2.0);
                if mid <= lo || mid >= hi {
                    break;
                }
                // A clear pass below a fail: latency jumps somewhere between them
                // (a capacity, not a creeping tail), so the answer lies just below
                // the fail. Try there: a fail above the jump stops within a second
                // or two, where a pass in the middle costs a whole step.
                let near = round_rate(hi * CLIFF_SPLIT);
                if near > mid && near < hi && clear_at(&out.steps, lo, target_s) {
                    mid = near;
                }
                let times = out
                    .steps
                    .iter()
                    .filter(|s| s.offered_qps == Some(mid))
                    .count() as u32;
                if times <= CONFIRMATIONS_PER_RATE
                    && beyond_reach(&out.steps, &carried, lo, mid, target_s)
                {
                    hi = mid;
                    continue;
                }
                if self.over_budget(&out) {
                    // `lo` passed: the loop's head answers from here.
                    out.budget_spent = true;
                    break;
                }
                let passed = if times > CONFIRMATIONS_PER_RATE {
                    // Measured enough already: its pooled counts decide.
                    pooled(&points(&out.steps, &carried, target_s))
                        .iter()
                        .find(|p| p.rate == mid)
                        .is_some_and(|p| p.late as f64 <= LATE_FRACTION * p.judged as f64)
                } else {
                    self.measure(mid, &mut out)?
                };
                if stayed_spoiled(&out.steps) {
                    // Not a fail: the bracket stays, and the search ends below.
                    break;
                }
                if passed {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            reopened = false;
            if first_pass.is_none() {
                first_pass = Some(out.spent());
            }
            let d = self.settle(&mut out, &carried, &mut rule);
            let Some(b) = d.best else {
                // The pooled evidence took back every pass: search below the lowest
                // rate tried, down to a known pass of a stricter target if there is
                // one (its steps are not this search's own), else by halving.
                let lowest = out
                    .steps
                    .iter()
                    .filter_map(|s| s.offered_qps)
                    .fold(top, f64::min);
                if let Some(k) = known {
                    if lowest - k > (0.01 * k).max(1.0) {
                        (lo, hi) = (k, lowest);
                        reopened = true;
                        continue;
                    }
                } else if lo > 0.0 && lowest > floor {
                    (lo, hi) =
                        self.descend(round_rate(lowest / 2.0).max(floor), floor, &mut out)?;
                    if lo > 0.0 {
                        hi = hi.min(lowest);
                        reopened = true;
                        continue;
                    }
                }
                break;
            };
            if self.stop_spoiled(&mut out) {
                break;
            }
            let rate = out.steps[b].offered_qps.unwrap_or(0.0);
            let next_hi = d.next_fail.unwrap_or(top);
            if rate != lo || next_hi != hi {
                // The pooled evidence moved the bracket (it took back a pass, or a
                // confirmation turned a fail into a pass): search the new gap.
                let moved = (lo, hi);
                lo = rate;
                hi = next_hi.max(rate);
                // A gap above the answer is the search for a pass: an idle round
                // does not end it (see `gap_above`).
                let gap = gap_above(&out.steps, &carried, rate, target_s);
                if hi - lo > (0.01 * lo).max(1.0) && (lo, hi) != moved && (idle_rounds < 1 || gap) {
                    reopened = gap;
                    continue;
                }
            }
            // Confirm both sides of the boundary alike: re-measuring only a doubtful
            // pass (and never a doubtful fail just above it) would let bad luck
            // lower the answer and never raise it.
            let tried = |r: f64| {
                out.steps
                    .iter()
                    .filter(|s| s.offered_qps == Some(r))
                    .count() as u32
            };
            // A clear answer whose next rate up fails with confidence sits below a
            // jump in latency: measuring it again cannot move it.
            let on_cliff = clear_at(&out.steps, rate, target_s)
                && d.next_fail.is_none_or(|_| d.next_fail_confident);
            // A pass at the capacity itself has no steps above it to pool with, and
            // its count assumes a steady state that a queue offered its capacity never
            // reaches: one whose latency crept near the target (not clear) only says
            // the step ended before the queue filled. It is measured once more.
            let at_capacity =
                rate >= top && !clear_at(&out.steps, rate, target_s) && tried(rate) < 2;
            let pass_doubtful = (!out.confident || at_capacity)
                && !on_cliff
                && tried(rate) <= CONFIRMATIONS_PER_RATE;
            let fail_doubtful = d
                .next_fail
                .filter(|&f| !d.next_fail_confident && tried(f) <= CONFIRMATIONS_PER_RATE);
            if confirmations >= MAX_CONFIRMATIONS || (!pass_doubtful && fail_doubtful.is_none()) {
                break;
            }
            if self.over_budget(&out) {
                out.budget_spent = true;
                break;
            }
            // The side with fewer measurements first.
            let again = match fail_doubtful {
                Some(f) if !pass_doubtful || tried(f) < tried(rate) => f,
                _ => rate,
            };
            confirmations += 1;
            self.measure(again, &mut out)?;
        }
        // The loop may end on its time or step budget after a measurement: the
        // answer is decided on every step.
        self.settle(&mut out, &carried, &mut rule);
        // A known pass of a stricter target that this search never beat.
        if out.best.is_none() {
            if let Some(k) = known {
                if let Some(s) = carried
                    .iter()
                    .filter(|s| s.offered_qps == Some(k))
                    .filter_map(|s| s.against(target_s))
                    .find(|s| s.passed())
                {
                    out.best = Some(s);
                    out.interval = (out.interval.0.min(k), out.interval.1.max(k));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stats::ServiceTimes;
    use crate::measure::step::{StepOutcome, StepSpec};
    use crate::measure::virtual_clock::{ServiceLaw, VirtualQueue};

    fn bounds(capacity: f64) -> Bounds {
        Bounds {
            capacity,
            floor: 0.0,
        }
    }

    #[test]
    fn pooling_merges_a_lucky_pass_with_the_fails_below_it() {
        let pts = [
            Point {
                rate: 100.0,
                judged: 1000,
                late: 5,
            },
            Point {
                rate: 110.0,
                judged: 1000,
                late: 15,
            },
            Point {
                rate: 112.0,
                judged: 1000,
                late: 8,
            }, // lucky
            Point {
                rate: 120.0,
                judged: 1000,
                late: 30,
            },
        ];
        let fit = pooled(&pts);
        assert_eq!(fit[0], pts[0]);
        // 110 and 112 pool: 23 of 2000, above 1 %.
        assert_eq!((fit[1].judged, fit[1].late), (2000, 23));
        assert_eq!((fit[2].judged, fit[2].late), (2000, 23));
        assert_eq!(fit[3], pts[3]);
        // Monotone data is left alone.
        assert_eq!(pooled(&pts[..2]), pts[..2].to_vec());
    }

    #[test]
    fn seeds_differ_per_step_and_repeat_per_run() {
        let a: Vec<u64> = (0..4).map(|k| mix_seed(42, k)).collect();
        assert_eq!(a, (0..4).map(|k| mix_seed(42, k)).collect::<Vec<_>>());
        let mut b = a.clone();
        b.sort();
        b.dedup();
        assert_eq!(b.len(), 4);
    }

    /// One search to its end, starting from the `carried` steps.
    fn run_search(
        runner: &mut dyn StepRunner,
        dist: Distribution,
        target_ms: u64,
        bounds: Bounds,
        seed: u64,
        carried: &[StepSummary],
    ) -> SearchResult {
        Search {
            runner,
            dist,
            target: Duration::from_millis(target_ms),
            bounds,
            seed,
            confidence: 0.99,
            budget: None,
        }
        .run(carried)
        .unwrap()
    }

    fn search(
        q: &mut VirtualQueue,
        dist: Distribution,
        target_ms: u64,
        cap: f64,
        seed: u64,
    ) -> SearchResult {
        run_search(q, dist, target_ms, bounds(cap), seed, &[])
    }

    /// A machine that serves `after` steps at full speed, then `slow` steps at half
    /// speed, then recovers.
    struct Spell {
        q: VirtualQueue,
        after: usize,
        slow: usize,
        reference: Option<ServiceTimes>,
        pauses: Vec<u32>,
    }

    impl StepRunner for Spell {
        fn step(
            &mut self,
            dist: Distribution,
            qps: f64,
            target: Duration,
            seed: u64,
            burst: f64,
        ) -> Result<StepSummary, SearchStop> {
            let mut spec = StepSpec::judged(dist, qps, 10.0, 100, Some(target), seed, 0.99);
            spec.burst = burst;
            spec.service_ref = self.reference;
            let slow = self.after == 0 && self.slow > 0;
            self.q.slowdown = if slow { 2.0 } else { 1.0 };
            if self.after > 0 {
                self.after -= 1;
            } else {
                self.slow = self.slow.saturating_sub(1);
            }
            Ok(self.q.run(&spec))
        }

        fn pause_before_retry(&mut self, retry: u32) -> Result<(), SearchStop> {
            self.pauses.push(retry);
            Ok(())
        }
    }

    #[test]
    fn a_slow_spell_of_the_machine_is_retried_and_does_not_lower_the_answer() {
        // D/D/1, 5 ms, 20 ms target: the answer is 200 qps. The machine serves the
        // first two steps at half speed.
        let law = ServiceLaw::Fixed(0.005);
        let run = |reference: Option<ServiceTimes>| {
            let mut spell = Spell {
                q: VirtualQueue::new(1, law, 10.0, 100),
                after: 0,
                slow: 2,
                reference,
                pauses: Vec::new(),
            };
            let r = run_search(&mut spell, Distribution::Linear, 20, bounds(200.0), 1, &[]);
            (r, spell.pauses)
        };
        let (r, pauses) = run(Some(law.probe_times(200, 1)));
        assert_eq!(pauses, vec![1, 2], "two retries, each after a pause");
        let verdicts: Vec<Verdict> = r.steps.iter().take(3).map(|s| s.verdict()).collect();
        assert_eq!(
            verdicts,
            vec![Verdict::MachineSlow, Verdict::MachineSlow, Verdict::Pass]
        );
        assert_eq!(r.steps[2].retries, 2);
        assert_eq!(r.best.unwrap().offered_qps, Some(200.0));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // Without the probe's call times, the same spell is taken for the system's
        // failure: the first rate fails and the search goes down from it.
        let (blind, pauses) = run(None);
        assert!(pauses.is_empty());
        assert_eq!(blind.steps[0].verdict(), Verdict::TooManyLate);
        assert!(
            blind.steps[1].offered_qps < Some(200.0),
            "{:?}",
            blind.steps[1]
        );
    }

    #[test]
    fn a_machine_that_stays_slow_ends_the_search_on_the_answer_it_has() {
        // D/D/1, 5 ms, 20 ms target: 400 qps fails on its own (overload at full
        // speed), 200 passes, and from the third step on the machine runs at half
        // speed for good. The rate tried next stays spoiled through its retries: it
        // says nothing about the system, so it neither lowers the bracket nor leads
        // to more steps on a machine that cannot be measured on; 200 stands.
        let law = ServiceLaw::Fixed(0.005);
        let mut spell = Spell {
            q: VirtualQueue::new(1, law, 10.0, 100),
            after: 2,
            slow: usize::MAX,
            reference: Some(law.probe_times(200, 1)),
            pauses: Vec::new(),
        };
        let r = run_search(&mut spell, Distribution::Linear, 20, bounds(400.0), 1, &[]);
        let rates: Vec<f64> = r.steps.iter().filter_map(|s| s.offered_qps).collect();
        assert_eq!(rates.len(), 5, "{rates:?}");
        assert_eq!(rates[..2], [400.0, 200.0]);
        assert!(rates[2] > 200.0 && rates[2] < 400.0 && rates[2..].iter().all(|&q| q == rates[2]));
        assert!(r.steps[2..]
            .iter()
            .all(|s| s.verdict() == Verdict::MachineSlow));
        assert_eq!(spell.pauses, vec![1, 2]);
        assert_eq!(r.best.unwrap().offered_qps, Some(200.0));
        assert_eq!(
            r.interval.1, 400.0,
            "a spoiled rate is no fail: {:?}",
            r.interval
        );
        assert!(
            r.warnings.len() == 2 && r.warnings[1].contains("stopped at"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn dd1_answer_is_the_server_rate() {
        // D/D/1, 5 ms service: every rate up to 200 qps passes a 20 ms target (on a
        // virtual clock 200 itself has no queue), every rate above fails.
        let mut q = VirtualQueue::new(1, ServiceLaw::Fixed(0.005), 10.0, 100);
        let r = search(&mut q, Distribution::Linear, 20, 200.0, 1);
        let got = r.best.unwrap().offered_qps.unwrap();
        assert_eq!(got, 200.0);
        assert!(r.confident);
        assert!(
            r.interval.0 <= 200.0 && r.interval.1 >= 200.0,
            "{:?}",
            r.interval
        );
    }

    #[test]
    fn a_capacity_cliff_costs_few_passing_steps_and_no_confirmations() {
        // Two servers of 90 ms (ResNet-50 on this VM, 2 × 1): capacity 22.2 qps, and
        // below it every query takes 90 ms, far from a 200 ms target. 200-query steps
        // can never pass with confidence, so without the cliff rules the answer was
        // measured three times and the bisection walked up from 12 in passing steps
        // (12, 18, 21, 22, 22, 22).
        let mut q = VirtualQueue::new(2, ServiceLaw::Fixed(0.09), 10.0, 100);
        let r = search(&mut q, Distribution::Linear, 200, 24.0, 1);
        assert_eq!(r.best.as_ref().unwrap().offered_qps, Some(22.0));
        let passes: Vec<f64> = r
            .steps
            .iter()
            .filter(|s| s.passed())
            .map(|s| s.offered_qps.unwrap())
            .collect();
        assert_eq!(passes, [12.0, 22.0], "{:?}", rates(&r));
        assert_eq!(rates(&r), [24.0, 12.0, 22.0, 23.0]);
    }

    fn rates(r: &SearchResult) -> Vec<f64> {
        r.steps.iter().map(|s| s.offered_qps.unwrap()).collect()
    }

    #[test]
    fn a_clear_pass_whose_queries_waited_is_no_cliff() {
        // p99.9 at 0.3 × a 500 ms target: clear by the tail alone. Calls of 50 ms.
        let pass = |mean: f64, calls: bool| {
            let mut s = scripted_step(
                Distribution::Exponential,
                12.0,
                Duration::from_millis(500),
                1,
                120,
                0,
                10.0,
                false,
            );
            s.percentiles.0.insert("99.9".into(), 0.15);
            s.mean = mean;
            if calls {
                for _ in 0..120 {
                    s.service.record(50_000_000);
                }
            }
            s
        };
        // Latency at the call time (a server below its capacity): a cliff.
        assert!(clear_at(&[pass(0.055, true)], 12.0, 0.5));
        // M/M/1 at 60 % load: queries wait 1.5 calls on average, so its tail creeps
        // with the rate however clear this one step looked.
        assert!(!clear_at(&[pass(0.125, true)], 12.0, 0.5));
        // Without call times (none recorded), the tail alone decides.
        assert!(clear_at(&[pass(0.125, false)], 12.0, 0.5));
    }

    /// One M/M/1 search (5 ms service, 50 ms target, 10-s steps) with `budget`.
    fn mm1_with_budget(cap: f64, seed: u64, budget: Option<f64>) -> SearchResult {
        let mut q = VirtualQueue::new(1, ServiceLaw::Exp(0.005), 10.0, 100);
        Search {
            runner: &mut q,
            dist: Distribution::Exponential,
            target: Duration::from_millis(50),
            bounds: bounds(cap),
            seed,
            confidence: 0.99,
            budget,
        }
        .run(&[])
        .unwrap()
    }

    #[test]
    fn the_budget_ends_the_search_after_the_step_that_spends_it() {
        for seed in 1..=6u64 {
            let free = mm1_with_budget(200.0, seed, None);
            // Unbounded, these searches confirm well past 40 s, so the budget binds.
            assert!(free.spent() > 60.0, "seed {seed}: {}", free.spent());
            assert!(!free.budget_spent);
            let r = mm1_with_budget(200.0, seed, Some(40.0));
            assert!(r.budget_spent, "seed {seed}");
            // Every step but the last started with budget left.
            let before_last = r.spent() - r.steps.last().unwrap().runtime;
            assert!(before_last < 40.0, "seed {seed}: {before_last}");
            // The answer is one of its own passing steps, decided on all of them.
            let best = r.best.as_ref().expect("a pass stands");
            assert!(best.passed());
            assert!(r.interval.0 <= best.offered_qps.unwrap());
            assert!(r.steps.iter().any(|s| s.seed == best.seed));
        }
    }

    #[test]
    fn a_search_the_budget_cut_short_says_so() {
        // The virtual clock replays a seed exactly, so a budgeted search's steps are
        // the first steps of the unbounded one: fewer of them means the budget cut it,
        // whether in the bisection or in the confirmations.
        let mut cut = 0;
        for seed in 1..=30u64 {
            let free = mm1_with_budget(200.0, seed, None);
            for budget in [15.0, 25.0, 40.0] {
                let r = mm1_with_budget(200.0, seed, Some(budget));
                assert!(r.steps.len() <= free.steps.len());
                if r.steps.len() < free.steps.len() {
                    cut += 1;
                    assert!(
                        r.budget_spent,
                        "seed {seed}, budget {budget}: cut, not said"
                    );
                }
                if r.budget_spent {
                    assert!(r.spent() >= budget, "seed {seed}, budget {budget}");
                }
            }
        }
        assert!(cut >= 60, "the budgets cut only {cut} of 90 searches");
    }

    #[test]
    fn the_budget_never_turns_the_search_for_a_pass_into_a_fail() {
        // The probe claims 4 × the capacity: the halving needs steps past any budget
        // before a rate passes, and a tiny budget must not answer FAIL.
        let r = mm1_with_budget(800.0, 3, Some(0.001));
        let best = r.best.expect("the halving still found a pass");
        assert!(best.offered_qps.unwrap() <= 108.0, "{:?}", best.offered_qps);
        assert!(r.budget_spent);
    }

    #[test]
    fn mm1_answers_are_unbiased_over_seeds() {
        // M/M/1, 5 ms mean service, 50 ms target: theory 200 − ln(100)/0.05 = 107.9.
        let theory = 200.0 - 100f64.ln() / 0.05;
        let mut answers = Vec::new();
        let mut covered = 0;
        for seed in 1..=12u64 {
            let mut q = VirtualQueue::new(1, ServiceLaw::Exp(0.005), 10.0, 100);
            let r = search(&mut q, Distribution::Exponential, 50, 200.0, seed);
            let got = r.best.unwrap().offered_qps.unwrap();
            answers.push(got);
            covered += usize::from(r.interval.0 <= theory && theory <= r.interval.1);
        }
        answers.sort_by(f64::total_cmp);
        let median = (answers[5] + answers[6]) / 2.0;
        assert!(
            (median / theory - 1.0).abs() <= 0.05,
            "median {median}: {answers:?}"
        );
        // Over 100 seeds (the `harness` below) the answers spread from −16 % to +5 %
        // (lateness comes in episodes, so single steps are noisy), 99 of them inside
        // the acceptance window [−12 %, +5 %]; these 12 must stay inside it.
        assert!(
            answers
                .iter()
                .all(|&a| a >= theory * 0.88 && a <= theory * 1.05),
            "{answers:?}"
        );
        assert!(covered >= 8, "interval covered theory {covered} of 12");
    }

    #[test]
    fn answers_near_the_capacity_neither_collapse_to_its_half_nor_stop_at_it() {
        // M/M/1 at 2 ms, 50 ms target, 3 s steps (tests/cli_sim.rs's queue): theory
        // 500 − ln(100)/0.05 = 407.9, at 0.82 of the capacity, where single steps are
        // noisy. Two ways the search went wrong here (seeds 3 and 8 of these):
        // - the passes near the answer were all rejected by the fails within 3 %
        //   above them, which took the answer down to the halving's pass at 250, and
        //   the settling budget ended the search there (−39 %): the gap between is
        //   now searched (see `gap_above`);
        // - the step at the capacity passed, 0 late, as the queue was still filling
        //   in its 3 s (p99.9 at 0.94–0.99 of the target, not clear), and the search
        //   stopped on it (+23 %): such a pass is now measured once more.
        // On the virtual clock seeds 1–400 then answer from −11 % to +11 %.
        let theory = 500.0 - 100f64.ln() / 0.05;
        for seed in 1..=40u64 {
            let mut q = VirtualQueue::new(1, ServiceLaw::Exp(0.002), 3.0, 100);
            let r = run_search(
                &mut q,
                Distribution::Exponential,
                50,
                Bounds::new(500.0, 100, 3.0),
                seed,
                &[],
            );
            let got = r.best.as_ref().unwrap().offered_qps.unwrap();
            assert!(
                got >= theory * 0.85 && got < 500.0,
                "seed {seed}: {got} against {theory:.1}, steps {:?}",
                rates(&r)
            );
        }
    }

    /// A step judged on its point estimate, as the scripted runners report it; with
    /// `clustered`, its late queries form one episode.
    #[allow(clippy::too_many_arguments)]
    fn scripted_step(
        dist: Distribution,
        qps: f64,
        target: Duration,
        seed: u64,
        judged: u64,
        late: u64,
        runtime: f64,
        clustered: bool,
    ) -> StepSummary {
        let passed = late * 100 <= judged;
        StepSummary {
            distribution: Some(dist),
            target_latency: Some(target.as_secs_f64()),
            offered_qps: Some(qps),
            count: judged,
            issued: judged,
            judged,
            late,
            late_episodes: if clustered { late.min(1) } else { late },
            late_episode_sq: if clustered { late * late } else { late },
            runtime,
            planned: judged,
            outcome: StepOutcome::decided(passed, false, StopReason::PointEstimate),
            seed,
            ..StepSummary::default()
        }
    }

    /// Replays scripted steps: `(rate, judged, late, runtime)`, passing on the point
    /// estimate; interrupts when the script runs out or a rate differs.
    struct Scripted(std::collections::VecDeque<(f64, u64, u64, f64)>);

    impl StepRunner for Scripted {
        fn step(
            &mut self,
            dist: Distribution,
            qps: f64,
            target: Duration,
            seed: u64,
            _burst: f64,
        ) -> Result<StepSummary, SearchStop> {
            let (rate, judged, late, runtime) =
                self.0.pop_front().ok_or(SearchStop::Interrupted)?;
            assert_eq!(qps, rate, "the search asked for another rate");
            Ok(scripted_step(
                dist, qps, target, seed, judged, late, runtime, false,
            ))
        }
    }

    #[test]
    fn a_bracket_reopened_as_the_settling_time_runs_out_is_bisected() {
        // 48 passes, its confirmation fails (pooled 1.5 %), 24 passes: by then the
        // settling time (1.5 × the first second) is spent, but the answer lies
        // anywhere in 24–48, so that gap is bisected (36, 42, 39, 40; 41 lies within
        // 3 % of 42's 50 % late, so it cannot be the answer and is not measured)
        // before the search ends. Ended at 24, the truth benchmark's seed 3 answered
        // 50 on M/M/1 (theory 107.9) after every pass from 100 up was taken back.
        let mut runner = Scripted(
            [
                (48.0, 100, 0, 1.0),
                (48.0, 100, 3, 1.4),
                (24.0, 100, 0, 1.0),
                (36.0, 100, 0, 1.0),
                (42.0, 100, 50, 1.0),
                (39.0, 100, 0, 1.0),
                (40.0, 100, 0, 1.0),
            ]
            .into_iter()
            .collect(),
        );
        let r = run_search(
            &mut runner,
            Distribution::Linear,
            500,
            Bounds {
                capacity: 48.0,
                floor: 1.0,
            },
            1,
            &[],
        );
        assert_eq!(r.best.and_then(|b| b.offered_qps), Some(40.0));
        assert!(runner.0.is_empty());
    }

    /// A runner whose late count is a function of the rate, the step's queries and
    /// the rates tried before (the first field: every rate asked for, in order).
    struct ByRate(Vec<f64>, fn(f64, u64, &[f64]) -> u64);

    impl StepRunner for ByRate {
        fn step(
            &mut self,
            dist: Distribution,
            qps: f64,
            target: Duration,
            seed: u64,
            _burst: f64,
        ) -> Result<StepSummary, SearchStop> {
            let judged = (qps * 10.0) as u64;
            let late = (self.1)(qps, judged, &self.0);
            self.0.push(qps);
            Ok(scripted_step(
                dist, qps, target, seed, judged, late, 10.0, true,
            ))
        }
    }

    /// Every rate up to 25 qps is clean, every rate above 26 is overloaded, and 26 is
    /// lucky on its first step only (2 of 260), failing after.
    fn lucky_once(qps: f64, judged: u64, tried: &[f64]) -> u64 {
        if qps <= 25.0 {
            0
        } else if qps == 26.0 && !tried.contains(&26.0) {
            2
        } else {
            judged / 10
        }
    }

    /// Clean up to 40 qps; at 48 (the capacity) the first two steps are clean and
    /// every later one is a burst of 30 late among 100.
    struct BurstAtTop(Vec<f64>);

    impl StepRunner for BurstAtTop {
        fn step(
            &mut self,
            dist: Distribution,
            qps: f64,
            target: Duration,
            seed: u64,
            _burst: f64,
        ) -> Result<StepSummary, SearchStop> {
            let earlier = self.0.iter().filter(|&&q| q == qps).count();
            let late = if qps > 40.0 && (qps < 48.0 || earlier >= 2) {
                30
            } else {
                0
            };
            self.0.push(qps);
            Ok(scripted_step(dist, qps, target, seed, 100, late, 1.0, true))
        }
    }

    #[test]
    fn a_pass_taken_back_after_the_settling_budget_still_searches_below() {
        // The capacity passes at once, so the first pass took one second and settling
        // may take 1.5 more; the confirmations at 48 take that and more before the
        // third one takes the pass back. The answer must not be FAIL: rates below 48
        // were never tried.
        let mut runner = BurstAtTop(Vec::new());
        let r = run_search(
            &mut runner,
            Distribution::Linear,
            500,
            Bounds {
                capacity: 48.0,
                floor: 1.0,
            },
            1,
            &[],
        );
        let got = r.best.and_then(|b| b.offered_qps);
        assert!(
            got.is_some_and(|q| (24.0..=40.0).contains(&q)),
            "{got:?} after {:?}",
            runner.0
        );
    }

    /// A passing answer at `qps` for `target`, which also counted `also` with
    /// `late_also` late queries.
    fn answer(qps: f64, target: f64, late: u64, also: f64, late_also: u64) -> SearchResult {
        let step = StepSummary {
            late_also: vec![(also, late_also)],
            cap: 24_000,
            confidence: 0.99,
            ..scripted_step(
                Distribution::Linear,
                qps,
                Duration::from_secs_f64(target),
                1,
                6000,
                late,
                3.0,
                false,
            )
        };
        SearchResult {
            best: Some(step),
            interval: (qps * 0.9, qps * 1.1),
            confident: true,
            ..SearchResult::default()
        }
    }

    #[test]
    fn a_looser_target_never_answers_below_another_configurations_stricter_answer() {
        // GPU, tuned: 8x2 answered 2181 at 0.1 s (1 query of 6000 over 0.2 s); the
        // tuner's pick for 0.2 s (batch 4) found only 1518 there.
        let stricter = answer(2181.0, 0.1, 30, 0.2, 1);
        let mut found = answer(1518.0, 0.2, 12, 0.1, 40);
        found.confident = false;
        found.interval = (0.0, 4702.0);
        assert!(keep_monotone(&mut found, &stricter, 0.2));
        let best = found.best.as_ref().unwrap();
        assert_eq!(best.offered_qps, Some(2181.0));
        assert_eq!(best.target_latency, Some(0.2));
        assert_eq!((best.late, best.carried_from), (1, Some(0.1)));
        assert!(best.passed() && found.confident);
        assert_eq!(found.interval, (2181.0 * 0.9, 4702.0));

        // A search that failed everywhere is bounded the same way.
        let mut failed = SearchResult::default();
        assert!(keep_monotone(&mut failed, &stricter, 0.2));
        assert_eq!(failed.best.and_then(|b| b.offered_qps), Some(2181.0));

        // An answer at or above the stricter one stands, as does one whose stricter
        // rival never counted this target.
        let mut higher = answer(2300.0, 0.2, 10, 0.1, 70);
        assert!(!keep_monotone(&mut higher, &stricter, 0.2));
        assert_eq!(higher.best.and_then(|b| b.offered_qps), Some(2300.0));
        let mut lower = answer(1518.0, 0.2, 12, 0.1, 40);
        assert!(!keep_monotone(
            &mut lower,
            &answer(2181.0, 0.1, 30, 0.05, 0),
            0.2
        ));
        assert_eq!(lower.best.and_then(|b| b.offered_qps), Some(1518.0));

        // Three targets (the H200, linear): 16x1 answered 2125 at 0.05 s, which
        // lifted 0.1 s; the answer lifted to 0.1 s bounds 0.2 s in turn (the pick,
        // 16x1x0x4, found 2089 there).
        let mut at_005 = answer(2125.0, 0.05, 40, 0.1, 3);
        if let Some(b) = at_005.best.as_mut() {
            b.late_also.push((0.2, 1));
        }
        let mut at_01 = answer(1980.0, 0.1, 10, 0.2, 2);
        assert!(keep_monotone(&mut at_01, &at_005, 0.1));
        let mut at_02 = answer(2089.0, 0.2, 5, 0.1, 50);
        assert!(keep_monotone(&mut at_02, &at_01, 0.2));
        let best = at_02.best.as_ref().unwrap();
        assert_eq!((best.offered_qps, best.late), (Some(2125.0), 1));
        assert!(best.passed());
    }

    #[test]
    fn a_pass_taken_back_above_a_known_pass_searches_the_gap_between() {
        // A stricter target's step at 10 qps passes this target too. This search's
        // only pass (26, lucky) is taken back by its confirmation: the answer must be
        // searched between 10 and 26, not fall back to 10 untried.
        let carried = StepSummary {
            distribution: Some(Distribution::Exponential),
            target_latency: Some(0.1),
            offered_qps: Some(10.0),
            count: 100,
            issued: 100,
            judged: 100,
            late: 0,
            late_also: vec![(0.2, 0)],
            runtime: 10.0,
            outcome: StepOutcome::decided(true, false, StopReason::PointEstimate),
            ..StepSummary::default()
        };
        let mut runner = ByRate(Vec::new(), lucky_once);
        let r = run_search(
            &mut runner,
            Distribution::Exponential,
            200,
            bounds(42.0),
            1,
            &[carried],
        );
        let tried = &runner.0;
        assert!(
            tried.iter().filter(|&&q| q == 26.0).count() >= 2,
            "26 was never confirmed: {tried:?}"
        );
        assert_eq!(r.best.and_then(|b| b.offered_qps), Some(25.0), "{tried:?}");
    }

    /// A capacity cliff: every rate up to 35 qps is clean, every rate from 36 up
    /// overloaded (10 % late), as ResNet-50 on this VM at linear 0.1.
    fn cliff(qps: f64, judged: u64, _tried: &[f64]) -> u64 {
        if qps <= 35.0 {
            0
        } else {
            judged / 10
        }
    }

    #[test]
    fn a_rate_within_reach_of_an_overloaded_step_is_not_measured_in_vain() {
        // 35 lies within 3 % of 36, whose 10 % late outweigh any three clean steps at
        // 35 once 36 has failed: `decide` cannot take 35, so measuring it (three
        // times, before) is waste.
        let mut runner = ByRate(Vec::new(), cliff);
        let r = run_search(&mut runner, Distribution::Linear, 100, bounds(42.0), 1, &[]);
        let tried = &runner.0;
        assert_eq!(r.best.and_then(|b| b.offered_qps), Some(34.0), "{tried:?}");
        assert!(!tried.contains(&35.0), "35 measured: {tried:?}");
    }

    #[test]
    fn a_looser_target_starts_from_steps_that_ran_to_their_end_only() {
        // D/D/1 at 5 ms: a 4 ms target fails everywhere (steps stop early), a 20 ms
        // target passes up to 200. The early-stopped steps of the 4 ms search must not
        // pose as passes of the 20 ms one (they hold a handful of queries).
        let mut q = VirtualQueue::new(1, ServiceLaw::Fixed(0.005), 10.0, 100);
        let strict = search(&mut q, Distribution::Linear, 4, 200.0, 1);
        assert!(strict.best.is_none());
        let loose = run_search(
            &mut q,
            Distribution::Linear,
            20,
            bounds(200.0),
            2,
            &strict.steps,
        );
        assert_eq!(loose.best.unwrap().offered_qps, Some(200.0));
    }
}

#[cfg(test)]
mod harness {
    use super::*;
    use crate::measure::stats::ServiceTimes;
    use crate::measure::virtual_clock::{ServiceLaw, VirtualQueue};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution as _, Exp};

    /// The environment variable `name` parsed, else `default`.
    fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }

    /// A queue whose answer theory knows: `QUEUE=mm1` (the default; M/M/1 at 5 ms,
    /// T = 50 ms), `md1` (Poisson arrivals, fixed 5 ms service, T = 50 ms) or `mm2`
    /// (two servers at an exponential 10 ms, T = 100 ms) or `mm1fast` (M/M/1 at 2 ms,
    /// T = 50 ms: `tests/cli_sim.rs`'s queue, best run with `TIME=3`), all with
    /// Poisson arrivals.
    struct Queue {
        servers: usize,
        law: ServiceLaw,
        target: f64,
    }

    impl Queue {
        fn from_knob() -> Queue {
            Queue::named(&knob("QUEUE", String::from("mm1")))
        }

        fn named(name: &str) -> Queue {
            let (servers, law, target) = match name {
                "md1" => (1, ServiceLaw::Fixed(0.005), 0.05),
                "mm2" => (2, ServiceLaw::Exp(0.010), 0.1),
                // tests/cli_sim.rs's M/M/1: its answer at 0.82 of the capacity.
                "mm1fast" => (1, ServiceLaw::Exp(0.002), 0.05),
                // Few queries a step: ~11 qps, where a 10 s step holds ~100 queries
                // and no pass can be confident (the real runs' exponential 0.2).
                "mm1slow" => (1, ServiceLaw::Exp(0.05), 0.5),
                _ => (1, ServiceLaw::Exp(0.005), 0.05),
            };
            Queue {
                servers,
                law,
                target,
            }
        }

        fn mean(&self) -> f64 {
            match self.law {
                ServiceLaw::Exp(m) | ServiceLaw::Fixed(m) => m,
            }
        }

        /// P[sojourn > target] at `lambda` qps.
        fn late_fraction(&self, lambda: f64) -> f64 {
            let t = self.target;
            match self.law {
                // Wait W: 0 with probability 1 − C, else Exp(θ), θ = cμ − λ; the
                // sojourn adds an Exp(μ) service.
                ServiceLaw::Exp(mean) => {
                    let mu = 1.0 / mean;
                    let c = self.servers;
                    let wait = crate::measure::tuning::erlang_c(c, lambda * mean);
                    let theta = c as f64 * mu - lambda;
                    let both = (theta * (-mu * t).exp() - mu * (-theta * t).exp()) / (theta - mu);
                    (1.0 - wait) * (-mu * t).exp() + wait * both
                }
                // M/D/1 (one server): Erlang's series for P[W ≤ w], w = target − D.
                ServiceLaw::Fixed(d) => {
                    let w = t - d;
                    let cdf: f64 = (0..=(w / d).floor() as i32)
                        .map(|k| {
                            let x = lambda * (f64::from(k) * d - w);
                            x.powi(k) / (1..=k).map(f64::from).product::<f64>() * (-x).exp()
                        })
                        .sum();
                    1.0 - (1.0 - lambda * d) * cdf
                }
            }
        }

        /// The rate whose late fraction is 1 %, by bisection below the capacity.
        fn theory(&self) -> f64 {
            let capacity = self.servers as f64 / self.mean();
            let (mut lo, mut hi) = (0.0, capacity * (1.0 - 1e-9));
            for _ in 0..100 {
                let mid = (lo + hi) / 2.0;
                if self.late_fraction(mid) > LATE_FRACTION {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            lo
        }
    }

    #[test]
    fn the_queue_formulas_match_the_textbook_cases() {
        // M/M/1: μ − ln(100)/T. The M/D/1 and M/M/2 answers were checked against a
        // FIFO simulation of 2 M Poisson arrivals (0.93 % and 0.99 % late there).
        let mm1 = Queue::named("mm1");
        assert!((mm1.theory() - (200.0 - 100f64.ln() / 0.05)).abs() < 1e-6);
        let md1 = Queue::named("md1");
        assert!((md1.theory() - 154.70).abs() < 0.05, "{}", md1.theory());
        let mm2 = Queue::named("mm2");
        assert!((mm2.theory() - 151.60).abs() < 0.05, "{}", mm2.theory());
    }

    /// `SEEDS=100 cargo test --release --lib truth_distribution -- --ignored
    /// --nocapture`: answers, coverage and virtual seconds over many seeds of a queue
    /// whose answer is known (`QUEUE`, see [`Queue`]; `TIME` sets `--time`, `FIRST`
    /// the first seed, `CAP` the probed capacity, the exact one by default: real
    /// probes of the M/M/1 sim read 185–206 in 2.5 s; `PROBE=1` draws it per seed as
    /// the real probe measures it, `--time`/4 of closed-loop service and then the
    /// [`crate::measure::step::probe_extension`] (`PROBE_EXTEND=0`: without it); `BUDGET`
    /// the search's budget in seconds (none by default); `SHOW=seed` lists that
    /// seed's steps). A design aid, not a check: try a change on a second set of seeds
    /// (`FIRST=401`) before believing a gain on the first.
    #[test]
    #[ignore]
    fn truth_distribution() {
        let queue = Queue::from_knob();
        let theory = queue.theory();
        let seeds: u64 = knob("SEEDS", 40);
        let secs: f64 = knob("TIME", 10.0);
        let first: u64 = knob("FIRST", 1);
        let exact = queue.servers as f64 / queue.mean();
        // The real probe: queries completed in its time of back-to-back service on
        // every server, per second.
        let capacity = |seed: u64| -> f64 {
            if knob("PROBE", 0u64) == 0 {
                return knob("CAP", exact);
            }
            let first = crate::measure::step::probe_seconds(secs);
            let mut rng = SmallRng::seed_from_u64(mix_seed(seed, u64::MAX));
            let exp = Exp::new(1.0 / queue.mean()).unwrap();
            let mut draw = || match queue.law {
                ServiceLaw::Exp(_) => exp.sample(&mut rng),
                ServiceLaw::Fixed(d) => d,
            };
            // Every server's completed calls by `until`, continuing from `clock`, as
            // the workers record them. The call in flight at `until` is dropped (the
            // pool finishes and counts it, its runtime running to that call's end: the
            // same rate in expectation).
            let mut clock = vec![0.0; queue.servers];
            let mut calls = ServiceTimes::default();
            let mut serve = |until: f64, calls: &mut ServiceTimes| {
                for t in &mut clock {
                    loop {
                        let s = draw();
                        if *t + s > until {
                            *t = until;
                            break;
                        }
                        *t += s;
                        calls.record((s * 1e9) as u64);
                    }
                }
            };
            serve(first, &mut calls);
            let mut probe = first;
            if knob("PROBE_EXTEND", 1u64) == 1 {
                let cv = calls.cv().unwrap_or(0.0);
                let extra = crate::measure::step::probe_extension(secs, first, calls.calls, cv);
                if extra > 0.0 {
                    probe += extra;
                    serve(probe, &mut calls);
                }
            }
            calls.calls as f64 / probe
        };
        let mut errs = Vec::new();
        let mut covered = 0;
        let mut total_t = Vec::new();
        let (mut bursts, mut near) = (Vec::new(), Vec::new());
        for seed in first..first + seeds {
            let mut q = VirtualQueue::new(queue.servers, queue.law, secs, 100);
            let r = Search {
                runner: &mut q,
                dist: Distribution::Exponential,
                target: Duration::from_secs_f64(queue.target),
                bounds: Bounds::new(capacity(seed), 100, secs),
                seed,
                confidence: 0.99,
                budget: Some(knob("BUDGET", 0.0)).filter(|&b| b > 0.0),
            }
            .run(&[])
            .unwrap();
            let got = r.best.as_ref().map_or(0.0, |b| b.offered_qps.unwrap());
            let t: f64 = q
                .steps
                .iter()
                .map(|s| s.issued as f64 / s.offered_qps.unwrap())
                .sum();
            let cov = r.interval.0 <= theory && theory <= r.interval.1;
            covered += usize::from(cov);
            bursts.push(burst_size(&r.steps, queue.target));
            // Queries judged within 10 % of the answer: the evidence near it.
            near.push(
                r.steps
                    .iter()
                    .filter(|s| {
                        s.offered_qps
                            .is_some_and(|q| (q / theory - 1.0).abs() <= 0.1)
                    })
                    .map(|s| s.judged)
                    .sum::<u64>() as f64,
            );
            errs.push(100.0 * (got / theory - 1.0));
            total_t.push(t);
            if knob("SHOW", 0u64) == seed {
                for s in &q.steps {
                    println!(
                        "  {:6.1} issued {:5} planned {:5} late {:3} runs {:3} stop {:?} verdict {:?} conf {} burst-in {:?} p99.9 {:?}",
                        s.offered_qps.unwrap(), s.issued, s.planned, s.late, s.late_episodes, s.stop(), s.verdict(), s.confident(), s.seed % 1000, s.percentiles.find(99.9)
                    );
                }
            }
            println!(
                "seed {seed:3} answer {got:6.1} err {:+5.1}% interval {:?} {} steps {:2} virtual {t:6.1}s",
                100.0 * (got / theory - 1.0),
                r.interval,
                if cov { "covers" } else { "MISSES" },
                q.steps.len()
            );
        }
        errs.sort_by(f64::total_cmp);
        total_t.sort_by(f64::total_cmp);
        bursts.sort_by(f64::total_cmp);
        near.sort_by(f64::total_cmp);
        println!(
            "late-burst size (design effect) p10/median/p90 {:.1}/{:.1}/{:.1}; queries judged within 10 % of theory median {:.0}",
            bursts[bursts.len() / 10],
            bursts[bursts.len() / 2],
            bursts[bursts.len() * 9 / 10],
            near[near.len() / 2]
        );
        let n = errs.len();
        let below = errs.iter().filter(|&&e| e < -12.0).count();
        let above = errs.iter().filter(|&&e| e > 5.0).count();
        println!(
            "in band {} (below {below}, above {above}) median {:+.1}% min {:+.1}% max {:+.1}% p10 {:+.1}% p90 {:+.1}% covered {covered}/{n} time median {:.0}s max {:.0}s",
            n - below - above,
            errs[n / 2], errs[0], errs[n - 1], errs[n / 10], errs[n * 9 / 10], total_t[n / 2], total_t[n - 1]
        );
    }
}
