//! The search policy (docs/CONTRACT.md §7; docs/METHOD.md says it in words): a pure function from
//! the evidence so far — the steps measured for one distribution and target, why each
//! was measured, the stricter targets' steps carried over, the budget — to the next
//! action: measure rate R (and why), or done (the answer, its interval, how sure it
//! is). No clock, no I/O, no state of its own: [`next`] called twice on the same
//! evidence gives the same action, and the driver ([`crate::measure::search::run`])
//! only runs the step asked for and feeds it back.
//!
//! In order, [`next`] asks:
//! 1. a spoiled last step (the generator or the machine fell behind) is run again,
//!    up to [`MAX_RETRIES`] times;
//! 2. nothing measured yet: the capacity (a stricter target's known pass only says
//!    where to fall back to);
//! 3. the run's limits: more than [`MAX_STEPS`] steps, a rate that stayed spoiled, the
//!    budget spent — done, on the answer the steps give (never before a rate passed:
//!    FAIL must mean the lowest rate failed);
//! 4. no answer yet (every pass taken back, or none): halve below the lowest rate
//!    measured, down to the floor (a doubtful fail is measured once more first), or
//!    bisect down to a stricter target's known pass;
//! 5. an answer with a gap above it wider than 1 %: bisect it (cliff rules below);
//! 6. the confirmations have taken 1.5 × the time of the other steps: done;
//! 7. a doubtful answer or a doubtful fail just above it: measure again, the side with
//!    fewer steps first (both alike, so luck cannot only lower the answer);
//! 8. no rate shown passing with confidence near the answer: one step that runs to
//!    confidence ([`Why::LowEnd`]) below the answer, so the interval has a low end;
//!    likewise one step above it ([`Why::HighEnd`]) for the high end;
//! 9. done.
//!
//! The answer is the highest rate whose own step passed, whose late fraction after an
//! isotonic (monotone) fit of all steps is at most 1 %, and whose neighbourhood (the
//! steps up to 3 % above it) passes too ([`decide`]). The interval ([`interval`]) runs
//! from a rate shown to pass with the stated confidence to one shown to fail: the band
//! of the late fraction fitted across rates ([`tail_fit`]) where it holds the answer,
//! else the steps' monotone [`windows`]; an end nothing showed is `None`, with what it
//! would take.

use crate::measure::runner::EndStep;
use crate::measure::step::{RunOn, StepSpec, StepSummary, StopReason, Verdict, END_STRETCH};
use crate::measure::tail_fit::{self, Counts};
use crate::measure::verdict::{Evidence, Rule, LATE_FRACTION};

/// How many times a step spoiled by the generator or the machine is run again.
pub const MAX_RETRIES: u32 = 2;

/// A bound on the steps of one search, whatever the noise does.
pub const MAX_STEPS: usize = 40;

/// How many times one rate is measured at most by the bisection and confirmations
/// (beyond that its pooled counts decide), and how many confirmations a search has.
const CONFIRMATIONS_PER_RATE: usize = 2;
const MAX_CONFIRMATIONS: usize = 5;

/// Confirmation steps may take at most this many times the time of the search's
/// other steps: it bounds the run's length where the late fraction hovers near 1 %
/// over a wide range of rates.
const SETTLING: f64 = 1.5;

/// A passing step is *clear* when its p99.9 stays at or below this share of the
/// target: no query came near it. Where the late fraction creeps up towards 1 %
/// (M/M/1 near its answer: p99.9 ≈ 1.4 × the target) no pass is clear; where latency
/// jumps from far below the target to a growing queue (a server at its capacity,
/// ResNet-50 on a 2-core VM: p99.9 at 0.47–0.74 × the target up to the answer, then
/// overload), passes are clear right up to the answer.
const CLEAR: f64 = 0.8;

/// A clear pass is read as a cliff only where its queries barely waited: mean latency
/// at most this much above the mean backend call. Below a capacity cliff a query
/// starts on arrival (ResNet-50: 1.0–1.44 × its call, 1.44 at 99 % load); a tail that
/// creeps with the rate comes from queueing (M/M/1 at half load: 2 ×). With ~100
/// queries a step, a lucky M/M/1 step's p99.9 can look clear, and the cliff rules
/// then kept answers 20 % high.
const CLIFF_WAIT: f64 = 0.5;

/// Where the bracket's passing end is clear, the next rate tried is this share of its
/// failing end rather than the middle: a fail above a jump stops within a second or
/// two, where a pass in the middle costs a whole step.
const CLIFF_SPLIT: f64 = 0.93;

/// How far below the capacity the halving goes before the answer is "FAIL".
const MAX_HALVINGS: usize = 7;

/// A step with more than this share of its queries late is overloaded: past the
/// boundary, not near it (see [`burst_size`] and [`beyond_reach`]).
const OVERLOADED: f64 = 0.05;

/// A candidate answer's neighbourhood: the steps within 3 % above it must pass
/// together too (see [`decide`]).
const NEIGHBOURHOOD: f64 = 0.03;

/// Where the step that looks for the interval's low end runs, as a share of the
/// answer: low enough that the late fraction is well under 1 % on a creeping tail
/// (M/M/1 at 85 % of its answer: 0.45 % late), high enough that the interval stays
/// narrow.
pub const LOW_END_SHARE: f64 = 0.85;

/// At most this many low-end steps: a second one, at [`LOW_END_SHARE`]² of the answer,
/// where the first left the low end unshown.
const LOW_END_STEPS: usize = 2;

/// Where the step that looks for the interval's high end runs, as a multiple of the
/// answer: high enough that the late fraction is well over 1 % on a creeping tail
/// (M/M/1 at 115 % of its answer: 2.2 % late), low enough that the interval stays
/// narrow.
pub const HIGH_END_SHARE: f64 = 1.15;

/// The high end's step runs at most this far above the capacity.
const ABOVE_CAPACITY: f64 = 1.05;

/// The one-sided confidence of each end of the interval: both hold together with at
/// least 90 % (see [`interval_confidence`]). Not the verdicts' 99 %: late queries come
/// in bursts (a design effect of 10–20 on an M/M/1 near its answer), so a step of the
/// default 10 s holds only 50–100 independent queries' worth of evidence there, and
/// an end at 99 % would need a step of minutes below the answer, or lie 40 % away.
pub const END_CONFIDENCE: f64 = 0.95;

/// The confidence an end of the interval is shown with: [`END_CONFIDENCE`], or the
/// verdicts' own where that is lower (a user who asks for less gets no more).
pub fn end_confidence(verdict_confidence: f64) -> f64 {
    verdict_confidence.min(END_CONFIDENCE)
}

/// The two-sided confidence of the interval, its two ends each at [`end_confidence`]:
/// `1 − 2 (1 − c)` (0.9 by default), what results.json states as
/// `interval_confidence`.
pub fn interval_confidence(verdict_confidence: f64) -> f64 {
    1.0 - 2.0 * (1.0 - end_confidence(verdict_confidence))
}

