//! The accuracy pass's record: its own file, so that the log lines and results.json
//! both read it without reading each other.

use std::collections::BTreeMap;

use serde::Serialize;

/// The accuracy pass's outcome (`check_accuracy` block).
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyReport {
    pub accuracy: f64,
    /// The old tool's misspelt key, kept for its readers.
    pub accuacy: f64,
    pub good_items: u64,
    pub total_items: u64,
    pub mean: f64,
    pub qps: f64,
    pub count: u64,
    pub runtime: f64,
    pub percentiles: BTreeMap<String, f64>,
    /// Images that could not be decoded and were left out.
    pub skipped_items: u64,
    /// A lower `--precision`: how its answers agree with the fp32 model's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fp32_agreement: Option<Agreement>,
}

/// How a lower precision's answers agree with the fp32 model's on the same items: the
/// project's models have random weights, so agreement, not accuracy, says what the
/// precision cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Agreement {
    pub items: u64,
    /// Items whose top-1 class is the same, in percent.
    pub top1: f64,
    /// The mean share of the fp32 top-5 classes also in the lower precision's top 5,
    /// in percent (`null` without scores).
    pub top5_overlap: Option<f64>,
}

/// The top-`k` class indices of one row of scores, highest first (ties: lower index).
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

impl Agreement {
    /// Compares per item: top-1 classes, and the top 5 of the scores (`classes` per
    /// item) where both runs kept them.
    pub fn of(
        low: &[i64],
        low_scores: Option<&[f32]>,
        fp32: &[i64],
        fp32_scores: Option<&[f32]>,
        classes: usize,
    ) -> Agreement {
        let n = low.len().min(fp32.len());
        let same = low.iter().zip(fp32).filter(|(a, b)| a == b).count();
        let pct = |x: f64| (x * 100.0 * 100.0).round() / 100.0;
        let top5_overlap = match (low_scores, fp32_scores) {
            (Some(a), Some(b))
                if classes > 0 && n > 0 && a.len() >= n * classes && b.len() >= n * classes =>
            {
                let k = classes.min(5);
                let shared: usize = (0..n)
                    .map(|i| {
                        let r = i * classes..(i + 1) * classes;
                        let (ta, tb) = (top_k(&a[r.clone()], k), top_k(&b[r], k));
                        tb.iter().filter(|c| ta.contains(c)).count()
                    })
                    .sum();
                Some(pct(shared as f64 / (n * k) as f64))
            }
            _ => None,
        };
        Agreement {
            items: n as u64,
            top1: if n > 0 {
                pct(same as f64 / n as f64)
            } else {
                0.0
            },
            top5_overlap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_top1_and_top5_overlap() {
        // Two items of 6 classes. Item 0: same top 1, top 5 differ in one class;
        // item 1: top 1 differs, same top 5.
        let fp32 = [
            0.9, 0.8, 0.7, 0.6, 0.5, 0.0, //
            0.1, 0.9, 0.8, 0.7, 0.6, 0.5,
        ];
        let low = [
            0.9, 0.8, 0.7, 0.6, 0.0, 0.5, //
            0.1, 0.8, 0.9, 0.7, 0.6, 0.5,
        ];
        let a = Agreement::of(&[0, 2], Some(&low), &[0, 1], Some(&fp32), 6);
        assert_eq!(a.items, 2);
        assert_eq!(a.top1, 50.0);
        assert_eq!(a.top5_overlap, Some(90.0));
        let none = Agreement::of(&[3], None, &[3], Some(&fp32), 6);
        assert_eq!((none.top1, none.top5_overlap), (100.0, None));
        assert_eq!(top_k(&[0.5, 0.5, 0.9], 2), [2, 0]);
    }
}
