//! `onnxruntime`: ONNX Runtime through `ort` (feature `load-dynamic`).
//!
//! The runtime is a shared library loaded at run time, never at build time: the file named
//! by `ORT_DYLIB_PATH`, else `onnxruntime/capi/libonnxruntime.so.<ver>` inside the
//! project's `.venv` (made by `scripts/setup.sh onnxruntime`). We resolve that path
//! ourselves and call `ort::init_from`, because ort's own fallback panics when the
//! library is missing.
//!
//! `ort::session::Session::run` takes `&mut self`, so every worker gets its own session
//! (each holds its own copy of the weights: ~100 MB for ResNet-50).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::logging::LogLevel;
use ort::session::builder::SessionBuilder;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions};
use ort::value::{Outlet, TensorElementType, TensorRef, ValueType};

use crate::backend::config::BackendConfig;
use crate::base::model::{Device, Layout, ModelInfo};
use crate::base::op_profile::{self, OpProfile, OpTotals, SharedTotals};
use crate::base::paths;
use crate::base::sut::{Backend, BackendError, Batch, Prediction, Session};
use crate::base::text::quote_path;

/// The fix we suggest whenever the runtime library cannot be found.
const SETUP_HINT: &str =
    "run scripts/setup.sh onnxruntime (or set ORT_DYLIB_PATH to a libonnxruntime.so file)";

/// Image size assumed when the model leaves height or width symbolic.
const DEFAULT_IMAGE_SIDE: usize = 224;

// ------------------------------------------------------------------ library discovery

/// Finds the ONNX Runtime library: `ort_dylib_path` (the value of `ORT_DYLIB_PATH`) when
/// set, which must then exist; else `onnxruntime/capi/libonnxruntime.so*` in the
/// site-packages of each venv, in order. Pure apart from reading the file system, so the
/// search is testable without a library.
pub fn find_library(
    ort_dylib_path: Option<&OsStr>,
    venvs: &[PathBuf],
) -> Result<PathBuf, BackendError> {
    if let Some(p) = ort_dylib_path.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(BackendError::LibraryNotFound(format!(
                "ORT_DYLIB_PATH is {} but there is no such file: point it at libonnxruntime.so.<version>, \
                 or unset it and run scripts/setup.sh onnxruntime",
                quote_path(&p)
            )))
        };
    }
    for venv in venvs {
        for sp in paths::site_packages(venv) {
            if let Some(lib) = library_in(&sp.join("onnxruntime").join("capi")) {
                return Ok(lib);
            }
        }
    }
    let looked: Vec<String> = venvs.iter().map(|v| v.display().to_string()).collect();
    Err(BackendError::LibraryNotFound(format!(
        "ONNX Runtime library not found: looked for lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* \
         in {}; {SETUP_HINT}",
        if looked.is_empty() {
            "no venv (none was given)".to_string()
        } else {
            looked.join(", ")
        }
    )))
}

/// The library file in a wheel's `capi` folder: the versioned `libonnxruntime.so.X.Y.Z`
/// (the wheel ships no unversioned link), else a plain `libonnxruntime.so`.
fn library_in(capi: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name().and_then(OsStr::to_str).is_some_and(|n| {
                    n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so.")
                })
        })
        .collect();
    // Longest name first: the versioned file beats the plain one; then the newest version.
    found.sort_by(|a, b| {
        let (na, nb) = (a.as_os_str().len(), b.as_os_str().len());
        nb.cmp(&na).then_with(|| b.cmp(a))
    });
    found.into_iter().next()
}

/// The runtime version from the library's file name (`libonnxruntime.so.1.31.1` →
/// `1.31.1`), following a symlink first. The C API only gives the version through the
/// API base, which `ort` keeps private.
pub fn version_from_path(lib: &Path) -> Option<String> {
    let real = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.to_path_buf());
    [real.as_path(), lib].iter().find_map(|p| {
        let name = p.file_name()?.to_str()?;
        let v = name.strip_prefix("libonnxruntime.so.")?;
        (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')).then(|| v.to_string())
    })
}

