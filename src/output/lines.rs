//! The log lines parsers depend on (docs/CONTRACT.md §5): step lines, `^taken`, `===RESULT`,
//! `===FINAL_RESULT`, `check_accuracy`, and why a step failed. Formatting only.

use crate::measure::policy::Unshown;
use crate::measure::schedule::Distribution;
use crate::measure::search::Interval;
use crate::measure::stats::PERCENTILES;
use crate::measure::step::{StepSummary, EXTENSION};
use crate::output::accuracy::AccuracyReport;
use crate::tune::predict::Calibration;

/// A diagnostic line on stderr, line and newline in one write: stderr is unbuffered and
/// `eprintln!` writes them apart, so a log that tees stdout and stderr into one file
/// (`scripts/run_local.sh`) could put a stdout line between them.
pub fn note(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    // Nowhere to report a failed diagnostic: stderr itself is what failed.
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
}

/// What a tuning candidate's calibration found (stderr).
pub fn calibration_line(candidate: &str, cal: &Calibration) -> String {
    let closed = if cal.capacity < cal.closed_loop {
        format!(" open loop ({:.1} closed loop)", cal.closed_loop)
    } else {
        String::new()
    };
    format!(
        "loadgen: configuration {candidate}: capacity {:.1} queries/s{closed}, a lone query {:.1} ms (p99 {:.1} ms)",
        cal.capacity,
        cal.unloaded_mean * 1e3,
        cal.unloaded_p99 * 1e3
    )
}

/// A float as Python's `repr` writes it: `0.01`, `0.1`, `1.0`, `1e-05`.
pub fn py_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Python: shortest digits in exponent form, exponent at least two digits.
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A rate as FINAL_RESULT writes it: whole numbers as ints (`128`), else a float.
pub fn py_rate(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        py_float(v)
    }
}

/// `linear/0.01/129`: distribution, target, offered rate.
pub fn step_name(dist: Distribution, target: Option<f64>, qps: f64) -> String {
    let t = target.map_or_else(|| "fixed".to_string(), py_float);
    format!("{}/{t}/{}", dist.as_str(), py_rate(qps))
}

/// `linear/0.01/129 qps=128.72, mean=0.008433, time=3.89, tiles=50:0.0083,…`; for a
/// step in which no query finished, `linear/0.01/129 qps=0.00, no query finished: …`
/// instead: its percentiles would be the ages of dropped queries alone (lower bounds,
/// as small as the time between a query's send and the stop), or nothing, and read
/// like answers a server never gave.
pub fn step_line(name: &str, s: &StepSummary) -> String {
    if s.count == 0 {
        return format!("{name} qps={:.2}, {}", s.qps, no_query_finished(s));
    }
    let tiles: Vec<String> = PERCENTILES
        .iter()
        .map(|&p| format!("{p}:{:.4}", s.percentiles.get(p)))
        .collect();
    format!(
        "{name} qps={:.2}, mean={:.6}, time={:.2}, tiles={}",
        s.qps,
        s.mean,
        s.runtime,
        tiles.join(",")
    )
}

/// What became of a step's queries when none finished.
fn no_query_finished(s: &StepSummary) -> String {
    let mut what = Vec::new();
    if s.abandoned > 0 {
        what.push(format!(
            "{} dropped unanswered when the step stopped",
            s.abandoned
        ));
    }
    if s.errors > 0 {
        what.push(format!("{} failed", s.errors));
    }
    if what.is_empty() {
        what.push(format!("{} sent", s.issued));
    }
    format!("no query finished: {}", what.join(", "))
}

/// How sure a verdict is, in words.
fn how_sure(s: &StepSummary) -> String {
    use crate::measure::step::StopReason as R;
    let conf = format!("{:.4}", s.confidence * 100.0);
    let conf = conf.trim_end_matches('0').trim_end_matches('.');
    match (s.stop(), s.confident()) {
        (R::CertainFail, _) => format!(
            "certain: more than 1 % of the {} queries the step may run",
            s.cap
        ),
        (R::TimeCap, false) => {
            "not confident: issuing stopped at the step's time cap, decided on the point estimate"
                .into()
        }
        (_, true) => format!("confident at {conf} %"),
        (_, false) => format!(
            "not confident at {conf} %: decided on the point estimate after {} queries",
            s.issued
        ),
    }
}

