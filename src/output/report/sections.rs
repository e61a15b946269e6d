//! The report's plots and tables, built from results.json documents (never from a
//! running measurement: a report of a finished run and `loadgen report` are the same).
//! Every reader here is lenient: a field that is missing or of another type leaves a
//! point or a row out, never fails the page.

use serde_json::{Map, Value};

use super::plot::{Band, Mark, Plot, Point, Rule, Scale, Series};
use super::spectrum;

/// One results.json and the name it goes by in legends and tables.
pub struct Source {
    pub label: String,
    pub doc: Value,
}

/// The distributions in the order loadgen runs them, then any other a file has.
pub fn distributions(sources: &[Source]) -> Vec<String> {
    let mut out: Vec<String> = vec!["linear".into(), "exponential".into()];
    for s in sources {
        for key in ["scan", "results"] {
            if let Some(m) = s.doc.get(key).and_then(Value::as_object) {
                for d in m.keys() {
                    if !out.contains(d) {
                        out.push(d.clone());
                    }
                }
            }
        }
    }
    out.retain(|d| {
        sources
            .iter()
            .any(|s| !steps(&s.doc, d).is_empty() || !results(&s.doc, d).is_empty())
    });
    out
}

/// The step records of a distribution's scan: `(name, record)`.
pub fn steps<'a>(doc: &'a Value, dist: &str) -> Vec<(&'a String, &'a Value)> {
    object(doc, &["scan", dist]).map_or_else(Vec::new, |m| m.iter().collect())
}

/// The answer records of a distribution: `(target as written, record)`.
fn results<'a>(doc: &'a Value, dist: &str) -> Vec<(&'a String, &'a Value)> {
    object(doc, &["results", dist]).map_or_else(Vec::new, |m| m.iter().collect())
}

fn object<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    path.iter()
        .try_fold(doc, |v, k| v.get(*k))
        .and_then(Value::as_object)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// The targets of a distribution over all sources, by value.
pub fn targets(sources: &[Source], dist: &str) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for s in sources {
        let from_steps = steps(&s.doc, dist)
            .into_iter()
            .filter_map(|(_, r)| num(r, "target_latency"));
        let from_results = results(&s.doc, dist)
            .into_iter()
            .filter_map(|(t, _)| t.parse().ok());
        for t in from_steps.chain(from_results) {
            if !out.iter().any(|x| (x - t).abs() < 1e-12) {
                out.push(t);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

/// The steps of one distribution and target.
pub fn target_steps<'a>(doc: &'a Value, dist: &str, target: f64) -> Vec<(&'a String, &'a Value)> {
    steps(doc, dist)
        .into_iter()
        .filter(|(_, r)| num(r, "target_latency").is_some_and(|t| (t - target).abs() < 1e-12))
        .collect()
}

/// The answer record of one distribution and target.
fn answer<'a>(doc: &'a Value, dist: &str, target: f64) -> Option<&'a Value> {
    results(doc, dist)
        .into_iter()
        .find(|(t, _)| t.parse::<f64>().is_ok_and(|x| (x - target).abs() < 1e-12))
        .map(|(_, r)| r)
}

/// A step's offered rate (the achieved one where none was planned).
fn offered(r: &Value) -> Option<f64> {
    num(r, "offered_qps").or_else(|| num(r, "qps"))
}

fn p99_ms(r: &Value) -> Option<f64> {
    r.get("percentiles")?.get("99.0")?.as_f64().map(|s| s * 1e3)
}

fn passed(r: &Value) -> bool {
    r.get("verdict").and_then(Value::as_str) == Some("pass")
}

fn mark(r: &Value) -> Mark {
    if passed(r) {
        Mark::Pass
    } else {
        Mark::Fail
    }
}

fn s(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(x)) => x.clone(),
        Some(x) => x.to_string(),
    }
}