/// Opens the library for good (`RTLD_NODELETE`) and checks that it exports
/// `OrtGetApiBase`, before `ort` sees it. `ort` drops (dlcloses) a library that fails its
/// checks; a foreign library such as libtensorflow.so has by then started threads and
/// registered exit handlers that later ran in unmapped code, so the process printed the
/// right sentence and then died of SIGSEGV. Kept mapped, nothing of it can crash; and
/// a file without the symbol is refused here, without `ort` at all.
fn pin_library(lib: &Path) -> Result<(), String> {
    use libloading::os::unix::Library;
    // RTLD_NODELETE (which libloading does not name): no dlclose, ours or `ort`'s,
    // ever unmaps it.
    let flags = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE;
    // SAFETY: loading runs the library's initialisers. It is the ONNX Runtime library
    // the user (or setup) pointed at, which `ort` loads anyway right after this.
    let library = unsafe { Library::open(Some(lib), flags) }.map_err(|e| {
        format!(
            "{} could not be loaded as a shared library ({}); {SETUP_HINT}",
            quote_path(lib),
            e.to_string().replace('\n', " ")
        )
    })?;
    // SAFETY: only the symbol's presence is checked; it is never called through this type.
    let found = unsafe { library.get::<unsafe extern "C" fn()>(b"OrtGetApiBase") }.is_ok();
    // Never closed: the library stays mapped for the life of the process (see above).
    std::mem::forget(library);
    if !found {
        return Err(format!(
            "{} is not an ONNX Runtime library (it does not export OrtGetApiBase); {SETUP_HINT}",
            quote_path(lib)
        ));
    }
    Ok(())
}

/// The process-wide runtime: the loaded library and ort's single environment.
struct Runtime {
    env: Environment,
    version: String,
}

/// The runtime, or why it could not be set up (kept, so later loads give the same answer).
static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Loads the library and builds the environment, once per process: ort allows only one
/// environment, and a library cannot be unloaded once loaded.
fn runtime() -> Result<&'static Runtime, BackendError> {
    let init = RUNTIME.get_or_init(|| {
        let venvs = paths::venv_candidates();
        let lib = find_library(std::env::var_os("ORT_DYLIB_PATH").as_deref(), &venvs)
            .map_err(|e| e.to_string())?;
        pin_library(&lib)?;
        let builder = ort::init_from(&lib).map_err(|e| {
            format!(
                "the ONNX Runtime library {} could not be loaded ({e}); {SETUP_HINT}",
                quote_path(&lib)
            )
        })?;
        let env = builder
            .with_name("loadgen")
            .with_telemetry(false)
            .build()
            .map_err(|e| {
                format!(
                    "ONNX Runtime from {} could not start its environment ({e}); {SETUP_HINT}",
                    quote_path(&lib)
                )
            })?;
        let version = version_from_path(&lib).unwrap_or_else(|| "unknown".to_string());
        Ok(Runtime { env, version })
    });
    match init {
        Ok(rt) => Ok(rt),
        Err(msg) => Err(BackendError::LibraryNotFound(msg.clone())),
    }
}

/// ONNX Runtime's log level for a run: `None` keeps the one the user chose with
/// `ORT_LOG` (which ort reads when it creates the environment); else warnings and
/// above with `--verbose`, and fatal errors only without it. ORT logs a failed
/// session as coloured error lines on stderr before loadgen's one sentence says the
/// same (ort's error carries ORT's message), so by default they are off.
fn log_level(verbose: bool, ort_log: Option<&str>) -> Option<LogLevel> {
    const CHOSEN: [&str; 5] = ["fatal", "error", "warning", "info", "verbose"];
    match ort_log {
        Some(v) if CHOSEN.contains(&v) => None,
        _ if verbose => Some(LogLevel::Warning),
        _ => Some(LogLevel::Fatal),
    }
}

// ------------------------------------------------------------------ model description

/// What the chosen output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputKind {
    /// Float scores per class: top-1 is the argmax.
    Scores,
    /// Class indices already (e.g. an `ArgMax` output).
    ClassesI64,
    ClassesI32,
}