/// Why a step was measured: the driver records it beside the step, and the policy
/// reads it back (confirmations and the low-end step are counted, settling time is
/// measured from the first confirmation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The closed-loop capacity: no open-loop answer lies above it.
    Capacity,
    /// Half the lowest rate measured, every pass so far taken back or none seen.
    Halve,
    /// A doubtful fail of the halving, measured once more before halving again.
    Doubtful,
    /// The middle (or, below a cliff, the top) of the bracket between the answer and
    /// the lowest fail above it.
    Bisect,
    /// The answer measured again: its pass was not confident.
    ConfirmPass,
    /// The fail just above the answer measured again: it was not confident.
    ConfirmFail,
    /// A step run to confidence below the answer, for the interval's low end.
    LowEnd,
    /// A step run to confidence above the answer, for the interval's high end.
    HighEnd,
    /// The previous step, spoiled by the generator or the machine, again (n-th time).
    Retry(u32),
}

impl Why {
    fn confirms(self) -> bool {
        matches!(self, Why::ConfirmPass | Why::ConfirmFail)
    }
}

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
    /// gathers `min_queries` within 4 × `step_seconds`, and never below the lowest
    /// rate a step can measure at all ([`StepSpec::min_usable_qps`]: a slower one puts
    /// a single query in its time cap).
    pub fn new(capacity: f64, min_queries: u64, step_seconds: f64) -> Bounds {
        let by_time = min_queries as f64 / (4.0 * step_seconds);
        Bounds {
            capacity,
            floor: round_rate((capacity / f64::from(1u32 << MAX_HALVINGS)).max(by_time))
                .max(StepSpec::min_usable_qps(step_seconds)),
        }
    }

    /// The highest rate tried: the capacity, rounded.
    fn top(&self) -> f64 {
        round_rate(self.capacity.max(0.01))
    }
}

/// The evidence so far: everything the policy may look at.
#[derive(Clone, Copy, Debug)]
pub struct SoFar<'a> {
    /// This search's steps, in order, and why each was measured (same length).
    pub steps: &'a [StepSummary],
    pub why: &'a [Why],
    /// Steps of stricter targets that ran to their end and counted this target
    /// exactly (see [`usable_carried`]).
    pub carried: &'a [StepSummary],
    /// The target latency, seconds.
    pub target: f64,
    pub bounds: Bounds,
    pub confidence: f64,
    /// Seconds of steps this search may spend once a rate has passed (none: no limit).
    pub budget: Option<f64>,
}

/// How the search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Nothing more worth measuring.
    Settled,
    /// The search's share of `--search-time` is spent.
    BudgetSpent,
    /// The last rate stayed spoiled through its retries: the machine cannot be
    /// measured on now.
    Spoiled,
    /// [`MAX_STEPS`] steps without settling.
    StepLimit,
}

/// An interval end nothing showed with confidence, and what would show it: a step at
/// `rate` holding `queries` judged queries (`None`: no count within reach would).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unshown {
    pub rate: f64,
    pub queries: Option<u64>,
}

/// The answer of a finished search.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// Index of the answer's own passing step in [`SoFar::steps`]; `None` when no
    /// step of this search stands (then [`Answer::known`] may).
    pub best: Option<usize>,
    /// A stricter target's passing rate, where no step of this search stands.
    pub known: Option<f64>,
    /// Highest rate shown to pass with the stated confidence, or why none is.
    pub low: Result<f64, Unshown>,
    /// Lowest rate shown to fail with the stated confidence, or why none is.
    pub high: Result<f64, Unshown>,
    /// The answer's pooled evidence is a confident pass.
    pub confident: bool,
    pub end: End,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Measure { rate: f64, why: Why },
    Done(Answer),
}

/// The steps of stricter targets that may join this target's evidence: only steps
/// that ran to their natural end say something about another target (one stopped on
/// its own target's failure holds a truncated sample), judged on latency alone.
pub fn usable_carried(carried: &[StepSummary], target: f64) -> Vec<StepSummary> {
    carried
        .iter()
        .filter(|s| {
            s.abandoned == 0
                && s.late_against(target).is_some()
                && !matches!(
                    s.stop(),
                    StopReason::ConfidentFail | StopReason::CertainFail | StopReason::Interrupted
                )
                && matches!(s.verdict(), Verdict::Pass | Verdict::TooManyLate)
        })
        .cloned()
        .collect()
}

/// The highest carried rate whose pooled evidence passes `target`.
fn known_pass(carried: &[StepSummary], target: f64) -> Option<f64> {
    pooled(&points(&[], carried, target))
        .into_iter()
        .filter(passes)
        .map(|p| p.rate)
        .reduce(f64::max)
}

fn passes(p: &Point) -> bool {
    p.late as f64 <= LATE_FRACTION * p.judged as f64
}

/// Steps measured at `rate`, spoiled ones not counted.
fn tried(steps: &[StepSummary], rate: f64) -> usize {
    steps
        .iter()
        .filter(|s| s.offered_qps == Some(rate) && !s.verdict().spoiled())
        .count()
}

