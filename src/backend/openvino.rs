//! `openvino`: OpenVINO Runtime through its C API ([`super::ov_capi`]), loaded at run
//! time from the PyPI wheel's `openvino/libs/libopenvino_c.so.*` (made by
//! `scripts/setup.sh openvino`) or the file `OPENVINO_LIB` names.
//!
//! OpenVINO's execution model: one model is compiled once for the device, with a
//! performance hint and a number of streams (parallel executors, each with its own
//! threads), and each worker gets its own infer request on it, so N workers run N
//! queries at once on one copy of the weights. The compiled model gets one stream per
//! worker (`NUM_STREAMS`), the latency hint for a single worker and the throughput
//! hint otherwise, and `INFERENCE_NUM_THREADS` = workers × `--intra-threads` when that
//! flag is given (else OpenVINO sizes its pools to the machine).
//!
//! The model's batch is made static (`--batch_size`), as benchmark_app needs with
//! `-shape`: a static shape compiles to faster kernels than a dynamic one. A shorter
//! batch (the last of an accuracy pass) is padded with zeros and its extra rows dropped.
//! Each request's input stays bound from one query to the next (each query is copied
//! into it), as benchmark_app's does.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::openvino_async::OvRequests;
use super::ov_capi::{Api, CompiledModel, Core, InferRequest, Output, F32};
use crate::backend::config::BackendConfig;
use crate::base::model::{Device, Layout, ModelInfo, Precision};
use crate::base::op_profile::{self, OpProfile, OpTotals, SharedTotals};
use crate::base::paths;
use crate::base::sut::{
    AsyncSession, Backend, BackendError, Batch, Completion, Prediction, Session,
};
use crate::base::text::quote_path;

/// The fix we suggest whenever the runtime library cannot be found.
const SETUP_HINT: &str =
    "run scripts/setup.sh openvino (or set OPENVINO_LIB to a libopenvino_c.so file)";

/// Finds the OpenVINO C library: `openvino_lib` (the value of `OPENVINO_LIB`) when set,
/// which must then exist; else `openvino/libs/libopenvino_c.so*` in the site-packages
/// of each venv, in order.
pub fn find_library(
    openvino_lib: Option<&OsStr>,
    venvs: &[PathBuf],
) -> Result<PathBuf, BackendError> {
    if let Some(p) = openvino_lib.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(BackendError::LibraryNotFound(format!(
                "OPENVINO_LIB is {} but there is no such file: point it at libopenvino_c.so.<version>, \
                 or unset it and run scripts/setup.sh openvino",
                quote_path(&p)
            )))
        };
    }
    for venv in venvs {
        for sp in paths::site_packages(venv) {
            let libs = sp.join("openvino").join("libs");
            let mut found: Vec<PathBuf> = std::fs::read_dir(&libs)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .and_then(OsStr::to_str)
                            .is_some_and(|n| n.starts_with("libopenvino_c.so"))
                })
                .collect();
            found.sort();
            if let Some(lib) = found.pop() {
                return Ok(lib);
            }
        }
    }
    let looked: Vec<String> = venvs.iter().map(|v| v.display().to_string()).collect();
    Err(BackendError::LibraryNotFound(format!(
        "OpenVINO library not found: looked for lib/python3*/site-packages/openvino/libs/libopenvino_c.so* in {}; {SETUP_HINT}",
        if looked.is_empty() {
            "no venv (none was given)".to_string()
        } else {
            looked.join(", ")
        }
    )))
}

/// The process-wide library and core.
struct Runtime {
    core: Core,
    version: String,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static Runtime, BackendError> {
    let init = RUNTIME.get_or_init(|| {
        let lib = find_library(
            std::env::var_os("OPENVINO_LIB").as_deref(),
            &paths::venv_candidates(),
        )
        .map_err(|e| e.to_string())?;
        let api = Api::open(&lib).map_err(|e| {
            format!(
                "{} is not a usable OpenVINO C library: {e}; {SETUP_HINT}",
                quote_path(&lib)
            )
        })?;
        let core = Core::new(&api).map_err(|e| format!("OpenVINO could not start: {e}"))?;
        Ok(Runtime {
            version: api.version(),
            core,
        })
    });
    match init {
        Ok(rt) => Ok(rt),
        Err(msg) => Err(BackendError::LibraryNotFound(msg.clone())),
    }
}

/// What the output holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum OutputKind {
    /// Scores per class: top-1 is their argmax.
    Scores,
    /// A class index per item (an ArgMax in the graph).
    Classes,
}

