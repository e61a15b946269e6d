//! How a step's load is split over N agents so that their union is the schedule one
//! process would offer: for `linear`, N constant streams of rate/N shifted by one gap
//! each (agent i sends the step's queries i, i+N, i+2N, …); for `exponential`, N
//! independent Poisson streams of rate/N (a union of independent Poisson streams is
//! Poisson of the summed rate), each with its own seed drawn from the step's.

use std::time::Duration;

use crate::measure::schedule::Distribution;

/// One agent's share of a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShareOf {
    pub qps: f64,
    /// Queries this agent plans; the shares sum to the step's.
    pub planned: u64,
    pub seed: u64,
    /// How long after the step's start this agent's first query is planned.
    pub phase: Duration,
}

/// The shares of a step of `planned` queries at `qps` over `agents` agents (≥ 1).
pub fn split(dist: Distribution, qps: f64, planned: u64, seed: u64, agents: usize) -> Vec<ShareOf> {
    let n = agents.max(1) as u64;
    (0..n)
        .map(|i| {
            let (phase, seed) = match dist {
                Distribution::Linear => (Duration::from_secs_f64(i as f64 / qps), seed),
                Distribution::Exponential => (Duration::ZERO, share_seed(seed, i)),
            };
            ShareOf {
                qps: qps / n as f64,
                // Queries i, i+N, … of the step: the first `planned % N` agents get one more.
                planned: planned / n + u64::from(i < planned % n),
                seed,
                phase,
            }
        })
        .collect()
}

/// Agent `i`'s seed for a step seeded `seed`: splitmix64 of both, so that shares are
/// independent streams and agent 0's differs from a one-process step's.
pub fn share_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::schedule::Schedule;

    /// Every send the shares plan, on the step's timeline (ns), sorted.
    fn union(dist: Distribution, qps: f64, planned: u64, agents: usize) -> Vec<u64> {
        let mut all: Vec<u64> = split(dist, qps, planned, 7, agents)
            .iter()
            .flat_map(|s| {
                let mut sch = Schedule::new(dist, s.qps, s.seed);
                let phase = s.phase.as_nanos() as u64;
                (0..s.planned).map(move |_| phase + sch.next_offset())
            })
            .collect();
        all.sort_unstable();
        all
    }

    #[test]
    fn linear_shares_interleave_into_the_one_process_schedule() {
        for (qps, planned, agents) in [
            (100.0, 1000, 2),
            (333.0, 1001, 3),
            (50.0, 7, 4),
            (10.0, 3, 5),
        ] {
            let got = union(Distribution::Linear, qps, planned, agents);
            let mut one = Schedule::new(Distribution::Linear, qps, 7);
            let want: Vec<u64> = (0..planned).map(|_| one.next_offset()).collect();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                // The phase and the share's own gaps are rounded to whole ns apart.
                assert!(
                    g.abs_diff(*w) <= 2,
                    "{qps} qps over {agents}: {g} against {w}"
                );
            }
        }
    }

    #[test]
    fn poisson_shares_are_independent_and_sum_to_the_rate() {
        let shares = split(Distribution::Exponential, 300.0, 30_000, 7, 3);
        assert_eq!(shares.iter().map(|s| s.planned).sum::<u64>(), 30_000);
        let seeds: std::collections::BTreeSet<u64> = shares.iter().map(|s| s.seed).collect();
        assert_eq!(seeds.len(), 3, "a seed per agent");
        assert!(
            !seeds.contains(&7),
            "no share replays the one-process stream"
        );
        let all = union(Distribution::Exponential, 300.0, 30_000, 3);
        // 30,000 sends at 300/s span ~100 s; the union's rate is the step's.
        let rate = all.len() as f64 / (*all.last().unwrap() as f64 / 1e9);
        assert!((rate / 300.0 - 1.0).abs() < 0.03, "union rate {rate}");
        // Poisson: gaps' coefficient of variation 1 (a merely interleaved stream of
        // regular ones would be far below).
        let gaps: Vec<f64> = all.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((sd / mean - 1.0).abs() < 0.05, "cv {}", sd / mean);
    }

    #[test]
    fn one_agent_is_the_step_itself() {
        for dist in [Distribution::Linear, Distribution::Exponential] {
            let s = split(dist, 40.0, 400, 9, 1);
            assert_eq!(s.len(), 1);
            assert_eq!(
                (s[0].qps, s[0].planned, s[0].phase),
                (40.0, 400, Duration::ZERO)
            );
        }
    }
}