/// The next action on `e` (see the module doc for the order of the questions).
pub fn next(e: &SoFar) -> Action {
    let (steps, target) = (e.steps, e.target);
    let top = e.bounds.top();
    let floor = e.bounds.floor.min(top);
    let measure = |rate: f64, why: Why| Action::Measure { rate, why };

    // 1. A spoiled step is run again.
    if let Some(last) = steps.last() {
        if last.verdict().spoiled() && last.retries < MAX_RETRIES {
            return measure(
                last.offered_qps.unwrap_or(top),
                Why::Retry(last.retries + 1),
            );
        }
    }
    // 2. The capacity first.
    if steps.is_empty() {
        return measure(top, Why::Capacity);
    }
    let d = decide(steps, e.carried, target, e.confidence);
    let known = known_pass(e.carried, target);
    let spent: f64 = steps.iter().map(|s| s.runtime).sum();
    let done = |end: End| Action::Done(answer(e, &d, known, end));

    // 3. Limits.
    if steps.len() > MAX_STEPS {
        return done(End::StepLimit);
    }
    let stands = d.best.is_some() || known.is_some();
    if stayed_spoiled(steps) && d.best.is_some() {
        return done(End::Spoiled);
    }
    if e.budget.is_some_and(|b| spent >= b) && stands {
        return done(End::BudgetSpent);
    }

    // 4. No answer: search for a pass.
    let Some(best) = d.best else {
        let lowest = steps
            .iter()
            .filter(|s| !s.verdict().spoiled())
            .filter_map(|s| s.offered_qps)
            .fold(top, f64::min);
        if let Some(k) = known {
            return match bisect(e, k, lowest) {
                Some(rate) => measure(rate, Why::Bisect),
                None => done(End::Settled),
            };
        }
        // A doubtful fail costs no half: it is measured once more, and the two steps'
        // pooled counts decide.
        if tried(steps, lowest) == 1
            && steps
                .iter()
                .any(|s| s.offered_qps == Some(lowest) && doubtful_fail(s))
        {
            return measure(lowest, Why::Doubtful);
        }
        let halvings = e.why.iter().filter(|&&w| w == Why::Halve).count();
        if lowest <= floor || halvings >= MAX_HALVINGS {
            return done(End::Settled);
        }
        return measure(round_rate(lowest / 2.0).max(floor), Why::Halve);
    };
    let rate = steps[best].offered_qps.unwrap_or(0.0);

    // 5. A gap above the answer.
    let hi = d.next_fail.unwrap_or(top);
    let (confirming, searching) = steps.iter().zip(e.why).fold((0.0, 0.0), |(c, o), (s, w)| {
        if w.confirms() {
            (c + s.runtime, o)
        } else {
            (c, o + s.runtime)
        }
    });
    let settling_spent = confirming > SETTLING * searching;
    if let Some(mid) = bisect(e, rate, hi) {
        return measure(mid, Why::Bisect);
    }
    // 6. Settling time: it bounds the confirmations, never an open bracket.
    if settling_spent {
        return done(End::Settled);
    }

    // 7. Confirmations, both sides alike.
    let confirmations = e.why.iter().filter(|w| w.confirms()).count();
    let on_cliff =
        clear_at(steps, rate, target) && d.next_fail.is_none_or(|_| d.next_fail_confident);
    // A pass at the capacity itself has no steps above it to pool with, and its count
    // assumes a steady state that a queue offered its capacity never reaches: one
    // whose latency crept near the target (not clear) is measured once more.
    let at_capacity = rate >= top && !clear_at(steps, rate, target) && tried(steps, rate) < 2;
    let pass_doubtful = (d.evidence != Evidence::ConfidentPass || at_capacity)
        && !on_cliff
        && tried(steps, rate) <= CONFIRMATIONS_PER_RATE;
    let fail_doubtful = d
        .next_fail
        .filter(|&f| !d.next_fail_confident && tried(steps, f) <= CONFIRMATIONS_PER_RATE);
    if confirmations < MAX_CONFIRMATIONS && (pass_doubtful || fail_doubtful.is_some()) {
        return match fail_doubtful {
            Some(f) if !pass_doubtful || tried(steps, f) < tried(steps, rate) => {
                measure(f, Why::ConfirmFail)
            }
            _ => measure(rate, Why::ConfirmPass),
        };
    }

    // 8. The interval's low end, where none is shown or the one shown lies further
    // below the answer than the low-end step would.
    let a = answer(e, &d, known, End::Settled);
    let u = low_end_need(e, rate);
    if (a.low.is_err() || a.low.is_ok_and(|l| l < u.rate))
        && u.rate < rate
        && e.why.iter().filter(|&&w| w == Why::LowEnd).count() < LOW_END_STEPS
        && within_reach(e, &u, spent)
    {
        return measure(u.rate, Why::LowEnd);
    }
    // The high end likewise, where none is shown within HIGH_END_SHARE of the answer.
    let h = high_end_need(e, rate);
    if (a.high.is_err() || a.high.is_ok_and(|x| x > h.rate))
        && h.rate > rate
        && !e.why.contains(&Why::HighEnd)
        && within_reach(e, &h, spent)
    {
        return measure(h.rate, Why::HighEnd);
    }
    // 9. Done.
    Action::Done(a)
}

/// Whether an end step for `u` may run: the search's budget has room for the
/// queries it needs, or for its whole cap ([`END_STRETCH`] × an ordinary step's)
/// where that is fewer (an end refines the interval; it must not lengthen a
/// procedure that set itself a time). A step whose cap cannot hold a confident
/// verdict on its own still runs: it gives the fit across rates ([`tail_fit`]) a rate
/// further from the answer, which is what pins the slope down.
fn within_reach(e: &SoFar, u: &Unshown, spent: f64) -> bool {
    let cap = e
        .steps
        .iter()
        .filter_map(|s| Some(s.cap as f64 * u.rate / s.offered_qps.filter(|&q| q > 0.0)?))
        .fold(0.0, f64::max)
        * END_STRETCH as f64;
    let n = u.queries.map_or(cap, |n| (n as f64).min(cap));
    n > 0.0
        && e.budget
            .is_none_or(|b| spent + n / u.rate.max(f64::MIN_POSITIVE) <= b)
}

/// How the driver runs a step the policy asked for: the interval's end steps run on
/// to their end's confidence (the high end's own step at half its error rate, see
/// [`interval`]); every other step is an ordinary one (`None`).
pub fn end_step(why: Why, verdict_confidence: f64) -> Option<EndStep> {
    match why {
        Why::LowEnd => Some(EndStep {
            run_on: RunOn::ToPass,
            confidence: end_confidence(verdict_confidence),
        }),
        Why::HighEnd => Some(EndStep {
            run_on: RunOn::ToFail,
            confidence: high_step_confidence(verdict_confidence),
        }),
        _ => None,
    }
}

/// The confidence of the high end's own step: it gets half the end's error rate, the
/// looks at the other rates above the answer share the other half.
fn high_step_confidence(verdict_confidence: f64) -> f64 {
    1.0 - (1.0 - end_confidence(verdict_confidence)) / 2.0
}

/// A failed step near the boundary: not confident, and at most 3 % late.
fn doubtful_fail(s: &StepSummary) -> bool {
    !s.confident()
        && s.verdict() == Verdict::TooManyLate
        && (s.late as f64) <= 3.0 * LATE_FRACTION * s.judged as f64
}

/// The rate to measure between a passing `lo` and a failing `hi`, or `None` when they
/// are within 1 % (or 1 qps) or the evidence already decides every rate between:
/// rates measured [`CONFIRMATIONS_PER_RATE`] + 1 times go by their pooled counts (a
/// single lucky step must not stand for a rate), and a rate [`beyond_reach`] counts
/// as failed unmeasured.
fn bisect(e: &SoFar, mut lo: f64, mut hi: f64) -> Option<f64> {
    let fit = pooled(&points(e.steps, e.carried, e.target));
    while lo > 0.0 && hi - lo > (0.01 * lo).max(1.0) {
        let mut mid = round_rate((lo + hi) / 2.0);
        if mid <= lo || mid >= hi {
            return None;
        }
        // A clear pass below a fail: latency jumps somewhere between them (a
        // capacity, not a creeping tail), so the answer lies just below the fail.
        let near = round_rate(hi * CLIFF_SPLIT);
        if near > mid && near < hi && clear_at(e.steps, lo, e.target) {
            mid = near;
        }
        if tried(e.steps, mid) > CONFIRMATIONS_PER_RATE {
            // Measured enough already: its pooled counts decide.
            match fit.iter().find(|p| p.rate == mid) {
                Some(p) if passes(p) => lo = mid,
                _ => hi = mid,
            }
        } else if beyond_reach(e.steps, e.carried, lo, mid, e.target) {
            hi = mid;
        } else {
            return Some(mid);
        }
    }
    None
}

