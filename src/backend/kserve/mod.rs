//! `kserve` (alias `triton`): a remote model server speaking the KServe v2 / Open
//! Inference Protocol, over HTTP (binary tensor extension by default, JSON tensors as
//! an option) or gRPC (`ModelInfer` with `raw_input_contents`).
//!
//! Loading waits for the server and the model to be ready, reads the model's metadata
//! (tensor names, datatype, shape, hence layout and class count; flags override) and
//! sends one test request, so that a down server, a wrong model, input name or shape
//! is one sentence (exit 2) before anything is measured.
//!
//! Sessions are asynchronous ([`AsyncSession`]): the worker pool submits each query as
//! the issuer releases it and the request runs on this backend's own tokio runtime;
//! the completion records its latency from the planned send time. In flight at most:
//! HTTP, `--connections` requests (each HTTP/1.1 connection carries one at a time);
//! gRPC, 1024 requests multiplexed over `--connections` HTTP/2 connections; both also
//! at most 256 MiB of request bodies. Queries beyond that wait in the pool's queue,
//! still timed from their planned send time.

pub mod client;
pub mod wire;

pub mod config;
pub mod proto;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Notify;

use crate::backend::config::BackendConfig;
use crate::base::model::{Layout, ModelInfo};
use crate::base::sut::{
    AsyncSession, Backend, BackendError, Batch, Completion, Prediction, Session,
};
use crate::base::text::quote;
use client::{CallError, Client, Protocol, ServerUrl};
pub use config::KserveConfig;
use wire::{ModelMetadata, Plan, ServerMetadata};

/// Default HTTP/1.1 connections (open-loop requests in flight over HTTP).
pub const DEFAULT_HTTP_CONNECTIONS: usize = 64;
/// Default HTTP/2 connections for gRPC.
pub const DEFAULT_GRPC_CONNECTIONS: usize = 2;
/// Most gRPC requests in flight.
pub const GRPC_MAX_IN_FLIGHT: usize = 1024;
/// Most bytes of request bodies in flight (bounds memory with large images).
pub const MAX_BYTES_IN_FLIGHT: usize = 256 << 20;
/// Default requests in flight during closed-loop runs (warm-up, capacity probe,
/// `throughput`): enough to keep a batching server busy.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Seconds an inference may wait for its answer before it is an error
/// (`--request-timeout`): long enough for any single inference of an image model,
/// short enough that a server that stops answering ends the run within a minute.
pub const DEFAULT_REQUEST_TIMEOUT_S: f64 = 30.0;
/// The longest one readiness or metadata call may wait for its answer: a server that
/// accepts the connection and never answers would otherwise hold the run for ever
/// (`--ready-timeout` only bounds the retries between calls that do end).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `call`, given until `deadline` but at most [`CALL_TIMEOUT`] (and at least 1 s): a
/// call that gets no answer by then is [`CallError::Unreachable`], as a refused
/// connection is, naming `what` was asked.
async fn bounded<T>(
    what: &str,
    deadline: Instant,
    call: impl std::future::Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let limit = left.clamp(Duration::from_secs(1), CALL_TIMEOUT);
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(CallError::Unreachable(format!(
            "the connection was accepted but its {what} got no answer within {:.1} s",
            limit.as_secs_f64()
        )))
    })
}

/// Cancels every request started under it at once (the step is over).
#[derive(Default)]
struct Cancel {
    flag: AtomicBool,
    notify: Notify,
}

struct Shared {
    rt: tokio::runtime::Runtime,
    client: Client,
    plan: Plan,
    /// How long one inference may wait for its answer.
    request_timeout: Duration,
    /// Open-loop requests in flight, per worker.
    max_in_flight: usize,
    /// Closed-loop requests in flight, per worker.
    closed_in_flight: usize,
}

pub struct KserveBackend {
    shared: Arc<Shared>,
    info: ModelInfo,
    server: ServerMetadata,
    model: ModelMetadata,
    protocol: Protocol,
    cfg: KserveConfig,
    /// What the user must know about the server (metadata naming another model).
    warnings: Vec<String>,
}

fn bad(msg: impl Into<String>) -> BackendError {
    BackendError::BadInput(msg.into())
}

