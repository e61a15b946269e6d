//! The search of SPEC §5: for one distribution and target latency, find the highest
//! offered rate whose step passes. A closed-loop capacity probe gives the upper end;
//! halving finds a passing rate; bisection narrows to 1 % (or 1 qps). The answer is
//! always a step that was measured and passed (never an untested midpoint).

use std::time::Duration;

use crate::measure::schedule::Distribution;
use crate::measure::step::StepSummary;

/// The run was interrupted (Ctrl-C) or failed; the search gives up.
#[derive(Debug)]
pub enum SearchStop {
    Interrupted,
    Failed(anyhow::Error),
}

/// Runs steps for the search. The real one drives the worker pool; tests use a model.
pub trait StepRunner {
    /// One open-loop step at `qps` offered, judged against `target`.
    fn step(
        &mut self,
        dist: Distribution,
        qps: f64,
        target: Duration,
    ) -> Result<StepSummary, SearchStop>;
}

/// What the search found for one target.
#[derive(Debug, Default)]
pub struct SearchResult {
    /// The best measured passing step; `None` when even the lowest rate failed.
    pub best: Option<StepSummary>,
    /// Every step run for this target, in order.
    pub steps: Vec<StepSummary>,
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
            floor: (capacity / f64::from(1u32 << MAX_HALVINGS)).max(by_time),
        }
    }
}

