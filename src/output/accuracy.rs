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
}