/// The answer of the evidence as it stands.
fn answer(e: &SoFar, d: &Decision, known: Option<f64>, end: End) -> Answer {
    let rate = d
        .best
        .and_then(|b| e.steps[b].offered_qps)
        .or(known.filter(|_| d.best.is_none()));
    let (low, high) = interval(e, rate);
    // Where the fit across rates holds, it says where the late fraction crosses 1 %
    // better than the monotone fit of a few noisy rates near the answer, which drags
    // the answer down where the tail is flat: the answer is raised to the highest
    // rate whose own step passed, whose own pooled steps pass, at or below the fitted
    // crossing. Never lowered: on a capacity cliff the fit smooths the jump and its
    // crossing lies below clean passes.
    let fit = rate.filter(|_| d.best.is_some()).and_then(|r| fitted(e, r));
    let iso = pooled(&points(e.steps, e.carried, e.target));
    let best = match fit {
        Some(c) => e
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.passed())
            .filter(|(_, s)| {
                // At or below the crossing, and not failed by the rate's own pooled
                // steps (a lucky pass among fails is no answer, fit or not).
                s.offered_qps.is_some_and(|q| {
                    q <= c.estimate && iso.iter().any(|p| p.rate == q && passes(p))
                })
            })
            .max_by(|x, y| {
                let q = |s: &StepSummary| s.offered_qps.unwrap_or(0.0);
                q(x.1).total_cmp(&q(y.1))
            })
            .map(|(i, _)| i)
            .filter(|&i| e.steps[i].offered_qps >= rate)
            .or(d.best),
        None => d.best,
    };
    let confident = match (best, d.best) {
        (Some(b), Some(o)) if b != o => {
            evidence_at(e, e.steps[b].offered_qps.unwrap_or(0.0)) == Evidence::ConfidentPass
        }
        _ => d.evidence == Evidence::ConfidentPass,
    };
    Answer {
        best,
        known: known.filter(|_| d.best.is_none()),
        low,
        high,
        confident,
        end,
    }
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
pub(crate) fn clear_at(steps: &[StepSummary], rate: f64, target: f64) -> bool {
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
    let remaining = (CONFIRMATIONS_PER_RATE + 1).saturating_sub(tried(steps, rate));
    // Queries per step at `rate`, from this search's own steps (the largest ratio:
    // a step held up to its minimum query count plans more than its rate times the
    // step's time, and overrating a step only keeps a rate measurable).
    let per_step = steps
        .iter()
        .filter_map(|s| Some(s.planned as f64 * rate / s.offered_qps.filter(|&q| q > 0.0)?))
        .fold(0.0, f64::max);
    late as f64 > LATE_FRACTION * (judged as f64 + remaining as f64 * per_step)
}

/// The pooled answer over `steps` (and `carried` steps of stricter targets that count
/// this target exactly): the highest rate whose own step passed, whose pooled
/// fraction is at most 1 % and whose [`NEIGHBOURHOOD`] passes too (else the lowest
/// such candidate), its pooled evidence, and the lowest rate above the answer whose
/// pooled fraction fails (where to search again).
fn decide(
    steps: &[StepSummary],
    carried: &[StepSummary],
    target: f64,
    confidence: f64,
) -> Decision {
    let rule = &mut Rule::new(confidence);
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
    let mut next_fail = None;
    let mut next_fail_confident = false;
    for p in &fit {
        if p.rate > best_rate && !passes(p) && next_fail.is_none() {
            next_fail = Some(p.rate);
            next_fail_confident = pooled_evidence(rule, p, burst) == Evidence::ConfidentFail;
        }
    }
    let evidence = best
        .and_then(|b| at(steps[b].offered_qps.unwrap_or(0.0)))
        .map_or(Evidence::Undecided, |p| pooled_evidence(rule, &p, burst));
    Decision {
        best,
        evidence,
        next_fail,
        next_fail_confident,
    }
}

/// The pooled (monotone-fitted) evidence at `rate`, discounted for bursts.
fn evidence_at(e: &SoFar, rate: f64) -> Evidence {
    pooled(&points(e.steps, e.carried, e.target))
        .into_iter()
        .find(|p| p.rate == rate)
        .map_or(Evidence::Undecided, |p| {
            pooled_evidence(
                &mut Rule::new(e.confidence),
                &p,
                burst_size(e.steps, e.target),
            )
        })
}