/// Why a step failed (or how a pass stands), in words with its numbers (stderr).
pub fn verdict_text(s: &StepSummary) -> String {
    use crate::measure::step::Verdict as V;
    let ms = |v: f64| format!("{:.2} ms", v * 1e3);
    let target = s.target_latency.unwrap_or(0.0);
    let share = if s.judged > 0 {
        s.late as f64 * 100.0 / s.judged as f64
    } else {
        0.0
    };
    match s.verdict() {
        V::Pass => format!(
            "passed: {} of {} queries exceeded {} ({share:.2} %); {}",
            s.late,
            s.judged,
            ms(target),
            how_sure(s)
        ),
        V::NotJudged => "not judged".into(),
        V::TooManyLate => format!(
            "{} of {} queries exceeded {} ({share:.2} %, more than 1 %); {}{}",
            s.late,
            s.judged,
            ms(target),
            how_sure(s),
            if s.abandoned > 0 {
                format!(
                    "; {} unserved queries were dropped and count at their age",
                    s.abandoned
                )
            } else {
                String::new()
            }
        ),
        V::Errors => format!(
            "{} queries failed: {}",
            s.errors,
            s.error.as_deref().unwrap_or("unknown error")
        ),
        V::GeneratorLate => format!(
            "failed while the load generator or the machine fell behind (issue lateness p99 {}, longest simulated-server stall {}, tolerance {}): not counted against the system",
            ms(s.lateness.p99),
            ms(s.stalls.max),
            ms(target / 4.0)
        ),
        V::MachineSlow => format!(
            "failed while the machine ran slow: backend calls took {} on average ({} calls) against {} in the capacity probe (tolerance +{:.0} % and three standard errors): not counted against the system",
            ms(s.service.mean().unwrap_or(0.0)),
            s.service.calls,
            ms(s.service_ref.and_then(|r| r.mean()).unwrap_or(0.0)),
            crate::measure::stats::SLOWDOWN_TOLERANCE * 100.0
        ),
        V::DrainTimeout => format!(
            "{} queries were still outstanding at the drain timeout",
            s.abandoned
        ),
        V::Interrupted => "interrupted".into(),
    }
}

/// The line after a step that passed: the search takes it as a candidate answer.
pub const TAKEN: &str = "^taken";

/// `===RESULT: linear target_latency=0.01 measured_latency=0.0094… qps=127 interval=121-131`
/// or `qps=FAIL interval=?-3.25`: the answer and where the highest passing rate lies,
/// `?` for an end that no step showed with the stated confidence.
pub fn result_line(
    dist: Distribution,
    target: f64,
    best: Option<&StepSummary>,
    (low, high): (Option<f64>, Option<f64>),
) -> String {
    let end = |x: Option<f64>| x.map_or("?".to_string(), py_rate);
    let interval = format!("interval={}-{}", end(low), end(high));
    match best {
        Some(s) => format!(
            "===RESULT: {} target_latency={} measured_latency={} qps={} {interval}",
            dist.as_str(),
            py_float(target),
            py_float(s.p99()),
            py_rate(s.offered_qps.unwrap_or(s.qps))
        ),
        None => format!(
            "===RESULT: {} target_latency={} qps=FAIL {interval}",
            dist.as_str(),
            py_float(target)
        ),
    }
}

/// A `--time` beyond this (an hour) is no advice: the end's late fraction is too near
/// 1 % for any step a user would run.
const PRACTICAL_S: f64 = 3600.0;

