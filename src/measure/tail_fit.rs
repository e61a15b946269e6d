//! The late fraction as a function of the offered rate, fitted across a search's steps
//! (docs/METHOD.md, "The interval"): `logit f(r) = a + b·r`, a binomial model whose
//! variance is inflated by the bursts of late queries and by the fit's own lack of
//! fit. The rate where the fitted fraction crosses 1 % is the answer's estimate; the
//! rates where the band around the fit crosses it (Fieller's interval for the ratio
//! `(logit 0.01 − a) / b`) are the interval's ends.
//!
//! Why a model: near the answer the late queries come in bursts (a design effect of
//! 5–20), so a single rate's own steps need 3,000–10,000 queries to show a pass or a
//! fail at 95 % there, while a search holds 15,000–20,000 queries within 10 % of its
//! answer spread over a dozen rates. Each rate alone shows little; together, with a
//! tail that grows smoothly with the rate (exponentially on a queue: an M/M/1's late
//! fraction is `exp(−(μ − λ)T)`), they pin the crossing down to a few percent. The
//! model is checked against the steps: its scatter beyond what bursts explain widens
//! the band, and a fit that cannot tell the slope from flat shows nothing (the
//! monotone windows of [`crate::measure::policy::interval`] are used instead).
//!
//! Pure: no clock, no I/O; tested by tables.

/// One step's counts (or several steps' at one rate, pooled): `judged` queries,
/// `late` of them over the target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    pub rate: f64,
    pub judged: u64,
    pub late: u64,
}

/// The fitted crossing and the band's ends, in queries per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crossing {
    /// Where the fitted late fraction is 1 %.
    pub estimate: f64,
    /// The lowest rate whose band reaches 1 %: below it the fraction is under 1 %
    /// with the stated confidence.
    pub low: f64,
    /// The highest rate whose band reaches 1 %: above it the fraction is over 1 %.
    pub high: f64,
    /// The variance inflation used: the larger of the bursts' design effect and the
    /// fit's own scatter (the median squared Pearson residual over 0.455).
    pub dispersion: f64,
}

/// The rates used lie within this factor of the answer either way: near the crossing
/// a queue's tail is close to log-linear in the rate, far from it (a half-loaded
/// server, a saturated one) it is not.
pub const SPAN: f64 = 1.35;

/// Fewer distinct rates than this, or fewer late queries, show nothing: two rates
/// always fit a line exactly and leave no way to check it.
pub const MIN_RATES: usize = 3;
pub const MIN_LATE: u64 = 10;

/// `logit(0.01)`: the 1 % boundary on the model's scale.
fn boundary(fraction: f64) -> f64 {
    (fraction / (1.0 - fraction)).ln()
}