impl KserveBackend {
    /// Connects, waits for readiness, reads the metadata and sends one test request.
    pub fn connect(cfg: &BackendConfig) -> Result<KserveBackend, BackendError> {
        let k = cfg.kserve.clone().ok_or_else(|| {
            bad("--backend kserve needs --url http://HOST:PORT or grpc://HOST:PORT")
        })?;
        let url = ServerUrl::parse(&k.url).map_err(bad)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(k.io_threads.max(1))
            .thread_name("kserve-io")
            // Like the pool's workers, the I/O threads yield to the issuer: a
            // release late because answers were being read is latency we add.
            .on_thread_start(crate::base::clock::yield_priority_to_issuer)
            .enable_all()
            .build()
            .map_err(|e| BackendError::Runtime(format!("could not start the I/O runtime: {e}")))?;
        let connections = k.connections.unwrap_or(match url.protocol {
            Protocol::Http => DEFAULT_HTTP_CONNECTIONS,
            Protocol::Grpc => DEFAULT_GRPC_CONNECTIONS,
        });
        let mut client = {
            let _guard = rt.enter();
            Client::new(&url, &k.headers, k.tensor_format, connections).map_err(bad)?
        };
        let deadline = Instant::now() + Duration::from_secs_f64(k.ready_timeout_s);
        let (server, model) = rt.block_on(wait_ready(&client, &k, deadline))?;
        let (plan, info) = plan_from(&model, cfg, &k)?;
        client.set_plan(&plan, k.batch_size).map_err(bad)?;
        let mut warnings = Vec::new();
        if model.name != k.model_name {
            warnings.push(format!(
                "the server at {} answered the metadata of model '{}' for --model-name '{}': check that it serves the model you mean",
                quote(&k.url),
                quote(&model.name),
                quote(&k.model_name)
            ));
        }

        let item_bytes = plan.item_shape.iter().product::<usize>() * 4 * k.batch_size;
        let by_memory = (MAX_BYTES_IN_FLIGHT / item_bytes.max(1)).max(1);
        let total = match url.protocol {
            Protocol::Http => connections,
            Protocol::Grpc => GRPC_MAX_IN_FLIGHT,
        }
        .min(by_memory);
        let workers = cfg.workers.max(1);
        let per_worker = |n: usize| n.div_ceil(workers).max(1);
        let closed = k.concurrency.unwrap_or(DEFAULT_CONCURRENCY).min(total);
        let shared = Arc::new(Shared {
            rt,
            client,
            plan,
            request_timeout: Duration::from_secs_f64(k.request_timeout_s),
            max_in_flight: per_worker(total),
            closed_in_flight: per_worker(closed),
        });
        // One real request, so that a shape or batch the model refuses is known now.
        test_request(&shared, k.batch_size, &k)?;
        Ok(KserveBackend {
            shared,
            info,
            server,
            model,
            protocol: url.protocol,
            cfg: k,
            warnings,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.shared.plan
    }
}

/// Waits until the server and the model are ready, then reads both metadata.
async fn wait_ready(
    client: &Client,
    k: &KserveConfig,
    deadline: Instant,
) -> Result<(ServerMetadata, ModelMetadata), BackendError> {
    let timeout = k.ready_timeout_s;
    let version = k.model_version.as_deref();
    let url = quote(&k.url);
    let name = quote(&k.model_name);
    let pause = || tokio::time::sleep(Duration::from_millis(200));
    // The server.
    loop {
        match bounded("readiness check", deadline, client.server_ready()).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(CallError::Unreachable(e)) if Instant::now() >= deadline => {
                return Err(bad(format!(
                    "no server answers at {url} within {timeout} s ({e}): start one (scripts/serve_triton.sh) or fix --url"
                )))
            }
            Err(CallError::Unreachable(_)) => {}
            Err(e @ CallError::Refused { .. }) => {
                return Err(bad(format!(
                    "{url} is not a KServe v2 server: its readiness check answered {e}"
                )))
            }
            Err(e) => {
                return Err(bad(format!(
                    "{url} is not a KServe v2 server: its readiness check failed: {e}"
                )))
            }
        }
        if Instant::now() >= deadline {
            return Err(bad(format!(
                "the server at {url} did not become ready within {timeout} s (raise --ready-timeout)"
            )));
        }
        pause().await;
    }
    // Metadata is asked once the server is ready: it gets a call's time even when
    // the readiness wait used up the deadline.
    let server = bounded(
        "server metadata request",
        Instant::now() + CALL_TIMEOUT,
        client.server_metadata(),
    )
    .await
    .map_err(|e| {
        bad(format!(
            "the server at {url} did not give its metadata: {e}"
        ))
    })?;
    // The model: an unknown name fails at once (its metadata is refused), a known
    // model still loading is waited for.
    let model = loop {
        let until = deadline.max(Instant::now() + Duration::from_secs(1));
        let meta = bounded(
            "model metadata request",
            until,
            client.model_metadata(&k.model_name, version),
        )
        .await;
        let ready = bounded(
            "model readiness check",
            until,
            client.model_ready(&k.model_name, version),
        )
        .await;
        match (meta, ready) {
            (Ok(m), Ok(true)) => break m,
            (Err(CallError::Refused { message, .. }), _) => {
                return Err(bad(format!(
                    "the server at {url} has no model '{name}'{} ({message}): check --model-name",
                    version
                        .map(|v| format!(" version {}", quote(v)))
                        .unwrap_or_default()
                )))
            }
            (Err(e), _) | (_, Err(e)) if Instant::now() >= deadline => {
                return Err(bad(format!(
                    "model '{name}' at {url} did not become ready within {timeout} s ({e})"
                )))
            }
            _ if Instant::now() >= deadline => {
                return Err(bad(format!(
                    "model '{name}' at {url} did not become ready within {timeout} s (raise --ready-timeout)"
                )))
            }
            _ => pause().await,
        }
    };
    Ok((server, model))
}

/// The request plan and the [`ModelInfo`] from the metadata and the flags.
fn plan_from(
    m: &ModelMetadata,
    cfg: &BackendConfig,
    k: &KserveConfig,
) -> Result<(Plan, ModelInfo), BackendError> {
    let names = |v: &[wire::TensorMetadata]| {
        v.iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| s.split(',').next())
            .map(|s| s.trim().to_string())
    };
    let input = match first(&cfg.inputs) {
        Some(n) => m.inputs.iter().find(|t| t.name == n).ok_or_else(|| {
            bad(format!(
                "model '{}' has no input '{n}' (its inputs: {}): fix --inputs",
                m.name,
                names(&m.inputs)
            ))
        })?,
        None => match m.inputs.as_slice() {
            [one] => one,
            [] => return Err(bad(format!("model '{}' declares no inputs", m.name))),
            _ => {
                return Err(bad(format!(
                    "model '{}' has several inputs ({}): name the image input with --inputs",
                    m.name,
                    names(&m.inputs)
                )))
            }
        },
    };
    let output = match first(&cfg.outputs) {
        Some(n) => m.outputs.iter().find(|t| t.name == n).ok_or_else(|| {
            bad(format!(
                "model '{}' has no output '{n}' (its outputs: {}): fix --outputs",
                m.name,
                names(&m.outputs)
            ))
        })?,
        None => m
            .outputs
            .first()
            .ok_or_else(|| bad(format!("model '{}' declares no outputs", m.name)))?,
    };
    if input.datatype != "FP32" {
        return Err(bad(format!(
            "input '{}' of model '{}' takes {}; loadgen sends FP32 tensors",
            input.name, m.name, input.datatype
        )));
    }
    if !matches!(output.datatype.as_str(), "FP32" | "INT64" | "INT32") {
        return Err(bad(format!(
            "output '{}' of model '{}' is {}; loadgen reads FP32 scores or INT32/INT64 classes",
            output.name, m.name, output.datatype
        )));
    }
    // A leading -1 is the batch dimension; a fixed leading 1 on a 4-D image input is a
    // batch of one.
    let shape = &input.shape;
    let (batched, item, max_batch) = match shape.as_slice() {
        [-1, rest @ ..] => (true, rest, None),
        [1, rest @ ..] if shape.len() == 4 => (true, rest, Some(1)),
        all => (false, all, Some(1)),
    };
    if item.is_empty() || item.iter().any(|&d| d <= 0) {
        return Err(bad(format!(
            "input '{}' of model '{}' has shape {shape:?}: loadgen needs fixed item dimensions (only the batch may be -1)",
            input.name, m.name
        )));
    }
    let item_shape: Vec<usize> = item.iter().map(|&d| d as usize).collect();
    let guessed = match item_shape.as_slice() {
        [c, _, _] if *c == 1 || *c == 3 => Some(Layout::Nchw),
        [_, _, c] if *c == 1 || *c == 3 => Some(Layout::Nhwc),
        _ => None,
    };
    let layout = match (cfg.data_format, guessed) {
        (Some(l), Some(g)) if l != g => {
            return Err(bad(format!(
                "input '{}' of model '{}' has item shape {item_shape:?}, which is {} and not {}: drop or fix --data-format",
                input.name,
                m.name,
                g.as_str(),
                l.as_str()
            )))
        }
        (Some(l), _) => l,
        (None, g) => g.unwrap_or(Layout::Nchw),
    };
    if k.batch_size > 1 && !batched {
        return Err(bad(format!(
            "model '{}' takes one item per request (its input shape {shape:?} has no batch dimension): use --batch_size 1",
            m.name
        )));
    }
    let num_classes = match output.shape.last() {
        Some(&d) if d > 1 && output.datatype == "FP32" => d as usize,
        _ => 0,
    };
    let plan = Plan {
        model_name: k.model_name.clone(),
        model_version: k.model_version.clone(),
        input: input.name.clone(),
        output: output.name.clone(),
        item_shape: item_shape.clone(),
        batched,
        output_datatype: output.datatype.clone(),
        output_shape: output.shape.clone(),
    };
    let info = ModelInfo {
        input_name: input.name.clone(),
        output_name: output.name.clone(),
        item_shape,
        layout,
        num_classes,
        max_batch,
    };
    Ok((plan, info))
}

