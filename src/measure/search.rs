//! The driver of the search (docs/CONTRACT.md §7): for one distribution and target latency, runs
//! the step the policy ([`crate::measure::policy`]) asks for and feeds it back, until
//! the policy is done. All decisions are the policy's, a pure function of the steps;
//! this file only measures, seeds each step (every step has its own seed, so steps do
//! not share their luck), pauses before a retry, and words the warnings.

use std::time::Duration;

use crate::measure::policy::{self, Action, Answer, End, SoFar, Unshown, Why};
use crate::measure::schedule::Distribution;
use crate::measure::step::{StepOutcome, StepSummary};

pub use crate::measure::policy::{burst_size, round_rate, Bounds, MAX_RETRIES};
pub use crate::measure::runner::{retry_pause, Ask, SearchStop, StepRunner};

/// The interval of an answer: where the highest passing rate lies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// The highest rate shown to pass with the stated confidence, or where a step
    /// would show one and how many queries it would need.
    pub low: Result<f64, Unshown>,
    /// The lowest rate shown to fail with the stated confidence, or likewise.
    pub high: Result<f64, Unshown>,
}

impl Default for Interval {
    fn default() -> Self {
        let none = Err(Unshown {
            rate: 0.0,
            queries: None,
        });
        Interval {
            low: none,
            high: none,
        }
    }
}

impl Interval {
    /// Both ends as numbers where shown.
    pub fn ends(&self) -> (Option<f64>, Option<f64>) {
        (self.low.ok(), self.high.ok())
    }

    /// Whether `rate` lies within the ends that are shown (the truth harness's check).
    #[cfg(test)]
    pub fn covers(&self, rate: f64) -> bool {
        self.low.is_ok_and(|l| l <= rate) && self.high.is_ok_and(|h| rate <= h)
    }
}

/// What the search found for one target.
#[derive(Debug, Default)]
pub struct SearchResult {
    /// The answer's own passing step; `None` when even the lowest rate failed.
    pub best: Option<StepSummary>,
    pub interval: Interval,
    /// The answer's pooled evidence is a confident pass.
    pub confident: bool,
    /// Every step run for this target, in order, and why each was run.
    pub steps: Vec<StepSummary>,
    pub why: Vec<Why>,
    /// Things the user must know about this answer (a generator that fell behind).
    pub warnings: Vec<String>,
    /// The search's time budget ran out before its confirmations were done: the
    /// answer stands on the steps run so far.
    pub budget_spent: bool,
}

impl SearchResult {
    /// Seconds of steps run so far: what the settling time and the budget count.
    pub fn spent(&self) -> f64 {
        self.steps.iter().map(|s| s.runtime).sum()
    }
}

/// One search: which distribution and target, where, with what seed and budget.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub dist: Distribution,
    pub target: Duration,
    pub bounds: Bounds,
    /// Base of this target's step seeds (mixed with the step number).
    pub seed: u64,
    pub confidence: f64,
    /// Seconds of steps after which, once a rate has passed, the search measures
    /// nothing more and answers from the steps so far: a run with many targets
    /// answers each in bounded time, saying so (`budget_spent`).
    pub budget: Option<f64>,
}

/// Runs `search` to its end on `runner`. `carried` are the steps of stricter targets
/// with the same distribution: their exact counts against this target join the
/// evidence.
pub fn run(
    runner: &mut dyn StepRunner,
    search: &Search,
    carried: &[StepSummary],
) -> Result<SearchResult, SearchStop> {
    let target = search.target.as_secs_f64();
    let carried = policy::usable_carried(carried, target);
    let (mut steps, mut why) = (Vec::new(), Vec::new());
    loop {
        let evidence = SoFar {
            steps: &steps,
            why: &why,
            carried: &carried,
            target,
            bounds: search.bounds,
            confidence: search.confidence,
            budget: search.budget,
        };
        match policy::next(&evidence) {
            Action::Measure { rate, why: w } => {
                let retry = if let Why::Retry(n) = w { n } else { 0 };
                if retry > 0 {
                    runner.pause_before_retry(retry)?;
                }
                let ask = Ask {
                    dist: search.dist,
                    qps: rate,
                    target: search.target,
                    seed: mix_seed(search.seed, steps.len() as u64),
                    burst: burst_size(&steps, target),
                    end: policy::end_step(w, search.confidence),
                    bracket: bracket(&steps),
                };
                let mut s = runner.step(&ask)?;
                s.retries = retry;
                steps.push(s);
                why.push(w);
            }
            Action::Done(a) => return Ok(finish(search, a, steps, why, &carried)),
        }
    }
}

