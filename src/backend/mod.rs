//! Backends: the system under test. A [`Backend`] is a loaded model; each worker
//! thread asks it for its own [`Session`] once, before any timed step, and then calls
//! [`Session::predict`] on batches. Nothing here measures time: the worker pool does.

pub mod kserve;
pub mod null;
pub mod onnxruntime;
pub mod sim;
pub mod tf;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

/// Memory order of an image tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

impl Layout {
    /// Parses `NCHW` / `NHWC` (any case).
    pub fn parse(s: &str) -> Option<Layout> {
        match s.to_ascii_uppercase().as_str() {
            "NCHW" => Some(Layout::Nchw),
            "NHWC" => Some(Layout::Nhwc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }
}

/// CPU or GPU execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    Gpu,
}

/// Which backend to load (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    OnnxRuntime,
    Tf,
    Sim,
    Null,
    /// A remote KServe v2 (Open Inference Protocol) server, e.g. Triton.
    Kserve,
}

impl BackendKind {
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s {
            "onnxruntime" | "ort" => Some(BackendKind::OnnxRuntime),
            "tf" | "tensorflow" => Some(BackendKind::Tf),
            "sim" => Some(BackendKind::Sim),
            "null" => Some(BackendKind::Null),
            "kserve" | "triton" => Some(BackendKind::Kserve),
            _ => None,
        }
    }

    /// The name written to logs and `results.json` (`runtime`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::OnnxRuntime => "onnxruntime",
            BackendKind::Tf => "tensorflow",
            BackendKind::Sim => "sim",
            BackendKind::Null => "null",
            BackendKind::Kserve => "kserve",
        }
    }

    /// Whether the backend runs a real model on real tensors.
    pub fn needs_model(self) -> bool {
        matches!(self, BackendKind::OnnxRuntime | BackendKind::Tf)
    }

    /// Whether the backend classifies real inputs (so an accuracy pass means something).
    pub fn classifies(self) -> bool {
        self.needs_model() || self == BackendKind::Kserve
    }
}

/// What the model wants and gives, read from the model (flags may override).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Feed name, e.g. `input_tensor:0` (TF) or `gpu_0/data_0` (ONNX).
    pub input_name: String,
    /// Fetch name whose result gives the class, e.g. `ArgMax:0` or `softmax`.
    pub output_name: String,
    /// Shape of one item, without the batch dimension: `[3,224,224]` for NCHW.
    pub item_shape: Vec<usize>,
    pub layout: Layout,
    /// Number of classes the output covers (1001 when class 0 is "background").
    pub num_classes: usize,
    /// Largest batch the model accepts (`None`: any).
    pub max_batch: Option<usize>,
}

impl ModelInfo {
    /// Elements in one item (0 for backends that take no input).
    pub fn item_len(&self) -> usize {
        if self.item_shape.is_empty() {
            0
        } else {
            self.item_shape.iter().product()
        }
    }

    /// Image height and width, from the layout.
    pub fn image_hw(&self) -> Option<(usize, usize)> {
        match (self.layout, self.item_shape.as_slice()) {
            (Layout::Nchw, [_, h, w]) | (Layout::Nhwc, [h, w, _]) => Some((*h, *w)),
            _ => None,
        }
    }

    /// The info of a backend that takes no input (`sim`, `null`).
    pub fn none() -> ModelInfo {
        ModelInfo {
            input_name: String::new(),
            output_name: String::new(),
            item_shape: Vec::new(),
            layout: Layout::Nchw,
            num_classes: 0,
            max_batch: None,
        }
    }
}

/// Everything a backend needs to load (from the settings, already validated).
#[derive(Clone, Debug, Default)]
pub struct BackendConfig {
    pub model: Option<PathBuf>,
    pub device: Device,
    /// Number of workers that will each ask for a session.
    pub workers: usize,
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
    pub kserve: Option<kserve::KserveConfig>,
}

/// A batch of items laid out back to back, `len` items of `ModelInfo::item_len` each.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub data: &'a [f32],
    pub len: usize,
}

/// Reused output buffers: the timed path allocates nothing per query.
#[derive(Clone, Debug, Default)]
pub struct Prediction {
    /// Raw top-1 class index per item (before the profile's label offset).
    pub top1: Vec<i64>,
    /// Class scores per item, row-major, filled only when `keep_scores` is set.
    pub scores: Vec<f32>,
    pub keep_scores: bool,
}

