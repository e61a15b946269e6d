//! loadgen: how many queries per second can a model serve while 99 % of answers come
//! back within a target latency? A Rust successor to the early MLPerf cloud
//! image-classification benchmark.
//!
//! One folder per layer, in the order a query meets them:
//! - [`config`]: the command line, scenario files and profiles, resolved into checked
//!   settings;
//! - [`data`]: the sample library (images decoded and preprocessed into RAM before
//!   timing, or synthetic tensors);
//! - [`backend`]: the system under test (ONNX Runtime, TensorFlow, sim, null);
//! - [`measure`]: the measurement core (schedule, issuer, worker pool, statistics,
//!   one step, the verdict, the search). It has its own types and imports nothing from
//!   `config`, `data` or `output`;
//! - [`output`]: log lines, results.json records, the progress bar. It never measures;
//! - [`app`]: one file per subcommand, gluing the layers together.
pub mod app;
pub mod backend;
pub mod base;
pub mod config;
pub mod data;
pub mod error;
pub mod measure;
pub mod output;
pub mod signals;
#[cfg(test)]
mod stop_tests;