/// Checks that an input is an image tensor and reads its item shape, layout and fixed
/// batch size. `dims` uses -1 for symbolic dimensions (as ort reports them).
/// Layout: `data_format` (the flag) wins, then the model's `layout` metadata, then the
/// position of the 1- or 3-sized channel dimension (position 1: NCHW, last: NHWC).
fn image_input(
    model: &Path,
    name: &str,
    is_float: bool,
    dims: &[i64],
    data_format: Option<Layout>,
    meta_layout: Option<Layout>,
) -> Result<(Vec<usize>, Layout, Option<usize>), BackendError> {
    let shown = dims
        .iter()
        .map(|d| {
            if *d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let bad = |extra: &str| {
        BackendError::BadInput(format!(
            "model {} input '{name}' has shape [{shown}]{extra}; loadgen needs an image tensor [N,3,H,W] or [N,H,W,3]",
            quote_path(model)
        ))
    };
    if !is_float {
        return Err(bad(" and is not float32"));
    }
    if dims.len() != 4 {
        return Err(bad(""));
    }
    let is_channels = |d: i64| d == 1 || d == 3;
    let guessed = if is_channels(dims[1]) {
        Some(Layout::Nchw)
    } else if is_channels(dims[3]) {
        Some(Layout::Nhwc)
    } else {
        None
    };
    let layout = match data_format.or(meta_layout).or(guessed) {
        Some(l) => l,
        None => return Err(bad("")),
    };
    let (c, h, w) = match layout {
        Layout::Nchw => (dims[1], dims[2], dims[3]),
        Layout::Nhwc => (dims[3], dims[1], dims[2]),
    };
    if !is_channels(c) {
        return Err(match data_format {
            Some(l) => BackendError::BadInput(format!(
                "--data-format {} does not fit model {} input '{name}' of shape [{shown}]: its channels \
                 would be {c}; drop the flag or give the other layout",
                l.as_str(),
                quote_path(model)
            )),
            None => bad(""),
        });
    }
    let side = |d: i64| {
        if d > 0 {
            d as usize
        } else {
            DEFAULT_IMAGE_SIDE
        }
    };
    let c = c as usize;
    let item_shape = match layout {
        Layout::Nchw => vec![c, side(h), side(w)],
        Layout::Nhwc => vec![side(h), side(w), c],
    };
    let max_batch = (dims[0] > 0).then_some(dims[0] as usize);
    Ok((item_shape, layout, max_batch))
}

/// Picks a tensor by a `--inputs`/`--outputs` value (the first of a comma list). An
/// exact name wins; `x` and `x:0` also match each other (TensorFlow-style names).
fn pick<'a>(
    outlets: &'a [Outlet],
    wanted: Option<&str>,
    what: &str,
    flag: &str,
    model: &Path,
) -> Result<&'a Outlet, BackendError> {
    let names = || {
        outlets
            .iter()
            .map(|o| format!("'{}'", o.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let wanted = wanted
        .and_then(|w| w.split(',').map(str::trim).find(|w| !w.is_empty()))
        .map(str::to_string);
    match wanted {
        None => outlets.first().ok_or_else(|| {
            BackendError::BadInput(format!("model {} has no {what}s", quote_path(model)))
        }),
        Some(w) => outlets
            .iter()
            .find(|o| o.name() == w)
            .or_else(|| {
                let base = w.strip_suffix(":0").unwrap_or(&w);
                outlets
                    .iter()
                    .find(|o| o.name().strip_suffix(":0").unwrap_or(o.name()) == base)
            })
            .ok_or_else(|| {
                BackendError::BadInput(format!(
                    "{flag} '{w}' names no {what} of model {}: its {what}s are {}",
                    quote_path(model),
                    names()
                ))
            }),
    }
}

/// Number of classes a float score output covers (product of its non-batch dims).
fn classes_of(dims: &[i64]) -> Option<usize> {
    if dims.len() < 2 || dims[1..].iter().any(|d| *d <= 0) {
        return None;
    }
    Some(dims[1..].iter().map(|d| *d as usize).product())
}

fn tensor_parts(v: &ValueType) -> Option<(TensorElementType, &[i64])> {
    match v {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, &shape[..])),
        _ => None,
    }
}

/// Index of the largest score (the first one on ties; NaN never wins).
fn argmax(row: &[f32]) -> i64 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as i64
}

// ------------------------------------------------------------------ backend