impl Prediction {
    pub fn clear(&mut self) {
        self.top1.clear();
        self.scores.clear();
    }
}

/// Errors from loading or running a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The user gave something unusable: a missing or unreadable model, a wrong tensor
    /// name, a bad service-time law. Exit code 2.
    #[error("{0}")]
    BadInput(String),
    /// The runtime library is not where it was looked for. Exit code 2.
    #[error("{0}")]
    LibraryNotFound(String),
    /// The requested device cannot be used (e.g. `--device gpu` without CUDA). Exit code 2.
    #[error("{0}")]
    DeviceUnavailable(String),
    /// The runtime failed while running. Exit code 1.
    #[error("{0}")]
    Runtime(String),
}

impl BackendError {
    pub fn exit_code(&self) -> i32 {
        match self {
            BackendError::Runtime(_) => 1,
            _ => 2,
        }
    }
}

/// A loaded model. Shared by the workers; cheap to query.
pub trait Backend: Send + Sync {
    /// Runtime name for `results.json` (`onnxruntime`, `tensorflow`, `sim`, `null`).
    fn name(&self) -> &'static str;
    /// Runtime version, e.g. `1.31.1`.
    fn version(&self) -> String;
    /// Input/output description.
    fn model(&self) -> &ModelInfo;
    /// A session for one worker (its own, or a handle to a shared one).
    fn session(&self, worker: usize) -> Result<Box<dyn Session>, BackendError>;
    /// What the backend knows about the server it talks to (`server` in results.json);
    /// `None` for in-process runtimes.
    fn server_info(&self) -> Option<serde_json::Value> {
        None
    }
}

/// One worker's handle for running inference.
pub trait Session: Send {
    /// Runs one batch and writes one top-1 class per item into `out.top1`
    /// (and the scores, when `out.keep_scores`). `out` is cleared first by the caller.
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError>;

    /// How much later than intended the last `predict` returned because the machine
    /// did not run this thread on time, in ns. Only a simulated server knows its
    /// intended service time (`sim`); real runtimes return `None`, since their delays
    /// are part of what is measured.
    fn stall_ns(&self) -> Option<u64> {
        None
    }

    /// The asynchronous side of this session, if it has one. A worker whose session has
    /// one serves open-loop steps by submitting queries as they are released instead of
    /// blocking on each: a network client keeps many requests in flight this way.
    fn as_async(&mut self) -> Option<&mut dyn AsyncSession> {
        None
    }
}

/// Called exactly once when an asynchronous request ends, from whatever thread ended
/// it; `Err` counts as an error of the step.
pub type Completion = Box<dyn FnOnce(Result<(), BackendError>) + Send>;

/// A session that can have many requests in flight (a network client). The worker
/// pool keeps at most [`AsyncSession::max_in_flight`] submitted and not yet completed;
/// the rest wait in the pool's queue, where the early verdict sees them.
pub trait AsyncSession: Send {
    /// The most requests this session keeps in flight during an open-loop step.
    fn max_in_flight(&self) -> usize;
    /// Requests in flight during a closed-loop run (warm-up, capacity probe, throughput).
    fn closed_in_flight(&self) -> usize;
    /// Starts one request for `batch` and returns at once (the batch's data is copied
    /// or encoded before it returns); `done` runs when the answer arrives.
    fn submit(&mut self, batch: Batch<'_>, done: Completion);
    /// Requests started by this session that have not ended yet, whichever job they
    /// belonged to (a server keeps working on answers nobody waits for any more).
    fn outstanding(&self) -> usize;
    /// Drops every request still in flight; their completions are never called.
    fn cancel_all(&mut self);
}

/// Loads the backend named by `kind`.
pub fn load(kind: BackendKind, cfg: &BackendConfig) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match kind {
        BackendKind::Null => Arc::new(null::NullBackend::new()),
        BackendKind::Sim => Arc::new(sim::SimBackend::new(cfg)?),
        BackendKind::OnnxRuntime => Arc::new(onnxruntime::OrtBackend::load(cfg)?),
        BackendKind::Tf => Arc::new(tf::TfBackend::load(cfg)?),
        BackendKind::Kserve => Arc::new(kserve::KserveBackend::connect(cfg)?),
    })
}