/// The crossing of `fraction` (0.01) by the late fraction fitted to `points`, its
/// ends two-sided at `z` standard errors (1.645: 95 % each), with the counts'
/// variance inflated by at least `burst`. `None` when the points cannot show one:
/// too few rates or late queries, a slope not told from flat at `z`, or a crossing
/// outside the rates measured.
pub fn crossing(points: &[Counts], fraction: f64, z: f64, burst: f64) -> Option<Crossing> {
    let pts: Vec<Counts> = points.iter().copied().filter(|p| p.judged > 0).collect();
    let late: u64 = pts.iter().map(|p| p.late).sum();
    let mut rates: Vec<f64> = pts.iter().map(|p| p.rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    if rates.len() < MIN_RATES || late < MIN_LATE || pts.iter().all(|p| p.late == 0) {
        return None;
    }
    let (lo_r, hi_r) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(p.rate), b.max(p.rate))
    });
    if hi_r <= lo_r {
        return None;
    }
    // Centre and scale the rate so the 2×2 system stays well conditioned.
    let (c, s) = ((lo_r + hi_r) / 2.0, (hi_r - lo_r) / 2.0);
    let (a, b, info) = irls(&pts, c, s)?;
    // The scatter about the fit that the bursts do not explain: the median squared
    // Pearson residual over its expectation under χ²₁ (0.455). Given one point per
    // step, it sees steps at one rate that disagree; a median, so that one step
    // caught in one burst (45 queries, 20 late at 3 %: a residual of 16 standard
    // errors) does not spread over every rate as a mean of squares would.
    let mut squares: Vec<f64> = pts
        .iter()
        .map(|p| {
            let f = expit(a + b * (p.rate - c) / s);
            let n = p.judged as f64;
            let var = n * f * (1.0 - f);
            if var > 0.0 {
                (p.late as f64 - n * f).powi(2) / var
            } else {
                0.0
            }
        })
        .collect();
    squares.sort_by(f64::total_cmp);
    let scatter = squares[squares.len() / 2] / 0.455;
    let dispersion = burst.max(scatter).max(1.0);
    // Covariance of (a, b): dispersion × the inverse information.
    let det = info[0] * info[2] - info[1] * info[1];
    if det <= 0.0 {
        return None;
    }
    let (vaa, vab, vbb) = (
        dispersion * info[2] / det,
        -dispersion * info[1] / det,
        dispersion * info[0] / det,
    );
    // Fieller: the x (scaled rate) where |a + b x − L| ≤ z·sd(a + b x).
    let l = boundary(fraction);
    let z2 = z * z;
    let qa = b * b - z2 * vbb;
    if b <= 0.0 || qa <= 0.0 {
        return None;
    }
    let qb = 2.0 * (b * (a - l) - z2 * vab);
    let qc = (a - l).powi(2) - z2 * vaa;
    let disc = qb * qb - 4.0 * qa * qc;
    if disc < 0.0 {
        return None;
    }
    let root = disc.sqrt();
    let (x1, x2) = ((-qb - root) / (2.0 * qa), (-qb + root) / (2.0 * qa));
    let estimate = c + s * (l - a) / b;
    let (low, high) = (c + s * x1, c + s * x2);
    // A crossing outside the rates measured is an extrapolation the steps do not
    // support.
    if !(lo_r..=hi_r).contains(&estimate) || !low.is_finite() || !high.is_finite() {
        return None;
    }
    Some(Crossing {
        estimate,
        low,
        high,
        dispersion,
    })
}

/// The standard normal quantile at `p` (0 < p < 1), to about 5e-4 (Abramowitz and
/// Stegun 26.2.23): the `z` of a one-sided confidence.
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = p.min(1.0 - p);
    let t = (-2.0 * tail.ln()).sqrt();
    let z = t
        - (2.515517 + 0.802853 * t + 0.010328 * t * t)
            / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
    if p < 0.5 {
        -z
    } else {
        z
    }
}

fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Binomial logistic regression of `late / judged` on the scaled rate by iteratively
/// reweighted least squares: `(a, b, [I_aa, I_ab, I_bb])`, the information matrix at
/// the fit. `None` when it does not converge (a perfect separation: no late query
/// below some rate and all late above it, which a cliff can give).
fn irls(pts: &[Counts], c: f64, s: f64) -> Option<(f64, f64, [f64; 3])> {
    let (judged, late) = pts.iter().fold((0.0, 0.0), |(j, l), p| {
        (j + p.judged as f64, l + p.late as f64)
    });
    let mean = (late / judged).clamp(1e-6, 1.0 - 1e-6);
    let (mut a, mut b) = ((mean / (1.0 - mean)).ln(), 0.0);
    for _ in 0..50 {
        let mut info = [0.0; 3];
        let mut score = [0.0; 2];
        for p in pts {
            let x = (p.rate - c) / s;
            let f = expit(a + b * x);
            let n = p.judged as f64;
            let w = n * f * (1.0 - f);
            let r = p.late as f64 - n * f;
            info[0] += w;
            info[1] += w * x;
            info[2] += w * x * x;
            score[0] += r;
            score[1] += r * x;
        }
        let det = info[0] * info[2] - info[1] * info[1];
        if det <= 0.0 || !det.is_finite() {
            return None;
        }
        let da = (info[2] * score[0] - info[1] * score[1]) / det;
        let db = (info[0] * score[1] - info[1] * score[0]) / det;
        a += da;
        b += db;
        if !a.is_finite() || !b.is_finite() || b.abs() > 200.0 {
            return None;
        }
        if da.abs() < 1e-9 && db.abs() < 1e-9 {
            return Some((a, b, info));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(rows: &[(f64, u64, u64)]) -> Vec<Counts> {
        rows.iter()
            .map(|&(rate, judged, late)| Counts { rate, judged, late })
            .collect()
    }

    /// Expected counts of an M/M/1 (μ = 200/s, T = 50 ms: f = exp(−(200 − r)·0.05),
    /// crossing 1 % at 107.9), `n` queries a rate.
    fn mm1(rates: &[f64], n: u64) -> Vec<Counts> {
        rates
            .iter()
            .map(|&rate| Counts {
                rate,
                judged: n,
                late: (n as f64 * (-(200.0 - rate) * 0.05f64).exp()).round() as u64,
            })
            .collect()
    }

    #[test]
    fn normal_quantiles_are_the_tables_ones() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.2816),
            (0.95, 1.6449),
            (0.975, 1.96),
            (0.99, 2.3263),
            (0.05, -1.6449),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-3,
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }

    #[test]
    fn exact_counts_put_the_crossing_at_theory_and_the_band_around_it() {
        let c = crossing(
            &mm1(&[95.0, 100.0, 105.0, 110.0, 115.0, 120.0], 20_000),
            0.01,
            1.645,
            1.0,
        )
        .unwrap();
        assert!((c.estimate - 107.9).abs() < 0.5, "{c:?}");
        assert!(c.low < c.estimate && c.estimate < c.high, "{c:?}");
        assert!(c.high - c.low < 5.0, "{c:?}");
    }

    #[test]
    fn bursts_widen_the_band() {
        let p = mm1(&[95.0, 100.0, 105.0, 110.0, 115.0, 120.0], 10_000);
        let one = crossing(&p, 0.01, 1.645, 1.0).unwrap();
        let ten = crossing(&p, 0.01, 1.645, 10.0).unwrap();
        assert!(
            ten.high - ten.low > 2.5 * (one.high - one.low),
            "{one:?} {ten:?}"
        );
        assert_eq!(ten.dispersion, 10.0);
    }

    #[test]
    fn scatter_beyond_the_bursts_widens_the_band_too() {
        // The same rates, the late counts shuffled out of order: a poor fit.
        let smooth = pts(&[
            (100.0, 2000, 8),
            (105.0, 2000, 14),
            (110.0, 2000, 23),
            (115.0, 2000, 37),
        ]);
        let rough = pts(&[
            (100.0, 2000, 20),
            (105.0, 2000, 4),
            (110.0, 2000, 40),
            (115.0, 2000, 18),
        ]);
        let a = crossing(&smooth, 0.01, 1.645, 1.0).unwrap();
        assert!(a.dispersion < 2.0, "{a:?}");
        match crossing(&rough, 0.01, 1.645, 1.0) {
            None => {}
            Some(b) => {
                assert!(b.dispersion > 5.0, "{b:?}");
                assert!(b.high - b.low > 2.0 * (a.high - a.low), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn what_cannot_show_a_crossing_shows_none() {
        // (rows, why)
        type Rows<'a> = &'a [(f64, u64, u64)];
        let cases: &[(Rows, &str)] = &[
            (&[(100.0, 1000, 5), (110.0, 1000, 15)], "two rates"),
            (
                &[(100.0, 1000, 1), (105.0, 1000, 2), (110.0, 1000, 3)],
                "six late queries",
            ),
            (
                &[(100.0, 1000, 10), (105.0, 1000, 10), (110.0, 1000, 10)],
                "flat",
            ),
            (
                &[(100.0, 1000, 30), (105.0, 1000, 20), (110.0, 1000, 10)],
                "falling",
            ),
            (
                &[(100.0, 1000, 20), (105.0, 1000, 30), (110.0, 1000, 40)],
                "crossing below the rates",
            ),
            (
                &[(100.0, 1000, 0), (105.0, 1000, 0), (110.0, 1000, 0)],
                "no late query",
            ),
        ];
        for (rows, why) in cases {
            assert_eq!(crossing(&pts(rows), 0.01, 1.645, 1.0), None, "{why}");
        }
    }

    #[test]
    fn a_cliff_is_smoothed_into_a_slope() {
        // No late query up to 35 qps, overloaded from 36: the model puts a slope where
        // the steps jump, and its band can leave out 35, a rate that passed. The
        // policy therefore uses a band only where it holds the search's answer.
        let rows = pts(&[
            (30.0, 300, 0),
            (33.0, 330, 0),
            (35.0, 350, 1),
            (36.0, 150, 20),
            (38.0, 100, 40),
        ]);
        let c = crossing(&rows, 0.01, 1.645, 1.0).unwrap();
        assert!(c.high < 35.0, "{c:?}");
    }
}
