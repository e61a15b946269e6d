//! An agent's counts on the wire and back, and the merge of every agent's into the
//! counts of one step, which `measure::step::summarize_open` then judges exactly as
//! it judges one process's: late counts and errors add, histograms add bucket by
//! bucket, episodes of late queries that overlap in time join.

use crate::agents::protocol::ShareCounts;
use crate::measure::stats::{NsHistogram, ServiceTimes, WorkerStats};
use crate::measure::step::{merge_episodes, Episode, Monitor, OpenCounts, StepSpec, StopReason};

/// Why an agent's counts cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    #[error("its counts do not add up: {0}")]
    Inconsistent(String),
}

/// The late count `summarize_open` judges for these counts (served, abandoned in
/// service, dropped from the queue, failed).
fn total_late(o: &OpenCounts) -> u64 {
    let first = |v: &[u64]| v.first().copied().unwrap_or(0);
    first(&o.stats.late) + first(&o.censored_late) + first(&o.stats.censored_late) + o.stats.errors
}

/// What an agent sends of its workers' figures (a closed loop's, or a step's before
/// the step's own fields are added).
pub fn stats_to_wire(s: &WorkerStats) -> ShareCounts {
    ShareCounts {
        completed: s.completed,
        errors: s.errors,
        late: s.late.clone(),
        thresholds: s.thresholds.clone(),
        censored_late: s.censored_late.clone(),
        corrected: s.corrected.buckets(),
        uncorrected: s.uncorrected.buckets(),
        censored: s.censored.buckets(),
        stalls: s.stalls.buckets(),
        service: s.service.parts(),
        last_completion_ns: s.last_completion_ns,
        first_error: s.first_error.clone(),
        stalled: s.stalled,
        ..ShareCounts::default()
    }
}

/// What an agent sends of its share's counts.
pub fn to_wire(o: &OpenCounts, started_late_ns: u64) -> ShareCounts {
    ShareCounts {
        issued: o.issued,
        queue_censored_late: o.censored_late.clone(),
        queue_censored: o.censored.buckets(),
        lateness: o.lateness.buckets(),
        stop: o.stop.name().to_string(),
        drain_timeout: o.drain_timeout,
        interrupted: o.interrupted,
        episodes: (o.monitor.episode_log(total_late(o)).iter())
            .map(|e| (e.start_ns, e.last_ns, e.size))
            .collect(),
        started_late_ns,
        ..stats_to_wire(&o.stats)
    }
}

/// A worker's figures from an agent's counts (histograms re-recorded into our own
/// bounds), checked for what must hold of honest counts.
pub fn stats_of(c: &ShareCounts) -> Result<WorkerStats, MergeError> {
    let bad = |what: String| Err(MergeError::Inconsistent(what));
    let corrected = NsHistogram::from_buckets(&c.corrected);
    if corrected.len() != c.completed {
        return bad(format!(
            "{} latencies recorded for {} answered queries",
            corrected.len(),
            c.completed
        ));
    }
    if c.completed + c.errors > c.issued {
        return bad(format!(
            "{} answered and {} failed of {} sent",
            c.completed, c.errors, c.issued
        ));
    }
    if c.late.len() != c.thresholds.len() || c.late.iter().any(|&l| l > c.completed) {
        return bad(format!(
            "late counts {:?} for {} answered",
            c.late, c.completed
        ));
    }
    Ok(WorkerStats {
        corrected,
        uncorrected: NsHistogram::from_buckets(&c.uncorrected),
        completed: c.completed,
        errors: c.errors,
        late: c.late.clone(),
        thresholds: c.thresholds.clone(),
        stalls: NsHistogram::from_buckets(&c.stalls),
        service: ServiceTimes::from_parts(c.service),
        last_completion_ns: c.last_completion_ns,
        first_error: c.first_error.clone(),
        censored: NsHistogram::from_buckets(&c.censored),
        censored_late: c.censored_late.clone(),
        stalled: c.stalled,
    })
}

