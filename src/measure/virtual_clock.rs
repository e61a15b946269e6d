//! Steps on a virtual clock: a discrete-event model of a FIFO queue with `c` servers,
//! fed by the real [`Schedule`], judged by the real [`Monitor`] every virtual
//! millisecond (as the issuer does) and summarised by the real [`summarize_open`].
//! The search and verdict logic can so be checked exactly and fast, whatever else
//! the machine is doing (hyperfine's mock executor plays this part there).

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution as _, Exp};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use crate::measure::runner::{Ask, SearchStop, StepRunner};
use crate::measure::schedule::Schedule;
use crate::measure::stats::{NsHistogram, ServiceTimes, WorkerStats};
use crate::measure::step::{
    summarize_open, Monitor, OpenCounts, StepSpec, StepSummary, StopReason,
};

/// Service time of one query, in seconds.
#[derive(Clone, Copy, Debug)]
pub enum ServiceLaw {
    Fixed(f64),
    Exp(f64),
}

impl ServiceLaw {
    /// The call times of `n` calls at the machine's usual speed, as a capacity probe
    /// records them: the reference a step's calls are judged against.
    pub fn probe_times(self, n: usize, seed: u64) -> ServiceTimes {
        let mut rng = SmallRng::seed_from_u64(seed);
        let exp = match self {
            ServiceLaw::Exp(mean) => Exp::new(1.0 / mean).ok(),
            ServiceLaw::Fixed(_) => None,
        };
        let mut t = ServiceTimes::default();
        for _ in 0..n {
            let secs = match (self, &exp) {
                (ServiceLaw::Exp(_), Some(e)) => e.sample(&mut rng),
                (ServiceLaw::Exp(s) | ServiceLaw::Fixed(s), _) => s,
            };
            t.record((secs * 1e9) as u64);
        }
        t
    }
}

/// A virtual FIFO queue with `servers` identical servers.
pub struct VirtualQueue {
    servers: usize,
    law: ServiceLaw,
    seconds: f64,
    min_queries: u64,
    confidence: f64,
    /// How much slower than its law the machine serves (1 = its usual speed): a
    /// slow spell of the machine, for the checks that tell it from overload.
    pub slowdown: f64,
    /// Every step run, for the tests to inspect.
    pub steps: Vec<StepSummary>,
}

impl VirtualQueue {
    /// `seconds` and `min_queries` size the steps as `--time` and `--min-queries` do.
    pub fn new(servers: usize, law: ServiceLaw, seconds: f64, min_queries: u64) -> VirtualQueue {
        VirtualQueue {
            servers: servers.max(1),
            law,
            seconds,
            min_queries,
            confidence: 0.99,
            slowdown: 1.0,
            steps: Vec::new(),
        }
    }

