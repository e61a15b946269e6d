//! loadgen: how many queries per second can a model serve while 99 % of answers come
//! back within a target latency? A Rust successor to the early MLPerf cloud
//! image-classification benchmark.
//!
//! One folder per layer. The rule, checked by `scripts/check_layers.py` (run by
//! `scripts/lint.sh`): `base` imports nothing of the crate, `measure` and `backend`
//! import only `base`, and no import circle joins files or folders (a few remain, the
//! checker lists them):
//! - [`base`]: the vocabulary both sides share: the system-under-test traits, model
//!   layout, device, backend kind, limits and durations, the precise clock. Imports
//!   nothing of the crate;
//! - [`signals`]: records SIGINT/SIGTERM/SIGHUP (a flag, the signal's number); prints
//!   nothing;
//! - [`measure`]: the measurement core (schedule, issuer, worker pool, statistics, one
//!   step, the verdict, the search). Imports only `base`; the interrupt flag is a
//!   parameter;
//! - [`backend`]: the system under test (ONNX Runtime, TensorFlow, KServe, sim, null),
//!   implementing `base`'s traits. Imports only `base`;
//! - [`data`]: the sample library (images decoded and preprocessed into RAM before
//!   timing, or synthetic tensors);
//! - [`config`]: the command line, scenario files and profiles, resolved into checked
//!   settings;
//! - [`output`]: log lines, results.json records, the progress bar. It never measures;
//! - [`serve`]: `loadgen serve`, a KServe v2 server (HTTP and gRPC) for the `sim`
//!   and `null` backends, its requests in one queue of worker sessions;
//! - [`app`]: one file per subcommand, gluing the layers together (and printing what
//!   `signals` heard).
pub mod agents;
pub mod app;
pub mod backend;
pub mod base;
pub mod config;
pub mod data;
pub mod error;
pub mod measure;
pub mod output;
pub mod serve;
pub mod signals;
#[cfg(test)]
mod stop_tests;
pub mod tune;