/// A model loaded in ONNX Runtime. It keeps the session it opened to read the model and
/// hands it to the first worker that asks, so the weights are not loaded twice.
pub struct OrtBackend {
    path: PathBuf,
    info: ModelInfo,
    device: Device,
    intra_threads: usize,
    inter_threads: usize,
    output_kind: OutputKind,
    version: String,
    first: Mutex<Option<ort::session::Session>>,
    /// `--op-profile`: each session's profile, summed as the sessions end.
    profile: Option<SharedTotals>,
}

impl OrtBackend {
    /// Loads the model at `cfg.model` (default: `models/resnet50_v1.onnx` of the project)
    /// and reads its input/output description.
    ///
    /// Threads: each worker's session gets `cfg.intra_threads`, by default
    /// `max(1, available_parallelism / workers)` so that the workers together use every
    /// core once, and `cfg.inter_threads`, by default 1 (ResNet-style graphs are a
    /// chain: inter-op parallelism only adds threads that compete for the same cores).
    pub fn load(cfg: &BackendConfig) -> Result<OrtBackend, BackendError> {
        let path = cfg.model.clone().unwrap_or_else(default_model);
        if !path.exists() {
            return Err(BackendError::BadInput(format!(
                "model file {} does not exist: run scripts/setup.sh onnxruntime to make the default model, \
                 or pass --model PATH (or MODEL_DIR) with an ONNX model",
                quote_path(&path)
            )));
        }
        if !path.is_file() {
            return Err(BackendError::BadInput(format!(
                "model {} is not a file: pass --model with the path of an .onnx file",
                quote_path(&path)
            )));
        }
        let rt = runtime()?;
        if let Some(level) = log_level(cfg.verbose, std::env::var("ORT_LOG").ok().as_deref()) {
            rt.env.set_log_level(level);
        }
        let workers = cfg.workers.max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let intra_threads = cfg.intra_threads.unwrap_or(cores / workers).max(1);
        let inter_threads = cfg.inter_threads.unwrap_or(1).max(1);

        let session = open_session(
            &rt.env,
            &path,
            cfg.device,
            intra_threads,
            inter_threads,
            &rt.version,
            cfg.op_profile,
        )?;

        // --- input
        let input = pick(
            session.inputs(),
            cfg.inputs.as_deref(),
            "input",
            "--inputs",
            &path,
        )?;
        if session.inputs().len() > 1 {
            let names: Vec<String> = session
                .inputs()
                .iter()
                .map(|o| format!("'{}'", o.name()))
                .collect();
            return Err(BackendError::BadInput(format!(
                "model {} has {} inputs ({}); loadgen feeds a single image tensor",
                quote_path(&path),
                names.len(),
                names.join(", ")
            )));
        }
        let (in_ty, in_dims) =
            tensor_parts(input.dtype()).unwrap_or((TensorElementType::String, &[]));
        let meta_layout = metadata(&session, "layout").and_then(|l| Layout::parse(&l));
        let (item_shape, layout, max_batch) = image_input(
            &path,
            input.name(),
            in_ty == TensorElementType::Float32,
            in_dims,
            cfg.data_format,
            meta_layout,
        )?;

        // --- output
        let output = pick(
            session.outputs(),
            cfg.outputs.as_deref(),
            "output",
            "--outputs",
            &path,
        )?;
        let (out_ty, out_dims) = tensor_parts(output.dtype()).ok_or_else(|| {
            BackendError::BadInput(format!(
                "model {} output '{}' is not a tensor; pick a class-score or class-index output with --outputs",
                quote_path(&path),
                output.name()
            ))
        })?;
        let output_kind = match out_ty {
            TensorElementType::Float32 => OutputKind::Scores,
            TensorElementType::Int64 => OutputKind::ClassesI64,
            TensorElementType::Int32 => OutputKind::ClassesI32,
            other => {
                return Err(BackendError::BadInput(format!(
                    "model {} output '{}' holds {other}; loadgen reads float32 class scores or int32/int64 class indices",
                    quote_path(&path),
                    output.name()
                )))
            }
        };
        // Classes: from the scores' shape; for an index output, from a score output beside
        // it or the `classes` metadata; else the ImageNet 1000.
        let num_classes = match output_kind {
            OutputKind::Scores => classes_of(out_dims),
            _ => session
                .outputs()
                .iter()
                .filter_map(|o| tensor_parts(o.dtype()))
                .filter(|(ty, _)| *ty == TensorElementType::Float32)
                .find_map(|(_, d)| classes_of(d)),
        }
        .or_else(|| metadata(&session, "classes").and_then(|c| c.parse().ok()))
        .unwrap_or(1000);

        let info = ModelInfo {
            input_name: input.name().to_string(),
            output_name: output.name().to_string(),
            item_shape,
            layout,
            num_classes,
            max_batch,
        };
        Ok(OrtBackend {
            path,
            info,
            device: cfg.device,
            intra_threads,
            inter_threads,
            output_kind,
            version: rt.version.clone(),
            first: Mutex::new(Some(session)),
            profile: cfg.op_profile.then(SharedTotals::default),
        })
    }

