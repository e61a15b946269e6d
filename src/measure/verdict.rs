//! The verdict of a step (docs/CONTRACT.md §7.1): did at most 1 % of its queries
//! exceed the target, and how sure are we? Pure arithmetic on exact counts, so the same code judges real
//! steps and the virtual-clock steps of the tests.
//!
//! A *confident pass* is MLPerf LoadGen's early-stopping rule: with `t` late queries
//! among `n`, the step passes when `P[Binomial(n, 0.01) ≤ t] ≤ 1 − confidence`, i.e.
//! a system whose true late fraction were 1 % would show so few late queries only
//! rarely. LoadGen phrases it as the fewest under-latency queries `h(t)` that must
//! accompany `t` over-latency ones (459, 661, 836 for t = 0, 1, 2 at 99 %); we use the
//! total `n = h(t) + t` (459, 662, 838). A *confident fail* is the mirror image:
//! `P[Binomial(n, 0.01) ≥ t] ≤ 1 − confidence`.

use std::collections::BTreeMap;

/// The late fraction a passing step may have: p99 ≤ target ⇔ at most 1 % late.
pub const LATE_FRACTION: f64 = 0.01;

/// What the counts say so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Late fraction below 1 % with the stated confidence.
    ConfidentPass,
    /// Late fraction above 1 % with the stated confidence.
    ConfidentFail,
    /// Not yet sure either way.
    Undecided,
}

/// ln n!, exactly summed below 32 and by Stirling's series above (error < 1e-15
/// there), so that a probability mass costs O(1) whatever `n` is.
fn ln_factorial(n: u64) -> f64 {
    if n < 32 {
        return (2..=n).map(|k| (k as f64).ln()).sum();
    }
    let x = n as f64;
    let x2 = x * x;
    x * x.ln() - x + 0.5 * (std::f64::consts::TAU * x).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x * x2 * x2)
}

/// ln P[Binomial(n, p) = k].
fn ln_pmf(n: u64, p: f64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
        + k as f64 * p.ln()
        + (n - k) as f64 * (1.0 - p).ln()
}

/// ln P[Binomial(n, p) = k], summed over a range of k, in log space so that large
/// `n` neither underflows nor overflows. The masses fall on both sides of the mode,
/// so the sum starts at the range's point nearest the mode and walks outwards until
/// the terms no longer count: O(√n) terms, however many the range holds (pooled
/// counts of overloaded steps reach millions).
fn log_terms(n: u64, p: f64, ks: std::ops::RangeInclusive<u64>) -> f64 {
    let (lo, hi) = (*ks.start(), (*ks.end()).min(n));
    if lo > hi {
        return f64::NEG_INFINITY;
    }
    let odds = (p / (1.0 - p)).ln();
    let mode = (((n + 1) as f64 * p).floor() as u64).clamp(lo, hi);
    let top = ln_pmf(n, p, mode);
    let mut acc = 1.0; // sum of exp(term_k − top)
    let (mut term, mut k) = (top, mode);
    while k < hi {
        term += ((n - k) as f64).ln() - ((k + 1) as f64).ln() + odds;
        k += 1;
        acc += (term - top).exp();
        if term - top < -40.0 {
            break;
        }
    }
    let (mut term, mut k) = (top, mode);
    while k > lo {
        term += (k as f64).ln() - ((n - k + 1) as f64).ln() - odds;
        k -= 1;
        acc += (term - top).exp();
        if term - top < -40.0 {
            break;
        }
    }
    top + acc.ln()
}

/// P[Binomial(n, p) ≤ t].
pub fn binomial_cdf(n: u64, t: u64, p: f64) -> f64 {
    if t >= n {
        return 1.0;
    }
    if (t as f64) < n as f64 * p {
        log_terms(n, p, 0..=t).exp().min(1.0)
    } else {
        (1.0 - log_terms(n, p, t + 1..=n).exp()).max(0.0)
    }
}

/// P[Binomial(n, p) ≥ t].
pub fn binomial_sf(n: u64, t: u64, p: f64) -> f64 {
    if t == 0 {
        return 1.0;
    }
    1.0 - binomial_cdf(n, t - 1, p)
}

