//! The verdict of a step (SPEC §5): did at most 1 % of its queries exceed the target,
//! and how sure are we? Pure arithmetic on exact counts, so the same code judges real
//! steps and the virtual-clock steps of the tests.
//!
//! A *confident pass* is MLPerf LoadGen's early-stopping rule: with `t` late queries
//! among `n`, the step passes when `P[Binomial(n, 0.01) ≤ t] ≤ 1 − confidence`, i.e.
//! a system whose true late fraction were 1 % would show so few late queries only
//! rarely. LoadGen phrases it as the fewest under-latency queries `h(t)` that must
//! accompany `t` over-latency ones (459, 661, 836 for t = 0, 1, 2 at 99 %); we use the
//! total `n = h(t) + t` (459, 662, 838). A *confident fail* is the mirror image:
//! `P[Binomial(n, 0.01) ≥ t] ≤ 1 − confidence`.

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

/// ln P[Binomial(n, p) = k], summed over a range of k, in log space so that large
/// `n` neither underflows nor overflows.
fn log_terms(n: u64, p: f64, ks: std::ops::RangeInclusive<u64>) -> f64 {
    let (lo, hi) = (*ks.start(), (*ks.end()).min(n));
    if lo > hi {
        return f64::NEG_INFINITY;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, lo) by the product formula (lo is small where we use it: t or t+1).
    let mut log_c = 0.0;
    for j in 0..lo {
        log_c += ((n - j) as f64).ln() - ((j + 1) as f64).ln();
    }
    let mut term = log_c + lo as f64 * lp + (n - lo) as f64 * lq;
    let mut max = term;
    let mut acc = 1.0; // sum of exp(term_k − max)
    let mut k = lo;
    while k < hi {
        term += ((n - k) as f64).ln() - ((k + 1) as f64).ln() + lp - lq;
        k += 1;
        if term > max {
            acc = acc * (max - term).exp() + 1.0;
            max = term;
        } else {
            acc += (term - max).exp();
            // Past the mode the terms only shrink: stop once they no longer count.
            if term - max < -40.0 && (k as f64) > n as f64 * p {
                break;
            }
        }
    }
    max + acc.ln()
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

/// The confidence rule, with the bounds it needs memoised per late count (a step asks
/// every millisecond; the answers only change when `t` does).
#[derive(Clone, Debug)]
pub struct Rule {
    confidence: f64,
    /// `min_total[t]`: fewest queries that make `t` late a confident pass.
    min_total: Vec<u64>,
    /// `max_total[t]`: most queries for which `t` late is still a confident fail.
    max_total: Vec<u64>,
}

impl Rule {
    /// `confidence` in (0.5, 1): checked by the settings.
    pub fn new(confidence: f64) -> Rule {
        Rule {
            confidence,
            min_total: Vec::new(),
            max_total: Vec::new(),
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
        while self.min_total.len() as u64 <= t {
            let tt = self.min_total.len() as u64;
            let alpha = self.alpha();
            // P[X ≤ t] falls as n grows: bracket, then bisect on n.
            let mut lo = self.min_total.last().copied().unwrap_or(1).max(tt + 1);
            let mut hi = lo.max(1);
            while binomial_cdf(hi, tt, LATE_FRACTION) > alpha {
                lo = hi;
                hi = hi.saturating_mul(2);
            }
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if binomial_cdf(mid, tt, LATE_FRACTION) <= alpha {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            self.min_total.push(lo);
        }
        self.min_total[t as usize]
    }

    /// Most queries `n` such that `t` late among them is a confident fail (0: none).
    pub fn max_total_for_fail(&mut self, t: u64) -> u64 {
        while self.max_total.len() as u64 <= t {
            let tt = self.max_total.len() as u64;
            let alpha = self.alpha();
            // P[X ≥ t] rises with n; the largest n with P ≤ alpha, at least t itself.
            let value = if tt == 0 || binomial_sf(tt, tt, LATE_FRACTION) > alpha {
                0
            } else {
                let mut lo = tt; // passes
                let mut hi = tt.saturating_mul(2).max(tt + 1);
                while binomial_sf(hi, tt, LATE_FRACTION) <= alpha {
                    lo = hi;
                    hi = hi.saturating_mul(2);
                }
                // lo passes, hi fails.
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if binomial_sf(mid, tt, LATE_FRACTION) <= alpha {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                lo
            };
            self.max_total.push(value);
        }
        self.max_total[t as usize]
    }

    /// What `late` among `judged` queries says.
    pub fn evidence(&mut self, judged: u64, late: u64) -> Evidence {
        if judged >= self.min_total_for_pass(late) {
            Evidence::ConfidentPass
        } else if late > 0 && judged <= self.max_total_for_fail(late) {
            Evidence::ConfidentFail
        } else {
            Evidence::Undecided
        }
    }
}

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