    /// Intra-op threads each session uses.
    pub fn intra_threads(&self) -> usize {
        self.intra_threads
    }
}

/// `models/resnet50_v1.onnx` of the project (or of the working directory).
fn default_model() -> PathBuf {
    paths::project_root()
        .unwrap_or_default()
        .join("models")
        .join("resnet50_v1.onnx")
}

fn metadata(session: &ort::session::Session, key: &str) -> Option<String> {
    session.metadata().ok()?.custom(key)
}

/// Where a profiling session writes its trace: a name of its own in the temporary
/// folder (ONNX Runtime appends a date and `.json`); read and removed when the session
/// ends ([`OrtSession`]'s `Drop`).
fn profile_prefix() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "loadgen-ort-profile-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Ends `session`'s profile and adds its trace to `totals`; the trace file is removed.
fn end_profile(session: &mut ort::session::Session, totals: &mut OpTotals) -> Result<(), String> {
    let file = session
        .end_profiling()
        .map_err(|e| format!("ONNX Runtime could not end its profile: {e}"))?;
    let read = std::fs::File::open(&file)
        .map_err(|e| format!("ONNX Runtime's profile {file}: {e}"))
        .and_then(|f| super::ort_profile::read_trace(f, totals));
    let _ = std::fs::remove_file(&file);
    read
}

