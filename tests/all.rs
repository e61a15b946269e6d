//! The integration tests that drive loadgen as a program, or over the network, in one
//! test binary: each test binary links the whole library and its dependencies, and
//! running them one after the other left a core idle while one binary's last test ran.
//! The tests that load ONNX Runtime or TensorFlow into the test process itself stay
//! apart (tests/ort_backend.rs, tests/tf_backend.rs): one process should hold one of
//! those runtimes, as loadgen itself does.
//!
//! `cargo test --test all cli_sim::` runs one file's tests.

mod agents;
mod cli_compare;
mod cli_hostile;
mod cli_report;
mod cli_runtime;
mod cli_sim;
mod deploy;
mod hostile_server;
mod kserve;
mod serve;
mod triton;
