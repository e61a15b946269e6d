//! The accuracy pass (docs/CONTRACT.md §7, step 1): every loaded item once, top-1 after the
//! profile's label offset against the dataset's labels.

use std::path::Path;

use anyhow::{Context, Result};

use crate::backend::ModelInfo;
use crate::data::dataset::Dataset;
use crate::measure::pool::WorkerPool;
use crate::output::accuracy::AccuracyReport;

/// The offset between the model's class index and the dataset's label: 1 for
/// 1001-class models (class 0 is "background"), 0 for 1000, else the profile's.
pub fn label_offset(model: &ModelInfo, profile_offset: Option<i64>) -> i64 {
    match model.num_classes {
        1001 => 1,
        1000 => 0,
        _ => profile_offset.unwrap_or(0),
    }
}

/// Raw predictions of the pass, kept for `--dump`.
pub struct AccuracyRun {
    pub report: AccuracyReport,
    pub top1: Vec<i64>,
    pub scores: Option<Vec<f32>>,
}

/// Runs the pass over every item of `dataset` (which must have labels).
pub fn run(
    pool: &WorkerPool,
    dataset: &Dataset,
    model: &ModelInfo,
    offset: i64,
    keep_scores: bool,
) -> Result<AccuracyRun> {
    let out = pool.run_accuracy(dataset.len(), model.num_classes, keep_scores)?;
    let labels = dataset.labels().unwrap_or(&[]);
    let good = out
        .top1
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p - offset == **l)
        .count() as u64;
    let total = dataset.len() as u64;
    let accuracy = if total > 0 {
        (good as f64 * 100.0 / total as f64 * 100.0).round() / 100.0
    } else {
        0.0
    };
    let s = &out.stats;
    let report = AccuracyReport {
        accuracy,
        accuacy: accuracy,
        good_items: good,
        total_items: total,
        mean: s.corrected.mean_s(),
        qps: if out.seconds > 0.0 {
            s.completed as f64 / out.seconds
        } else {
            0.0
        },
        count: s.completed,
        runtime: out.seconds,
        percentiles: s.corrected.percentiles().0,
        skipped_items: dataset.skipped() as u64,
        fp32_agreement: None,
    };
    Ok(AccuracyRun {
        report,
        top1: out.top1,
        scores: out.scores,
    })
}

/// The files [`dump`] writes into its folder.
pub const DUMP_FILES: &[&str] = &[
    "inputs.npy",
    "top1.npy",
    "labels.npy",
    "scores.npy",
    "names.txt",
];

/// Writes what the pass saw and said, for comparison with another implementation:
/// `inputs.npy` (the preprocessed tensors), `top1.npy` (raw class indices),
/// `labels.npy`, `names.txt` and, when the backend gave them, `scores.npy`.
pub fn dump(dir: &Path, dataset: &Dataset, run: &AccuracyRun, classes: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create --dump folder {}",
            crate::base::text::quote_path(dir)
        )
    })?;
    let n = dataset.len();
    let mut shape = vec![n];
    shape.extend_from_slice(dataset.item_shape());
    let ctx = |f: &str| {
        format!(
            "cannot write {}",
            crate::base::text::quote_path(&dir.join(f))
        )
    };
    crate::data::npy::write_npy_f32(dir.join("inputs.npy"), &shape, dataset.data())
        .with_context(|| ctx("inputs.npy"))?;
    crate::data::npy::write_npy_i64(dir.join("top1.npy"), &[n], &run.top1)
        .with_context(|| ctx("top1.npy"))?;
    if let Some(labels) = dataset.labels() {
        crate::data::npy::write_npy_i64(dir.join("labels.npy"), &[n], labels)
            .with_context(|| ctx("labels.npy"))?;
    }
    if let Some(scores) = &run.scores {
        if classes > 0 && scores.len() == n * classes {
            crate::data::npy::write_npy_f32(dir.join("scores.npy"), &[n, classes], scores)
                .with_context(|| ctx("scores.npy"))?;
        }
    }
    let names: Vec<&str> = (0..n).map(|i| dataset.name(i)).collect();
    std::fs::write(dir.join("names.txt"), names.join("\n") + "\n")
        .with_context(|| ctx("names.txt"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Layout;

    #[test]
    fn offset_follows_the_class_count() {
        let mut m = ModelInfo::none();
        m.layout = Layout::Nhwc;
        m.num_classes = 1001;
        assert_eq!(label_offset(&m, Some(0)), 1);
        m.num_classes = 1000;
        assert_eq!(label_offset(&m, Some(1)), 0);
        m.num_classes = 10;
        assert_eq!(label_offset(&m, Some(1)), 1);
    }
}
