//! `tf`: TensorFlow through its C API (binding: `tf_capi.rs`). The library
//! (`libtensorflow.so`, from the `tensorflow-cpu` wheel) is found and loaded at run
//! time, not at build time, so a missing library is an error sentence, never a panic.
//!
//! The model is a frozen GraphDef (MLPerf `resnet50_v1.pb` or the project's own, see
//! `models/make_tf_model.py`): feed a float32 NHWC placeholder, fetch `ArgMax`.
//!
//! Workers either share one TF session (`TF_SessionRun` is thread-safe) or each get their
//! own; `LOADGEN_TF_SESSIONS=shared|per-worker` picks. Both measured the same here
//! (ResNet-50, batch 1, 2 cores: ~44 images/s with 1 worker, ~57-58 with 2), so the
//! default is shared: one copy of the weights, one warm-up.
//!
//! Threads: intra-op = cores / workers unless `--intra-threads`; inter-op runs each
//! step in the worker's own thread unless `--inter-threads` (see [`INTER_OP_IN_CALLER`]:
//! TF's single inter-op pool of 1 thread halved the 2-worker throughput).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::config::BackendConfig;
use crate::backend::tf_capi::{
    Api, DataType, Error as TfError, Graph, Operation, Session as TfSession, SessionOptions, Tensor,
};
use crate::base::model::{Device, Layout, ModelInfo, Precision};
use crate::base::op_profile::{self, OpProfile, OpTotals, SharedTotals};
use crate::base::paths;
use crate::base::sut::{Backend, BackendError, Batch, Prediction, Session};
use crate::base::text::quote_path;

/// The library's file name.
const LIB_FILE: &str = "libtensorflow.so";
/// Where TensorFlow's own installs put the library, searched last (after
/// `LD_LIBRARY_PATH`) when neither `TENSORFLOW_DIR` nor a venv has it.
const SYSTEM_LIB_DIRS: [&str; 2] = ["/usr/local/lib", "/usr/local/lib/libtensorflow"];
/// The folder `scripts/setup.sh tf` makes inside the venv, holding the symlinks.
const VENV_LIB_DIR: &str = "tensorflow-lib";
/// Environment variable choosing shared or per-worker sessions.
const SESSIONS_ENV: &str = "LOADGEN_TF_SESSIONS";
/// The output holding class scores in MLPerf-style graphs.
const SCORES_OP: &str = "softmax_tensor";

/// How workers map to TF sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMode {
    /// One session for all workers (`run(&self)` is thread-safe): one copy of the weights.
    Shared,
    /// One session per worker: each holds its own weights (~100 MB for ResNet-50).
    PerWorker,
}

impl SessionMode {
    /// Parses `shared` / `per-worker` (also `per_worker`, `worker`).
    pub fn parse(s: &str) -> Option<SessionMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "shared" => Some(SessionMode::Shared),
            "per-worker" | "per_worker" | "worker" => Some(SessionMode::PerWorker),
            _ => None,
        }
    }

    /// `$LOADGEN_TF_SESSIONS`, else the default.
    fn from_env() -> Result<SessionMode, BackendError> {
        match std::env::var(SESSIONS_ENV) {
            Ok(v) if !v.trim().is_empty() => SessionMode::parse(&v).ok_or_else(|| {
                BackendError::BadInput(format!(
                    "{SESSIONS_ENV}={v} is not a session mode: use shared or per-worker"
                ))
            }),
            _ => Ok(SessionMode::default()),
        }
    }
}

impl Default for SessionMode {
    /// Shared: as fast as per-worker sessions on ResNet-50 here (within 1-2 %, run to
    /// run noise), with one copy of the weights and one warm-up.
    fn default() -> Self {
        SessionMode::Shared
    }
}

// ---------------------------------------------------------------------------------
// Library discovery and loading
// ---------------------------------------------------------------------------------

/// The folder holding `libtensorflow.so`: `$TENSORFLOW_DIR` when set (it must hold the
/// library), else `<venv>/tensorflow-lib` for the first venv that has one. The error is
/// one sentence naming where it looked.
pub fn find_library_dir(
    tensorflow_dir: Option<&Path>,
    venvs: &[PathBuf],
) -> Result<PathBuf, String> {
    if let Some(dir) = tensorflow_dir {
        if dir.join(LIB_FILE).is_file() {
            return Ok(dir.to_path_buf());
        }
        return Err(format!(
            "TENSORFLOW_DIR={} holds no {LIB_FILE}: run scripts/setup.sh tf, or point TENSORFLOW_DIR at a folder with {LIB_FILE} and libtensorflow_framework.so.2",
            quote_path(dir)
        ));
    }
    for venv in venvs {
        let dir = venv.join(VENV_LIB_DIR);
        if dir.join(LIB_FILE).is_file() {
            return Ok(dir);
        }
    }
    let looked: Vec<String> = venvs
        .iter()
        .map(|v| v.join(VENV_LIB_DIR).display().to_string())
        .collect();
    Err(format!(
        "found no TensorFlow library ({LIB_FILE}) in {}, on LD_LIBRARY_PATH or in /usr/local/lib: run scripts/setup.sh tf (or set TENSORFLOW_DIR to a folder holding it)",
        if looked.is_empty() {
            "the project's .venv".to_string()
        } else {
            looked.join(", ")
        }
    ))
}