struct Decision {
    /// Index of the answer's step.
    best: Option<usize>,
    /// The answer's pooled evidence.
    evidence: Evidence,
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

/// Each step's counts for the fit across rates: one point per step, so that the fit's
/// scatter is the steps' scatter (steps at one rate that disagree are overdispersion
/// that pooling them would hide).
///
/// A step planned shorter than a confident pass needs (459 queries at 99 %) and
/// stopped early as a fail counts at its planned length, its unissued queries on time:
/// its cap's 1 % is a handful of late queries, which one burst supplies within a few
/// dozen, so its fraction at the stop says when the burst came rather than how often
/// (2 s steps of an M/M/1 stopped at 30 queries, 12 of them late, where the rate's
/// fraction is 4 %). On the virtual M/M/1 in 2 s steps the low end then lay above
/// theory in 5 of 36 searches instead of 12 of 43. Longer steps stop on dozens of late
/// queries, after hundreds judged, and keep their counts: counted at their planned
/// length they flattened the fit and doubled the width of intervals at the default
/// `--time` (10 % to 21 % on the M/D/1), without making them right more often.
fn fit_counts(e: &SoFar) -> Vec<Counts> {
    let short = Rule::new(e.confidence).min_total_for_pass(0);
    e.steps
        .iter()
        .chain(e.carried)
        .filter_map(|s| {
            let p = point_of(s, e.target)?;
            let judged = if s.stop().is_failure() && s.planned < short {
                p.judged.max(s.planned)
            } else {
                p.judged
            };
            Some(Counts {
                rate: p.rate,
                judged,
                late: p.late,
            })
        })
        .collect()
}

/// Per distinct rate, ascending: (rate, judged, late, late of the target's own
/// steps, their Σ episode²).
fn by_rate(e: &SoFar) -> Vec<(f64, u64, u64, u64, u64)> {
    let mut at: Vec<(f64, u64, u64, u64, u64)> = Vec::new();
    for s in e.steps.iter().chain(e.carried) {
        let Some(p) = point_of(s, e.target) else {
            continue;
        };
        let own = s.target_latency == Some(e.target)
            && !s.verdict().spoiled()
            && (s.late as f64) <= OVERLOADED * s.judged as f64;
        let (l, sq) = if own {
            (s.late, s.late_episode_sq)
        } else {
            (0, 0)
        };
        match at.iter_mut().find(|a| a.0 == p.rate) {
            Some(a) => {
                a.1 += p.judged;
                a.2 += p.late;
                a.3 += l;
                a.4 += sq;
            }
            None => at.push((p.rate, p.judged, p.late, l, sq)),
        }
    }
    at.sort_by(|a, b| a.0.total_cmp(&b.0));
    at
}

/// The late fraction measured at the highest rate at or below `r`, else half that of
/// the lowest rate above it (a guess: tails thin fast below the answer).
fn fraction_near(at: &[(f64, u64, u64, u64, u64)], r: f64) -> f64 {
    match at.iter().rev().find(|a| a.0 <= r) {
        Some(a) => a.2 as f64 / a.1.max(1) as f64,
        None => at
            .first()
            .map_or(0.0, |a| 0.5 * a.2 as f64 / a.1.max(1) as f64),
    }
}

/// Where the step for the interval's low end runs ([`LOW_END_SHARE`] of `answer`) and
/// about how many judged queries it needs to pass with the interval's confidence, at
/// the late fraction and bursts seen near there.
pub fn low_end_need(e: &SoFar, answer: f64) -> Unshown {
    let before = e.why.iter().filter(|&&w| w == Why::LowEnd).count() as i32;
    let rate = round_rate(answer * LOW_END_SHARE.powi(1 + before.min(1)));
    let f = fraction_near(&by_rate(e), rate);
    let mut rule = Rule::new(end_confidence(e.confidence));
    Unshown {
        rate,
        queries: queries_to_show(
            &mut rule,
            f,
            burst_size(e.steps, e.target),
            Evidence::ConfidentPass,
        ),
    }
}

/// Where the step for the interval's high end runs ([`HIGH_END_SHARE`] × `answer`, at
/// most [`ABOVE_CAPACITY`] × the capacity) and
/// about how many judged queries it needs to fail with its own confidence, at the
/// bursts seen and the late fraction interpolated there: log-linear between the
/// nearest rates measured with late queries on either side, as a queue's tail grows
/// near its answer (exponentially with the rate on an M/M/1).
pub fn high_end_need(e: &SoFar, answer: f64) -> Unshown {
    // Never far above the capacity: an answer at the capacity (a D/D/1) is bounded
    // by a step just above it, which fails at once.
    let rate = round_rate(answer * HIGH_END_SHARE).min(round_up(e.bounds.top() * ABOVE_CAPACITY));
    let at = by_rate(e);
    let frac = |a: &(f64, u64, u64, u64, u64)| a.2 as f64 / a.1.max(1) as f64;
    let below = at.iter().rev().find(|a| a.0 <= rate && a.2 > 0);
    let above = at.iter().find(|a| a.0 >= rate && a.2 > 0);
    let f = match (below, above) {
        (Some(b), Some(u)) if u.0 > b.0 => {
            let w = (rate - b.0) / (u.0 - b.0);
            (frac(b).ln() * (1.0 - w) + frac(u).ln() * w).exp()
        }
        (Some(a), _) | (None, Some(a)) => frac(a),
        (None, None) => 0.0,
    };
    let mut rule = Rule::new(high_step_confidence(e.confidence));
    Unshown {
        rate,
        queries: queries_to_show(
            &mut rule,
            f,
            burst_size(e.steps, e.target),
            Evidence::ConfidentFail,
        ),
    }
}

/// The interval's ends for an answer at `answer` qps (`None`: FAIL): the band of the
/// late fraction fitted across rates ([`tail_fit`]) where it shows a crossing that
/// holds the answer, else the monotone windows ([`windows`]).
pub fn interval(e: &SoFar, answer: Option<f64>) -> (Result<f64, Unshown>, Result<f64, Unshown>) {
    let fit = answer.and_then(|a| fitted(e, a));
    match fit {
        Some(c) => (Ok(round_rate(c.low)), Ok(round_up(c.high))),
        None => windows(e, answer),
    }
}

/// The interval's ends shown by the steps' own windows, without a model.
///
/// A late fraction can only grow with the offered rate, so the queries of steps at
/// rates at or above `r` are late at least as often as queries at `r` would be: when
/// the pooled queries of the steps at rates in `[r, s]` are under 1 % late with the
/// stated confidence ([`end_confidence`]), `r` passes with that confidence. Likewise a
/// confident fail of the steps in `(answer, r]`, or of `r`'s own steps, shows that `r`
/// fails. `low` is the highest rate at or below the answer whose own steps or whose
/// steps up to the answer pass, `high` the lowest rate above it with such a fail (two
/// windows per rate: the fewer looks, the closer the stated confidence). Counts are divided by the
/// design effect of late bursts (the larger of the window's own and the search's,
/// see [`burst_size`]), since clustered late queries carry less information than
/// independent ones.
///
/// An end that no window shows is an [`Unshown`]: where a step would show it (for the
/// low end [`LOW_END_SHARE`] of the answer) and how many judged queries that step
/// would need at the late fraction seen there.
pub fn windows(e: &SoFar, answer: Option<f64>) -> (Result<f64, Unshown>, Result<f64, Unshown>) {
    let mut rule = Rule::new(end_confidence(e.confidence));
    let at = by_rate(e);
    // A window's own few episodes underestimate how bursty lateness is: the search's
    // pooled design effect is the floor.
    let overall = burst_size(e.steps, e.target);
    let window = |i: usize, j: usize, rule: &mut Rule| -> Evidence {
        let (mut n, mut l, mut bl, mut bsq) = (0, 0, 0, 0);
        for a in &at[i..=j] {
            n += a.1;
            l += a.2;
            bl += a.3;
            bsq += a.4;
        }
        let own = if bl == 0 { 1.0 } else { bsq as f64 / bl as f64 };
        pooled_evidence(
            rule,
            &Point {
                rate: at[i].0,
                judged: n,
                late: l,
            },
            own.max(overall),
        )
    };
    let top = e.bounds.top();
    let mut low = None;
    let mut high = None;
    // The rates above the answer are where it stopped looking because they looked
    // bad: taking the first of them that fails is a choice among several looks, so
    // each look gets the end's error rate divided by their number (Bonferroni). On
    // the truth benchmark's M/M/1 (200 seeds) the high end fell below theory in 24
    // searches without it, 6 with it.
    //
    // The high end's own steps ([`Why::HighEnd`], fresh evidence at a rate chosen
    // before it was measured) are one more look, at half the end's error rate; the
    // other looks then share the other half.
    let fresh: Vec<Point> = e
        .steps
        .iter()
        .zip(e.why)
        .filter(|(s, w)| **w == Why::HighEnd && !s.verdict().spoiled())
        .filter_map(|(s, _)| {
            let own = if s.late == 0 {
                1.0
            } else {
                s.late_episode_sq as f64 / s.late as f64
            };
            point_of(s, e.target).map(|p| (p, own))
        })
        .filter(|(p, _)| answer.is_none_or(|a| p.rate > a))
        .filter_map(|(p, own)| {
            let mut rule = Rule::new(high_step_confidence(e.confidence));
            (pooled_evidence(&mut rule, &p, own.max(overall)) == Evidence::ConfidentFail)
                .then_some(p)
        })
        .collect();
    let share = if e.why.contains(&Why::HighEnd) {
        2.0
    } else {
        1.0
    };
    let above = at.iter().filter(|a| answer.is_none_or(|x| a.0 > x)).count();
    let mut high_rule =
        Rule::new(1.0 - (1.0 - end_confidence(e.confidence)) / share / above.max(1) as f64);
    // The last rate at or below the answer: the low end's wide window ends there.
    let last = answer.and_then(|a| at.iter().rposition(|x| x.0 <= a));
    for i in 0..at.len() {
        let r = at[i].0;
        // Two looks per rate, as for `high`: `r`'s own steps, and every step from `r`
        // up to the answer (a wider window tells more, but each look is one more
        // chance of a lucky pass).
        if last.is_some_and(|k| i <= k)
            && low.is_none_or(|x| r > x)
            && [i, last.unwrap_or(i)]
                .into_iter()
                .any(|j| window(i, j, &mut rule) == Evidence::ConfidentPass)
        {
            low = Some(r);
        }
        if answer.is_none_or(|a| r > a) && high.is_none_or(|x| r < x) {
            // Two looks per rate: every step above the answer up to `r`, and `r`'s
            // own steps (an overloaded rate must not be diluted by those just
            // above the answer).
            let first = at
                .iter()
                .position(|a| answer.is_none_or(|x| a.0 > x))
                .unwrap_or(i);
            if window(first, i, &mut high_rule) == Evidence::ConfidentFail
                || window(i, i, &mut high_rule) == Evidence::ConfidentFail
            {
                high = Some(r);
            }
        }
    }
    for p in &fresh {
        if high.is_none_or(|x| p.rate < x) {
            high = Some(p.rate);
        }
    }
    let low = low.ok_or_else(|| match answer {
        Some(a) => low_end_need(e, a),
        None => Unshown {
            rate: e.bounds.floor,
            queries: None,
        },
    });
    let high = high.ok_or_else(|| {
        let above = at
            .iter()
            .find(|a| answer.is_none_or(|x| a.0 > x))
            .map_or(top, |a| a.0);
        Unshown {
            rate: above,
            queries: queries_to_show(
                &mut high_rule,
                fraction_near(&at, above),
                overall,
                Evidence::ConfidentFail,
            ),
        }
    });
    (low, high)
}

/// The late fraction fitted across the rates within [`tail_fit::SPAN`] of `answer`
/// (see [`tail_fit`]), its band at the end's confidence on each side.
fn fitted(e: &SoFar, answer: f64) -> Option<tail_fit::Crossing> {
    let near: Vec<Counts> = fit_counts(e)
        .into_iter()
        .filter(|c| c.rate >= answer / tail_fit::SPAN && c.rate <= answer * tail_fit::SPAN)
        .collect();
    let z = tail_fit::normal_quantile(end_confidence(e.confidence));
    // A band that leaves out the search's own answer (a measured pass, chosen by the
    // rules above) contradicts the steps: the tail is not log-linear there (a capacity
    // cliff, where the fit smooths a jump into a slope), and the windows decide.
    tail_fit::crossing(&near, LATE_FRACTION, z, burst_size(e.steps, e.target))
        .filter(|c| c.low > 0.0 && c.low <= answer && answer <= c.high)
}

/// [`round_rate`] upwards: a high end rounded down could claim a fail the fit did
/// not show.
fn round_up(qps: f64) -> f64 {
    if qps >= 10.0 {
        qps.ceil()
    } else {
        (qps * 100.0).ceil() / 100.0
    }
}

/// About how many judged queries a step needs for `want` when a share `f` of them
/// is late in bursts of `burst` (to within 20 %: a plan for an end step and a hint for
/// the user, not a promise).
/// `None` when no count would (a fraction of 1 % shows neither).
fn queries_to_show(rule: &mut Rule, f: f64, burst: f64, want: Evidence) -> Option<u64> {
    let mut n: u64 = 256;
    while n <= 1 << 30 {
        let judged = (n as f64 / burst).floor() as u64;
        let late = (f * n as f64 / burst).round() as u64;
        if rule.evidence(judged, late) == want {
            return Some(n);
        }
        n += n / 5;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::step::{judge, Spoiler, StepOutcome};

    /// A finished step at `rate` with `judged` queries, `late` of them late against a
    /// 0.1 s target, judged as a real step is (confident where the counts allow);
    /// one late episode per late query (no bursts) and a p99.9 at the target.
    fn st(rate: f64, judged: u64, late: u64) -> StepSummary {
        let (passed, confident) = judge(&mut Rule::new(0.99), 4 * judged, judged, late, 1.0);
        let mut s = StepSummary {
            target_latency: Some(0.1),
            offered_qps: Some(rate),
            count: judged,
            issued: judged,
            planned: judged,
            cap: 4 * judged,
            judged,
            late,
            late_episodes: late,
            late_episode_sq: late,
            runtime: judged as f64 / rate,
            outcome: StepOutcome::decided(passed, confident, StopReason::Planned),
            ..StepSummary::default()
        };
        s.percentiles.0.insert("99.9".into(), 0.1);
        s
    }

    /// The same step with its p99.9 far below the target and queries that did not
    /// wait: a clear pass (see [`CLEAR`]).
    fn clear(mut s: StepSummary) -> StepSummary {
        s.percentiles.0.insert("99.9".into(), 0.02);
        s
    }

    fn spoiled(mut s: StepSummary, retries: u32) -> StepSummary {
        s.outcome = StepOutcome::Spoiled {
            by: Spoiler::MachineSlow,
            stop: StopReason::Planned,
        };
        s.retries = retries;
        s
    }

    fn ev<'a>(steps: &'a [StepSummary], why: &'a [Why], carried: &'a [StepSummary]) -> SoFar<'a> {
        SoFar {
            steps,
            why,
            carried,
            target: 0.1,
            bounds: Bounds {
                capacity: 200.0,
                floor: 2.0,
            },
            confidence: 0.99,
            budget: None,
        }
    }

