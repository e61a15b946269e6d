//! The system under test, as both sides see it: a [`Backend`] is a loaded model; each
//! worker thread asks it for its own [`Session`] once, before any timed step, and then
//! calls [`Session::predict`] on batches ([`AsyncSession::submit`] for a network
//! client). Backends implement these traits; the measurement core drives them.

use super::model::ModelInfo;
use super::op_profile::OpProfile;

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
    /// What the user must know about what was loaded (printed on stderr and kept in
    /// results.json): a server whose metadata names another model.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// What the backend knows about the server it talks to (`server` in results.json);
    /// `None` for in-process runtimes.
    fn server_info(&self) -> Option<serde_json::Value> {
        None
    }
    /// What an in-process runtime settled on for this run (`runtime_info` in
    /// results.json), e.g. OpenVINO's compiled model: streams, threads, precision.
    fn runtime_info(&self) -> Option<serde_json::Value> {
        None
    }
    /// Where the time of the inferences went, per operation, when the backend was
    /// loaded with `op_profile` set. Complete once every session is dropped (ONNX
    /// Runtime writes its profile when a session ends it).
    fn op_profile(&self) -> Option<OpProfile> {
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
