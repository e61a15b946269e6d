//! A step's percentile spectrum, read back from the histogram results.json stores
//! (HdrHistogram V2 + DEFLATE, base64, nanoseconds): the whole distribution, where the
//! step record keeps six percentiles.

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;

/// Points per decade of the 1/(1−p) axis.
const PER_NINE: u32 = 20;
/// The deepest tail drawn: 99.9999 %.
const MAX_NINES: u32 = 6;

/// The histogram a step record stores under `histograms.<which>` (`corrected` or
/// `uncorrected`); None where absent or unreadable (a report never fails on it).
pub fn histogram(step: &Value, which: &str) -> Option<Histogram<u64>> {
    let h = step.get("histograms")?;
    if h.get("encoding")?.as_str()? != "hdrhistogram-v2-deflate-base64" {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(h.get(which)?.as_str()?)
        .ok()?;
    Deserializer::new().deserialize(&mut &bytes[..]).ok()
}

/// `(percentile, milliseconds)` from 0 % into the tail, as deep as the count
/// resolves (a tail of one in n needs n values).
pub fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len();
    if n == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for k in 0..=MAX_NINES * PER_NINE {
        let tail = 10f64.powf(-(k as f64) / PER_NINE as f64);
        if tail * (n as f64) < 1.0 - 1e-9 {
            break;
        }
        let q = 1.0 - tail;
        out.push((100.0 * q, h.value_at_quantile(q) as f64 / 1e6));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    use serde_json::json;

    fn stored(h: &Histogram<u64>) -> Value {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new().serialize(h, &mut bytes).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        json!({"histograms": {"unit": "ns", "encoding": "hdrhistogram-v2-deflate-base64",
            "corrected": b64, "uncorrected": "not base64!"}})
    }

    #[test]
    fn reads_back_the_stored_distribution() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for i in 1..=1000u64 {
            h.record(i * 1_000_000).unwrap(); // 1..1000 ms
        }
        let step = stored(&h);
        let back = histogram(&step, "corrected").expect("decodes");
        assert_eq!(back.len(), 1000);
        assert!(
            histogram(&step, "uncorrected").is_none(),
            "bad base64 is skipped"
        );
        assert!(histogram(&json!({}), "corrected").is_none());
        let pts = points(&back);
        // 1000 values resolve three nines: 0 … 99.9 % at 20 a decade.
        assert_eq!(pts.len(), 3 * 20 + 1, "{pts:?}");
        let (p50, ms50) = pts[6]; // 1 − 10^(−0.3) ≈ 49.9 %
        assert!(
            (p50 - 49.88).abs() < 0.01 && (ms50 - 499.0).abs() < 2.0,
            "{p50} {ms50}"
        );
        let &(p_last, ms_last) = pts.last().unwrap();
        assert!((p_last - 99.9).abs() < 1e-9 && (ms_last - 999.0).abs() < 1.0);
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