/// One sentence per interval end that no step showed with `confidence` (none when
/// both are shown): what would show it, as the `--time` that would hold enough
/// queries (a step may run to [`EXTENSION`] × `--time`).
pub fn interval_note(interval: &Interval, confidence: f64, time: f64) -> Option<String> {
    let pct = py_float(100.0 * confidence);
    let want = |u: &Unshown, what: &str| -> String {
        match u.queries {
            Some(n) if u.rate > 0.0 && n as f64 / (EXTENSION as f64 * u.rate) > PRACTICAL_S => {
                format!(
                    "no rate was shown to {what} with {pct} % confidence: at {} qps the late fraction is too near 1 % for a step of practical length to show it",
                    py_rate(u.rate)
                )
            }
            Some(n) if u.rate > 0.0 => {
                let secs = (n as f64 / (EXTENSION as f64 * u.rate)).ceil();
                let hint = if secs > time {
                    format!("; --time {secs} would give one")
                } else {
                    String::new()
                };
                format!(
                    "no rate was shown to {what} with {pct} % confidence: a step at {} qps needs about {n} queries{hint}",
                    py_rate(u.rate)
                )
            }
            _ => format!("no rate was shown to {what} with {pct} % confidence"),
        }
    };
    let parts: Vec<String> = [
        interval.low.err().map(|u| want(&u, "pass")),
        interval.high.err().map(|u| want(&u, "fail")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Best offered rate per distribution and target; -1 for FAIL. Targets in the order run.
#[derive(Debug, Default, Clone)]
pub struct FinalResults(pub Vec<(Distribution, Vec<(f64, f64)>)>);

impl FinalResults {
    pub fn set(&mut self, dist: Distribution, target: f64, qps: f64) {
        let i = match self.0.iter().position(|(d, _)| *d == dist) {
            Some(i) => i,
            None => {
                self.0.push((dist, Vec::new()));
                self.0.len() - 1
            }
        };
        self.0[i].1.push((target, qps));
    }

    pub fn get(&self, dist: Distribution) -> &[(f64, f64)] {
        self.0
            .iter()
            .find(|(d, _)| *d == dist)
            .map_or(&[], |(_, v)| v)
    }

    /// `===FINAL_RESULT: {'linear': {'0.01': 128}, 'exponential': {}}` (a Python dict).
    pub fn line(&self) -> String {
        let dists = [Distribution::Linear, Distribution::Exponential];
        let parts: Vec<String> = dists
            .iter()
            .map(|&d| {
                let inner: Vec<String> = self
                    .get(d)
                    .iter()
                    .map(|(t, q)| format!("'{}': {}", py_float(*t), py_rate(*q)))
                    .collect();
                format!("'{}': {{{}}}", d.as_str(), inner.join(", "))
            })
            .collect();
        format!("===FINAL_RESULT: {{{}}}", parts.join(", "))
    }
}

/// `check_accuracy accuracy=76.46, good_items=382, total_items=500`
pub fn accuracy_line(a: &AccuracyReport) -> String {
    format!(
        "check_accuracy accuracy={:.2}, good_items={}, total_items={}",
        a.accuracy, a.good_items, a.total_items
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unshown_end_names_the_time_that_would_show_it_if_any_would() {
        let unshown = |rate: f64, queries: Option<u64>| Unshown { rate, queries };
        // (low end, --time, the sentence holds)
        let cases = [
            (
                unshown(20.0, Some(400)),
                10.0,
                "a step at 20 qps needs about 400 queries",
            ),
            (
                unshown(20.0, Some(2720)),
                10.0,
                "needs about 2720 queries; --time 34 would give one",
            ),
            (
                unshown(5.41, Some(2_772_136)),
                10.0,
                "at 5.41 qps the late fraction is too near 1 % for a step of practical length",
            ),
            (
                unshown(20.0, None),
                10.0,
                "no rate was shown to pass with 95.0 % confidence",
            ),
        ];
        for (low, time, want) in cases {
            let i = Interval {
                low: Err(low),
                high: Ok(30.0),
            };
            let note = interval_note(&i, 0.95, time).unwrap();
            assert!(note.contains(want), "{note}");
            assert!(
                !note.contains("--time") || !want.contains("practical"),
                "{note}"
            );
        }
        let shown = Interval {
            low: Ok(20.0),
            high: Ok(30.0),
        };
        assert_eq!(interval_note(&shown, 0.95, 10.0), None);
    }

    #[test]
    fn floats_print_like_python() {
        for (v, s) in [
            (0.01, "0.01"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (0.2, "0.2"),
            (0.05, "0.05"),
            (10.0, "10.0"),
            (0.00001, "1e-05"),
            (0.009488344192504883, "0.009488344192504883"),
        ] {
            assert_eq!(py_float(v), s);
        }
        assert_eq!(py_rate(128.0), "128");
        assert_eq!(py_rate(-1.0), "-1");
        assert_eq!(py_rate(2.5), "2.5");
    }

    #[test]
    fn log_lines_have_the_old_shapes() {
        let s = crate::measure::step::example_step(129.0);
        let name = step_name(Distribution::Linear, Some(0.01), 129.0);
        assert_eq!(
            step_line(&name, &s),
            "linear/0.01/129 qps=128.72, mean=0.008433, time=3.89, tiles=50:0.0083,80:0.0088,90:0.0092,95:0.0097,99:0.0105,99.9:0.0109"
        );
        assert_eq!(
            result_line(Distribution::Linear, 0.01, Some(&s), (Some(121.0), Some(131.0))),
            "===RESULT: linear target_latency=0.01 measured_latency=0.0105 qps=129 interval=121-131"
        );
        assert_eq!(
            result_line(Distribution::Exponential, 0.01, None, (None, Some(3.25))),
            "===RESULT: exponential target_latency=0.01 qps=FAIL interval=?-3.25"
        );
        let mut f = FinalResults::default();
        f.set(Distribution::Linear, 0.01, 128.0);
        f.set(Distribution::Linear, 0.05, 142.0);
        assert_eq!(
            f.line(),
            "===FINAL_RESULT: {'linear': {'0.01': 128, '0.05': 142}, 'exponential': {}}"
        );
        f.set(Distribution::Exponential, 0.01, -1.0);
        assert!(f.line().ends_with("'exponential': {'0.01': -1}}"));
    }

    #[test]
    fn a_step_in_which_no_query_finished_shows_no_latencies() {
        let mut s = crate::measure::step::example_step(1000.0);
        // All dropped when the step stopped, their ages in the percentiles.
        s.count = 0;
        s.qps = 0.0;
        s.abandoned = 4;
        s.judged = 4;
        let name = step_name(Distribution::Linear, Some(1e-4), 1000.0);
        assert_eq!(
            step_line(&name, &s),
            "linear/0.0001/1000 qps=0.00, no query finished: 4 dropped unanswered when the step stopped"
        );
        s.errors = 2;
        assert!(step_line(&name, &s).ends_with("when the step stopped, 2 failed"));
        s.abandoned = 0;
        assert!(step_line(&name, &s).ends_with("no query finished: 2 failed"));
        s.errors = 0;
        s.issued = 0;
        assert!(step_line(&name, &s).ends_with("no query finished: 0 sent"));
    }
}