/// The highest offered rate whose step passed and the lowest above it whose step
/// failed on its late queries; spoiled steps (and steps ended by errors) count for
/// neither.
pub fn bracket(steps: &[StepSummary]) -> (Option<f64>, Option<f64>) {
    let rate = |s: &StepSummary| s.offered_qps.filter(|q| q.is_finite());
    let passed = (steps.iter())
        .filter(|s| s.passed())
        .filter_map(rate)
        .reduce(f64::max);
    let failed = (steps.iter())
        .filter(|s| matches!(s.outcome, StepOutcome::TooManyLate { .. }))
        .filter_map(rate)
        .filter(|&q| passed.is_none_or(|p| q > p))
        .reduce(f64::min);
    (passed, failed)
}

/// The result of a finished search, with its warnings.
fn finish(
    search: &Search,
    a: Answer,
    steps: Vec<StepSummary>,
    why: Vec<Why>,
    carried: &[StepSummary],
) -> SearchResult {
    let target = search.target.as_secs_f64();
    let name = format!("{} {}", search.dist.as_str(), target);
    let mut warnings = Vec::new();
    for s in steps
        .iter()
        .filter(|s| s.verdict().spoiled() && s.retries >= MAX_RETRIES)
    {
        warnings.push(format!(
            "{name}: {} qps failed {} times while the load generator or the machine fell behind: it says nothing about the system, and the answer for this target may be limited by this machine",
            s.offered_qps.unwrap_or(0.0),
            s.retries + 1
        ));
    }
    match a.end {
        End::Spoiled => warnings.push(format!(
            "{name}: the search stopped at {} qps, which stayed spoiled; the answer stands on the steps before it",
            steps.last().and_then(|s| s.offered_qps).unwrap_or(0.0)
        )),
        End::StepLimit => warnings.push(format!(
            "{name}: the search stopped after {} steps without settling",
            policy::MAX_STEPS
        )),
        End::Settled | End::BudgetSpent => {}
    }
    // A known pass of a stricter target that this search never beat.
    let best = match (a.best, a.known) {
        (Some(b), _) => Some(steps[b].clone()),
        (None, Some(k)) => carried
            .iter()
            .filter(|s| s.offered_qps == Some(k))
            .filter_map(|s| s.against(target))
            .find(|s| s.passed()),
        (None, None) => None,
    };
    SearchResult {
        best,
        interval: Interval {
            low: a.low,
            high: a.high,
        },
        confident: a.confident,
        steps,
        why,
        warnings,
        budget_spent: a.end == End::BudgetSpent,
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

/// Answers are monotone in the target: the queries of a step that met a stricter
/// target met every looser one. A search runs on one configuration and never sees
/// another's steps, so a tuned run whose pick for a looser target answers below
/// `stricter` (another configuration's answer at a stricter target, with its
/// interval) keeps `stricter`, read against `target`, and its low end.
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
    // A rate shown to pass the stricter target passes this one too; a fail shown
    // for this target below the answer kept cannot stand against its pass.
    let low = match (found.interval.low, stricter.interval.low) {
        (Ok(a), Ok(b)) => Ok(a.max(b).min(k)),
        (Ok(a), Err(_)) => Ok(a.min(k)),
        (Err(_), Ok(b)) => Ok(b.min(k)),
        (Err(u), Err(_)) => Err(u),
    };
    found.interval = Interval {
        low,
        high: found.interval.high.map(|h| h.max(k)),
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::policy::{clear_at, pooled, Point};
    use crate::measure::stats::ServiceTimes;
    use crate::measure::step::StepSpec;
    use crate::measure::step::{StepOutcome, StopReason, Verdict};
    use crate::measure::virtual_clock::{ServiceLaw, VirtualQueue};

    #[test]
    fn the_bracket_is_the_highest_pass_and_the_lowest_fail_above_it() {
        let at = |q: f64, outcome: StepOutcome| StepSummary {
            offered_qps: Some(q),
            outcome,
            ..StepSummary::default()
        };
        let pass = || StepOutcome::decided(true, true, StopReason::PointEstimate);
        let fail = || StepOutcome::decided(false, true, StopReason::PointEstimate);
        let spoiled = || StepOutcome::Spoiled {
            by: crate::measure::step::Spoiler::GeneratorLate,
            stop: StopReason::PointEstimate,
        };
        type Bracket = (Option<f64>, Option<f64>);
        let cases: Vec<(Vec<StepSummary>, Bracket)> = vec![
            (vec![], (None, None)),
            (vec![at(20.0, fail())], (None, Some(20.0))),
            (
                vec![at(20.0, fail()), at(10.0, pass())],
                (Some(10.0), Some(20.0)),
            ),
            (
                vec![
                    at(20.0, fail()),
                    at(10.0, pass()),
                    at(15.0, pass()),
                    at(17.0, fail()),
                ],
                (Some(15.0), Some(17.0)),
            ),
            // A fail below a pass (noise) is not above the pass; a spoiled step is no fail.
            (
                vec![at(12.0, fail()), at(15.0, pass()), at(16.0, spoiled())],
                (Some(15.0), None),
            ),
        ];
        for (steps, want) in cases {
            assert_eq!(bracket(&steps), want);
        }
    }

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
        let task = Search {
            dist,
            target: Duration::from_millis(target_ms),
            bounds,
            seed,
            confidence: 0.99,
            budget: None,
        };
        run(runner, &task, carried).unwrap()
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
        fn step(&mut self, ask: &Ask) -> Result<StepSummary, SearchStop> {
            let mut spec = StepSpec::judged(
                ask.dist,
                ask.qps,
                10.0,
                100,
                Some(ask.target),
                ask.seed,
                0.99,
            );
            ask.shape(&mut spec);
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
            r.interval.high,
            Ok(400.0),
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
        // 200 passed with confidence; nothing above it was measured.
        assert_eq!(r.interval.low, Ok(200.0), "{:?}", r.interval);
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
        // 18 is the step for the interval's low end: 100-query steps at 22 qps
        // cannot pass with confidence, one run on to confidence at 18 can.
        assert_eq!(passes, [12.0, 22.0, 18.0], "{:?}", rates(&r));
        assert_eq!(rates(&r), [24.0, 12.0, 22.0, 23.0, 18.0]);
        // The fit across rates: its band (18 to 23) holds the answer 22 and the
        // confident pass at 18.
        assert_eq!(r.interval.ends(), (Some(18.0), Some(23.0)));
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
        let task = Search {
            dist: Distribution::Exponential,
            target: Duration::from_millis(50),
            bounds: bounds(cap),
            seed,
            confidence: 0.99,
            budget,
        };
        run(&mut q, &task, &[]).unwrap()
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
            assert!(
                r.interval
                    .low
                    .is_err_and(|u| u.rate < best.offered_qps.unwrap())
                    || r.interval.low.is_ok_and(|l| l <= best.offered_qps.unwrap())
            );
            assert!(r.steps.iter().any(|s| s.seed == best.seed));
        }
    }

    #[test]
    fn a_search_the_budget_cut_short_says_so() {
        // The virtual clock replays a seed exactly, so a budgeted search's steps are
        // the first steps of the unbounded one: fewer of them means the budget cut it,
        // whether in the bisection or in the confirmations.
        let mut cut = 0;
        for seed in 1..=15u64 {
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
        assert!(cut >= 30, "the budgets cut only {cut} of 45 searches");
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
            // Every end shown lies on its side of theory; an end not shown says how
            // many queries a step would need to show it.
            let low_ok = match r.interval.low {
                Ok(l) => l <= theory,
                Err(u) => u.queries.is_some(),
            };
            let high_ok = r.interval.high.is_ok_and(|h| h >= theory);
            covered += usize::from(low_ok && high_ok);
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
        assert!(covered >= 11, "interval bounded theory {covered} of 12");
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
    /// estimate; asserts that the search asks for the scripted rates in order. Once
    /// the script runs out, every rate up to `after` is clean and every rate above
    /// it half late (100-query steps of a second).
    struct Scripted(std::collections::VecDeque<(f64, u64, u64, f64)>, f64);

    impl StepRunner for Scripted {
        fn step(&mut self, ask: &Ask) -> Result<StepSummary, SearchStop> {
            let (dist, qps, target, seed) = (ask.dist, ask.qps, ask.target, ask.seed);
            let (rate, judged, late, runtime) = match self.0.pop_front() {
                Some(s) => s,
                None => (qps, 100, if qps <= self.1 { 0 } else { 50 }, 1.0),
            };
            assert_eq!(qps, rate, "the search asked for another rate");
            Ok(scripted_step(
                dist, qps, target, seed, judged, late, runtime, false,
            ))
        }
    }

    #[test]
    fn a_bracket_reopened_below_every_pass_is_bisected() {
        // 48 passes, its confirmation fails (pooled 1.5 %), 24 passes: the answer
        // lies anywhere in 24–48, so that gap is bisected (36, 42, 39, 40; 41 lies
        // within 3 % of 42's 50 % late, so it cannot be the answer and is not
        // measured). Ended at 24, the truth benchmark's seed 3 answered 50 on M/M/1
        // (theory 107.9) after every pass from 100 up was taken back.
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
            40.0,
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
        assert!(runner.0.is_empty());
        assert_eq!(r.best.as_ref().and_then(|b| b.offered_qps), Some(40.0));
        assert!(!rates(&r).contains(&41.0), "{:?}", rates(&r));
    }

    /// A runner whose late count is a function of the rate, the step's queries and
    /// the rates tried before (the first field: every rate asked for, in order).
    struct ByRate(Vec<f64>, fn(f64, u64, &[f64]) -> u64);

    impl StepRunner for ByRate {
        fn step(&mut self, ask: &Ask) -> Result<StepSummary, SearchStop> {
            let (dist, qps, target, seed) = (ask.dist, ask.qps, ask.target, ask.seed);
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
        fn step(&mut self, ask: &Ask) -> Result<StepSummary, SearchStop> {
            let (dist, qps, target, seed) = (ask.dist, ask.qps, ask.target, ask.seed);
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
            interval: Interval {
                low: Ok(qps * 0.9),
                high: Ok(qps * 1.1),
            },
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
        found.interval.high = Ok(4702.0);
        assert!(keep_monotone(&mut found, &stricter, 0.2));
        let best = found.best.as_ref().unwrap();
        assert_eq!(best.offered_qps, Some(2181.0));
        assert_eq!(best.target_latency, Some(0.2));
        assert_eq!((best.late, best.carried_from), (1, Some(0.1)));
        assert!(best.passed() && found.confident);
        assert_eq!(found.interval.ends(), (Some(2181.0 * 0.9), Some(4702.0)));

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
    use crate::measure::verdict::LATE_FRACTION;
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
                // Flat tails: 3, 5 and 6 service times (scripts/bench_search.sh).
                "md1t3" => (1, ServiceLaw::Fixed(0.005), 0.015),
                "md1t5" => (1, ServiceLaw::Fixed(0.005), 0.025),
                "md1t6" => (1, ServiceLaw::Fixed(0.005), 0.03),
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
                    let wait = crate::measure::theory::erlang_c(c, lambda * mean);
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
    /// seed's steps). Fails when the median answer is more than 5 % off theory; run by
    /// `scripts/bench_search_virtual.sh` for every queue. Try a change on a second set
    /// of seeds (`FIRST=401`) before believing a gain on the first.
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
        let (mut shown, mut wrong, mut widths) = ((0, 0), (0, 0), Vec::<f64>::new());
        let mut total_t = Vec::new();
        let (mut bursts, mut near) = (Vec::new(), Vec::new());
        for seed in first..first + seeds {
            let mut q = VirtualQueue::new(queue.servers, queue.law, secs, 100);
            let task = Search {
                dist: Distribution::Exponential,
                target: Duration::from_secs_f64(queue.target),
                bounds: Bounds::new(capacity(seed), 100, secs),
                seed,
                confidence: 0.99,
                budget: Some(knob("BUDGET", 0.0)).filter(|&b| b > 0.0),
            };
            let r = run(&mut q, &task, &[]).unwrap();
            let got = r.best.as_ref().map_or(0.0, |b| b.offered_qps.unwrap());
            let t: f64 = q
                .steps
                .iter()
                .map(|s| s.issued as f64 / s.offered_qps.unwrap())
                .sum();
            let cov = r.interval.covers(theory);
            covered += usize::from(cov);
            shown.0 += usize::from(r.interval.low.is_ok());
            shown.1 += usize::from(r.interval.high.is_ok());
            wrong.0 += usize::from(r.interval.low.is_ok_and(|l| l > theory));
            wrong.1 += usize::from(r.interval.high.is_ok_and(|h| h < theory));
            if let (Ok(l), Ok(h)) = (r.interval.low, r.interval.high) {
                widths.push(100.0 * (h - l) / theory);
            }
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
        widths.sort_by(f64::total_cmp);
        println!(
            "ends shown: low {} high {}; on the wrong side of theory: low {} high {}; width of intervals with both ends (% of theory): median {:.0} of {}",
            shown.0,
            shown.1,
            wrong.0,
            wrong.1,
            widths.get(widths.len() / 2).copied().unwrap_or(f64::NAN),
            widths.len()
        );
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
        // The truth benchmark's criterion (scripts/bench_search_virtual.sh runs it per
        // queue): the median answer within ±5 % of theory.
        assert!(
            errs[n / 2].abs() <= 5.0,
            "median {:+.1} % of theory, outside ±5 %",
            errs[n / 2]
        );
    }
}