/// Every agent's counts of one step as one step's: what `summarize_open(spec, …)`
/// judges. `spec` is the whole step (its cap the planned queries: shares do not run
/// on) with the agents' thresholds.
pub fn merge(spec: &StepSpec, shares: &[ShareCounts]) -> Result<OpenCounts, MergeError> {
    let thresholds = 1 + spec.also_count.len();
    let mut stats = WorkerStats {
        late: vec![0; thresholds],
        censored_late: vec![0; thresholds],
        ..WorkerStats::default()
    };
    let mut lateness = NsHistogram::new();
    let mut censored = NsHistogram::new();
    let mut censored_late = vec![0u64; thresholds];
    let (mut issued, mut time_capped) = (0u64, false);
    let (mut drain_timeout, mut interrupted) = (false, false);
    let mut episodes = Vec::new();
    for c in shares {
        if c.thresholds.len() != thresholds || c.queue_censored_late.len() != thresholds {
            return Err(MergeError::Inconsistent(format!(
                "{} thresholds where the step has {thresholds}",
                c.thresholds.len()
            )));
        }
        let s = stats_of(c)?;
        stats.merge(&s);
        lateness.add(&NsHistogram::from_buckets(&c.lateness));
        censored.add(&NsHistogram::from_buckets(&c.queue_censored));
        for (a, b) in censored_late.iter_mut().zip(&c.queue_censored_late) {
            *a += b;
        }
        issued += c.issued;
        time_capped |= c.stop == StopReason::TimeCap.name();
        drain_timeout |= c.drain_timeout;
        interrupted |= c.interrupted;
        episodes.extend(c.episodes.iter().map(|&(start_ns, last_ns, size)| Episode {
            start_ns,
            last_ns,
            size,
        }));
    }
    let gap = u64::try_from(spec.episode_gap().as_nanos()).unwrap_or(u64::MAX);
    let merged = merge_episodes(episodes, gap);
    Ok(OpenCounts {
        stats,
        lateness,
        issued,
        censored,
        censored_late,
        stop: if interrupted {
            StopReason::Interrupted
        } else if time_capped {
            StopReason::TimeCap
        } else {
            StopReason::Planned
        },
        drain_timeout,
        interrupted,
        monitor: Monitor::merged(spec, &merged),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::schedule::Distribution;
    use crate::measure::step::summarize_open;
    use std::time::Duration;

    fn spec() -> StepSpec {
        let mut s = StepSpec::judged(
            Distribution::Exponential,
            100.0,
            10.0,
            100,
            Some(Duration::from_millis(50)),
            1,
            0.99,
        );
        s.also_count = vec![Duration::from_millis(100)];
        s.cap = s.planned;
        s
    }

    /// An agent's counts: `served` latencies (ms), `errors` failed, late episodes.
    fn share(served: &[u64], errors: u64, episodes: &[(u64, u64, u64)]) -> ShareCounts {
        let mut h = NsHistogram::new();
        for &ms in served {
            h.record(ms * 1_000_000);
        }
        let over = |t: u64| served.iter().filter(|&&ms| ms > t).count() as u64;
        ShareCounts {
            issued: served.len() as u64 + errors,
            completed: served.len() as u64,
            errors,
            late: vec![over(50), over(100)],
            thresholds: vec![50_000_000, 100_000_000],
            censored_late: vec![0, 0],
            queue_censored_late: vec![0, 0],
            corrected: h.buckets(),
            uncorrected: h.buckets(),
            stop: "planned".into(),
            episodes: episodes.to_vec(),
            ..ShareCounts::default()
        }
    }

    #[test]
    fn merged_late_counts_are_the_sums_of_the_agents() {
        let a = share(&[10, 20, 60, 120], 1, &[(1_000, 2_000, 3)]);
        let b = share(&[5, 70, 80], 0, &[(5_000_000_000, 5_000_000_000, 2)]);
        let merged = merge(&spec(), &[a, b]).unwrap();
        let s = summarize_open(&spec(), merged);
        assert_eq!(s.count, 7);
        assert_eq!(s.errors, 1);
        assert_eq!(s.issued, 8);
        // Served above 50 ms: 60, 120 and 70, 80; plus the failed query.
        assert_eq!(s.late, 4 + 1);
        assert_eq!(s.late_also, vec![(0.1, 1 + 1)]);
        assert_eq!(s.judged, 8);
        // Two episodes far apart stay two.
        assert_eq!(s.late_episodes, 2);
    }

    #[test]
    fn bursts_at_the_same_time_on_every_agent_are_one_burst() {
        let t = 3_000_000_000;
        let a = share(&[60, 60, 60], 0, &[(t, t + 1_000_000, 3)]);
        let b = share(&[60, 60, 60], 0, &[(t + 500_000, t + 2_000_000, 3)]);
        let s = summarize_open(&spec(), merge(&spec(), &[a, b]).unwrap());
        assert_eq!((s.late, s.late_episodes, s.late_episode_sq), (6, 1, 36));
    }

    #[test]
    fn counts_that_do_not_add_up_are_refused() {
        let mut lying = share(&[10, 20], 0, &[]);
        lying.completed = 5;
        assert!(merge(&spec(), &[lying]).is_err());
        let mut lying = share(&[10, 20], 0, &[]);
        lying.late = vec![9, 0];
        assert!(merge(&spec(), &[lying]).is_err());
        let mut short = share(&[10], 0, &[]);
        short.thresholds.pop();
        short.late.pop();
        assert!(merge(&spec(), &[short]).is_err());
    }

    #[test]
    fn histograms_survive_the_wire() {
        let mut h = NsHistogram::new();
        for v in [1u64, 999, 1_000_003, 7_777_777_777, 3_599_999_999_999] {
            h.record(v);
        }
        let back = NsHistogram::from_buckets(&h.buckets());
        assert_eq!(back.len(), h.len());
        for p in [50.0, 90.0, 99.0, 100.0] {
            assert_eq!(back.percentile_s(p), h.percentile_s(p), "p{p}");
        }
    }
}