/// A model compiled for the device, shared by every worker's infer request.
pub struct OvBackend {
    compiled: Arc<CompiledModel>,
    info: ModelInfo,
    /// The static input shape `[batch, …]`.
    dims: Vec<i64>,
    output: OutputKind,
    version: String,
    /// The compiled model's effective properties, for results.json.
    properties: Vec<(String, String)>,
    /// `--op-profile`: every request's per-node counters, summed.
    profile: Option<SharedTotals>,
    /// `--requests`: asynchronous requests per worker (0: synchronous).
    requests: usize,
}

fn bad(model: &Path, why: impl std::fmt::Display) -> BackendError {
    BackendError::BadInput(format!(
        "OpenVINO cannot use model {}: {why}",
        quote_path(model)
    ))
}

impl OvBackend {
    pub fn load(cfg: &BackendConfig) -> Result<OvBackend, BackendError> {
        let model_path = cfg.model.clone().unwrap_or_else(|| {
            paths::project_root()
                .unwrap_or_default()
                .join("models/resnet50_v1.onnx")
        });
        if !model_path.is_file() {
            return Err(BackendError::BadInput(format!(
                "model {} not found; run scripts/setup.sh openvino, or give --model (an .onnx file or an OpenVINO .xml)",
                quote_path(&model_path)
            )));
        }
        let rt = runtime()?;
        let model = rt
            .core
            .read_model(&model_path)
            .map_err(|e| bad(&model_path, e))?;
        let (inputs, outputs) = model.arity().map_err(|e| bad(&model_path, e))?;
        if inputs != 1 || outputs != 1 {
            return Err(bad(
                &model_path,
                format!("it has {inputs} inputs and {outputs} outputs; loadgen needs one image input and one output"),
            ));
        }
        let input = model.port(true).map_err(|e| bad(&model_path, e))?;
        let output = model.port(false).map_err(|e| bad(&model_path, e))?;
        let (item_shape, layout) = image_item(&input.dims, cfg.data_format).ok_or_else(|| {
            bad(
                &model_path,
                format!(
                    "its input '{}' has shape {:?}; loadgen needs an image tensor [N,3,H,W] or [N,H,W,3]",
                    input.name, input.dims
                ),
            )
        })?;
        if input.element_type != F32 {
            return Err(bad(
                &model_path,
                format!("its input '{}' is not float32", input.name),
            ));
        }
        let (kind, num_classes) = match output.dims.as_slice() {
            [_, c] if *c > 1 => (OutputKind::Scores, *c as usize),
            [_] | [_, 1] => (OutputKind::Classes, 1001),
            d => {
                return Err(bad(
                    &model_path,
                    format!(
                        "its output '{}' has shape {d:?}; loadgen needs [N, classes] or [N]",
                        output.name
                    ),
                ))
            }
        };
        let batch = cfg.batch_size.max(1) as i64;
        let mut dims = vec![batch];
        dims.extend(item_shape.iter().map(|&d| d as i64));
        model
            .reshape_input(&dims)
            .map_err(|e| bad(&model_path, e))?;
        let device = match cfg.device {
            Device::Cpu => "CPU",
            Device::Gpu => "GPU",
        };
        // One stream per inference that can be in flight: per worker, its one
        // synchronous request, or its `--requests` asynchronous ones.
        let streams = cfg.workers.max(1) * cfg.requests.unwrap_or(1).max(1);
        let mut props: Vec<(&str, String)> = vec![
            (
                "PERFORMANCE_HINT",
                if streams == 1 {
                    "LATENCY"
                } else {
                    "THROUGHPUT"
                }
                .to_string(),
            ),
            ("NUM_STREAMS", streams.to_string()),
        ];
        if let Some(t) = cfg.intra_threads {
            props.push(("INFERENCE_NUM_THREADS", (t * streams).to_string()));
        }
        if cfg.op_profile {
            // benchmark_app's -pc: per-node counters, read after each inference.
            props.push(("PERF_COUNT", "YES".to_string()));
        }
        // --precision: fp32 and bf16 are the kernels' precision on the fp32 model; int8
        // is the quantized model itself (its other nodes keep the plugin's default).
        match cfg.precision {
            Some(Precision::Fp32) => props.push(("INFERENCE_PRECISION_HINT", "f32".into())),
            Some(Precision::Bf16) => {
                let caps = rt
                    .core
                    .device_property(device, "OPTIMIZATION_CAPABILITIES")
                    .unwrap_or_default();
                if !caps.split_whitespace().any(|c| c == "BF16") {
                    return Err(BackendError::DeviceUnavailable(format!(
                        "--precision bf16: OpenVINO's {device} plugin reports no bf16 on this CPU (its capabilities: {caps}); use fp32 or int8"
                    )));
                }
                props.push(("INFERENCE_PRECISION_HINT", "bf16".into()));
            }
            Some(Precision::Int8) | None => {}
        }
        let compiled = rt.core.compile(&model, device, &props).map_err(|e| {
            if cfg.device == Device::Gpu {
                BackendError::BadInput(format!(
                    "OpenVINO has no usable GPU here ({e}); use --device cpu"
                ))
            } else {
                bad(&model_path, e)
            }
        })?;
        let properties = [
            "PERFORMANCE_HINT",
            "NUM_STREAMS",
            "INFERENCE_NUM_THREADS",
            "INFERENCE_PRECISION_HINT",
            "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
        ]
        .iter()
        .filter_map(|k| compiled.property(k).map(|v| (k.to_string(), v)))
        .collect();
        Ok(OvBackend {
            compiled: Arc::new(compiled),
            info: ModelInfo {
                input_name: input.name,
                output_name: output.name,
                item_shape,
                layout,
                num_classes,
                max_batch: Some(batch as usize),
            },
            dims,
            output: kind,
            version: rt.version.clone(),
            properties,
            profile: cfg.op_profile.then(SharedTotals::default),
            requests: cfg.requests.unwrap_or(0),
        })
    }
}

