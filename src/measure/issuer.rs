//! The issuer: releases each query of a step at its planned instant into the
//! [`QueryQueue`], which the workers drain. It sleeps most of a gap and spins the
//! rest (see [`crate::base::clock`]), and records its own lateness (actual − planned).

use std::time::{Duration, Instant};

use crate::base::clock;
use crate::measure::queue::QueryQueue;
use crate::measure::schedule::Schedule;
use crate::measure::stats::NsHistogram;

/// How often (at most) the issuer asks whether the step should stop.
const CHECK_EVERY_NS: u64 = 1_000_000;

/// What the issuer did during one step.
#[derive(Debug, Default)]
pub struct IssueReport {
    /// Queries released.
    pub issued: u64,
    /// actual release − planned, per query.
    pub lateness: NsHistogram,
    /// The step was stopped before every planned query was released.
    pub stopped_early: bool,
    /// Issuing stopped at the time cap (`deadline_ns`) before `count` queries.
    pub time_capped: bool,
}

/// Why the issuer should stop, asked about every millisecond.
pub trait StopCheck {
    /// `now_ns` is ns from the step's start; `late_backlog` is a function giving the
    /// number of waiting queries planned before a given offset.
    fn should_stop(&mut self, now_ns: u64, queue: &BacklogProbe<'_>) -> bool;
}

/// A read-only look at the queue, for [`StopCheck`].
pub struct BacklogProbe<'a>(&'a QueryQueue);

