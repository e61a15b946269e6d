//! `loadgen latency`'s line and JSON document, from [`SyncLatency`]. Formatting only.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::measure::sync::SyncLatency;

/// The stdout line: every figure in seconds, as the step lines give them.
///
/// `Latency: count=512, min=0.038100, median=0.041200, mean=0.041500, p90=0.043100,
/// p99=0.047800, max=0.053200, 1/mean=24.10 queries/sec, p90_early_stopping=0.044000
/// (99 % confidence)`; with too few queries the estimate reads `?` and says how many
/// would give one.
pub fn line(l: &SyncLatency) -> String {
    let per_second = if l.mean > 0.0 { 1.0 / l.mean } else { 0.0 };
    let estimate = match l.p90_estimate {
        Ok(v) => format!("{v:.6}"),
        Err(n) => format!("? (needs {n} queries)"),
    };
    format!(
        "Latency: count={}, min={:.6}, median={:.6}, mean={:.6}, p90={:.6}, p99={:.6}, max={:.6}, 1/mean={per_second:.2} queries/sec, p90_early_stopping={estimate} ({} % confidence)",
        l.count,
        l.min,
        l.median,
        l.mean,
        l.p90,
        l.p99,
        l.max,
        (l.confidence * 1000.0).round() / 10.0,
    )
}

/// The JSON document (`--json`, and `latency` in the file `--output` writes).
pub fn to_json(l: &SyncLatency) -> Value {
    let (estimate, needed) = match l.p90_estimate {
        Ok(v) => (json!(v), Value::Null),
        Err(n) => (Value::Null, json!(n)),
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut v = json!({
        "count": l.count,
        "errors": l.errors,
        "runtime": l.runtime,
        "min": l.min,
        "median": l.median,
        "mean": l.mean,
        "p90": l.p90,
        "p99": l.p99,
        "max": l.max,
        "per_second": if l.mean > 0.0 { 1.0 / l.mean } else { 0.0 },
        "p90_early_stopping": {
            "value": estimate,
            "confidence": l.confidence,
            "queries_needed": needed,
        },
        "error": l.first_error,
    });
    if let Some(h) = &l.histograms {
        v["histograms"] = json!({
            "unit": "ns",
            "encoding": "hdrhistogram-v2-deflate-base64",
            "corrected": b64(&h.corrected),
            "uncorrected": b64(&h.uncorrected),
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_and_the_document() {
        let l = SyncLatency {
            count: 100,
            min: 0.001,
            median: 0.05,
            mean: 0.05,
            p90: 0.09,
            p99: 0.099,
            max: 0.1,
            p90_estimate: Ok(0.096),
            confidence: 0.99,
            ..SyncLatency::default()
        };
        let s = line(&l);
        assert!(
            s.starts_with("Latency: count=100, min=0.001000, median=0.050000"),
            "{s}"
        );
        assert!(s.contains("1/mean=20.00 queries/sec"), "{s}");
        assert!(
            s.ends_with("p90_early_stopping=0.096000 (99 % confidence)"),
            "{s}"
        );
        let v = to_json(&l);
        assert_eq!(v["p90_early_stopping"]["value"], 0.096);
        assert!(v["p90_early_stopping"]["queries_needed"].is_null());
        let few = SyncLatency {
            p90_estimate: Err(44),
            ..l
        };
        assert!(line(&few).contains("p90_early_stopping=? (needs 44 queries)"));
        assert_eq!(to_json(&few)["p90_early_stopping"]["queries_needed"], 44);
    }
}
