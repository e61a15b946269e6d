//! A coarse latency histogram the progress bar reads while a step runs: the step's
//! p99 so far, to within a bucket (its upper edge: at most 25 % above the value). The exact histograms stay in each worker's
//! own stats and are merged after the step; this one is shared, so it must cost the
//! timed path no more than a counter: one bucket index from the value's bits and one
//! increment by its only writer (a worker thread, or the in-flight state under its
//! lock). Readers may see a count a tick late, which a progress bar does not mind.

use std::sync::atomic::{AtomicU64, Ordering};

/// log2 of the sub-buckets per power of two: four equal ones, 25 % of the power wide.
const SUB_BITS: u32 = 2;
/// Values below 2^MIN_EXP ns (16 µs) share the first bucket.
const MIN_EXP: u32 = 14;
/// Values from 2^MAX_EXP ns (about 69 s) share the last one.
const MAX_EXP: u32 = 36;
/// Buckets in all: the first (below 16 µs), four per power of two, the last (from
/// 2^MAX_EXP ns).
pub const BUCKETS: usize = ((MAX_EXP - MIN_EXP) << SUB_BITS) as usize + 2;

/// Per-bucket counts of one writer.
pub struct LiveHistogram {
    counts: [AtomicU64; BUCKETS],
}

impl Default for LiveHistogram {
    fn default() -> Self {
        LiveHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The bucket of a latency in nanoseconds: the power of two and the next two bits.
fn bucket(ns: u64) -> usize {
    if ns < 1 << MIN_EXP {
        return 0;
    }
    let exp = 63 - ns.leading_zeros();
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (ns >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    (((exp - MIN_EXP) << SUB_BITS) as u64 + sub) as usize + 1
}

/// The largest value a bucket holds (its upper edge), in nanoseconds.
fn upper_edge(b: usize) -> u64 {
    if b == 0 {
        return (1 << MIN_EXP) - 1;
    }
    let k = (b - 1) as u64;
    let exp = MIN_EXP as u64 + (k >> SUB_BITS);
    let sub = k & ((1 << SUB_BITS) - 1);
    let step = 1u64 << (exp - SUB_BITS as u64);
    (1u64 << exp) + (sub + 1) * step - 1
}

impl LiveHistogram {
    /// Counts one latency. Only one thread writes a histogram at a time (see the
    /// module), so a load and a store are enough: no read-modify-write on the timed path.
    #[inline]
    pub fn record(&self, ns: u64) {
        let c = &self.counts[bucket(ns)];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Adds this histogram's counts into `into` (a reader's sum over workers).
    pub fn add_to(&self, into: &mut [u64; BUCKETS]) {
        for (sum, c) in into.iter_mut().zip(&self.counts) {
            *sum += c.load(Ordering::Relaxed);
        }
    }
}

/// The `q` quantile (0–1) of summed counts, as its bucket's upper edge in seconds;
/// None with no value counted.
pub fn quantile(counts: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (b, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(upper_edge(b) as f64 * 1e-9);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_hold_their_values() {
        let cases: &[(u64, usize)] = &[
            (0, 0),
            ((1 << 14) - 1, 0),
            (1 << 14, 1),
            ((1 << 14) + (1 << 12), 2),
            ((1 << 15) - 1, 4),
            (1 << 15, 5),
            ((1 << 36) - 1, BUCKETS - 2),
            (1 << 36, BUCKETS - 1),
            (u64::MAX, BUCKETS - 1),
        ];
        for &(ns, want) in cases {
            assert_eq!(bucket(ns), want, "{ns}");
        }
        // Every value lies at or under its bucket's upper edge, above the previous one.
        for ns in [
            20_000u64,
            1_000_000,
            12_345_678,
            999_999_999,
            30_000_000_000,
        ] {
            let b = bucket(ns);
            assert!(
                ns <= upper_edge(b) && (b == 0 || ns > upper_edge(b - 1)),
                "{ns}"
            );
            // The edge is at most 25 % above the value.
            assert!((upper_edge(b) as f64) < ns as f64 * 1.25, "{ns}");
        }
    }

    #[test]
    fn the_p99_of_summed_workers() {
        let (a, b) = (LiveHistogram::default(), LiveHistogram::default());
        for _ in 0..99 {
            a.record(10_000_000); // 10 ms
        }
        b.record(500_000_000); // 500 ms: the 100th value
        let mut sum = [0u64; BUCKETS];
        a.add_to(&mut sum);
        b.add_to(&mut sum);
        let p99 = quantile(&sum, 0.99).unwrap();
        assert!((0.010..0.0125).contains(&p99), "{p99}");
        let max = quantile(&sum, 1.0).unwrap();
        assert!((0.5..0.625).contains(&max), "{max}");
        a.reset();
        b.reset();
        let mut sum = [0u64; BUCKETS];
        a.add_to(&mut sum);
        assert_eq!(quantile(&sum, 0.99), None);
    }
}
