//! `loadgen compare`: two results.json side by side, per distribution and target, with
//! a verdict that says "faster" or "slower" only where the confidence intervals show it.
//! Pure: reading the files and exiting is `app::compare`'s; here a JSON document goes
//! in and rows, a table and a JSON array come out, so the rule is tested by a table.

use serde_json::{json, Value};

/// One target's answer in one results.json: the highest passing rate (`None`: FAIL)
/// and its interval, `[low, high]` (the highest rate shown to pass, the lowest shown
/// to fail; `None` where nothing showed that end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    pub qps: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// What the intervals show about B against A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Faster,
    Slower,
    CannotTell,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::CannotTell => "cannot tell",
        }
    }
}

/// The rule, stated in `loadgen compare --help` and docs/CONTRACT.md §4.4. A system's true
/// highest passing rate lies in its interval `[low, high]`. So B is `faster` when
/// B.low > A.high (B passed a rate A was shown to fail), `slower` when B.high < A.low,
/// and otherwise `cannot tell`. An end that is null is unknown, so a comparison that
/// needs it decides nothing (the other comparison still may); a target absent from
/// either file cannot be told. The answers themselves are not compared: two answers a
/// few percent apart are within the noise that the intervals measure.
pub fn verdict(a: Option<&Answer>, b: Option<&Answer>) -> Verdict {
    let (Some(a), Some(b)) = (a, b) else {
        return Verdict::CannotTell;
    };
    if let (Some(bl), Some(ah)) = (b.low, a.high) {
        if bl > ah {
            return Verdict::Faster;
        }
    }
    if let (Some(bh), Some(al)) = (b.high, a.low) {
        if bh < al {
            return Verdict::Slower;
        }
    }
    Verdict::CannotTell
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub distribution: String,
    /// The target as results.json spells it (e.g. `"0.05"`).
    pub target: String,
    pub a: Option<Answer>,
    pub b: Option<Answer>,
    pub verdict: Verdict,
}

impl Row {
    /// B's answer over A's, where both passed.
    pub fn ratio(&self) -> Option<f64> {
        match (self.a.and_then(|a| a.qps), self.b.and_then(|b| b.qps)) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        }
    }
}

/// A results.json's answers: per distribution, its targets (as spelled in the file)
/// with their answer.
pub type Answers = Vec<(String, Vec<(String, Answer)>)>;

/// Why a document is not a loadgen results.json (completed into a sentence naming the
/// file by the caller).
pub type Shape = String;

/// The answers of a results.json: per distribution (linear, exponential, then any other
/// a hand-edited file has) the targets by value, with
/// their answer. The answer is `final_results` (what `===FINAL_RESULT` printed, -1 for
/// FAIL) and the interval comes from `results`; a target in either section counts.
pub fn answers(doc: &Value) -> Result<Answers, Shape> {
    let section = |name: &str| match doc.get(name) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(format!("its \"{name}\" is not an object")),
        None => Err(format!("it has no \"{name}\" section")),
    };
    if !doc.is_object() {
        return Err("it is not a JSON object".into());
    }
    let results = section("results")?;
    let finals = section("final_results")?;
    let mut out: Answers = Vec::new();
    let dists = results.keys().chain(finals.keys());
    for d in dists {
        if out.iter().any(|(x, _)| x == d) {
            continue;
        }
        let empty = serde_json::Map::new();
        let per = |m: &serde_json::Map<String, Value>, what: &str| match m.get(d) {
            None => Ok(empty.clone()),
            Some(Value::Object(t)) => Ok(t.clone()),
            Some(_) => Err(format!("its \"{what}\" for {d} is not an object")),
        };
        let res = per(results, "results")?;
        let fin = per(finals, "final_results")?;
        let mut targets: Vec<(String, Answer)> = Vec::new();
        for t in res.keys().chain(fin.keys()) {
            if targets.iter().any(|(x, _)| x == t) {
                continue;
            }
            targets.push((t.clone(), answer(d, t, res.get(t), fin.get(t))?));
        }
        targets.sort_by(|x, y| target_value(&x.0).total_cmp(&target_value(&y.0)));
        out.push((d.clone(), targets));
    }
    // The order loadgen prints them in (a JSON object's keys come back sorted).
    out.sort_by_key(|(d, _)| match d.as_str() {
        "linear" => 0,
        "exponential" => 1,
        _ => 2,
    });
    Ok(out)
}

/// Targets sort by value; a key that is not a number (never written by loadgen) last.
fn target_value(t: &str) -> f64 {
    t.parse().unwrap_or(f64::INFINITY)
}

