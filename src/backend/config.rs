//! Everything a backend needs to load.

use std::path::PathBuf;

use crate::base::model::{Device, Layout, Precision};

use super::kserve::config::KserveConfig;

/// Everything a backend needs to load (from the settings, already validated).
#[derive(Clone, Debug, Default)]
pub struct BackendConfig {
    pub model: Option<PathBuf>,
    pub device: Device,
    /// Number of workers that will each ask for a session.
    pub workers: usize,
    /// Items per query (`--batch_size`): OpenVINO compiles its model for it.
    pub batch_size: usize,
    /// Intra-op threads per session (`None`: the backend's default for `workers`).
    pub intra_threads: Option<usize>,
    /// Inter-op threads per session (`None`: the backend's default: 1 for ONNX Runtime;
    /// for TensorFlow each step runs in the worker's own thread).
    pub inter_threads: Option<usize>,
    /// `--inputs` / `--outputs` / `--data-format` overrides.
    pub inputs: Option<String>,
    pub outputs: Option<String>,
    pub data_format: Option<Layout>,
    /// `--sim-service-time` for the `sim` backend.
    pub sim_service_time: Option<String>,
    /// Seed for backends that draw random numbers.
    pub seed: u64,
    /// Where and how to reach a `kserve` server.
    pub kserve: Option<KserveConfig>,
    /// `--verbose`: leave the runtimes' own log lines on. Off, ONNX Runtime logs only
    /// fatal errors and TensorFlow none of its C++ lines, so that a failure reads as
    /// loadgen's one sentence instead of coloured runtime lines before it.
    pub verbose: bool,
    /// `--op-profile`: turn on the runtime's per-operation profiler (OpenVINO,
    /// ONNX Runtime and TensorFlow; see [`crate::base::op_profile`]).
    pub op_profile: bool,
    /// `--requests`: OpenVINO infer requests each worker keeps in flight through the
    /// asynchronous API (`None`: one synchronous request per worker).
    pub requests: Option<usize>,
    /// `--precision` (`None`: the fp32 model with the runtime's default kernels).
    pub precision: Option<Precision>,
}
