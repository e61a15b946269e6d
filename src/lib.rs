//! loadgen: how many queries per second can a model serve while 99 % of answers come
//! back within a target latency? A Rust successor to the early MLPerf cloud
//! image-classification benchmark.
//!
//! The pieces, in the order a query meets them: [`settings`] (scenario + flags),
//! [`dataset`]/[`preprocess`] (the samples, in RAM before timing), [`schedule`] (planned
//! send times), [`issuer`] (releases queries on time), [`pool`] (workers, one backend
//! [`backend::Session`] each), [`stats`] (HDR histograms), [`step`] (one measured step),
//! [`search`] (the highest passing rate), [`report`] (log lines, results.json).
pub mod accuracy;
pub mod app;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod dataset;
pub mod error;
pub mod issuer;
pub mod npy;
pub mod paths;
pub mod pool;
pub mod preprocess;
pub mod profile;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod search;
pub mod settings;
pub mod signals;
pub mod stats;
pub mod step;
pub mod system;