fn test_request(shared: &Shared, n: usize, k: &KserveConfig) -> Result<(), BackendError> {
    let len = shared.plan.item_shape.iter().product::<usize>() * n;
    let data = vec![0.0f32; len];
    let mut out = Prediction::default();
    infer_blocking(shared, &data, n, &mut out).map_err(|e| {
        bad(format!(
            "a test request of {n} item(s) to model '{}' at {} failed: {e}",
            quote(&k.model_name),
            quote(&k.url)
        ))
    })
}

fn infer_blocking(
    shared: &Shared,
    data: &[f32],
    n: usize,
    out: &mut Prediction,
) -> Result<(), BackendError> {
    let req = shared.client.prepare(&shared.plan, data, n);
    let fut = shared.client.infer(&shared.plan, req, n);
    let t = shared
        .rt
        .block_on(async { tokio::time::timeout(shared.request_timeout, fut).await })
        .map_err(|_| no_answer(shared.request_timeout))?
        .map_err(|e| BackendError::Runtime(e.to_string()))?;
    let scores = out.keep_scores.then_some(&mut out.scores);
    wire::top1(&shared.plan, &t, n, &mut out.top1, scores)
}

/// The error of an inference not answered within the request timeout.
fn no_answer(limit: Duration) -> BackendError {
    BackendError::Runtime(format!(
        "no answer within {} s (--request-timeout)",
        limit.as_secs_f64()
    ))
}