/// The confidence rule. The bounds are memoised per late count (a step asks every
/// millisecond; they only change when `t` does), each found on its own, so that a
/// large `t` costs a bisection, not a table up to it.
#[derive(Clone, Debug)]
pub struct Rule {
    confidence: f64,
    /// Fewest queries that make `t` late a confident pass, per `t` asked.
    min_total: BTreeMap<u64, u64>,
    /// Most queries for which `t` late is still a confident fail, per `t` asked.
    max_total: BTreeMap<u64, u64>,
}

impl Rule {
    /// `confidence` in (0.5, 1): checked by the settings.
    pub fn new(confidence: f64) -> Rule {
        Rule {
            confidence,
            min_total: BTreeMap::new(),
            max_total: BTreeMap::new(),
        }
    }

    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }

    /// Fewest queries `n` such that `t` late among them is a confident pass.
    pub fn min_total_for_pass(&mut self, t: u64) -> u64 {
        let alpha = self.alpha();
        *self.min_total.entry(t).or_insert_with(|| {
            // P[X ≤ t] falls as n grows: bracket, then bisect on n.
            let mut lo = t + 1;
            let mut hi = lo;
            while binomial_cdf(hi, t, LATE_FRACTION) > alpha {
                lo = hi;
                hi = hi.saturating_mul(2);
            }
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if binomial_cdf(mid, t, LATE_FRACTION) <= alpha {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        })
    }

    /// Most queries `n` such that `t` late among them is a confident fail (0: none).
    pub fn max_total_for_fail(&mut self, t: u64) -> u64 {
        let alpha = self.alpha();
        *self.max_total.entry(t).or_insert_with(|| {
            // P[X ≥ t] rises with n; the largest n with P ≤ alpha, at least t itself.
            if t == 0 || binomial_sf(t, t, LATE_FRACTION) > alpha {
                return 0;
            }
            let mut lo = t; // passes
            let mut hi = t.saturating_mul(2).max(t + 1);
            while binomial_sf(hi, t, LATE_FRACTION) <= alpha {
                lo = hi;
                hi = hi.saturating_mul(2);
            }
            // lo passes, hi fails.
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if binomial_sf(mid, t, LATE_FRACTION) <= alpha {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        })
    }

    /// What `late` among `judged` queries says. Up to [`MEMO_LATE`] late queries
    /// through the memoised bounds (a step asks every millisecond); above, from the
    /// tails themselves, two evaluations, since pooled counts can hold hundreds of
    /// thousands of late queries (both agree: P[X ≤ t] falls and P[X ≥ t] rises with
    /// `n`).
    pub fn evidence(&mut self, judged: u64, late: u64) -> Evidence {
        let (pass, fail) = if late <= MEMO_LATE {
            (
                judged >= self.min_total_for_pass(late),
                late > 0 && judged <= self.max_total_for_fail(late),
            )
        } else {
            let alpha = self.alpha();
            (
                binomial_cdf(judged, late, LATE_FRACTION) <= alpha,
                binomial_sf(judged, late, LATE_FRACTION) <= alpha,
            )
        };
        if pass {
            Evidence::ConfidentPass
        } else if fail {
            Evidence::ConfidentFail
        } else {
            Evidence::Undecided
        }
    }
}

/// Late counts up to which [`Rule::evidence`] memoises its bounds.
const MEMO_LATE: u64 = 4096;

/// The point estimate: at most 1 % of the judged queries late.
pub fn point_pass(judged: u64, late: u64) -> bool {
    judged > 0 && late as f64 <= LATE_FRACTION * judged as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_numbers_match_mlperf_loadgen() {
        let mut r = Rule::new(0.99);
        // LoadGen's h(t) under-latency queries plus the t over-latency ones.
        assert_eq!(r.min_total_for_pass(0), 459);
        assert_eq!(r.min_total_for_pass(1), 661 + 1);
        assert_eq!(r.min_total_for_pass(2), 836 + 2);
        // Just below each bound the pass is not yet confident.
        assert_eq!(r.evidence(458, 0), Evidence::Undecided);
        assert_eq!(r.evidence(459, 0), Evidence::ConfidentPass);
        assert_eq!(r.evidence(661, 1), Evidence::Undecided);
        assert_eq!(r.evidence(662, 1), Evidence::ConfidentPass);
        // A looser confidence needs fewer queries.
        assert!(Rule::new(0.95).min_total_for_pass(0) < 459);
    }

    #[test]
    fn binomial_tails_agree_with_direct_sums() {
        // Direct sums for small n, where the naive formula is exact enough.
        fn direct(n: u64, t: u64, p: f64) -> f64 {
            let mut s = 0.0;
            let mut c = 1.0f64;
            for k in 0..=t.min(n) {
                if k > 0 {
                    c *= (n - k + 1) as f64 / k as f64;
                }
                s += c * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32);
            }
            s
        }
        for &(n, t) in &[(10, 0), (100, 1), (300, 3), (500, 9), (200, 150), (50, 49)] {
            let a = binomial_cdf(n, t, 0.01);
            let b = direct(n, t, 0.01);
            assert!((a - b).abs() < 1e-9, "n={n} t={t}: {a} vs {b}");
        }
        // Large n stays finite and sensible: mean 10 000, so 9 000 late is far below.
        assert!(binomial_cdf(1_000_000, 9_000, 0.01) < 1e-20);
        assert!(binomial_sf(1_000_000, 11_000, 0.01) < 1e-20);
        assert!((binomial_cdf(1_000_000, 10_000, 0.01) - 0.5).abs() < 0.01);
    }

    #[test]
    fn evidence_agrees_with_the_bounds_and_stays_cheap_for_huge_pooled_counts() {
        let mut r = Rule::new(0.99);
        // Below MEMO_LATE through the memo, above it through the tails: both agree.
        for t in [0u64, 1, 2, 5, 20, 137, MEMO_LATE + 1, 20_000] {
            let pass = r.min_total_for_pass(t);
            assert_eq!(r.evidence(pass, t), Evidence::ConfidentPass, "t={t}");
            assert_ne!(r.evidence(pass - 1, t), Evidence::ConfidentPass, "t={t}");
            let fail = r.max_total_for_fail(t);
            if fail > 0 {
                assert_eq!(r.evidence(fail, t), Evidence::ConfidentFail, "t={t}");
                assert_ne!(r.evidence(fail + 1, t), Evidence::ConfidentFail, "t={t}");
            }
        }
        // The pooled counts of a search over overloaded high-rate steps (a network
        // server at tens of thousands of queries per second): this used to tabulate
        // every bound up to t and did not finish within hours.
        assert_eq!(r.evidence(7_735_001, 400_000), Evidence::ConfidentFail);
        assert_eq!(r.evidence(7_735_001, 70_000), Evidence::ConfidentPass);
        assert_eq!(r.evidence(7_735_001, 77_350), Evidence::Undecided);
        let n = r.min_total_for_pass(100_000);
        assert!((9_900_000..10_100_000).contains(&n), "{n}");
    }

    #[test]
    fn a_certain_excess_is_a_confident_fail_and_a_small_one_is_not() {
        let mut r = Rule::new(0.99);
        // 5 late among 100: P[X ≥ 5 | n=100, 1 %] = 0.34 % ≤ 1 %.
        assert_eq!(r.evidence(100, 5), Evidence::ConfidentFail);
        // 3 late among 100: P[X ≥ 3] = 7.9 %: not sure.
        assert_eq!(r.evidence(100, 3), Evidence::Undecided);
        // 12 late among 1000 is above 1 % but not confidently so.
        assert_eq!(r.evidence(1000, 12), Evidence::Undecided);
        assert!(!point_pass(1000, 12) && point_pass(1000, 10));
        // The fail bound grows with the late count.
        let b: Vec<u64> = (1..6).map(|t| r.max_total_for_fail(t)).collect();
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        assert_eq!(r.max_total_for_fail(0), 0);
    }
}