    /// Runs one step of `spec` on the virtual clock.
    pub fn run(&self, spec: &StepSpec) -> StepSummary {
        const CHECK_NS: u64 = 1_000_000;
        let target = spec.target.map_or(u64::MAX, |t| t.as_nanos() as u64);
        let mut rng = SmallRng::seed_from_u64(spec.seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let exp = match self.law {
            ServiceLaw::Exp(mean) => Exp::new(1.0 / mean).ok(),
            ServiceLaw::Fixed(_) => None,
        };
        let mut service = || -> u64 {
            let secs = match (self.law, &exp) {
                (ServiceLaw::Fixed(s), _) => s,
                (ServiceLaw::Exp(_), Some(e)) => e.sample(&mut rng),
                (ServiceLaw::Exp(m), None) => m,
            };
            (secs * self.slowdown * 1e9) as u64
        };
        let mut schedule = Schedule::new(spec.distribution, spec.offered_qps, spec.seed);
        let mut free: BinaryHeap<Reverse<u64>> = (0..self.servers).map(|_| Reverse(0)).collect();
        // Pending queries: (completion, arrival, id, service start) by completion;
        // arrivals for the tally.
        let mut completions: BinaryHeap<Reverse<(u64, u64, u64, u64)>> = BinaryHeap::new();
        let mut pending: BTreeSet<(u64, u64)> = BTreeSet::new();
        let mut stats = WorkerStats {
            late: vec![0],
            thresholds: vec![target],
            ..WorkerStats::default()
        };
        let mut monitor = Monitor::for_step(spec);
        let time_cap = spec.time_cap.as_nanos() as u64;

        let complete_until = |now: u64,
                              completions: &mut BinaryHeap<Reverse<(u64, u64, u64, u64)>>,
                              pending: &mut BTreeSet<(u64, u64)>,
                              stats: &mut WorkerStats| {
            while let Some(&Reverse((done, arrival, id, start))) = completions.peek() {
                if done > now {
                    break;
                }
                completions.pop();
                pending.remove(&(arrival, id));
                stats.record_served(done - arrival, done - arrival);
                stats.service.record(done - start);
                stats.completed += 1;
                stats.last_completion_ns = stats.last_completion_ns.max(done);
            }
        };
        let tally = |now: u64, pending: &BTreeSet<(u64, u64)>, stats: &WorkerStats| {
            let pending_late = now
                .checked_sub(target)
                .map_or(0, |cut| pending.range(..(cut, 0)).count() as u64);
            (stats.completed + pending_late, stats.late[0] + pending_late)
        };

        let mut issued = 0u64;
        let mut next_check = 0u64;
        let mut stop = None;
        let mut time_capped = false;
        'issue: while issued < spec.cap {
            let arrival = schedule.next_offset();
            if arrival > time_cap {
                time_capped = true;
                break;
            }
            while next_check <= arrival {
                complete_until(next_check, &mut completions, &mut pending, &mut stats);
                if spec.target.is_some() {
                    let (judged, late) = tally(next_check, &pending, &stats);
                    if let Some(s) = monitor.check(next_check, judged, late) {
                        stop = Some(s);
                        break 'issue;
                    }
                }
                next_check += CHECK_NS;
            }
            complete_until(arrival, &mut completions, &mut pending, &mut stats);
            let Reverse(server_free) = free.pop().unwrap_or(Reverse(arrival));
            let start = server_free.max(arrival);
            let done = start + service();
            free.push(Reverse(done));
            completions.push(Reverse((done, arrival, issued, start)));
            pending.insert((arrival, issued));
            issued += 1;
        }
        let failed = matches!(
            stop,
            Some(StopReason::CertainFail | StopReason::ConfidentFail)
        );
        let mut censored = NsHistogram::new();
        let mut censored_late = vec![0u64];
        if failed {
            // Abandon what is still pending, at its age now.
            let now = next_check;
            complete_until(now, &mut completions, &mut pending, &mut stats);
            for &(arrival, _) in &pending {
                let age = now.saturating_sub(arrival);
                censored.record(age);
                censored_late[0] += u64::from(age > target);
            }
        } else {
            complete_until(u64::MAX, &mut completions, &mut pending, &mut stats);
        }
        let stop = match stop {
            Some(s) => s,
            None if time_capped => StopReason::TimeCap,
            None => StopReason::Planned,
        };
        summarize_open(
            spec,
            OpenCounts {
                stats,
                lateness: NsHistogram::new(),
                issued,
                censored,
                censored_late,
                stop,
                drain_timeout: false,
                interrupted: false,
                monitor,
            },
        )
    }
}