/// One target's [`Answer`] from its `results` record and `final_results` value.
fn answer(d: &str, t: &str, rec: Option<&Value>, fin: Option<&Value>) -> Result<Answer, Shape> {
    let at = || format!("{d} target {}", crate::base::text::quote(t));
    let rate = |v: &Value| -> Result<Option<f64>, Shape> {
        match v.as_f64() {
            Some(q) if q < 0.0 => Ok(None),
            Some(q) if q.is_finite() => Ok(Some(q)),
            _ => Err(format!("its answer for {} is not a number", at())),
        }
    };
    // The answer: final_results, else the record's offered (or achieved) rate.
    let qps = match (fin, rec) {
        (Some(v), _) => rate(v)?,
        (None, Some(r)) => match r.get("offered_qps").filter(|v| !v.is_null()) {
            Some(v) => rate(v)?,
            None => rate(r.get("qps").unwrap_or(&Value::Null))?,
        },
        (None, None) => None,
    };
    let (low, high) = match rec.and_then(|r| r.get("interval")) {
        None | Some(Value::Null) => (None, None),
        Some(Value::Array(v)) if v.len() == 2 => {
            let end = |e: &Value| match e {
                Value::Null => Ok(None),
                e => match e.as_f64() {
                    Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                    _ => Err(format!("its interval for {} is not [low, high]", at())),
                },
            };
            (end(&v[0])?, end(&v[1])?)
        }
        Some(_) => return Err(format!("its interval for {} is not [low, high]", at())),
    };
    Ok(Answer { qps, low, high })
}

/// The rows for every distribution and target present in either file: A's order, then
/// what only B has.
pub fn rows(a: &Answers, b: &Answers) -> Vec<Row> {
    let find = |doc: &[(String, Vec<(String, Answer)>)], d: &str, t: &str| {
        doc.iter()
            .find(|(x, _)| x == d)
            .and_then(|(_, v)| v.iter().find(|(y, _)| y == t).map(|(_, ans)| *ans))
    };
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut dists: Vec<&String> = a.iter().map(|(d, _)| d).collect();
    for (d, _) in b {
        if !dists.contains(&d) {
            dists.push(d);
        }
    }
    for d in dists {
        let mut ts: Vec<&String> = Vec::new();
        for doc in [a, b] {
            for (x, v) in doc {
                if x == d {
                    for (t, _) in v {
                        if !ts.contains(&t) {
                            ts.push(t);
                        }
                    }
                }
            }
        }
        ts.sort_by(|x, y| target_value(x).total_cmp(&target_value(y)));
        keys.extend(ts.into_iter().map(|t| (d.clone(), t.clone())));
    }
    keys.into_iter()
        .map(|(d, t)| {
            let (x, y) = (find(a, &d, &t), find(b, &d, &t));
            Row {
                verdict: verdict(x.as_ref(), y.as_ref()),
                distribution: d,
                target: t,
                a: x,
                b: y,
            }
        })
        .collect()
}

/// An answer as the table shows it: the rate, `FAIL`, or `-` when absent.
fn shown(ans: Option<&Answer>) -> String {
    match ans {
        None => "-".into(),
        Some(Answer { qps: None, .. }) => "FAIL".into(),
        Some(Answer { qps: Some(q), .. }) if q.fract() == 0.0 => format!("{q:.0}"),
        Some(Answer { qps: Some(q), .. }) => format!("{q}"),
    }
}

/// The rate (or FAIL) with its interval, as the report's answer table shows it:
/// `17 [12, 21]`, with `?` for an end that was not shown.
impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end = |e: Option<f64>| e.map_or("?".to_string(), |x| x.to_string());
        write!(
            f,
            "{} [{}, {}]",
            shown(Some(self)),
            end(self.low),
            end(self.high)
        )
    }
}