/// A step's tooltip: what a user checks when a point surprises them.
fn tip(name: &str, r: &Value) -> String {
    format!(
        "{name}: offered {} qps, achieved {}, p99 {} ms, verdict {}, stop {}, judged {}, late {}, errors {}, retries {}",
        s(r.get("offered_qps")),
        num(r, "qps").map_or("-".into(), |q| format!("{q:.2}")),
        p99_ms(r).map_or("-".into(), |p| format!("{p:.2}")),
        s(r.get("verdict")),
        s(r.get("stop")),
        s(r.get("judged")),
        s(r.get("late")),
        s(r.get("errors")),
        s(r.get("retries")),
    )
}

/// A target as written in ids and titles: `0.1`.
pub fn target_text(t: f64) -> String {
    let s = format!("{t}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The search of one distribution and target: each step's offered rate against its
/// p99 (filled: passed, hollow: failed), the target, each source's interval and answer.
pub fn search_plot(sources: &[Source], dist: &str, target: f64) -> Plot {
    let t = target_text(target);
    let mut p = Plot::new(
        &format!("search-{dist}-{t}"),
        &format!("{dist} {t} s: the steps searched"),
        "offered rate (qps)",
        "p99 latency (ms, log)",
    );
    p.y_scale = Scale::Log;
    p.from_zero = true;
    p.hrules.push(Rule {
        at: target * 1e3,
        label: format!("target {} ms", target * 1e3),
        color: 7,
    });
    for (i, src) in sources.iter().enumerate() {
        let steps = target_steps(&src.doc, dist, target);
        p.series.push(step_series(sources, i, steps, p99_ms));
        if let Some(a) = answer(&src.doc, dist, target) {
            let ends = a.get("interval").and_then(Value::as_array);
            let end = |k: usize| ends.and_then(|e| e.get(k)).and_then(Value::as_f64);
            if ends.is_some() && (end(0).is_some() || end(1).is_some()) {
                p.bands.push(Band {
                    from: end(0),
                    to: end(1),
                    label: format!(
                        "{}interval [{}, {}]",
                        prefix(sources, i),
                        end(0).map_or("?".into(), |x| x.to_string()),
                        end(1).map_or("?".into(), |x| x.to_string())
                    ),
                    color: i,
                });
            }
            if let Some(q) = offered(a).filter(|&q| q >= 0.0 && num(a, "qps") != Some(-1.0)) {
                p.vrules.push(Rule {
                    at: q,
                    label: format!("{}answer {q}", prefix(sources, i)),
                    color: i,
                });
            }
        }
    }
    p
}

/// One run's steps as marked points, one per step: offered rate against `y` (a step
/// without it at the axis's start), filled where the step passed.
fn step_series(
    sources: &[Source],
    i: usize,
    steps: Vec<(&String, &Value)>,
    y: impl Fn(&Value) -> Option<f64>,
) -> Series {
    Series {
        name: legend(sources, i, "steps"),
        color: i,
        points: steps
            .into_iter()
            .map(|(name, r)| Point {
                x: offered(r).unwrap_or(0.0),
                y: y(r).unwrap_or(0.0),
                mark: mark(r),
                tip: tip(name, r),
            })
            .collect(),
        marks: true,
        ..Series::default()
    }
}

/// The source's name before a series' own, where there are several sources.
fn prefix(sources: &[Source], i: usize) -> String {
    if sources.len() > 1 {
        format!("{}: ", short(&sources[i].label))
    } else {
        String::new()
    }
}

fn legend(sources: &[Source], i: usize, what: &str) -> String {
    format!("{}{what}", prefix(sources, i))
}

/// A label short enough for a legend.
fn short(label: &str) -> String {
    let n = label.chars().count();
    if n <= 32 {
        label.to_string()
    } else {
        let tail: String = label.chars().skip(n - 31).collect();
        format!("…{tail}")
    }
}

/// The failing step nearest above the answer (the lowest-rate failing step where
/// there is no answer): the rate the target stopped holding at.
fn failing_neighbour<'a>(
    doc: &'a Value,
    dist: &str,
    target: f64,
) -> Option<(&'a String, &'a Value)> {
    let above = answer(doc, dist, target)
        .and_then(offered)
        .filter(|&q| q >= 0.0);
    target_steps(doc, dist, target)
        .into_iter()
        .filter(|(_, r)| !passed(r))
        .filter(|(_, r)| match (above, offered(r)) {
            (Some(a), Some(q)) => q > a,
            (None, Some(_)) => true,
            _ => false,
        })
        .min_by(|a, b| {
            offered(a.1)
                .unwrap_or(0.0)
                .total_cmp(&offered(b.1).unwrap_or(0.0))
        })
}

/// The percentile spectrum of the answering step and its failing neighbour,
/// corrected (from the planned send time, solid) and uncorrected (dashed).
pub fn spectrum_plot(sources: &[Source], dist: &str, target: f64) -> Plot {
    let t = target_text(target);
    let mut p = Plot::new(
        &format!("spectrum-{dist}-{t}"),
        &format!("{dist} {t} s: latency by percentile"),
        "percentile",
        "latency (ms, log)",
    );
    p.x_scale = Scale::Nines;
    p.y_scale = Scale::Log;
    p.hrules.push(Rule {
        at: target * 1e3,
        label: format!("target {} ms", target * 1e3),
        color: 7,
    });
    let mut medians: Vec<f64> = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let answer_step = answer(&src.doc, dist, target).filter(|a| a.get("histograms").is_some());
        let neighbour = failing_neighbour(&src.doc, dist, target).map(|(_, r)| r);
        for (k, (what, step)) in [("answer", answer_step), ("failing", neighbour)]
            .into_iter()
            .enumerate()
        {
            let Some(step) = step else { continue };
            let rate = offered(step).map_or("?".into(), |q| q.to_string());
            for (which, dashed) in [("corrected", false), ("uncorrected", true)] {
                let Some(h) = spectrum::histogram(step, which) else {
                    continue;
                };
                medians.push(h.value_at_quantile(0.5) as f64 / 1e6);
                let points = spectrum::points(&h)
                    .into_iter()
                    .map(|(x, y)| Point {
                        x,
                        y,
                        mark: Mark::Plain,
                        tip: String::new(),
                    })
                    .collect();
                // One run: the answer blue, the failing step red. Several: each
                // run its own colour, its failing step the faint line.
                let (color, faint) = if sources.len() == 1 {
                    (k, false)
                } else {
                    (i, k == 1)
                };
                p.series.push(Series {
                    name: legend(sources, i, &format!("{what} {rate} qps, {which}")),
                    color,
                    points,
                    line: true,
                    dashed,
                    faint,
                    ..Series::default()
                });
            }
        }
    }
    // The axis starts a decade below the lowest median: the body and the tail show,
    // not the nanoseconds of a query answered the instant it was planned.
    p.y_floor = (medians.iter().copied().filter(|&m| m > 0.0))
        .reduce(f64::min)
        .map(|m| m / 10.0);
    p
}