/// `libtensorflow.so` in a folder of `LD_LIBRARY_PATH`, else in [`SYSTEM_LIB_DIRS`].
fn system_library() -> Option<PathBuf> {
    let ld_path = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
    std::env::split_paths(&ld_path)
        .chain(SYSTEM_LIB_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(LIB_FILE))
        .find(|lib| lib.is_file())
}

/// `TF_CPP_MIN_LOG_LEVEL` to set before TensorFlow loads, if any: `None` when the user
/// set it (their choice stands) or asked for `--verbose`; else `3`, all of TF's C++
/// log lines off. They come before loadgen's one sentence on a failure, which already
/// carries TF's own status message; `--verbose` shows them.
fn tf_log_level(verbose: bool, user_set: Option<&std::ffi::OsStr>) -> Option<&'static str> {
    match user_set {
        Some(_) => None,
        None if verbose => None,
        None => Some("3"),
    }
}

/// Loads the C API once per process and returns it with its version. Loading twice
/// would map a second copy of TF beside live objects of the first, hence the
/// `OnceLock`. `verbose` is the first load's `--verbose` (one run, one setting).
fn load_library(verbose: bool) -> Result<(&'static Api, String), BackendError> {
    static LOADED: OnceLock<Result<(&'static Api, String), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let env_dir = std::env::var_os("TENSORFLOW_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from);
            let path = match find_library_dir(env_dir.as_deref(), &paths::venv_candidates()) {
                Ok(dir) => {
                    // Once, before any TF call and before workers start: nothing else
                    // reads the environment concurrently here. Child processes (a tuned
                    // run's) inherit the folder found.
                    std::env::set_var("TENSORFLOW_DIR", &dir);
                    dir.join(LIB_FILE)
                }
                // Without TENSORFLOW_DIR, also accept a library on LD_LIBRARY_PATH or
                // in /usr/local/lib.
                Err(e) if env_dir.is_some() => return Err(e),
                Err(e) => system_library().ok_or(e)?,
            };
            // Keep TF's C++ logs off stderr unless the user chose a level or
            // --verbose (its oneDNN start-up line goes through absl and still shows).
            // Read when the library loads, so set first; still before any worker
            // thread. Child processes (a tuned run's) inherit it.
            if let Some(level) =
                tf_log_level(verbose, std::env::var_os("TF_CPP_MIN_LOG_LEVEL").as_deref())
            {
                std::env::set_var("TF_CPP_MIN_LOG_LEVEL", level);
            }
            let api = Api::open(&path).map_err(|e| {
                format!(
                    "the TensorFlow library {} could not be loaded ({e}): run scripts/setup.sh tf (or set TENSORFLOW_DIR to a folder holding {LIB_FILE} and libtensorflow_framework.so.2)",
                    quote_path(&path)
                )
            })?;
            let version = api.version().map_err(|e| {
                format!("the TensorFlow library {} gave no readable version ({e})", quote_path(&path))
            })?;
            Ok((api, version))
        })
        .clone()
        .map_err(BackendError::LibraryNotFound)
}

// ---------------------------------------------------------------------------------
// Session configuration
// ---------------------------------------------------------------------------------

/// The fields of TensorFlow's `ConfigProto` (tensorflow/core/protobuf/config.proto)
/// that loadgen sets, with their field numbers; protobuf skips the rest. Written by
/// hand: the full message would need TensorFlow's .proto files for three fields.
#[derive(Clone, PartialEq, prost::Message)]
struct ConfigProto {
    /// Most devices of each type (`{"GPU": 0}` hides the GPUs).
    #[prost(map = "string, int32", tag = "1")]
    device_count: std::collections::HashMap<String, i32>,
    #[prost(int32, tag = "2")]
    intra_op_parallelism_threads: i32,
    #[prost(int32, tag = "5")]
    inter_op_parallelism_threads: i32,
    #[prost(message, optional, tag = "10")]
    graph_options: Option<GraphOptions>,
}

/// `GraphOptions` with only `rewrite_options`.
#[derive(Clone, PartialEq, prost::Message)]
struct GraphOptions {
    #[prost(message, optional, tag = "10")]
    rewrite_options: Option<RewriterConfig>,
}

/// `RewriterConfig` (core/protobuf/rewriter_config.proto) with only the oneDNN bf16
/// auto-mixed-precision pass: a `Toggle`, ON = 1.
#[derive(Clone, PartialEq, prost::Message)]
struct RewriterConfig {
    #[prost(int32, tag = "31")]
    auto_mixed_precision_onednn_bfloat16: i32,
}