/// The item shape and layout of an image input `[N,3,H,W]` / `[N,H,W,3]`; a dynamic
/// height or width reads as 224. None for anything else.
fn image_item(dims: &[i64], data_format: Option<Layout>) -> Option<(Vec<usize>, Layout)> {
    let [_, a, b, c] = dims else { return None };
    let side = |d: i64| if d > 0 { d as usize } else { 224 };
    let layout = data_format.or(if *a == 3 {
        Some(Layout::Nchw)
    } else if *c == 3 {
        Some(Layout::Nhwc)
    } else {
        None
    })?;
    Some(match layout {
        Layout::Nchw if *a == 3 => (vec![3, side(*b), side(*c)], layout),
        Layout::Nhwc if *c == 3 => (vec![side(*a), side(*b), 3], layout),
        _ => return None,
    })
}

fn argmax(row: &[f32]) -> i64 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as i64
}

impl Backend for OvBackend {
    fn name(&self) -> &'static str {
        "openvino"
    }
    fn version(&self) -> String {
        self.version.clone()
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn runtime_info(&self) -> Option<serde_json::Value> {
        let props: serde_json::Map<String, serde_json::Value> = (self.properties.iter())
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        Some(serde_json::json!({ "compiled_model": props }))
    }
    fn session(&self, _worker: usize) -> Result<Box<dyn Session>, BackendError> {
        let mut request = self.compiled.request().map_err(BackendError::Runtime)?;
        let mut input =
            vec![0f32; self.dims[0].max(1) as usize * self.info.item_len()].into_boxed_slice();
        // SAFETY: the input's heap block lives in the session beside the request, which
        // is dropped first (field order); it is written only between inferences.
        unsafe { request.bind_input(input.as_mut_ptr(), &self.dims) }
            .map_err(BackendError::Runtime)?;
        let in_flight = (self.requests > 0)
            .then(|| {
                OvRequests::new(
                    &self.compiled,
                    self.requests,
                    &self.dims,
                    self.profile.clone(),
                )
            })
            .transpose()?;
        Ok(Box::new(OvSession {
            in_flight,
            _compiled: Arc::clone(&self.compiled),
            request,
            input,
            dims: self.dims.clone(),
            item_len: self.info.item_len(),
            output: self.output,
            profile: self
                .profile
                .as_ref()
                .map(|shared| (Arc::clone(shared), OpTotals::default())),
        }))
    }
    fn op_profile(&self) -> Option<OpProfile> {
        let shared = self.profile.as_ref()?;
        let totals = shared.lock().unwrap_or_else(|p| p.into_inner());
        Some(totals.profile())
    }
}

/// One worker's infer request on the shared compiled model (for the accuracy pass and
/// every closed or open loop when synchronous), and its asynchronous ones.
struct OvSession {
    /// `--requests`: the in-flight path the pool drives through [`AsyncSession`].
    in_flight: Option<OvRequests>,
    /// Keeps the compiled model alive as long as its request.
    _compiled: Arc<CompiledModel>,
    request: InferRequest,
    /// The request's input, bound once (dropped after the request): each query is
    /// copied in, a short batch padded with zeros to the static batch size.
    input: Box<[f32]>,
    dims: Vec<i64>,
    item_len: usize,
    output: OutputKind,
    /// `--op-profile`: the backend's totals, and this request's own until it ends
    /// (one lock per session, not per inference).
    profile: Option<(SharedTotals, OpTotals)>,
}

