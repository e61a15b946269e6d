//! Arrival schedules: when each query of a step is planned to be sent.
//! Offsets are nanoseconds from the step's start; latency counts from them.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution as _, Exp};
use serde::Serialize;

/// How the gaps between queries are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Constant gap 1/qps.
    Linear,
    /// Independent exponential gaps with mean 1/qps (Poisson arrivals).
    Exponential,
}

impl Distribution {
    pub fn parse(s: &str) -> Option<Distribution> {
        match s.trim() {
            "linear" => Some(Distribution::Linear),
            "exponential" => Some(Distribution::Exponential),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Linear => "linear",
            Distribution::Exponential => "exponential",
        }
    }
}

/// An endless, deterministic sequence of planned send offsets (ns from step start).
/// The first query is planned at offset 0.
pub struct Schedule {
    kind: Kind,
    next_ns: f64,
    index: u64,
}

enum Kind {
    Linear { gap_ns: f64 },
    Exponential { gaps: Exp<f64>, rng: Box<SmallRng> },
}

impl Schedule {
    /// A schedule offering `qps` queries per second. `seed` fixes the exponential
    /// gaps so that two runs with the same seed offer the same schedule.
    ///
    /// `qps` must be positive and finite (checked by the settings).
    pub fn new(dist: Distribution, qps: f64, seed: u64) -> Schedule {
        let gap_ns = 1e9 / qps;
        let kind = match dist {
            Distribution::Linear => Kind::Linear { gap_ns },
            Distribution::Exponential => Kind::Exponential {
                // Exp::new fails only for a negative or NaN rate; qps > 0 here.
                gaps: Exp::new(1.0 / gap_ns).expect("qps > 0"), // ok: qps > 0 checked by settings
                rng: Box::new(SmallRng::seed_from_u64(seed)),
            },
        };
        Schedule {
            kind,
            next_ns: 0.0,
            index: 0,
        }
    }

    /// The offset of the next query, in ns from the step's start.
    #[inline]
    pub fn next_offset(&mut self) -> u64 {
        let now = self.next_ns;
        self.index += 1;
        self.next_ns = match &mut self.kind {
            // Multiply rather than accumulate: no drift over millions of queries.
            Kind::Linear { gap_ns } => self.index as f64 * *gap_ns,
            Kind::Exponential { gaps, rng } => now + gaps.sample(rng.as_mut()),
        };
        now as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_has_constant_gaps_without_drift() {
        let mut s = Schedule::new(Distribution::Linear, 3.0, 1);
        let offs: Vec<u64> = (0..4).map(|_| s.next_offset()).collect();
        assert_eq!(offs, vec![0, 333_333_333, 666_666_666, 1_000_000_000]);
        let mut s = Schedule::new(Distribution::Linear, 1000.0, 1);
        let last = (0..1_000_001).map(|_| s.next_offset()).last().unwrap();
        assert_eq!(last, 1_000_000_000_000);
    }

    #[test]
    fn exponential_is_seeded_and_has_the_right_mean() {
        let draw = |seed| {
            let mut s = Schedule::new(Distribution::Exponential, 500.0, seed);
            (0..100_000).map(|_| s.next_offset()).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7), "same seed, same schedule");
        assert_ne!(a, draw(8), "another seed, another schedule");
        let mean_gap = *a.last().unwrap() as f64 / (a.len() - 1) as f64;
        assert!(
            (mean_gap - 2e6).abs() < 2e6 * 0.02,
            "mean gap {mean_gap} ns"
        );
        // Exponential gaps: standard deviation equals the mean (coefficient of variation 1).
        let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let var = gaps.iter().map(|g| (g - mean_gap).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean_gap;
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "offsets never go back");
    }

    #[test]
    fn parses_names() {
        assert_eq!(Distribution::parse("linear"), Some(Distribution::Linear));
        assert_eq!(
            Distribution::parse("exponential"),
            Some(Distribution::Exponential)
        );
        assert_eq!(Distribution::parse("poisson"), None);
    }
}