/// Opens one session. With `Device::Gpu` the CUDA execution provider must register, or
/// we refuse: ONNX Runtime would otherwise fall back to the CPU without a word.
fn open_session(
    env: &Environment,
    path: &Path,
    device: Device,
    intra: usize,
    inter: usize,
    version: &str,
    profile: bool,
) -> Result<ort::session::Session, BackendError> {
    let setup = |e: String| BackendError::Runtime(format!("ONNX Runtime session options: {e}"));
    let mut builder: SessionBuilder = ort::session::Session::builder(env)
        .map_err(|e| setup(e.to_string()))?
        .with_intra_threads(intra)
        .map_err(|e| setup(e.to_string()))?
        .with_inter_threads(inter)
        .map_err(|e| setup(e.to_string()))?;
    if profile {
        builder = builder
            .with_profiling(profile_prefix())
            .map_err(|e| setup(e.to_string()))?;
    }
    if device == Device::Gpu {
        let cuda = ort::ep::CUDA::default();
        let available = ort::ep::CUDA::is_available().unwrap_or(false);
        if !available {
            return Err(BackendError::DeviceUnavailable(format!(
                "--device gpu needs an ONNX Runtime built with CUDA, but the library loaded (version {version}) \
                 has no CUDAExecutionProvider: install onnxruntime-gpu==1.31.1 (with CUDA 13 and cuDNN 9) and \
                 point ORT_DYLIB_PATH at its libonnxruntime.so, or use --device cpu"
            )));
        }
        builder = builder
            .with_execution_providers([cuda.build().error_on_failure()])
            .map_err(|e| {
                BackendError::DeviceUnavailable(format!(
                    "--device gpu: the CUDA execution provider could not start ({e}); check the GPU driver, \
                     CUDA 13 and cuDNN 9, or use --device cpu"
                ))
            })?;
    }
    let session = builder.commit_from_file(path);
    // The load's transient buffers, freed, go back to the system before the next
    // session loads (see crate::base::memory).
    crate::base::memory::release_free_heap();
    session.map_err(|e| {
        if device == Device::Gpu && e.code() == ort::ErrorCode::ExecutionProviderFailure {
            BackendError::DeviceUnavailable(format!(
                "--device gpu: the CUDA execution provider failed on model {} ({e}); use --device cpu",
                quote_path(path)
            ))
        } else if e.code() == ort::ErrorCode::InvalidProtobuf {
            BackendError::BadInput(format!(
                "{} is not an ONNX model (it does not parse as one): pass --model with an .onnx file",
                quote_path(path)
            ))
        } else {
            BackendError::BadInput(format!(
                "ONNX Runtime could not load model {}: {e}",
                quote_path(path)
            ))
        }
    })
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }
    fn version(&self) -> String {
        self.version.clone()
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn session(&self, _worker: usize) -> Result<Box<dyn Session>, BackendError> {
        // A poisoned lock only means another worker panicked while taking the session;
        // the Option inside is still sound.
        let first = self
            .first
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let session = match first {
            Some(s) => s,
            None => {
                let rt = runtime()?;
                open_session(
                    &rt.env,
                    &self.path,
                    self.device,
                    self.intra_threads,
                    self.inter_threads,
                    &self.version,
                    self.profile.is_some(),
                )?
            }
        };
        let mut s = OrtSession::new(session, &self.info, self.output_kind)?;
        s.profile = self.profile.clone();
        Ok(Box::new(s))
    }
    fn runtime_info(&self) -> Option<serde_json::Value> {
        // The model file says the precision (`--precision int8` runs the quantized one);
        // the provider says where its kernels ran.
        Some(serde_json::json!({
            "model": self.path.display().to_string(),
            "execution_provider": match self.device {
                Device::Gpu => "CUDAExecutionProvider",
                Device::Cpu => "CPUExecutionProvider",
            },
        }))
    }
    fn op_profile(&self) -> Option<OpProfile> {
        let shared = self.profile.as_ref()?;
        // A session no worker took (fewer workers than loaded) still holds its profile.
        if let Some(mut first) = self.first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let mut mine = OpTotals::default();
            if let Err(e) = end_profile(&mut first, &mut mine) {
                mine.problems.push(e);
            }
            op_profile::merge_into(shared, mine);
        }
        let totals = shared.lock().unwrap_or_else(|p| p.into_inner());
        Some(totals.profile())
    }
}

/// One worker's session, with the run options (the selected output) made once.
struct OrtSession {
    session: ort::session::Session,
    run_options: RunOptions<HasSelectedOutputs>,
    /// Input shape; `dims[0]` is set per batch.
    dims: [i64; 4],
    item_len: usize,
    output_kind: OutputKind,
    /// `--op-profile`: where this session's profile goes when it ends.
    profile: Option<SharedTotals>,
}

impl Drop for OrtSession {
    fn drop(&mut self) {
        if let Some(shared) = self.profile.take() {
            let mut mine = OpTotals::default();
            if let Err(e) = end_profile(&mut self.session, &mut mine) {
                // The profile is what the user asked for: the command says why a part
                // of it is missing.
                mine.problems.push(e);
            }
            op_profile::merge_into(&shared, mine);
        }
    }
}

impl OrtSession {
    fn new(
        session: ort::session::Session,
        info: &ModelInfo,
        output_kind: OutputKind,
    ) -> Result<OrtSession, BackendError> {
        let run_options = RunOptions::new()
            .map_err(|e| BackendError::Runtime(format!("ONNX Runtime run options: {e}")))?
            .with_outputs(OutputSelector::no_default().with(info.output_name.clone()));
        let mut dims = [0i64; 4];
        for (d, s) in dims[1..].iter_mut().zip(&info.item_shape) {
            *d = *s as i64;
        }
        Ok(OrtSession {
            session,
            run_options,
            dims,
            item_len: info.item_len(),
            output_kind,
            profile: None,
        })
    }
}

fn run_error(e: impl std::fmt::Display) -> BackendError {
    BackendError::Runtime(format!("ONNX Runtime: {e}"))
}