/// A serialized `ConfigProto`: `device_count {"GPU": 0}` when `hide_gpu`, the
/// intra-op and inter-op thread counts (a negative inter-op count runs each step's
/// ops in the calling thread, see [`INTER_OP_IN_CALLER`]), and with `bf16` grappler's
/// oneDNN bfloat16 auto-mixed-precision pass (`--precision bf16`).
pub fn config_proto(intra: i32, inter: i32, hide_gpu: bool, bf16: bool) -> Vec<u8> {
    use prost::Message;
    let mut device_count = std::collections::HashMap::new();
    if hide_gpu {
        device_count.insert("GPU".to_string(), 0);
    }
    ConfigProto {
        device_count,
        intra_op_parallelism_threads: intra,
        inter_op_parallelism_threads: inter,
        graph_options: bf16.then_some(GraphOptions {
            rewrite_options: Some(RewriterConfig {
                auto_mixed_precision_onednn_bfloat16: 1,
            }),
        }),
    }
    .encode_to_vec()
}

/// Whether the CPU has bf16 arithmetic, which TensorFlow's oneDNN bf16 pass needs to
/// be faster than fp32 rather than an emulation of it.
fn cpu_has_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines().filter(|l| l.starts_with("flags")).any(|l| {
            l.split_whitespace()
                .any(|f| f == "avx512_bf16" || f == "amx_bf16")
        })
    })
}

/// `inter_op_parallelism_threads` meaning "run each step's ops in the calling thread":
/// every worker then computes its own step, and only the intra-op pool is shared.
/// (A positive count makes one process-wide pool that all steps queue on: with 1
/// thread, two workers' steps run one after the other.)
pub const INTER_OP_IN_CALLER: i32 = -1;

/// Intra-op threads when not given: the cores split between the workers. TF's intra-op
/// pool is per process (the first session's setting wins), so per-worker sessions
/// share it too. (With 2 workers on 2 cores, 1 and 2 threads measured the same.)
pub fn default_intra_threads(cores: usize, workers: usize) -> usize {
    (cores / workers.max(1)).max(1)
}

// ---------------------------------------------------------------------------------
// Tensor names
// ---------------------------------------------------------------------------------

/// `name:0` → (`name`, 0); `name` → (`name`, 0). A comma-separated list gives its first.
pub fn parse_tensor_name(spec: &str) -> (String, usize) {
    let first = spec.split(',').next().unwrap_or("").trim();
    match first.rsplit_once(':') {
        Some((op, idx)) => match idx.parse::<usize>() {
            Ok(i) => (op.to_string(), i),
            Err(_) => (first.to_string(), 0),
        },
        None => (first.to_string(), 0),
    }
}

fn op_name(op: &Operation) -> &str {
    op.name().unwrap_or("<non-UTF-8 name>")
}

fn ops_of_type(graph: &Graph, ty: &str) -> Vec<Operation> {
    graph
        .operations()
        .into_iter()
        .filter(|op| op.op_type() == Some(ty))
        .collect()
}