impl Backend for KserveBackend {
    fn name(&self) -> &'static str {
        "kserve"
    }
    /// The server's version (e.g. Triton's `2.51.0`).
    fn version(&self) -> String {
        self.server.version.clone()
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn session(&self, _worker: usize) -> Result<Box<dyn Session>, BackendError> {
        Ok(Box::new(KserveSession {
            shared: Arc::clone(&self.shared),
            cancel: Arc::new(Cancel::default()),
            outstanding: Arc::new(AtomicUsize::new(0)),
        }))
    }
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
    fn server_info(&self) -> Option<serde_json::Value> {
        let s = &self.shared;
        Some(json!({
            "url": self.cfg.url,
            "protocol": self.protocol,
            "name": self.server.name,
            "version": self.server.version,
            "extensions": self.server.extensions,
            "model": self.model,
            "request": {
                "input": s.plan.input,
                "output": s.plan.output,
                "item_shape": s.plan.item_shape,
                "batched": s.plan.batched,
                "tensor_format": (self.protocol == Protocol::Http).then_some(self.cfg.tensor_format),
            },
            "max_in_flight_per_worker": s.max_in_flight,
            "closed_in_flight_per_worker": s.closed_in_flight,
        }))
    }
}

struct KserveSession {
    shared: Arc<Shared>,
    cancel: Arc<Cancel>,
    outstanding: Arc<AtomicUsize>,
}

/// Counts a request as outstanding until its task ends, however it ends.
struct Outstanding(Arc<AtomicUsize>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Session for KserveSession {
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
        infer_blocking(&self.shared, batch.data, batch.len, out)
    }

    fn as_async(&mut self) -> Option<&mut dyn AsyncSession> {
        Some(self)
    }
}

impl AsyncSession for KserveSession {
    fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight
    }

    fn closed_in_flight(&self) -> usize {
        self.shared.closed_in_flight
    }

    fn submit(&mut self, batch: Batch<'_>, done: Completion) {
        let req = self
            .shared
            .client
            .prepare(&self.shared.plan, batch.data, batch.len);
        let n = batch.len;
        let shared = Arc::clone(&self.shared);
        let cancel = Arc::clone(&self.cancel);
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        let guard = Outstanding(Arc::clone(&self.outstanding));
        self.shared.rt.spawn(async move {
            let _guard = guard;
            let cancelled = cancel.notify.notified();
            tokio::pin!(cancelled);
            cancelled.as_mut().enable();
            if cancel.flag.load(Ordering::Acquire) {
                return;
            }
            let limit = shared.request_timeout;
            let result = tokio::select! {
                biased;
                _ = &mut cancelled => return,
                r = tokio::time::timeout(limit, shared.client.infer(&shared.plan, req, n)) => r,
            };
            let result = match result {
                Ok(r) => r
                    .map(|_| ())
                    .map_err(|e| BackendError::Runtime(e.to_string())),
                Err(_) => Err(no_answer(limit)),
            };
            done(result);
        });
    }

    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    fn cancel_all(&mut self) {
        self.cancel.flag.store(true, Ordering::Release);
        self.cancel.notify.notify_waiters();
        self.cancel = Arc::new(Cancel::default());
    }
}