impl Session for OrtSession {
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
        let n = batch.len;
        if n == 0 {
            return Ok(());
        }
        if batch.data.len() != n * self.item_len {
            return Err(BackendError::Runtime(format!(
                "a batch of {n} items holds {} values, not {} x {}",
                batch.data.len(),
                n,
                self.item_len
            )));
        }
        let mut shape = self.dims;
        shape[0] = n as i64;
        // A view over the caller's data: nothing is copied.
        let input = TensorRef::from_array_view((shape, batch.data)).map_err(run_error)?;
        let outputs = self
            .session
            .run_with_options(ort::inputs![input], &self.run_options)
            .map_err(run_error)?;
        let value = outputs
            .values()
            .next()
            .ok_or_else(|| run_error("the run returned no output"))?;
        match self.output_kind {
            OutputKind::Scores => {
                let (_, scores) = value.try_extract_tensor::<f32>().map_err(run_error)?;
                if scores.is_empty() || scores.len() % n != 0 {
                    return Err(run_error(format!(
                        "{} scores for a batch of {n}",
                        scores.len()
                    )));
                }
                out.top1
                    .extend(scores.chunks_exact(scores.len() / n).map(argmax));
                if out.keep_scores {
                    out.scores.extend_from_slice(scores);
                }
            }
            OutputKind::ClassesI64 => {
                let (_, classes) = value.try_extract_tensor::<i64>().map_err(run_error)?;
                check_classes(classes.len(), n)?;
                out.top1.extend_from_slice(classes);
            }
            OutputKind::ClassesI32 => {
                let (_, classes) = value.try_extract_tensor::<i32>().map_err(run_error)?;
                check_classes(classes.len(), n)?;
                out.top1.extend(classes.iter().map(|&c| i64::from(c)));
            }
        }
        Ok(())
    }
}