fn list_tensors(ops: &[Operation]) -> String {
    if ops.is_empty() {
        "none".into()
    } else {
        ops.iter()
            .map(|o| format!("{}:0", op_name(o)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Looks up `flag` value `spec` (`--inputs` / `--outputs`) in the graph.
fn named_tensor(
    graph: &Graph,
    flag: &str,
    spec: &str,
    hint: &str,
) -> Result<(Operation, usize), BackendError> {
    let (name, idx) = parse_tensor_name(spec);
    match graph.operation_by_name(&name) {
        Some(op) if idx < op.num_outputs() => Ok((op, idx)),
        _ => Err(BackendError::BadInput(format!(
            "{flag} {spec} is not in the graph; {hint}"
        ))),
    }
}

fn fmt_dims(dims: &[Option<i64>]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".into(), |v| v.to_string()))
        .collect();
    format!("[{}]", d.join(","))
}

/// The item shape (no batch dim) and layout from the placeholder's shape `dims`
/// (`[N,H,W,C]` or `[N,C,H,W]`). The channel position decides the layout unless
/// `--data-format` says; unknown H/W/C default to 224/224/3.
fn item_shape_and_layout(
    dims: Option<&[Option<i64>]>,
    data_format: Option<Layout>,
    input: &str,
) -> Result<(Vec<usize>, Layout), BackendError> {
    let item: Vec<Option<i64>> = match dims {
        Some(d) if d.len() == 4 => d[1..].to_vec(),
        None => vec![None; 3],
        Some(d) => {
            return Err(BackendError::BadInput(format!(
                "{input} has shape {} but loadgen feeds images as [N,H,W,C] or [N,C,H,W]",
                fmt_dims(d)
            )))
        }
    };
    let is_ch = |d: Option<i64>| matches!(d, Some(1) | Some(3));
    let inferred = if is_ch(item[2]) {
        Some(Layout::Nhwc)
    } else if is_ch(item[0]) {
        Some(Layout::Nchw)
    } else {
        None
    };
    let layout = match (data_format, inferred) {
        (Some(want), Some(got)) if want != got && item.iter().all(Option::is_some) => {
            return Err(BackendError::BadInput(format!(
                "--data-format {} does not fit {input}, whose shape {} is {}",
                want.as_str(),
                fmt_dims(dims.unwrap_or(&[])),
                got.as_str()
            )))
        }
        (Some(want), _) => want,
        (None, Some(got)) => got,
        // TF's own convention.
        (None, None) => Layout::Nhwc,
    };
    let (h, w, c) = match layout {
        Layout::Nhwc => (item[0], item[1], item[2]),
        Layout::Nchw => (item[1], item[2], item[0]),
    };
    let pick =
        |d: Option<i64>, default: usize| d.filter(|v| *v > 0).map_or(default, |v| v as usize);
    let (h, w, c) = (pick(h, 224), pick(w, 224), pick(c, 3));
    let shape = match layout {
        Layout::Nhwc => vec![h, w, c],
        Layout::Nchw => vec![c, h, w],
    };
    Ok((shape, layout))
}

// ---------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------

/// How the fetched output gives the class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutKind {
    /// One class index per item (`ArgMax`), int64 or int32.
    Int64,
    Int32,
    /// Scores per item; the class is the row's argmax.
    Scores,
}

/// What every session needs to run a step: shared, read-only after load.
struct Plan {
    input: Operation,
    input_idx: usize,
    output: Operation,
    output_idx: usize,
    out_kind: OutKind,
    /// A separate float scores tensor (`softmax_tensor`) fetched only for `keep_scores`.
    scores: Option<(Operation, usize)>,
    item_shape: Vec<u64>,
    item_len: usize,
}

pub struct TfBackend {
    api: &'static Api,
    info: ModelInfo,
    version: String,
    mode: SessionMode,
    plan: Arc<Plan>,
    /// Kept for per-worker sessions (and alive while any session is).
    graph: Graph,
    config: Vec<u8>,
    /// The one session in `Shared` mode.
    shared: Option<Arc<TfSession>>,
    /// `PerWorker`: the session made (and warmed up) at load, handed to the first worker.
    spare: Mutex<Vec<TfSession>>,
    /// `--op-profile`: every worker's traced steps, summed.
    profile: Option<SharedTotals>,
}

/// `--op-profile`: a worker runs each step traced and sums its step stats here until
/// it ends (one lock per worker, not per step).
struct Trace {
    options: Vec<u8>,
    metadata: Vec<u8>,
    shared: SharedTotals,
    mine: OpTotals,
}

impl TfBackend {
    /// Loads the library, imports the frozen graph, makes (and warms up) a session.
    pub fn load(cfg: &BackendConfig) -> Result<TfBackend, BackendError> {
        let mode = SessionMode::from_env()?;
        TfBackend::load_with(cfg, mode)
    }

    /// [`TfBackend::load`] with an explicit session mode.
    pub fn load_with(cfg: &BackendConfig, mode: SessionMode) -> Result<TfBackend, BackendError> {
        let path = cfg.model.clone().unwrap_or_else(default_model_path);
        if !path.is_file() {
            return Err(BackendError::BadInput(format!(
                "the TensorFlow model {} does not exist: run scripts/setup.sh tf to make it, or pass --model PATH to a frozen GraphDef (.pb)",
                quote_path(&path)
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            BackendError::BadInput(format!("cannot read the model {}: {e}", quote_path(&path)))
        })?;
        let (api, version) = load_library(cfg.verbose)?;

        let mut graph = Graph::new(api);
        let not_graph = |why: String| {
            BackendError::BadInput(format!(
                "{} is not a TensorFlow GraphDef (.pb) ({why}); give --model a frozen graph such as resnet50_v1.pb",
                quote_path(&path)
            ))
        };
        graph
            .import_graph_def(&bytes)
            .map_err(|s| not_graph(s.to_string()))?;
        if graph.operations().is_empty() {
            return Err(not_graph("it holds no operations".into()));
        }
        let (plan, info) = plan(&graph, cfg)?;

        let workers = cfg.workers.max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let as_i32 = |n: usize| i32::try_from(n.max(1)).unwrap_or(i32::MAX);
        let intra = as_i32(
            cfg.intra_threads
                .unwrap_or_else(|| default_intra_threads(cores, workers)),
        );
        let inter = cfg.inter_threads.map_or(INTER_OP_IN_CALLER, as_i32);
        if cfg.precision == Some(Precision::Bf16) && !cpu_has_bf16() {
            return Err(BackendError::DeviceUnavailable(
                "--precision bf16: this CPU has no bf16 instructions (neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo), so TensorFlow's bf16 pass would only emulate them; use fp32".into(),
            ));
        }
        let config = config_proto(
            intra,
            inter,
            cfg.device == Device::Cpu,
            cfg.precision == Some(Precision::Bf16),
        );

        let first = new_session(api, &graph, &config)?;
        check_device(&first, cfg.device, &version)?;
        warm_up(api, &first, &plan)?;
        let (shared, spare) = match mode {
            SessionMode::Shared => (Some(Arc::new(first)), Vec::new()),
            SessionMode::PerWorker => (None, vec![first]),
        };
        Ok(TfBackend {
            api,
            info,
            version,
            mode,
            plan: Arc::new(plan),
            graph,
            config,
            shared,
            spare: Mutex::new(spare),
            profile: cfg.op_profile.then(SharedTotals::default),
        })
    }

    /// Shared or per-worker sessions.
    pub fn mode(&self) -> SessionMode {
        self.mode
    }
}

/// `models/resnet50_v1.pb` under the project root (or the working directory).
fn default_model_path() -> PathBuf {
    paths::project_root()
        .unwrap_or_default()
        .join("models")
        .join("resnet50_v1.pb")
}

fn new_session(api: &'static Api, graph: &Graph, config: &[u8]) -> Result<TfSession, BackendError> {
    let mut opts = SessionOptions::new(api);
    opts.set_config(config).map_err(|s| {
        BackendError::Runtime(format!("TensorFlow refused the session config: {s}"))
    })?;
    TfSession::new(&opts, graph)
        .map_err(|s| BackendError::Runtime(format!("TensorFlow could not create a session: {s}")))
}

/// `--device gpu` needs a GPU that TF sees; CPU always works.
fn check_device(session: &TfSession, device: Device, version: &str) -> Result<(), BackendError> {
    if device != Device::Gpu {
        return Ok(());
    }
    let seen = session.device_types().map_err(|s| {
        BackendError::Runtime(format!("TensorFlow could not list its devices: {s}"))
    })?;
    if seen.iter().any(|t| t == "GPU") {
        return Ok(());
    }
    Err(BackendError::DeviceUnavailable(format!(
        "--device gpu: TensorFlow {version} sees no GPU (only {}); install a CUDA build of libtensorflow or use --device cpu",
        seen.join(", ")
    )))
}

/// The first run of each feed/fetch set optimises the graph (~1 s for ResNet-50 here):
/// pay it at load, for the classes alone and with the scores (`keep_scores`).
fn warm_up(api: &'static Api, session: &TfSession, plan: &Plan) -> Result<(), BackendError> {
    let zeros = vec![0f32; plan.item_len];
    let batch = Batch {
        data: &zeros,
        len: 1,
    };
    let mut input = None;
    run_step(
        api,
        session,
        plan,
        &mut input,
        batch,
        &mut Prediction::default(),
        None,
    )?;
    if plan.scores.is_some() {
        let mut out = Prediction {
            keep_scores: true,
            ..Prediction::default()
        };
        run_step(api, session, plan, &mut input, batch, &mut out, None)?;
    }
    Ok(())
}

/// Reads names, shapes and output kinds from the graph.
fn plan(graph: &Graph, cfg: &BackendConfig) -> Result<(Plan, ModelInfo), BackendError> {
    let placeholders = ops_of_type(graph, "Placeholder");
    let ph_hint = format!("its placeholders are: {}", list_tensors(&placeholders));
    let (input, input_idx) = match cfg.inputs.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(spec) => named_tensor(graph, "--inputs", spec, &ph_hint)?,
        None => match placeholders.as_slice() {
            [one] => (one.clone(), 0),
            [] => {
                return Err(BackendError::BadInput(
                    "the graph has no Placeholder to feed; name its input with --inputs".into(),
                ))
            }
            many => {
                return Err(BackendError::BadInput(format!(
                    "the graph has {} placeholders ({}); choose one with --inputs",
                    many.len(),
                    list_tensors(many)
                )))
            }
        },
    };
    let input_name = format!("{}:{input_idx}", op_name(&input));
    // `input_idx` is an output of `input` (0 of a placeholder, else checked by name).
    let input_type = input.output_type(input_idx);
    if input_type != Some(DataType::FLOAT) {
        return Err(BackendError::BadInput(format!(
            "{input_name} takes {} but loadgen feeds float32 images",
            input_type.map_or("no tensor".into(), |t| t.to_string())
        )));
    }

    let argmax = graph.operation_by_name("ArgMax");
    let softmaxes = ops_of_type(graph, "Softmax");
    let scores_op = graph
        .operation_by_name(SCORES_OP)
        .or_else(|| softmaxes.last().cloned());
    let (output, output_idx) = match cfg.outputs.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(spec) => {
            let known: Vec<Operation> = argmax.iter().chain(scores_op.iter()).cloned().collect();
            let hint = if known.is_empty() {
                "give the name of a tensor holding classes or scores".to_string()
            } else {
                format!("its outputs include: {}", list_tensors(&known))
            };
            named_tensor(graph, "--outputs", spec, &hint)?
        }
        None => match argmax.clone().or_else(|| scores_op.clone()) {
            Some(op) => (op, 0),
            None => {
                return Err(BackendError::BadInput(
                    "the graph has no ArgMax, softmax_tensor or Softmax output; name one with --outputs".into(),
                ))
            }
        },
    };
    let output_name = format!("{}:{output_idx}", op_name(&output));
    let out_kind = match output.output_type(output_idx) {
        Some(DataType::INT64) => OutKind::Int64,
        Some(DataType::INT32) => OutKind::Int32,
        Some(DataType::FLOAT) => OutKind::Scores,
        other => {
            return Err(BackendError::BadInput(format!(
                "{output_name} is {}; loadgen needs class indices (int64/int32) or float32 scores",
                other.map_or("no tensor".into(), |t| t.to_string())
            )))
        }
    };
    // The scores for `keep_scores`: the output itself if it is scores, else softmax_tensor.
    let scores = match out_kind {
        OutKind::Scores => None,
        _ => scores_op
            .filter(|op| op.output_type(0) == Some(DataType::FLOAT))
            .map(|op| (op, 0)),
    };
    let num_classes = {
        let (op, idx) = match (&scores, out_kind) {
            (_, OutKind::Scores) => (&output, output_idx),
            (Some((op, _)), _) => (op, 0),
            // Class indices only: the class count is not in the graph.
            (None, _) => (&output, output_idx),
        };
        graph
            .tensor_dims(op, idx)
            .filter(|d| d.len() == 2)
            .and_then(|d| d[1])
            .filter(|n| *n > 0)
            .map_or(0, |n| n as usize)
    };

    let dims = graph.tensor_dims(&input, input_idx);
    let (item_shape, layout) =
        item_shape_and_layout(dims.as_deref(), cfg.data_format, &input_name)?;
    let item_len = item_shape.iter().product();
    let plan = Plan {
        input,
        input_idx,
        output,
        output_idx,
        out_kind,
        scores,
        item_shape: item_shape.iter().map(|&d| d as u64).collect(),
        item_len,
    };
    let info = ModelInfo {
        input_name,
        output_name,
        item_shape,
        layout,
        num_classes,
        max_batch: None,
    };
    Ok((plan, info))
}

impl Backend for TfBackend {
    fn name(&self) -> &'static str {
        "tensorflow"
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn session(&self, _worker: usize) -> Result<Box<dyn Session>, BackendError> {
        let session = match &self.shared {
            Some(s) => Arc::clone(s),
            None => {
                let spare = self.spare.lock().ok().and_then(|mut v| v.pop());
                let s = match spare {
                    Some(s) => s,
                    None => {
                        let s = new_session(self.api, &self.graph, &self.config)?;
                        warm_up(self.api, &s, &self.plan)?;
                        s
                    }
                };
                Arc::new(s)
            }
        };
        Ok(Box::new(TfWorker {
            api: self.api,
            session,
            plan: Arc::clone(&self.plan),
            input: None,
            trace: self.profile.as_ref().map(|shared| Trace {
                options: super::tf_profile::traced_run_options(),
                metadata: Vec::new(),
                shared: Arc::clone(shared),
                mine: OpTotals::default(),
            }),
        }))
    }

    fn op_profile(&self) -> Option<OpProfile> {
        let shared = self.profile.as_ref()?;
        let totals = shared.lock().unwrap_or_else(|p| p.into_inner());
        Some(totals.profile())
    }
}

/// A worker's handle: the (shared or own) session and a reused input tensor.
struct TfWorker {
    api: &'static Api,
    session: Arc<TfSession>,
    plan: Arc<Plan>,
    /// The last batch's input tensor, reused while the batch size stays the same.
    input: Option<Tensor>,
    trace: Option<Trace>,
}

impl Drop for TfWorker {
    fn drop(&mut self) {
        if let Some(t) = self.trace.take() {
            op_profile::merge_into(&t.shared, t.mine);
        }
    }
}

impl Session for TfWorker {
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
        run_step(
            self.api,
            &self.session,
            &self.plan,
            &mut self.input,
            batch,
            out,
            self.trace.as_mut(),
        )
    }
}

/// One step: copies the batch into `input` (reallocated only when the batch size
/// changes), runs, and appends the classes (and the scores, if kept) to `out`.
fn run_step(
    api: &'static Api,
    session: &TfSession,
    plan: &Plan,
    input: &mut Option<Tensor>,
    batch: Batch<'_>,
    out: &mut Prediction,
    trace: Option<&mut Trace>,
) -> Result<(), BackendError> {
    let n = batch.len;
    if batch.data.len() != n * plan.item_len {
        return Err(BackendError::Runtime(format!(
            "a batch of {n} items holds {} values, not {n} x {}",
            batch.data.len(),
            plan.item_len
        )));
    }
    if n == 0 {
        return Ok(());
    }
    let tensor = match input {
        Some(t) if t.dim(0) == Some(n as u64) => t,
        _ => {
            let mut dims = Vec::with_capacity(plan.item_shape.len() + 1);
            dims.push(n as u64);
            dims.extend_from_slice(&plan.item_shape);
            let t = Tensor::new::<f32>(api, &dims).ok_or_else(|| {
                BackendError::Runtime(format!(
                    "TensorFlow could not allocate the input tensor for a batch of {n}"
                ))
            })?;
            input.insert(t)
        }
    };
    let fetch_err = |s: TfError| BackendError::Runtime(format!("TensorFlow fetch failed: {s}"));
    tensor
        .data_mut::<f32>()
        .map_err(|s| BackendError::Runtime(format!("TensorFlow input tensor: {s}")))?
        .copy_from_slice(batch.data);

    let scores = match (&plan.scores, out.keep_scores) {
        (Some((op, idx)), true) => Some((op, *idx)),
        _ => None,
    };
    let mut fetches = Vec::with_capacity(2);
    fetches.push((&plan.output, plan.output_idx));
    fetches.extend(scores);
    let feeds = [(&plan.input, plan.input_idx, &*tensor)];
    let fetched = match trace {
        None => session.run(&feeds, &fetches),
        Some(t) => {
            let fetched = session.run_traced(&feeds, &fetches, (&t.options, &mut t.metadata));
            if fetched.is_ok() {
                if let Err(e) = super::tf_profile::add_run_metadata(&t.metadata, &mut t.mine) {
                    if t.mine.problems.is_empty() {
                        t.mine.problems.push(e);
                    }
                }
            }
            fetched
        }
    }
    .map_err(|s| BackendError::Runtime(format!("TensorFlow run failed: {s}")))?;

    let before = out.top1.len();
    match plan.out_kind {
        OutKind::Int64 => {
            out.top1
                .extend_from_slice(fetched[0].data::<i64>().map_err(fetch_err)?);
        }
        OutKind::Int32 => {
            let t = fetched[0].data::<i32>().map_err(fetch_err)?;
            out.top1.extend(t.iter().map(|&c| c as i64));
        }
        OutKind::Scores => {
            let t = fetched[0].data::<f32>().map_err(fetch_err)?;
            push_argmax(t, n, out);
            if out.keep_scores {
                out.scores.extend_from_slice(t);
            }
        }
    }
    if let Some(t) = fetched.get(1) {
        out.scores
            .extend_from_slice(t.data::<f32>().map_err(fetch_err)?);
    }
    let got = out.top1.len() - before;
    if got != n {
        return Err(BackendError::Runtime(format!(
            "the model gave {got} classes for a batch of {n}"
        )));
    }
    Ok(())
}

/// Row-wise argmax of `n` rows of scores (first maximum wins, as `tf.argmax`).
fn push_argmax(scores: &[f32], n: usize, out: &mut Prediction) {
    let width = scores.len() / n.max(1);
    if width == 0 {
        return;
    }
    for row in scores.chunks_exact(width) {
        let mut best = 0;
        for (i, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = i;
            }
        }
        out.top1.push(best as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_log_lines_are_off_unless_verbose_or_chosen() {
        use std::ffi::OsStr;
        for (verbose, user, want) in [
            (false, None, Some("3")),
            (true, None, None),
            (false, Some("0"), None),
            (true, Some("1"), None),
            // Set, even empty, is the user's choice.
            (false, Some(""), None),
        ] {
            assert_eq!(
                tf_log_level(verbose, user.map(OsStr::new)),
                want,
                "{verbose} {user:?}"
            );
        }
    }

    #[test]
    fn config_proto_matches_protobuf() {
        use prost::Message;
        // Bytes from Python: ConfigProto(intra_op_parallelism_threads=2,
        // inter_op_parallelism_threads=1, device_count={"GPU": 0}).SerializeToString().
        // Python writes the map entry's value 0, prost leaves it out (the default):
        // the same message, so compare what TensorFlow would read.
        let python = [10, 7, 10, 3, 71, 80, 85, 16, 0, 16, 2, 40, 1];
        let ours = config_proto(2, 1, true, false);
        assert_eq!(
            ConfigProto::decode(&ours[..]).unwrap(),
            ConfigProto::decode(&python[..]).unwrap()
        );
        assert_eq!(ours, vec![10, 5, 10, 3, 71, 80, 85, 16, 2, 40, 1]);
        // intra 300 needs a two-byte varint.
        assert_eq!(config_proto(300, 1, false, false), vec![16, 172, 2, 40, 1]);
        // Python: ConfigProto() with graph_options.rewrite_options.
        // auto_mixed_precision_onednn_bfloat16 = RewriterConfig.ON.
        assert_eq!(
            config_proto(0, 0, false, true),
            [0x52, 0x05, 0x52, 0x03, 0xf8, 0x01, 0x01]
        );
        // inter -1 (run in the caller's thread): a ten-byte varint, as protobuf writes it.
        assert_eq!(
            config_proto(1, INTER_OP_IN_CALLER, false, false),
            vec![16, 1, 40, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1]
        );
    }

    #[test]
    fn default_threads_split_the_cores() {
        assert_eq!(default_intra_threads(2, 1), 2);
        assert_eq!(default_intra_threads(2, 2), 1);
        assert_eq!(default_intra_threads(2, 8), 1);
        assert_eq!(default_intra_threads(16, 0), 16);
    }

    #[test]
    fn parses_tensor_names() {
        assert_eq!(
            parse_tensor_name("input_tensor:0"),
            ("input_tensor".into(), 0)
        );
        assert_eq!(parse_tensor_name("ArgMax"), ("ArgMax".into(), 0));
        assert_eq!(
            parse_tensor_name("ArgMax:0, softmax_tensor:0"),
            ("ArgMax".into(), 0)
        );
        assert_eq!(parse_tensor_name("split:2"), ("split".into(), 2));
        assert_eq!(parse_tensor_name("scope/x:y"), ("scope/x:y".into(), 0));
    }

    #[test]
    fn session_modes_parse() {
        assert_eq!(SessionMode::parse("shared"), Some(SessionMode::Shared));
        assert_eq!(
            SessionMode::parse("Per-Worker"),
            Some(SessionMode::PerWorker)
        );
        assert_eq!(SessionMode::parse("both"), None);
    }

    #[test]
    fn layout_from_placeholder_shape() {
        let nhwc = [None, Some(224), Some(224), Some(3)];
        assert_eq!(
            item_shape_and_layout(Some(&nhwc), None, "x:0").unwrap(),
            (vec![224, 224, 3], Layout::Nhwc)
        );
        let nchw = [None, Some(3), Some(224), Some(224)];
        assert_eq!(
            item_shape_and_layout(Some(&nchw), None, "x:0").unwrap(),
            (vec![3, 224, 224], Layout::Nchw)
        );
        // A flag that contradicts a fully known shape is refused with a sentence.
        let err = item_shape_and_layout(Some(&nhwc), Some(Layout::Nchw), "x:0").unwrap_err();
        assert!(err.to_string().contains("--data-format NCHW"), "{err}");
        // Unknown dims: the flag decides, 224x224x3 fills in.
        let open = [None, None, None, None];
        assert_eq!(
            item_shape_and_layout(Some(&open), Some(Layout::Nchw), "x:0").unwrap(),
            (vec![3, 224, 224], Layout::Nchw)
        );
        assert!(item_shape_and_layout(Some(&[None, Some(10)]), None, "x:0").is_err());
    }

    #[test]
    fn discovery_prefers_tensorflow_dir_then_venvs() {
        let tmp = tempfile::tempdir().unwrap();
        let env_dir = tmp.path().join("tfdir");
        let venv_a = tmp.path().join("a/.venv");
        let venv_b = tmp.path().join("b/.venv");
        std::fs::create_dir_all(&env_dir).unwrap();
        std::fs::create_dir_all(venv_a.join(VENV_LIB_DIR)).unwrap();
        std::fs::create_dir_all(venv_b.join(VENV_LIB_DIR)).unwrap();
        let venvs = vec![venv_a.clone(), venv_b.clone()];

        // Nothing anywhere: one sentence naming the folders and the fix.
        let err = find_library_dir(None, &venvs).unwrap_err();
        assert!(
            err.contains(&venv_a.join(VENV_LIB_DIR).display().to_string()),
            "{err}"
        );
        assert!(err.contains("scripts/setup.sh tf"), "{err}");
        assert!(err.contains("TENSORFLOW_DIR"), "{err}");

        // The second venv has it.
        std::fs::write(venv_b.join(VENV_LIB_DIR).join(LIB_FILE), b"").unwrap();
        assert_eq!(
            find_library_dir(None, &venvs).unwrap(),
            venv_b.join(VENV_LIB_DIR)
        );

        // TENSORFLOW_DIR set but empty of the library: an error, no fallback.
        let err = find_library_dir(Some(&env_dir), &venvs).unwrap_err();
        assert!(err.contains("TENSORFLOW_DIR="), "{err}");
        assert!(err.contains("scripts/setup.sh tf"), "{err}");

        // TENSORFLOW_DIR wins when it holds the library.
        std::fs::write(env_dir.join(LIB_FILE), b"").unwrap();
        assert_eq!(find_library_dir(Some(&env_dir), &venvs).unwrap(), env_dir);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        let mut out = Prediction::default();
        push_argmax(&[0.1, 0.7, 0.2, 0.5, 0.5, 0.0], 2, &mut out);
        assert_eq!(out.top1, vec![1, 0]);
    }
}