    fn next_of(steps: &[(StepSummary, Why)]) -> Action {
        let (s, w): (Vec<_>, Vec<_>) = steps.iter().cloned().unzip();
        next(&ev(&s, &w, &[]))
    }

    fn measure(rate: f64, why: Why) -> Action {
        Action::Measure { rate, why }
    }

    /// The capacity (200) overloaded, a pass at 100 (0.5 % late), and the bisection
    /// down to a fail at 103 (1.5 % late), followed by `more`.
    fn bracketed(more: &[(StepSummary, Why)]) -> Vec<(StepSummary, Why)> {
        let mut steps = vec![
            (st(200.0, 2000, 500), Capacity),
            (st(100.0, 1000, 5), Halve),
            (st(150.0, 1500, 100), Bisect),
            (st(125.0, 1250, 60), Bisect),
            (st(112.0, 1120, 30), Bisect),
            (st(106.0, 1060, 20), Bisect),
            (st(103.0, 1030, 15), Bisect),
        ];
        steps.extend_from_slice(more);
        steps
    }

    use Why::*;

    #[test]
    fn each_question_in_turn_gives_its_action() {
        // (case, steps so far with why each was measured, the action expected)
        type Case = (&'static str, Vec<(StepSummary, Why)>, Action);
        let table: Vec<Case> = vec![
            (
                "nothing yet: the capacity",
                vec![],
                measure(200.0, Capacity),
            ),
            (
                "a spoiled step: again",
                vec![(spoiled(st(200.0, 2000, 500), 0), Capacity)],
                measure(200.0, Retry(1)),
            ),
            (
                "spoiled twice: the second retry",
                vec![
                    (spoiled(st(200.0, 2000, 500), 0), Capacity),
                    (spoiled(st(200.0, 2000, 500), 1), Retry(1)),
                ],
                measure(200.0, Retry(2)),
            ),
            (
                "the capacity overloaded: halve",
                vec![(st(200.0, 2000, 500), Capacity)],
                measure(100.0, Halve),
            ),
            (
                "a doubtful fail: once more before halving",
                vec![(st(200.0, 1000, 15), Capacity)],
                measure(200.0, Doubtful),
            ),
            (
                "a pass below a fail: bisect",
                vec![
                    (st(200.0, 2000, 500), Capacity),
                    (st(100.0, 1000, 5), Halve),
                ],
                measure(150.0, Bisect),
            ),
            (
                "a clear pass below a fail: just below the fail",
                vec![
                    (st(200.0, 2000, 500), Capacity),
                    (clear(st(100.0, 1000, 0)), Halve),
                ],
                measure(186.0, Bisect),
            ),
            (
                "bracket closed, the answer not confident: confirm it",
                bracketed(&[(st(101.0, 1010, 12), Bisect)]),
                measure(100.0, ConfirmPass),
            ),
            (
                "both sides alike: the fail above, measured less, next",
                bracketed(&[
                    (st(101.0, 1010, 12), Bisect),
                    (st(100.0, 1000, 6), ConfirmPass),
                ]),
                measure(101.0, ConfirmFail),
            ),
            (
                "a rate in the bracket is measured again, up to 3 times",
                bracketed(&[(st(101.0, 1010, 9), Bisect)]),
                measure(101.0, Bisect),
            ),
        ];
        for (case, steps, want) in table {
            assert_eq!(next_of(&steps), want, "{case}");
        }
    }

    #[test]
    fn the_floor_failing_is_fail_and_says_where_failure_was_shown() {
        let steps = [st(4.0, 400, 200), st(2.0, 200, 100)];
        let Action::Done(a) = next(&SoFar {
            bounds: Bounds {
                capacity: 4.0,
                floor: 2.0,
            },
            ..ev(&steps, &[Capacity, Halve], &[])
        }) else {
            panic!("the floor failed: nothing more to measure");
        };
        assert_eq!(a.best, None);
        assert_eq!(a.high, Ok(2.0));
        assert!(a.low.is_err());
    }

    #[test]
    fn the_budget_ends_a_search_with_a_pass_and_never_one_without() {
        let with_pass = [st(200.0, 2000, 500), st(100.0, 1000, 5)];
        let spent = SoFar {
            budget: Some(1.0),
            ..ev(&with_pass, &[Capacity, Halve], &[])
        };
        assert!(matches!(
            next(&spent),
            Action::Done(Answer {
                end: End::BudgetSpent,
                best: Some(1),
                ..
            })
        ));
        let without = [st(200.0, 2000, 500)];
        let spent = SoFar {
            budget: Some(1.0),
            ..ev(&without, &[Capacity], &[])
        };
        assert_eq!(next(&spent), measure(100.0, Halve));
    }

    #[test]
    fn settled_without_a_confident_pass_runs_one_step_for_the_low_end() {
        // 102 passes (not confidently) below a doubtful fail at 103, and both were
        // confirmed as often as the policy allows.
        let (steps, why): (Vec<_>, Vec<_>) = [
            (st(200.0, 2000, 500), Capacity),
            (st(100.0, 1000, 6), Halve),
            (st(150.0, 1500, 300), Bisect),
            (st(125.0, 1250, 100), Bisect),
            (st(112.0, 1120, 60), Bisect),
            (st(106.0, 1060, 40), Bisect),
            (st(103.0, 1030, 11), Bisect),
            (st(101.0, 1010, 8), Bisect),
            (st(102.0, 1020, 9), Bisect),
            (st(102.0, 1020, 9), ConfirmPass),
            (st(103.0, 1030, 11), ConfirmFail),
            (st(102.0, 1020, 9), ConfirmPass),
            (st(103.0, 1030, 11), ConfirmFail),
            (st(102.0, 1020, 9), ConfirmPass),
        ]
        .into_iter()
        .unzip();
        let e = ev(&steps, &why, &[]);
        assert_eq!(next(&e), measure(86.0, LowEnd));
        // Not where the search's budget has no room for that step: done, the low
        // end left unshown.
        let spent: f64 = steps.iter().map(|s| s.runtime).sum();
        let tight = SoFar {
            budget: Some(spent + 1.0),
            ..ev(&steps, &why, &[])
        };
        let Action::Done(a) = next(&tight) else {
            panic!("no room for the low-end step");
        };
        assert!(a.low.is_err());
        // Once it ran (and showed a pass), done; the interval has both ends.
        let (mut steps, mut why) = (steps, why);
        steps.push(st(86.0, 3000, 3));
        why.push(LowEnd);
        let Action::Done(a) = next(&ev(&steps, &why, &[])) else {
            panic!("nothing left to measure");
        };
        assert_eq!(steps[a.best.unwrap()].offered_qps, Some(102.0));
        // The fit across rates now has a rate far enough below the answer for its
        // slope: its band holds the answer 102.
        assert!(a.low.is_ok_and(|l| (86.0..=102.0).contains(&l)), "{a:?}");
        assert!(a.high.is_ok_and(|h| (103.0..=112.0).contains(&h)), "{a:?}");
        // The windows alone: 86 passes; 103 alone is no confident fail (33 of 3090),
        // 103 to 106 pooled are.
        assert_eq!(
            windows(&ev(&steps, &why, &[]), Some(102.0)),
            (Ok(86.0), Ok(106.0))
        );
    }

    #[test]
    fn window_ends_come_from_monotone_windows_only() {
        // Each end at 95 %. 90 alone is no confident pass (1 late of 300), nor is the
        // answer 95 (2 of 500), but 90 to 95 pooled are (3 of 800): every query at 95
        // is late at least as often as one at 90 would be.
        // Above the answer two rates, so each look at 97.5 %: 130 alone (7 of 300)
        // is no confident fail, 120 to 130 pooled (14 of 600) are.
        let steps = [
            st(90.0, 300, 1),
            st(95.0, 500, 2),
            st(120.0, 300, 7),
            st(130.0, 300, 7),
        ];
        let why = [Bisect; 4];
        let e = ev(&steps, &why, &[]);
        let (low, high) = windows(&e, Some(95.0));
        assert_eq!(low, Ok(90.0));
        assert_eq!(high, Ok(130.0));
        // One rate above the answer, one look at 95 %: 130 alone fails.
        let one_above = [steps[0].clone(), steps[1].clone(), steps[3].clone()];
        let e = ev(&one_above, &why[..3], &[]);
        assert_eq!(windows(&e, Some(95.0)).1, Ok(130.0));
        let steps = [st(90.0, 500, 2), st(95.0, 800, 2), st(100.0, 1000, 9)];
        let e = ev(&steps, &why[..3], &[]);
        // Pooling below a rate never shows it passing: 100 with 9 late of 1000 is
        // not confident, whatever passes below it.
        let (low, _) = windows(&e, Some(100.0));
        assert!(low.is_ok_and(|l| l < 100.0));
        // Nothing shown: the ends say where a step would show one, and how long.
        let few = [st(100.0, 100, 0)];
        let (low, high) = windows(&ev(&few, &[Bisect], &[]), Some(100.0));
        let low = low.unwrap_err();
        assert_eq!(low.rate, 85.0);
        assert!(low.queries.is_some_and(|n| n >= 299), "{low:?}");
        assert_eq!(high.unwrap_err().rate, 200.0);
    }

    /// A capacity cliff: clean passes up to 35 qps (3 late of 3,000), overloaded from
    /// `over` on.
    fn cliff(over: f64) -> [StepSummary; 5] {
        [
            st(30.0, 3000, 0),
            st(33.0, 3000, 0),
            st(35.0, 3000, 3),
            st(over, 1500, 200),
            st(over + 2.0, 1000, 400),
        ]
    }

    #[test]
    fn a_short_step_stopped_as_a_fail_enters_the_fit_at_its_planned_length() {
        let stopped = |judged: u64, late: u64, planned: u64| {
            let mut s = st(140.0, judged, late);
            s.planned = planned;
            s.outcome = StepOutcome::decided(false, true, StopReason::CertainFail);
            s
        };
        // (judged, late, planned) of a step stopped as a fail → the fit's counts.
        for (judged, late, planned, want) in [
            // 2 s at 140 qps, stopped at 30 queries: 12 of 280, the least it could show.
            (30, 12, 280, (280, 12)),
            // 458 planned: still too short for a confident pass on its own.
            (40, 19, 458, (458, 19)),
            // 459 planned (a confident pass's 0 late at 99 %): its own counts.
            (200, 19, 459, (200, 19)),
            // 10 s at 140 qps, stopped at 600: its own counts.
            (600, 57, 1400, (600, 57)),
        ] {
            let steps = [stopped(judged, late, planned), st(120.0, 240, 3)];
            let c = fit_counts(&ev(&steps, &[Bisect, Bisect], &[]));
            let got: Vec<(u64, u64)> = c.iter().map(|c| (c.judged, c.late)).collect();
            // A step run to its end keeps its counts.
            assert_eq!(got, [want, (240, 3)], "{judged} {late} {planned}");
        }
    }

    #[test]
    fn interval_ends_come_from_the_fit_where_its_band_holds_the_answer() {
        // An M/M/1's expected late counts (f = exp(−(200 − r)·0.05), crossing 1 % at
        // 107.9), 3,000 queries a rate, no bursts.
        let mm1 = |rates: &[f64]| -> Vec<StepSummary> {
            rates
                .iter()
                .map(|&r| {
                    st(
                        r,
                        3000,
                        (3000.0 * (-(200.0 - r) * 0.05f64).exp()).round() as u64,
                    )
                })
                .collect()
        };
        let smooth = mm1(&[90.0, 100.0, 104.0, 107.0, 110.0, 115.0, 125.0]);
        // A cliff: nothing late up to 35 qps, overloaded from 36.
        let cliff = cliff(36.0);
        // (steps, answer, low within, high within)
        type Case<'a> = (&'a [StepSummary], f64, (f64, f64), (f64, f64));
        let cases: [Case; 3] = [
            // The fit: both ends within a few qps of 107.9, around the answer.
            (&smooth, 107.0, (100.0, 107.0), (108.0, 115.0)),
            // The same steps with a lower answer: the band leaves it out, so the
            // windows decide (pooled from 90 up; the first confident fail above).
            (&smooth, 90.0, (0.0, 90.0), (100.0, 125.0)),
            // A cliff is smoothed by the model; the band leaves out the answer 35
            // and the windows give 35 (3 of 3,000 is a confident pass) to 36.
            (&cliff, 35.0, (35.0, 35.0), (36.0, 36.0)),
        ];
        for (steps, answer, (l0, l1), (h0, h1)) in cases {
            let why = vec![Bisect; steps.len()];
            let (low, high) = interval(&ev(steps, &why, &[]), Some(answer));
            assert!(
                low.is_ok_and(|l| l >= l0 && l <= l1),
                "{answer}: low {low:?}"
            );
            assert!(
                high.is_ok_and(|h| h >= h0 && h <= h1),
                "{answer}: high {high:?}"
            );
        }
    }