/// Achieved against offered rate for every step of a distribution: below the
/// diagonal, the system (or the generator) did not keep up.
pub fn achieved_plot(sources: &[Source], dist: &str) -> Plot {
    let mut p = Plot::new(
        &format!("achieved-{dist}"),
        &format!("{dist}: achieved against offered rate"),
        "offered rate (qps)",
        "achieved rate (qps)",
    );
    p.diagonal = true;
    p.from_zero = true;
    for (i, src) in sources.iter().enumerate() {
        let achieved = |r: &Value| num(r, "qps");
        p.series
            .push(step_series(sources, i, steps(&src.doc, dist), achieved));
    }
    p
}

/// The tuning candidates' predicted against measured answers (where a candidate was
/// both predicted and searched, and answered); None without tuning.
pub fn tuning_plot(sources: &[Source]) -> Option<Plot> {
    let mut p = Plot::new(
        "tuning",
        "tuning: predicted against measured answers",
        "measured answer (qps)",
        "predicted answer (qps)",
    );
    p.diagonal = true;
    p.from_zero = true;
    for (i, src) in sources.iter().enumerate() {
        let points = tuning_pairs(&src.doc)
            .into_iter()
            .map(|(name, measured, predicted)| Point {
                x: measured,
                y: predicted,
                mark: Mark::Plain,
                tip: format!("{name}: measured {measured}, predicted {predicted:.1}"),
            })
            .collect();
        p.series.push(Series {
            name: legend(sources, i, "candidates"),
            color: i,
            points,
            marks: true,
            ..Series::default()
        });
    }
    p.series.iter().any(|s| !s.points.is_empty()).then_some(p)
}