impl<'a> BacklogProbe<'a> {
    /// Only for the thread that runs [`issue`] (it alone writes the slots).
    pub fn new(queue: &'a QueryQueue) -> BacklogProbe<'a> {
        BacklogProbe(queue)
    }

    /// Queries claimed by workers so far: everything below is in service or done,
    /// everything from here up to `released` waits.
    pub fn claimed(&self) -> u64 {
        self.0.claimed()
    }

    /// Planned offset of query `index` (recent queries only: the ring reuses slots).
    pub fn planned_of(&self, index: u64) -> u64 {
        self.0.planned_of(index)
    }

    /// Waiting queries from `from` (a [`BacklogProbe::claimed`] snapshot) that were
    /// planned before `before_ns`.
    pub fn planned_before(&self, from: u64, before_ns: u64) -> u64 {
        self.0.backlog_planned_before(from, before_ns)
    }
}

/// Releases `count` queries of `schedule` at `epoch + offset`, until `stop` says so
/// or the clock passes `deadline_ns` (the step's time cap: a schedule that asks more
/// than the machine can release never runs past it).
pub fn issue(
    queue: &QueryQueue,
    schedule: &mut Schedule,
    count: u64,
    epoch: Instant,
    deadline_ns: u64,
    stop: &mut dyn StopCheck,
) -> IssueReport {
    let mut lateness = NsHistogram::new();
    clock::raise_issuer_priority();
    let cap = queue.capacity();
    let mut issued = 0u64;
    let mut next = schedule.next_offset();
    let mut next_check = 0u64;
    let mut stopped_early = false;
    let mut time_capped = false;
    let since = |t: Instant| t.saturating_duration_since(epoch).as_nanos() as u64;
    while issued < count {
        let mut now = since(Instant::now());
        if now >= next_check {
            if stop.should_stop(now, &BacklogProbe::new(queue)) {
                stopped_early = true;
                break;
            }
            next_check = now + CHECK_EVERY_NS;
        }
        if next > deadline_ns || now > deadline_ns {
            time_capped = true;
            break;
        }
        if now < next {
            // Wait for the next planned instant, but wake for the next stop check.
            let until = next.min(next_check);
            clock::wait_until(epoch + Duration::from_nanos(until));
            if until < next {
                continue;
            }
            now = since(Instant::now());
        }
        // Release everything due (several at once when we are behind).
        let room = cap - (issued - queue.claimed());
        let mut k = 0;
        while k < room && issued < count && next <= now {
            queue.write(issued, next, now);
            lateness.record(now - next);
            issued += 1;
            k += 1;
            if issued < count {
                next = schedule.next_offset();
            }
        }
        queue.publish(issued, k);
        if k == 0 && room == 0 {
            std::thread::yield_now();
        }
    }
    queue.close();
    IssueReport {
        issued,
        lateness,
        stopped_early,
        time_capped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::queue::{Claim, Query, WORKER_SPIN};
    use crate::measure::schedule::Distribution;
    use std::sync::Arc;

    struct Never;
    impl StopCheck for Never {
        fn should_stop(&mut self, _: u64, _: &BacklogProbe<'_>) -> bool {
            false
        }
    }

    #[test]
    fn every_query_is_claimed_once_in_order() {
        let q = Arc::new(QueryQueue::new(64));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut buf = [Query::default(); 4];
                    while let Claim::Got(n) = q.claim(&mut buf, WORKER_SPIN) {
                        assert!(buf[..n].windows(2).all(|w| w[1].index == w[0].index + 1));
                        seen.extend(buf[..n].iter().map(|x| (x.index, x.planned_ns)));
                    }
                    seen
                })
            })
            .collect();
        let mut sched = Schedule::new(Distribution::Linear, 200_000.0, 1);
        let rep = issue(&q, &mut sched, 20_000, Instant::now(), u64::MAX, &mut Never);
        assert_eq!(rep.issued, 20_000);
        let mut all: Vec<(u64, u64)> = consumers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        assert_eq!(all.len(), 20_000);
        for (i, (index, planned)) in all.iter().enumerate() {
            assert_eq!(*index, i as u64);
            assert_eq!(
                *planned,
                i as u64 * 5_000,
                "planned time travels with the query"
            );
        }
    }

    #[test]
    fn issuer_is_never_early_and_records_lateness() {
        let q = Arc::new(QueryQueue::new(1024));
        let qc = Arc::clone(&q);
        let epoch = Instant::now() + Duration::from_millis(2);
        let worker = std::thread::spawn(move || {
            let mut buf = [Query::default(); 1];
            let mut early = 0;
            while let Claim::Got(_) = qc.claim(&mut buf, WORKER_SPIN) {
                let now = epoch.elapsed().as_nanos() as u64;
                if now < buf[0].planned_ns || buf[0].issued_ns < buf[0].planned_ns {
                    early += 1;
                }
            }
            early
        });
        let mut sched = Schedule::new(Distribution::Exponential, 2_000.0, 3);
        let rep = issue(&q, &mut sched, 400, epoch, u64::MAX, &mut Never);
        assert_eq!(
            worker.join().unwrap(),
            0,
            "no query seen before its planned time"
        );
        assert_eq!(rep.lateness.len(), 400);
        // Correctness bound only (the benchmark holds the real figure): the median
        // release is far closer than the 1 ms of a plain sleep-based timer.
        assert!(
            rep.lateness.percentile_s(50.0) < 0.0005,
            "p50 {}",
            rep.lateness.percentile_s(50.0)
        );
    }

    #[test]
    fn abort_ends_claims_and_stop_check_ends_issuing() {
        struct After(u64);
        impl StopCheck for After {
            fn should_stop(&mut self, now: u64, _: &BacklogProbe<'_>) -> bool {
                now > self.0
            }
        }
        let q = QueryQueue::new(1 << 16);
        let mut sched = Schedule::new(Distribution::Linear, 10_000.0, 1);
        // 1 s of queries, stopped after ~20 ms.
        let rep = issue(
            &q,
            &mut sched,
            10_000,
            Instant::now(),
            u64::MAX,
            &mut After(20_000_000),
        );
        assert!(rep.stopped_early);
        assert!(rep.issued < 1_000, "issued {}", rep.issued);
        q.abort();
        let mut buf = [Query::default(); 1];
        assert_eq!(q.claim(&mut buf, WORKER_SPIN), Claim::Finished);
    }

    #[test]
    fn an_impossible_rate_stops_at_the_time_cap() {
        // 10^12 queries/s for 1 s cannot be released; issuing ends at the 50 ms cap
        // instead of running until every query is out.
        let q = QueryQueue::new(1 << 10);
        let mut sched = Schedule::new(Distribution::Linear, 1e12, 1);
        let start = Instant::now();
        let rep = issue(
            &q,
            &mut sched,
            1_000_000_000_000,
            start,
            50_000_000,
            &mut Never,
        );
        assert!(rep.time_capped);
        assert!(rep.issued < 1_000_000_000_000);
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