    #[test]
    fn the_fit_raises_an_answer_a_noisy_step_dragged_down_and_never_lowers_one() {
        // A creeping tail whose step at 106 came out noisy (2 % late): pooled with
        // 108 it fails, and it takes the neighbourhood of 104 with it, so the monotone
        // rule answers 100. The fit across rates puts the crossing near 108, and 104
        // passed its own step and its own pooled steps: the answer is 104.
        let flat = [
            st(90.0, 1000, 4),
            st(95.0, 1000, 5),
            st(100.0, 1000, 7),
            st(104.0, 1000, 8),
            st(106.0, 1000, 20),
            st(108.0, 1000, 10),
            st(112.0, 1000, 15),
            st(115.0, 1000, 18),
        ];
        // A cliff: clean passes up to 35, overloaded from 37; whatever the fit makes
        // of the jump, the answer stays 35.
        let cliff = cliff(37.0);
        // (steps, the monotone rule's answer, the answer)
        let cases: [(&[StepSummary], f64, f64); 2] = [(&flat, 100.0, 104.0), (&cliff, 35.0, 35.0)];
        for (steps, monotone, want) in cases {
            let why = vec![Bisect; steps.len()];
            let e = ev(steps, &why, &[]);
            let d = decide(steps, &[], e.target, e.confidence);
            assert_eq!(steps[d.best.unwrap()].offered_qps, Some(monotone));
            let a = answer(&e, &d, None, End::Settled);
            assert_eq!(steps[a.best.unwrap()].offered_qps, Some(want), "{a:?}");
        }
    }

    #[test]
    fn a_stricter_targets_known_pass_bounds_the_search_for_one() {
        // Every rate of this search failed; a stricter target's step at 10 passed:
        // the answer is searched between 10 and the lowest failing rate.
        let carried = [st(10.0, 1000, 0)];
        let steps = [st(40.0, 400, 100)];
        let e = ev(&steps, &[Capacity], &carried);
        assert_eq!(next(&e), measure(25.0, Bisect));
    }
    #[test]
    fn the_floor_is_a_rate_a_step_can_measure() {
        // (capacity, min queries, step seconds, floor at least)
        for &(cap, minq, secs) in &[(1.0, 0, 0.01), (0.5, 0, 10.0), (100.0, 0, 0.2)] {
            let b = Bounds::new(cap, minq, secs);
            assert!(
                b.floor >= StepSpec::min_usable_qps(secs),
                "{cap}/{minq}/{secs}: floor {}",
                b.floor
            );
        }
        // Where it is higher anyway, the usual floor stands.
        assert_eq!(
            Bounds::new(1024.0, 0, 10.0).floor,
            round_rate(1024.0 / f64::from(1u32 << MAX_HALVINGS))
        );
    }
}