/// The aligned text table, one line per row after the header.
pub fn table(rows: &[Row]) -> String {
    let mut cells = vec![[
        "distribution".to_string(),
        "target".into(),
        "A (qps)".into(),
        "B (qps)".into(),
        "B/A".into(),
        "verdict".into(),
    ]];
    for r in rows {
        cells.push([
            r.distribution.clone(),
            r.target.clone(),
            shown(r.a.as_ref()),
            shown(r.b.as_ref()),
            r.ratio().map_or("-".into(), |x| format!("{x:.2}")),
            r.verdict.as_str().into(),
        ]);
    }
    let mut width = [0usize; 6];
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    for c in &cells {
        let line: Vec<String> = c
            .iter()
            .zip(width)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `--json`: one object per row; an absent answer is null, FAIL is -1 as in
/// `final_results`.
pub fn rows_json(rows: &[Row]) -> Value {
    let side = |ans: Option<&Answer>| match ans {
        None => json!(null),
        Some(x) => json!({
            "qps": x.qps.unwrap_or(-1.0),
            "interval": [x.low, x.high],
        }),
    };
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "distribution": r.distribution,
                    "target_latency": r.target,
                    "a": side(r.a.as_ref()),
                    "b": side(r.b.as_ref()),
                    "ratio": r.ratio(),
                    "verdict": r.verdict.as_str(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(qps: Option<f64>, low: Option<f64>, high: Option<f64>) -> Answer {
        Answer { qps, low, high }
    }

    #[test]
    fn the_verdict_follows_the_intervals() {
        use Verdict::*;
        let n = None;
        let s = Some;
        // (A, B, verdict)
        let table = [
            // B passed 150, A failed 140: B is faster.
            (
                ans(s(128.0), s(128.0), s(140.0)),
                ans(s(150.0), s(150.0), s(160.0)),
                Faster,
            ),
            // The mirror: slower.
            (
                ans(s(150.0), s(150.0), s(160.0)),
                ans(s(128.0), s(128.0), s(140.0)),
                Slower,
            ),
            // Overlapping intervals: the answers differ, the intervals cannot tell.
            (
                ans(s(128.0), s(120.0), s(140.0)),
                ans(s(135.0), s(130.0), s(150.0)),
                CannotTell,
            ),
            // Touching ends are not apart.
            (
                ans(s(128.0), s(120.0), s(140.0)),
                ans(s(140.0), s(140.0), s(150.0)),
                CannotTell,
            ),
            // A's upper end unknown: B cannot be shown faster.
            (
                ans(s(128.0), s(128.0), n),
                ans(s(500.0), s(500.0), s(510.0)),
                CannotTell,
            ),
            // B's lower end unknown: nor faster.
            (
                ans(s(128.0), s(120.0), s(140.0)),
                ans(n, n, s(510.0)),
                CannotTell,
            ),
            // ... but the other comparison still decides: B failed below A's pass.
            (ans(s(128.0), s(120.0), n), ans(n, n, s(60.0)), Slower),
            (ans(n, n, s(10.0)), ans(s(12.0), s(12.0), n), Faster),
            // Nothing known at all.
            (ans(n, n, n), ans(n, n, n), CannotTell),
        ];
        for (i, (a, b, want)) in table.iter().enumerate() {
            assert_eq!(verdict(Some(a), Some(b)), *want, "row {i}: A {a:?} B {b:?}");
        }
        let a = ans(s(1.0), s(1.0), s(2.0));
        assert_eq!(verdict(Some(&a), None), CannotTell);
        assert_eq!(verdict(None, Some(&a)), CannotTell);
    }

    fn doc(final_lin: Value, interval: Value) -> Value {
        json!({
            "results": {"linear": {"0.05": {"qps": 10.5, "interval": interval}}, "exponential": {}},
            "final_results": {"linear": {"0.05": final_lin}, "exponential": {}},
        })
    }

    #[test]
    fn answers_read_final_results_and_the_interval() {
        let a = answers(&doc(json!(128), json!([128, 140]))).unwrap();
        assert_eq!(a[0].0, "linear");
        assert_eq!(
            a[0].1,
            vec![(
                "0.05".to_string(),
                ans(Some(128.0), Some(128.0), Some(140.0))
            )]
        );
        let f = answers(&doc(json!(-1), json!([null, 3]))).unwrap();
        assert_eq!(f[0].1[0].1, ans(None, None, Some(3.0)));
    }

    #[test]
    fn a_document_of_another_shape_is_refused() {
        for (d, words) in [
            (json!([1, 2]), "not a JSON object"),
            (json!({"final_results": {}}), "no \"results\""),
            (json!({"results": {}, "final_results": 3}), "not an object"),
            (doc(json!("x"), json!([1, 2])), "not a number"),
            (doc(json!(1), json!([1])), "not [low, high]"),
            (doc(json!(1), json!([-1, 2])), "not [low, high]"),
        ] {
            let e = answers(&d).unwrap_err();
            assert!(e.contains(words), "{d}: {e}");
        }
    }

    #[test]
    fn rows_cover_both_files_and_the_table_aligns() {
        let a = answers(&json!({
            "results": {"linear": {"0.05": {"interval": [128, 140]}}},
            "final_results": {"linear": {"0.05": 128, "0.1": 200}},
        }))
        .unwrap();
        let b = answers(&json!({
            "results": {"linear": {"0.05": {"interval": [142, 150]}},
                        "exponential": {"0.05": {"interval": [null, 12]}}},
            "final_results": {"linear": {"0.05": 142}, "exponential": {"0.05": -1}},
        }))
        .unwrap();
        let r = rows(&a, &b);
        let keys: Vec<(&str, &str, &str)> = r
            .iter()
            .map(|r| (&*r.distribution, &*r.target, r.verdict.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("linear", "0.05", "faster"),
                ("linear", "0.1", "cannot tell"),
                ("exponential", "0.05", "cannot tell"),
            ]
        );
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "distribution  target  A (qps)  B (qps)  B/A   verdict"
        );
        assert_eq!(
            lines[1],
            "linear        0.05    128      142      1.11  faster"
        );
        assert_eq!(
            lines[2],
            "linear        0.1     200      -        -     cannot tell"
        );
        assert_eq!(
            lines[3],
            "exponential   0.05    -        FAIL     -     cannot tell"
        );
        let j = rows_json(&r);
        assert_eq!(j[0]["ratio"].as_f64().unwrap(), 142.0 / 128.0);
        assert_eq!(j[1]["b"], Value::Null);
        assert_eq!(j[2]["b"]["qps"], -1.0);
        assert_eq!(j[2]["b"]["interval"], json!([null, 12.0]));
    }
}