/// `(candidate dist/target, measured, predicted)` for every candidate, distribution
/// and target with both and a measured answer.
pub fn tuning_pairs(doc: &Value) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    let Some(configs) = doc.get("configurations").and_then(Value::as_array) else {
        return out;
    };
    for c in configs {
        let name = s(c.get("name"));
        let Some(measured) = c.get("measured").and_then(Value::as_object) else {
            continue;
        };
        for (dist, per) in measured {
            let Some(per) = per.as_object() else { continue };
            for (t, q) in per {
                let m = q.as_f64().filter(|&m| m >= 0.0);
                let pr = c
                    .get("predicted")
                    .and_then(|v| v.get(dist))
                    .and_then(|v| v.get(t))
                    .and_then(Value::as_f64);
                if let (Some(m), Some(pr)) = (m, pr.filter(|x| x.is_finite())) {
                    out.push((format!("{name} {dist}/{t}"), m, pr));
                }
            }
        }
    }
    out
}

/// The tuning candidates as table rows: settings, calibration, predicted and measured.
pub fn tuning_rows(doc: &Value) -> Vec<Vec<String>> {
    let Some(configs) = doc.get("configurations").and_then(Value::as_array) else {
        return Vec::new();
    };
    let per = |v: Option<&Value>| -> String {
        let Some(m) = v.and_then(Value::as_object) else {
            return "-".into();
        };
        let mut parts = Vec::new();
        for (d, ts) in m {
            for (t, q) in ts.as_object().into_iter().flatten() {
                let q = match q.as_f64() {
                    Some(x) if x < 0.0 => "FAIL".into(),
                    Some(x) => format!("{x:.1}"),
                    None => "-".into(),
                };
                parts.push(format!("{d}/{t}: {q}"));
            }
        }
        parts.join(", ")
    };
    let cal = |c: &Value, k: &str, scale: f64| -> String {
        c.get("calibration")
            .and_then(|x| num(x, k))
            .map_or("-".into(), |x| format!("{:.2}", x * scale))
    };
    configs
        .iter()
        .map(|c| {
            vec![
                s(c.get("name")),
                cal(c, "capacity", 1.0),
                cal(c, "unloaded_p50", 1e3),
                cal(c, "unloaded_p99", 1e3),
                per(c.get("predicted")),
                per(c.get("measured")),
                s(c.get("error")),
            ]
        })
        .collect()
}