fn check_classes(got: usize, n: usize) -> Result<(), BackendError> {
    if got == n {
        Ok(())
    } else {
        Err(run_error(format!("{got} class indices for a batch of {n}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_log_lines_are_off_unless_verbose_or_chosen() {
        for (verbose, ort_log, want) in [
            (false, None, Some(LogLevel::Fatal)),
            (true, None, Some(LogLevel::Warning)),
            // A value ort does not know is not a choice: ort would use error.
            (false, Some("loud"), Some(LogLevel::Fatal)),
            (true, Some(""), Some(LogLevel::Warning)),
            // The user's own ORT_LOG stands, with or without --verbose.
            (false, Some("info"), None),
            (true, Some("error"), None),
            (false, Some("verbose"), None),
        ] {
            assert_eq!(log_level(verbose, ort_log), want, "{verbose} {ort_log:?}");
        }
    }

    fn fake_wheel(venv: &Path, files: &[&str]) {
        let capi = venv.join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for f in files {
            std::fs::write(capi.join(f), b"").unwrap();
        }
    }

    #[test]
    fn finds_the_versioned_library_in_a_venv() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join(".venv");
        fake_wheel(
            &venv,
            &[
                "libonnxruntime_providers_shared.so",
                "libonnxruntime.so.1.31.1",
                "onnxruntime_pybind11_state.so",
            ],
        );
        let lib = find_library(None, &[dir.path().join("missing"), venv.clone()]).unwrap();
        assert_eq!(lib.file_name().unwrap(), "libonnxruntime.so.1.31.1");
        assert_eq!(version_from_path(&lib).as_deref(), Some("1.31.1"));
    }

    #[test]
    fn prefers_the_versioned_file_over_a_plain_one() {
        let dir = tempfile::tempdir().unwrap();
        fake_wheel(
            dir.path(),
            &["libonnxruntime.so", "libonnxruntime.so.1.22.0"],
        );
        let lib = find_library(None, &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(lib.file_name().unwrap(), "libonnxruntime.so.1.22.0");
    }

    #[test]
    fn ort_dylib_path_wins_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        fake_wheel(dir.path(), &["libonnxruntime.so.1.31.1"]);
        let own = dir.path().join("libonnxruntime.so");
        std::fs::write(&own, b"").unwrap();
        let venvs = [dir.path().to_path_buf()];
        assert_eq!(find_library(Some(own.as_os_str()), &venvs).unwrap(), own);

        let missing = dir.path().join("nope/libonnxruntime.so.1.31.1");
        let err = find_library(Some(missing.as_os_str()), &venvs).unwrap_err();
        assert!(matches!(err, BackendError::LibraryNotFound(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("ORT_DYLIB_PATH") && msg.contains("nope"),
            "{msg}"
        );
        // An empty value counts as unset.
        assert!(find_library(Some(OsStr::new("")), &venvs).is_ok());
    }

    #[test]
    fn not_found_says_where_it_looked_and_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let venvs = [dir.path().join("a/.venv"), dir.path().join("b/.venv")];
        let err = find_library(None, &venvs).unwrap_err();
        assert!(matches!(err, BackendError::LibraryNotFound(_)));
        let msg = err.to_string();
        assert!(msg.contains("a/.venv") && msg.contains("b/.venv"), "{msg}");
        assert!(msg.contains("scripts/setup.sh onnxruntime"), "{msg}");
        assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
        assert_eq!(msg.matches(". ").count(), 0, "one sentence: {msg}");
    }

    #[test]
    fn version_needs_a_versioned_name() {
        assert_eq!(version_from_path(Path::new("/x/libonnxruntime.so")), None);
        assert_eq!(
            version_from_path(Path::new("/x/libonnxruntime.so.1.17.3")).as_deref(),
            Some("1.17.3")
        );
    }

    #[test]
    fn reads_image_inputs() {
        let m = Path::new("m.onnx");
        assert_eq!(
            image_input(m, "x", true, &[-1, 3, 224, 224], None, None).unwrap(),
            (vec![3, 224, 224], Layout::Nchw, None)
        );
        assert_eq!(
            image_input(m, "x", true, &[8, 224, 224, 3], None, None).unwrap(),
            (vec![224, 224, 3], Layout::Nhwc, Some(8))
        );
        // Symbolic height/width: assume 224.
        assert_eq!(
            image_input(m, "x", true, &[-1, 3, -1, -1], None, None).unwrap(),
            (vec![3, 224, 224], Layout::Nchw, None)
        );
        // Grey images.
        assert_eq!(
            image_input(m, "x", true, &[-1, 1, 28, 28], None, None)
                .unwrap()
                .1,
            Layout::Nchw
        );
        // The flag, then the metadata, beat the guess when both fit.
        let sq = [-1, 3, 5, 3];
        assert_eq!(
            image_input(m, "x", true, &sq, None, None).unwrap().1,
            Layout::Nchw
        );
        assert_eq!(
            image_input(m, "x", true, &sq, None, Some(Layout::Nhwc))
                .unwrap()
                .1,
            Layout::Nhwc
        );
        assert_eq!(
            image_input(m, "x", true, &sq, Some(Layout::Nchw), Some(Layout::Nhwc))
                .unwrap()
                .1,
            Layout::Nchw
        );
    }

    #[test]
    fn refuses_non_image_inputs() {
        let m = Path::new("m.onnx");
        for (float, dims) in [
            (true, vec![-1, 10]),
            (true, vec![-1, 4, 224, 224]),
            (false, vec![-1, 3, 224, 224]),
            (true, vec![-1, 3, 224, 224, 1]),
        ] {
            let err = image_input(m, "x", float, &dims, None, None).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, BackendError::BadInput(_)));
            assert!(
                msg.contains("model m.onnx input 'x' has shape [")
                    && msg.contains("[N,3,H,W] or [N,H,W,3]"),
                "{msg}"
            );
        }
        let err =
            image_input(m, "x", true, &[-1, 3, 224, 224], Some(Layout::Nhwc), None).unwrap_err();
        assert!(err.to_string().contains("--data-format NHWC"), "{err}");
    }

    #[test]
    fn argmax_takes_the_first_largest() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, -2.0]), 1);
        assert_eq!(argmax(&[-3.0]), 0);
    }

    #[test]
    fn classes_from_output_shapes() {
        assert_eq!(classes_of(&[-1, 1000]), Some(1000));
        assert_eq!(classes_of(&[-1, 1, 1, 1001]), Some(1001));
        assert_eq!(classes_of(&[-1]), None);
        assert_eq!(classes_of(&[-1, -1]), None);
    }
}
