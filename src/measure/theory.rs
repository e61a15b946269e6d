//! Queueing formulas with known answers: what tuning predicts from and what the truth
//! benchmarks of the search check against.

/// Erlang C: the chance that a query waits in M/M/c with `c` servers and offered
/// load `a = λ/μ` (< c).
pub fn erlang_c(c: usize, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    let c_f = c as f64;
    if a >= c_f {
        return 1.0;
    }
    // Erlang B by its stable recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    let rho = a / c_f;
    b / (1.0 - rho + rho * b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_the_textbook_cases() {
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(erlang_c(3, 0.0), 0.0);
        assert_eq!(erlang_c(2, 2.5), 1.0);
    }
}