/// A JSON object flattened into `key: value` rows (nested keys joined by dots).
pub fn flatten(v: &Value) -> Vec<Vec<String>> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            x => out.push(vec![prefix.to_string(), s(Some(x))]),
        }
    }
    let mut out = Vec::new();
    if v.is_object() {
        walk("", v, &mut out);
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (civil date from days, proleptic
/// Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(target: f64, offered: f64, p99: f64, verdict: &str) -> Value {
        json!({"target_latency": target, "offered_qps": offered, "qps": offered * 0.99,
               "percentiles": {"99.0": p99}, "verdict": verdict})
    }

    fn doc() -> Value {
        json!({
            "scan": {"linear": {
                "linear/0.1/10": step(0.1, 10.0, 0.05, "pass"),
                "linear/0.1/20": step(0.1, 20.0, 0.5, "fail"),
                "linear/0.1/15": step(0.1, 15.0, 0.08, "pass"),
                "linear/0.1/17": step(0.1, 17.0, 0.2, "fail"),
                "linear/0.2/20": step(0.2, 20.0, 0.15, "pass"),
            }},
            "results": {"linear": {
                "0.1": {"offered_qps": 15.0, "qps": 14.9, "interval": [15, 17]},
                "0.2": {"offered_qps": 20.0, "qps": 19.9, "interval": [20, null]},
            }},
            "configurations": [
                {"name": "1x2", "predicted": {"linear": {"0.1": 14.0, "0.2": 30.0}},
                 "measured": {"linear": {"0.1": 15, "0.2": -1}},
                 "calibration": {"capacity": 40.0, "unloaded_p50": 0.02, "unloaded_p99": 0.03}}
            ]
        })
    }

    #[test]
    fn steps_group_by_target_and_the_neighbour_is_the_nearest_failure_above() {
        let d = doc();
        let src = [Source {
            label: "a".into(),
            doc: d.clone(),
        }];
        assert_eq!(distributions(&src), ["linear"]);
        assert_eq!(targets(&src, "linear"), [0.1, 0.2]);
        assert_eq!(target_steps(&d, "linear", 0.1).len(), 4);
        let (name, _) = failing_neighbour(&d, "linear", 0.1).unwrap();
        assert_eq!(name, "linear/0.1/17");
        assert!(failing_neighbour(&d, "linear", 0.2).is_none());
    }

    #[test]
    fn plots_hold_one_point_per_step() {
        let src = [
            Source {
                label: "a".into(),
                doc: doc(),
            },
            Source {
                label: "b".into(),
                doc: doc(),
            },
        ];
        let p = search_plot(&src, "linear", 0.1);
        assert_eq!(p.id, "search-linear-0.1");
        assert_eq!(p.series.iter().map(|s| s.points.len()).sum::<usize>(), 8);
        assert_eq!(p.bands.len(), 2);
        assert_eq!(p.vrules.len(), 2);
        assert!(p.svg().contains("data-points=\"8\""));
        let a = achieved_plot(&src[..1], "linear");
        assert_eq!(a.series[0].points.len(), 5);
        // Predicted against measured only where the candidate answered.
        assert_eq!(
            tuning_pairs(&doc()),
            [("1x2 linear/0.1".to_string(), 15.0, 14.0)]
        );
        let rows = tuning_rows(&doc());
        assert_eq!(rows[0][0], "1x2");
        assert_eq!(rows[0][2], "20.00", "unloaded p50 in ms");
        assert!(rows[0][5].contains("linear/0.2: FAIL"), "{:?}", rows[0]);
    }

    #[test]
    fn odd_documents_leave_things_out_without_failing() {
        for d in [
            json!({}),
            json!({"scan": 3}),
            json!({"scan": {"linear": {"x": 1}}}),
            json!([1]),
        ] {
            let src = [Source {
                label: "x".into(),
                doc: d,
            }];
            let _ = search_plot(&src, "linear", 0.1).svg();
            let _ = spectrum_plot(&src, "linear", 0.1).svg();
            let _ = achieved_plot(&src, "linear").svg();
            assert!(tuning_plot(&src).is_none());
        }
    }

    #[test]
    fn dates_and_names() {
        let cases = [
            (0, "1970-01-01 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (1_796_644_799, "2026-12-07 11:59:59 UTC"),
        ];
        for (secs, want) in cases {
            assert_eq!(utc(secs), want);
        }
        assert_eq!(target_text(0.1), "0.1");
        assert_eq!(target_text(1.0), "1.0");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short(&"x".repeat(40)).chars().count(), 32);
        assert_eq!(
            flatten(&json!({"a": {"b": 1}, "c": "d"})),
            [
                vec!["a.b".to_string(), "1".into()],
                vec!["c".into(), "d".into()]
            ]
        );
    }
}