impl StepRunner for VirtualQueue {
    fn step(&mut self, ask: &Ask) -> Result<StepSummary, SearchStop> {
        let mut spec = StepSpec::judged(
            ask.dist,
            ask.qps,
            self.seconds,
            self.min_queries,
            Some(ask.target),
            ask.seed,
            self.confidence,
        );
        ask.shape(&mut spec);
        let s = self.run(&spec);
        self.steps.push(s.clone());
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::schedule::Distribution;
    use crate::measure::step::Verdict;
    use std::time::Duration;

    fn spec(qps: f64, target_ms: u64, seed: u64) -> StepSpec {
        StepSpec::judged(
            Distribution::Exponential,
            qps,
            10.0,
            100,
            Some(Duration::from_millis(target_ms)),
            seed,
            0.99,
        )
    }

    fn linear(qps: f64, target_ms: u64) -> StepSpec {
        StepSpec::judged(
            Distribution::Linear,
            qps,
            10.0,
            100,
            Some(Duration::from_millis(target_ms)),
            1,
            0.99,
        )
    }

    #[test]
    fn a_failure_while_the_machine_runs_slow_is_put_down_to_the_machine() {
        let law = ServiceLaw::Fixed(0.005);
        let mut q = VirtualQueue::new(1, law, 10.0, 100);
        // 150 qps is 75 % of the usual capacity, and overload at half speed.
        q.slowdown = 2.0;
        let mut sp = linear(150.0, 20);
        assert_eq!(
            q.run(&sp).verdict(),
            Verdict::TooManyLate,
            "without a reference"
        );
        sp.service_ref = Some(law.probe_times(200, 1));
        let s = q.run(&sp);
        assert_eq!(s.verdict(), Verdict::MachineSlow, "{s:?}");
        assert!(!s.passed());
        assert!(s.service.calls >= 5, "{:?}", s.service);
        // Overload at the usual speed is the system's failure.
        q.slowdown = 1.0;
        let mut over = linear(250.0, 20);
        over.service_ref = sp.service_ref;
        assert_eq!(q.run(&over).verdict(), Verdict::TooManyLate);
        // A slow machine that still meets the target passes.
        q.slowdown = 1.5;
        let mut easy = linear(60.0, 20);
        easy.service_ref = sp.service_ref;
        assert_eq!(q.run(&easy).verdict(), Verdict::Pass);
    }

    #[test]
    fn overload_of_a_widely_spread_service_is_not_taken_for_a_slow_machine() {
        // M/M/1 at 125 % of its capacity at the usual speed: the calls of an
        // exponential law vary by their whole mean, which the tolerance allows for.
        let law = ServiceLaw::Exp(0.005);
        let reference = law.probe_times(300, 7);
        let q = VirtualQueue::new(1, law, 10.0, 100);
        for seed in 1..=50 {
            let mut sp = spec(250.0, 50, seed);
            sp.service_ref = Some(reference);
            let s = q.run(&sp);
            assert_eq!(s.verdict(), Verdict::TooManyLate, "seed {seed}: {s:?}");
        }
    }

    #[test]
    fn far_below_the_boundary_a_step_passes_confidently_at_its_planned_length() {
        let q = VirtualQueue::new(1, ServiceLaw::Exp(0.005), 10.0, 100);
        let s = q.run(&spec(50.0, 50, 1));
        assert!(s.passed() && s.confident(), "{s:?}");
        assert_eq!(s.stop(), StopReason::ConfidentPass);
        // It stops soon after its 500 planned queries are judged, not at the cap.
        assert!(s.issued < 600, "issued {}", s.issued);
    }

    #[test]
    fn far_above_it_a_step_stops_early_and_counts_what_it_dropped() {
        let q = VirtualQueue::new(1, ServiceLaw::Exp(0.005), 10.0, 100);
        let s = q.run(&spec(400.0, 50, 1));
        assert_eq!(s.verdict(), Verdict::TooManyLate);
        assert!(s.confident());
        assert!(
            s.issued < s.planned / 4,
            "issued {} of {}",
            s.issued,
            s.planned
        );
        assert_eq!(s.judged, s.count + s.abandoned);
        assert!(s.abandoned > 0, "the backlog is dropped and counted");
        assert!(
            s.p99() > 0.05,
            "percentiles include the dropped queries' ages"
        );
    }

    #[test]
    fn near_the_boundary_a_step_runs_longer_and_says_when_it_is_not_sure() {
        // At 107 qps the M/M/1 late fraction is ~1 %: most steps cannot decide at
        // their 1070 planned queries; some run on, and some end undecided (on their
        // point estimate).
        let q = VirtualQueue::new(1, ServiceLaw::Exp(0.005), 10.0, 100);
        let steps: Vec<StepSummary> = (0..10).map(|seed| q.run(&spec(107.0, 50, seed))).collect();
        assert!(steps.iter().any(|s| s.issued > s.planned), "some extended");
        assert!(steps
            .iter()
            .any(|s| !s.confident()
                && matches!(s.stop(), StopReason::Cap | StopReason::PointEstimate)));
        for s in &steps {
            assert!(s.issued <= s.cap);
            assert_eq!(s.late, s.late_against(0.05).unwrap());
        }
    }
}