impl AsyncSession for OvSession {
    fn max_in_flight(&self) -> usize {
        self.in_flight.as_ref().map_or(1, OvRequests::count)
    }
    fn closed_in_flight(&self) -> usize {
        self.max_in_flight()
    }
    fn submit(&mut self, batch: Batch<'_>, done: Completion) {
        match &self.in_flight {
            Some(r) => r.submit(batch, done),
            None => done(Err(run_error("this session has no asynchronous requests"))),
        }
    }
    fn outstanding(&self) -> usize {
        self.in_flight.as_ref().map_or(0, OvRequests::outstanding)
    }
    fn cancel_all(&mut self) {
        if let Some(r) = &self.in_flight {
            r.cancel_all();
        }
    }
}

impl Drop for OvSession {
    fn drop(&mut self) {
        if let Some((shared, mine)) = self.profile.take() {
            op_profile::merge_into(&shared, mine);
        }
    }
}

fn run_error(e: impl std::fmt::Display) -> BackendError {
    BackendError::Runtime(format!("OpenVINO: {e}"))
}

impl Session for OvSession {
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
        let n = batch.len;
        let full = self.dims[0] as usize;
        if n == 0 {
            return Ok(());
        }
        if n > full || batch.data.len() != n * self.item_len {
            return Err(run_error(format!(
                "a batch of {n} items with {} values does not fit the compiled batch of {full}",
                batch.data.len()
            )));
        }
        self.input[..batch.data.len()].copy_from_slice(batch.data);
        self.input[batch.data.len()..].fill(0.0);
        let kind = self.output;
        let answer = self
            .request
            .infer(|o| -> Result<(), BackendError> {
                match (kind, o) {
                    (OutputKind::Scores, Output::F32(scores)) => {
                        if scores.len() % full != 0 || scores.is_empty() {
                            return Err(run_error(format!(
                                "{} scores for a batch of {full}",
                                scores.len()
                            )));
                        }
                        let per = scores.len() / full;
                        let scores = &scores[..n * per];
                        out.top1.extend(scores.chunks_exact(per).map(argmax));
                        if out.keep_scores {
                            out.scores.extend_from_slice(scores);
                        }
                    }
                    (OutputKind::Classes, Output::I64(c)) if c.len() >= n => {
                        out.top1.extend_from_slice(&c[..n])
                    }
                    (OutputKind::Classes, Output::I32(c)) if c.len() >= n => {
                        out.top1.extend(c[..n].iter().map(|&x| i64::from(x)))
                    }
                    _ => return Err(run_error("the output is not what the model declared")),
                }
                Ok(())
            })
            .map_err(run_error)?;
        if let Some((_, mine)) = &mut self.profile {
            self.request.add_profile(mine).map_err(run_error)?;
        }
        answer
    }

    fn as_async(&mut self) -> Option<&mut dyn AsyncSession> {
        if self.in_flight.is_some() {
            Some(self)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_inputs_and_their_layouts() {
        type Item = Option<(Vec<usize>, Layout)>;
        let cases: &[(&[i64], Option<Layout>, Item)] = &[
            (
                &[-1, 3, 224, 224],
                None,
                Some((vec![3, 224, 224], Layout::Nchw)),
            ),
            (
                &[1, 224, 224, 3],
                None,
                Some((vec![224, 224, 3], Layout::Nhwc)),
            ),
            (
                &[-1, 3, -1, -1],
                None,
                Some((vec![3, 224, 224], Layout::Nchw)),
            ),
            (&[1, 3, 224, 224], Some(Layout::Nhwc), None),
            (&[1, 1000], None, None),
            (&[1, 5, 5, 5], None, None),
        ];
        for (dims, fmt, want) in cases {
            assert_eq!(image_item(dims, *fmt), *want, "{dims:?} {fmt:?}");
        }
    }

    #[test]
    fn a_missing_library_says_where_to_look() {
        let dir = tempfile::tempdir().unwrap();
        let e = find_library(None, &[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("openvino/libs/libopenvino_c.so") && e.contains("setup.sh openvino"),
            "{e}"
        );
        let e = find_library(Some(OsStr::new("/nonexistent/libopenvino_c.so.1")), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("OPENVINO_LIB") && e.contains("/nonexistent"),
            "{e}"
        );
        // A wheel's layout is found.
        let libs = dir
            .path()
            .join("lib/python3.11/site-packages/openvino/libs");
        std::fs::create_dir_all(&libs).unwrap();
        std::fs::write(libs.join("libopenvino_c.so.2641"), b"").unwrap();
        let found = find_library(None, &[dir.path().to_path_buf()]).unwrap();
        assert!(found.ends_with("libopenvino_c.so.2641"), "{found:?}");
    }
}