/// Searches the highest passing rate in `[floor, capacity]`.
///
/// `known_pass` is a step that already passed a stricter target with the same
/// distribution (it passes this one too, p99 being below the stricter target), so
/// the search starts above it.
pub fn search(
    runner: &mut dyn StepRunner,
    dist: Distribution,
    target: Duration,
    bounds: Bounds,
    known_pass: Option<&StepSummary>,
) -> Result<SearchResult, SearchStop> {
    let mut out = SearchResult::default();
    let top = round_rate(bounds.capacity.max(0.01));
    let mut run = |qps: f64, out: &mut SearchResult| -> Result<bool, SearchStop> {
        let s = runner.step(dist, qps, target)?;
        let passed = s.passed;
        if passed {
            out.best = Some(s.clone());
        }
        out.steps.push(s);
        Ok(passed)
    };

    let known = known_pass.filter(|s| s.passed && s.p99() <= target.as_secs_f64());
    let (mut lo, mut hi);
    match known {
        Some(k) => {
            let k_rate = k.offered_qps.unwrap_or(0.0);
            out.best = Some(k.clone());
            if k_rate >= top {
                return Ok(out);
            }
            if run(top, &mut out)? {
                return Ok(out);
            }
            lo = k_rate;
            hi = top;
        }
        None => {
            // Bracket: the capacity first, then halve until a step passes.
            let mut rate = top;
            let mut halvings = 0;
            loop {
                if run(rate, &mut out)? {
                    break;
                }
                halvings += 1;
                let next = round_rate(rate / 2.0);
                if halvings > MAX_HALVINGS || next >= rate || next < bounds.floor {
                    return Ok(out);
                }
                rate = next;
            }
            if rate >= top {
                return Ok(out);
            }
            lo = rate;
            hi = round_rate(rate * 2.0).min(top);
        }
    }

    // Bisect between a passing `lo` and a failing `hi`.
    while hi - lo > (0.01 * lo).max(1.0) {
        let mid = round_rate((lo + hi) / 2.0);
        if mid <= lo || mid >= hi {
            break;
        }
        if run(mid, &mut out)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stats::{Lateness, Percentiles};
    use crate::measure::step::Verdict;

    /// A system whose p99 is known in closed form: M/M/1 with service rate `mu`.
    struct Mm1 {
        mu: f64,
        tested: Vec<f64>,
        interrupt_after: Option<usize>,
    }

    fn summary(qps: f64, target: f64, p99: f64) -> StepSummary {
        let mut p = Percentiles::default();
        p.0.insert("99.0".into(), p99);
        let passed = p99 <= target;
        StepSummary {
            distribution: Some(Distribution::Exponential),
            target_latency: Some(target),
            offered_qps: Some(qps),
            qps,
            count: 100,
            errors: 0,
            planned: 100,
            abandoned: 0,
            runtime: 1.0,
            mean: p99 / 4.6,
            percentiles: p.clone(),
            percentiles_uncorrected: p,
            lateness: Lateness::default(),
            early_stop: false,
            passed,
            verdict: if passed {
                Verdict::Pass
            } else {
                Verdict::P99AboveTarget
            },
            error: None,
        }
    }

    impl StepRunner for Mm1 {
        fn step(
            &mut self,
            _d: Distribution,
            qps: f64,
            target: Duration,
        ) -> Result<StepSummary, SearchStop> {
            if self.interrupt_after == Some(self.tested.len()) {
                return Err(SearchStop::Interrupted);
            }
            self.tested.push(qps);
            let p99 = if qps >= self.mu {
                f64::INFINITY
            } else {
                100f64.ln() / (self.mu - qps)
            };
            Ok(summary(qps, target.as_secs_f64(), p99))
        }
    }

    fn bounds(capacity: f64) -> Bounds {
        Bounds {
            capacity,
            floor: 0.0,
        }
    }

    fn mm1(mu: f64) -> Mm1 {
        Mm1 {
            mu,
            tested: Vec::new(),
            interrupt_after: None,
        }
    }

    #[test]
    fn finds_the_mm1_answer_within_one_percent() {
        let mut sys = mm1(200.0);
        let r = search(
            &mut sys,
            Distribution::Exponential,
            Duration::from_millis(50),
            bounds(200.0),
            None,
        )
        .unwrap();
        let best = r.best.unwrap();
        let theory = 200.0 - 100f64.ln() / 0.05; // 107.9
        let got = best.offered_qps.unwrap();
        assert!(
            got <= theory && got >= theory * 0.99 - 1.0,
            "got {got}, theory {theory}"
        );
        assert!(best.passed, "the answer is a measured passing step");
        assert_eq!(r.steps.len(), sys.tested.len());
        assert!(sys.tested.len() <= 10, "tested {:?}", sys.tested);
    }

    #[test]
    fn reports_fail_when_even_the_lowest_rate_fails() {
        // p99 of an idle M/M/1 is ln(100)/mu = 23 ms > 10 ms: nothing passes.
        let mut sys = mm1(200.0);
        let r = search(
            &mut sys,
            Distribution::Linear,
            Duration::from_millis(10),
            bounds(200.0),
            None,
        )
        .unwrap();
        assert!(r.best.is_none());
        assert_eq!(sys.tested.len() as u32, MAX_HALVINGS + 1);
        assert!(sys.tested.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn a_known_pass_from_a_stricter_target_shortens_the_search() {
        let mut sys = mm1(200.0);
        let t1 = search(
            &mut sys,
            Distribution::Exponential,
            Duration::from_millis(50),
            bounds(200.0),
            None,
        )
        .unwrap();
        let first_count = sys.tested.len();
        let t2 = search(
            &mut sys,
            Distribution::Exponential,
            Duration::from_millis(100),
            bounds(200.0),
            t1.best.as_ref(),
        )
        .unwrap();
        let got = t2.best.unwrap().offered_qps.unwrap();
        let theory = 200.0 - 100f64.ln() / 0.1; // 153.9
        assert!(got <= theory && got >= theory * 0.99 - 1.0, "got {got}");
        assert!(sys.tested[first_count..].iter().all(|&q| q > t1
            .best
            .as_ref()
            .unwrap()
            .offered_qps
            .unwrap()));
    }

    #[test]
    fn capacity_that_passes_is_the_answer() {
        let mut sys = mm1(1000.0);
        let r = search(
            &mut sys,
            Distribution::Linear,
            Duration::from_millis(200),
            bounds(500.0),
            None,
        )
        .unwrap();
        assert_eq!(r.best.unwrap().offered_qps, Some(500.0));
        assert_eq!(sys.tested, vec![500.0]);
    }

    #[test]
    fn interruption_stops_the_search() {
        let mut sys = mm1(200.0);
        sys.interrupt_after = Some(2);
        let r = search(
            &mut sys,
            Distribution::Linear,
            Duration::from_millis(50),
            bounds(200.0),
            None,
        );
        assert!(matches!(r, Err(SearchStop::Interrupted)));
    }

    #[test]
    fn the_floor_stops_the_halving() {
        // Nothing passes a 10 ms target; with a floor at 30 qps only 200, 100, 50 are tried.
        let mut sys = mm1(200.0);
        let b = Bounds {
            capacity: 200.0,
            floor: 30.0,
        };
        let r = search(
            &mut sys,
            Distribution::Linear,
            Duration::from_millis(10),
            b,
            None,
        )
        .unwrap();
        assert!(r.best.is_none());
        assert_eq!(sys.tested, vec![200.0, 100.0, 50.0]);
        // 100 queries in 4 x 10 s: 2.5 qps; capacity / 128 is lower.
        assert_eq!(Bounds::new(55.0, 100, 10.0).floor, 2.5);
        assert_eq!(Bounds::new(1000.0, 100, 10.0).floor, 1000.0 / 128.0);
    }

    #[test]
    fn rates_round_to_whole_numbers_above_ten() {
        assert_eq!(round_rate(129.7), 129.0);
        assert_eq!(round_rate(3.456), 3.45);
        assert_eq!(round_rate(0.0), 0.01);
    }
}
