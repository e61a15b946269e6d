//! loadgen: how many queries per second can a model serve within a p99 latency target?
pub mod backend;
pub mod clock;
pub mod issuer;
pub mod paths;
pub mod pool;
pub mod schedule;
pub mod search;
pub mod stats;
pub mod step;
