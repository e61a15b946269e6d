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
//! the failing steps below it. The answer is the highest rate whose own step passed
//! *and* whose pooled late fraction is at most 1 %; when that is not a confident pass
//! it is measured once more with a fresh seed before it is believed. The interval runs
//! from the highest rate whose pooled evidence is a confident pass to the lowest whose
//! pooled evidence is a confident fail (the capacity when none is).

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
}

/// How many times a step spoiled by the generator or the machine is run again.
pub const MAX_RETRIES: u32 = 2;

/// A bound on the steps of one search, whatever the noise does.
const MAX_STEPS: usize = 40;

/// How many confirmation steps one candidate answer may get, and all of them.
const CONFIRMATIONS_PER_RATE: u32 = 2;
const MAX_CONFIRMATIONS: u32 = 5;

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

fn point_of(s: &StepSummary, target: f64) -> Option<Point> {
    // Steps spoiled by the generator say nothing about the system.
    if s.verdict == Verdict::GeneratorLate || s.verdict == Verdict::Interrupted {
        return None;
    }
    // Errors and drain timeouts fail regardless of latency: count them as all late.
    if matches!(s.verdict, Verdict::Errors | Verdict::DrainTimeout) {
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

/// How much late queries cluster, pooled over the steps judged against `target`:
/// late queries per run of consecutive late ones (at least 1). Bursts make counts
/// less informative than independent queries would be, so the confidence of pooled
/// evidence divides both counts by it (a design effect, as for cluster samples).
pub fn burst_size(steps: &[StepSummary], target: f64) -> f64 {
    // Overloaded steps are one long run of late queries: they say nothing about how
    // bursty lateness is near the boundary, so only steps within 5 % late count.
    let (late, runs) = steps
        .iter()
        .filter(|s| {
            s.target_latency == Some(target)
                && s.verdict != Verdict::GeneratorLate
                && (s.late as f64) <= 0.05 * s.judged as f64
        })
        .fold((0u64, 0u64), |(l, r), s| (l + s.late, r + s.late_runs));
    if runs == 0 {
        1.0
    } else {
        (late as f64 / runs as f64).max(1.0)
    }
}

/// The evidence of pooled counts, discounted for bursts of size `burst`.
fn pooled_evidence(rule: &mut Rule, p: &Point, burst: f64) -> Evidence {
    let judged = (p.judged as f64 / burst).floor() as u64;
    let late = (p.late as f64 / burst).ceil() as u64;
    rule.evidence(judged, late)
}

/// The pooled answer over `steps` (and `carried` steps of stricter targets that count
/// this target exactly): the highest rate whose own step passed and whose pooled
/// fraction is at most 1 %, its pooled evidence, the interval, and the lowest rate
/// above the answer whose pooled fraction fails (where to search again).
fn decide(
    steps: &[StepSummary],
    carried: &[StepSummary],
    target: f64,
    capacity: f64,
    rule: &mut Rule,
) -> Decision {
    let all: Vec<Point> = steps
        .iter()
        .chain(carried)
        .filter_map(|s| point_of(s, target))
        .collect();
    let burst = burst_size(steps, target);
    let fit = pooled(&all);
    let at = |rate: f64| fit.iter().find(|p| p.rate == rate).copied();
    let mut best: Option<usize> = None;
    for (i, s) in steps.iter().enumerate() {
        let (Some(rate), true) = (s.offered_qps, s.passed) else {
            continue;
        };
        let Some(p) = at(rate) else { continue };
        if p.late as f64 > LATE_FRACTION * p.judged as f64 {
            continue;
        }
        if best.is_none_or(|b| steps[b].offered_qps.unwrap_or(0.0) < rate) {
            best = Some(i);
        }
    }
    let best_rate = best.and_then(|b| steps[b].offered_qps).unwrap_or(0.0);
    let mut low = 0.0f64;
    let mut high = round_rate(capacity.max(0.01));
    let mut next_fail = None;
    for p in &fit {
        match pooled_evidence(rule, p, burst) {
            Evidence::ConfidentPass => low = low.max(p.rate),
            Evidence::ConfidentFail => high = high.min(p.rate),
            Evidence::Undecided => {}
        }
        if p.rate > best_rate
            && p.late as f64 > LATE_FRACTION * p.judged as f64
            && next_fail.is_none()
        {
            next_fail = Some(p.rate);
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
    }
}

struct Decision {
    best: Option<usize>,
    evidence: Evidence,
    interval: (f64, f64),
    next_fail: Option<f64>,
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
}

impl Search<'_> {
    /// Runs one step with a fresh seed, again (up to [`MAX_RETRIES`] times) when the
    /// generator spoiled it.
    fn measure(&mut self, qps: f64, out: &mut SearchResult) -> Result<bool, SearchStop> {
        let mut retries = 0;
        loop {
            let seed = mix_seed(self.seed, out.steps.len() as u64);
            let burst = burst_size(&out.steps, self.target.as_secs_f64());
            let mut s = self.runner.step(self.dist, qps, self.target, seed, burst)?;
            s.retries = retries;
            let spoiled = s.verdict == Verdict::GeneratorLate;
            let passed = s.passed;
            out.steps.push(s);
            if !spoiled {
                return Ok(passed);
            }
            if retries >= MAX_RETRIES {
                out.warnings.push(format!(
                    "{} {} qps failed {} times while the load generator or the machine fell behind; counted as a failure, but the answer for this target may be limited by this machine, not the system",
                    self.dist.as_str(),
                    qps,
                    retries + 1
                ));
                return Ok(false);
            }
            retries += 1;
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
                        s.stop,
                        StopReason::ConfidentFail
                            | StopReason::CertainFail
                            | StopReason::Interrupted
                    )
                    && matches!(s.verdict, Verdict::Pass | Verdict::TooManyLate)
            })
            .cloned()
            .collect();
        let known = {
            let pts: Vec<Point> = carried
                .iter()
                .filter_map(|s| point_of(s, target_s))
                .collect();
            pooled(&pts)
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
            None => {
                // Bracket: the capacity first, then halve until a step passes; the
                // floor itself is the last rate tried.
                let mut rate = top;
                let mut halvings = 0;
                let mut found = false;
                loop {
                    if self.measure(rate, &mut out)? {
                        found = true;
                        break;
                    }
                    halvings += 1;
                    if rate <= floor || halvings > MAX_HALVINGS {
                        break;
                    }
                    rate = round_rate(rate / 2.0).max(floor);
                }
                lo = rate;
                hi = if found {
                    round_rate(rate * 2.0).min(top)
                } else {
                    rate
                };
                if !found {
                    lo = 0.0;
                }
            }
        }

        // Bisect between a passing `lo` and a failing `hi`; then pool the evidence and
        // measure an answer that is not a confident pass again (with a fresh seed). If
        // that moves the answer down, bisect the new gap.
        let mut confirmations = 0;
        loop {
            if out.steps.len() > MAX_STEPS {
                out.warnings.push(format!(
                    "{} {}: the search stopped after {MAX_STEPS} steps without settling",
                    self.dist.as_str(),
                    target_s
                ));
                break;
            }
            while lo > 0.0 && hi - lo > (0.01 * lo).max(1.0) {
                let mid = round_rate((lo + hi) / 2.0);
                if mid <= lo || mid >= hi {
                    break;
                }
                if self.measure(mid, &mut out)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let d = decide(
                &out.steps,
                &carried,
                target_s,
                self.bounds.capacity,
                &mut rule,
            );
            out.interval = d.interval;
            out.confident = d.evidence == Evidence::ConfidentPass;
            out.best = d.best.map(|b| out.steps[b].clone());
            let Some(b) = d.best else { break };
            let rate = out.steps[b].offered_qps.unwrap_or(0.0);
            if rate < lo {
                // The pooled evidence took back the last pass: search the gap again.
                lo = rate;
                hi = d.next_fail.unwrap_or(hi).min(hi);
                continue;
            }
            let tried_here = out
                .steps
                .iter()
                .filter(|s| s.offered_qps == Some(rate))
                .count() as u32;
            if out.confident
                || confirmations >= MAX_CONFIRMATIONS
                || tried_here > CONFIRMATIONS_PER_RATE
            {
                break;
            }
            confirmations += 1;
            self.measure(rate, &mut out)?;
        }
        // A known pass of a stricter target that this search never beat.
        if out.best.is_none() {
            if let Some(k) = known {
                if let Some(s) = carried
                    .iter()
                    .filter(|s| s.offered_qps == Some(k))
                    .filter_map(|s| s.against(target_s))
                    .find(|s| s.passed)
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

    fn search(
        q: &mut VirtualQueue,
        dist: Distribution,
        target_ms: u64,
        cap: f64,
        seed: u64,
    ) -> SearchResult {
        Search {
            runner: q,
            dist,
            target: Duration::from_millis(target_ms),
            bounds: bounds(cap),
            seed,
            confidence: 0.99,
        }
        .run(&[])
        .unwrap()
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
        // Over 40 seeds the answers spread from −13 % to +9 % (bursty lateness makes
        // single steps noisy); these 12 must stay inside that and cover the theory.
        assert!(
            answers
                .iter()
                .all(|&a| a >= theory * 0.85 && a <= theory * 1.10),
            "{answers:?}"
        );
        assert!(covered >= 8, "interval covered theory {covered} of 12");
    }

    #[test]
    fn a_looser_target_starts_from_steps_that_ran_to_their_end_only() {
        // D/D/1 at 5 ms: a 4 ms target fails everywhere (steps stop early), a 20 ms
        // target passes up to 200. The early-stopped steps of the 4 ms search must not
        // pose as passes of the 20 ms one (they hold a handful of queries).
        let mut q = VirtualQueue::new(1, ServiceLaw::Fixed(0.005), 10.0, 100);
        let strict = search(&mut q, Distribution::Linear, 4, 200.0, 1);
        assert!(strict.best.is_none());
        let loose = Search {
            runner: &mut q,
            dist: Distribution::Linear,
            target: Duration::from_millis(20),
            bounds: bounds(200.0),
            seed: 2,
            confidence: 0.99,
        }
        .run(&strict.steps)
        .unwrap();
        assert_eq!(loose.best.unwrap().offered_qps, Some(200.0));
    }
}
