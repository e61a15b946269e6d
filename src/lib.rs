//! loadgen: how many queries per second can a model serve within a p99 latency target?
pub mod backend;
pub mod clock;
pub mod dataset;
pub mod npy;
pub mod paths;
pub mod preprocess;
