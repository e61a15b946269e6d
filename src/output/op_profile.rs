//! `--op-profile`'s table (stderr) and JSON block, from an [`OpProfile`]. Formatting
//! only: the runtime measured the operations, the run measured the inferences.
//!
//! The check that makes the table trustworthy is its first line: the operations'
//! times per inference against the inference time loadgen measured itself. A runtime
//! whose nodes run in parallel (several streams' threads do not, one inference's
//! nodes mostly do not) or that leaves work out of its counters (input copies, the
//! framework's own scheduling) shows it there.

use serde_json::{json, Value};

use crate::base::op_profile::OpProfile;

/// Operations the table shows; the JSON holds every one.
pub const SHOWN: usize = 15;

/// The table, one line per entry, for stderr. `measured_s`: the mean time of one
/// inference as loadgen measured it (seconds), where the command has one.
pub fn lines(p: &OpProfile, measured_s: Option<f64>) -> Vec<String> {
    let total = p.total_us();
    let mut out = vec![headline(p, measured_s)];
    if p.ops.is_empty() {
        return out;
    }
    out.push(format!(
        "  {:>4}  {:>10}  {:>6}  {:>9}  {:>8}  {:<40}  operation",
        "rank", "total ms", "share", "ms/inf", "runs", "type (implementation)"
    ));
    let per = |us: f64| {
        if p.inferences > 0 {
            us / p.inferences as f64 / 1e3
        } else {
            0.0
        }
    };
    for (i, op) in p.ops.iter().take(SHOWN).enumerate() {
        let kind = match &op.exec {
            Some(e) if !e.is_empty() => format!("{} ({e})", op.kind),
            _ => op.kind.clone(),
        };
        out.push(format!(
            "  {:>4}  {:>10.1}  {:>5.1} %  {:>9.3}  {:>8}  {:<40}  {}",
            i + 1,
            op.total_us / 1e3,
            share(op.total_us, total) * 100.0,
            per(op.total_us),
            op.count,
            kind,
            op.name
        ));
    }
    if p.ops.len() > SHOWN {
        let rest: f64 = p.ops[SHOWN..].iter().map(|o| o.total_us).sum();
        out.push(format!(
            "  ({} more operations: {:.1} ms, {:.1} %; --json and --output list them all)",
            p.ops.len() - SHOWN,
            rest / 1e3,
            share(rest, total) * 100.0
        ));
    }
    out
}

fn share(part: f64, total: f64) -> f64 {
    if total > 0.0 {
        part / total
    } else {
        0.0
    }
}

/// The first line: how many operations over how many inferences, and how their sum
/// compares with the measured inference time.
fn headline(p: &OpProfile, measured_s: Option<f64>) -> String {
    let Some(per_inf) = p.per_inference_ms() else {
        return "op profile: the runtime profiled no inference".to_string();
    };
    let mut s = format!(
        "op profile: {} operations over {} inferences add up to {:.2} ms per inference",
        p.ops.len(),
        p.inferences,
        per_inf
    );
    if let Some(m) = measured_s.filter(|m| *m > 0.0) {
        s.push_str(&format!(
            ", {:.0} % of the {:.2} ms measured",
            per_inf / (m * 1e3) * 100.0,
            m * 1e3
        ));
    }
    s
}

/// The JSON block (`op_profile` in `--json` and in the file `--output` writes): every
/// operation, longest first.
pub fn to_json(p: &OpProfile, measured_s: Option<f64>) -> Value {
    let total = p.total_us();
    let per_inf = p.per_inference_ms();
    let measured_ms = measured_s.filter(|m| *m > 0.0).map(|m| m * 1e3);
    let ops: Vec<Value> = p
        .ops
        .iter()
        .map(|o| {
            json!({
                "name": o.name,
                "type": o.kind,
                "exec": o.exec,
                "total_ms": o.total_us / 1e3,
                "share": share(o.total_us, total),
                "runs": o.count,
                "ms_per_inference": (p.inferences > 0)
                    .then(|| o.total_us / p.inferences as f64 / 1e3),
            })
        })
        .collect();
    json!({
        "inferences": p.inferences,
        "operations": p.ops.len(),
        "ms_per_inference": per_inf,
        "measured_ms_per_inference": measured_ms,
        "coverage": per_inf.zip(measured_ms).map(|(a, b)| a / b),
        "problems": p.problems,
        "ops": ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::op_profile::OpTotals;

    fn profile(n: usize) -> OpProfile {
        let mut t = OpTotals::default();
        for i in 0..n {
            t.add(
                &format!("node{i}"),
                "Conv",
                Some("jit_avx2"),
                (100 * (n - i)) as f64,
            );
        }
        t.inferences = 2;
        t.profile()
    }

    #[test]
    fn the_table_shows_the_longest_and_sums_the_rest() {
        let p = profile(20);
        let l = lines(&p, Some(0.0110));
        // 100 × (20 + … + 1) = 21,000 µs over 2 inferences: 10.5 ms each.
        assert_eq!(
            l[0],
            "op profile: 20 operations over 2 inferences add up to 10.50 ms per inference, 95 % of the 11.00 ms measured"
        );
        assert_eq!(l.len(), 2 + SHOWN + 1);
        assert!(l[2].contains("node0") && l[2].contains("9.5 %"), "{}", l[2]);
        assert!(l[2].contains("Conv (jit_avx2)"), "{}", l[2]);
        // The last 5: 100 × (5 + 4 + 3 + 2 + 1) = 1.5 ms, 7.1 %.
        assert!(
            l.last()
                .unwrap()
                .contains("5 more operations: 1.5 ms, 7.1 %"),
            "{}",
            l.last().unwrap()
        );
    }

    #[test]
    fn the_json_holds_every_operation_and_the_coverage() {
        let p = profile(20);
        let j = to_json(&p, Some(0.0105));
        assert_eq!(j["ops"].as_array().unwrap().len(), 20);
        assert_eq!(j["operations"], 20);
        assert!((j["coverage"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(j["ops"][0]["runs"], 1);
        assert!((j["ops"][0]["ms_per_inference"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        let shares: f64 = j["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["share"].as_f64().unwrap())
            .sum();
        assert!((shares - 1.0).abs() < 1e-9);
        let none = to_json(&OpProfile::default(), None);
        assert_eq!(none["ms_per_inference"], Value::Null);
        assert_eq!(none["coverage"], Value::Null);
        assert_eq!(
            lines(&OpProfile::default(), None),
            ["op profile: the runtime profiled no inference"]
        );
    }
}
