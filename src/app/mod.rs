//! The subcommands, one file each, gluing settings, backend, samples, pool, search and
//! report together. Measuring lives in `measure`, formatting in `output`; what the
//! subcommands share is in [`common`].

pub mod accuracy;
pub mod accuracy_pass;
pub mod agent;
pub mod common;
pub mod compare;
pub mod coordinator;
pub mod fixed;
pub mod k8s;
pub mod latency;
pub mod report;
pub mod run;
pub mod serve;
pub mod throughput;
pub mod tune;
pub mod tune_processes;

pub use accuracy::accuracy;
pub use agent::agent;
pub use common::install_signals;
pub use compare::compare;
pub use fixed::fixed;
pub use k8s::k8s;
pub use latency::latency;
pub use report::report;
pub use run::run;
pub use serve::serve;
pub use throughput::throughput;
