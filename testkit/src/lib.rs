//! A small in-process KServe v2 server (HTTP and gRPC) with trivial models. It exists
//! for the protocol's tests (tests/kserve.rs) and as the fast local server that
//! `scripts/bench_kserve.sh` measures the client against (`loadgen-v2-server`): it
//! answers in microseconds, so a benchmark against it measures the client, not a model.
//!
//! It lives in this test-support crate, a dev-dependency of loadgen, so that the
//! installed product holds `loadgen` alone; it depends on loadgen only for the
//! protocol's generated gRPC service and the wire encoding, which client and server
//! share.
//!
//! Models echo their input (`identity`), optionally after a delay (to hold requests in
//! flight) or fail after a number of requests (to test error counting). The server checks requests
//! as a real one would: input name, datatype, shape and byte count.

pub mod hostile;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

use loadgen::backend::kserve::proto::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use loadgen::backend::kserve::{proto, wire};

/// One model the server offers.
#[derive(Clone, Debug)]
pub struct TestModel {
    pub name: String,
    pub input: String,
    pub output: String,
    /// Item dimensions; the metadata shape is `[-1, ...item_shape]`.
    pub item_shape: Vec<i64>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Answer every inference after the first this many with an error.
    pub fail_after: Option<u64>,
    /// Answer with this many bytes of output (shape unchanged): an answer far larger
    /// than the metadata allows, for the client's size cap.
    pub oversize: Option<usize>,
    served: Arc<AtomicU64>,
}

impl TestModel {
    /// An FP32 identity model, input `INPUT0`, output `OUTPUT0`.
    pub fn identity(name: &str, item_shape: &[i64]) -> TestModel {
        TestModel {
            name: name.into(),
            input: "INPUT0".into(),
            output: "OUTPUT0".into(),
            item_shape: item_shape.to_vec(),
            delay: None,
            fail_after: None,
            oversize: None,
            served: Arc::new(AtomicU64::new(0)),
        }
    }

    fn metadata(&self) -> wire::ModelMetadata {
        let mut shape = vec![-1];
        shape.extend_from_slice(&self.item_shape);
        let t = |name: &str| wire::TensorMetadata {
            name: name.into(),
            datatype: "FP32".into(),
            shape: shape.clone(),
        };
        wire::ModelMetadata {
            name: self.name.clone(),
            versions: vec!["1".into()],
            platform: "loadgen_test".into(),
            inputs: vec![t(&self.input)],
            outputs: vec![t(&self.output)],
        }
    }

    /// Checks one request's input and answers it: the output tensor's shape and bytes.
    async fn infer(
        &self,
        stats: &ServerStats,
        name: &str,
        datatype: &str,
        shape: &[i64],
        raw: Bytes,
    ) -> Result<(Vec<i64>, Bytes), String> {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.check(name, datatype, shape, raw.len());
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        result?;
        let served = self.served.fetch_add(1, Ordering::Relaxed);
        if self.fail_after.is_some_and(|n| served >= n) {
            return Err(format!(
                "model '{}' fails this request on purpose",
                self.name
            ));
        }
        match self.oversize {
            Some(n) => Ok((shape.to_vec(), Bytes::from(vec![0u8; n]))),
            None => Ok((shape.to_vec(), raw)),
        }
    }

    fn check(&self, name: &str, datatype: &str, shape: &[i64], bytes: usize) -> Result<(), String> {
        if name != self.input {
            return Err(format!(
                "unexpected inference input '{name}' for model '{}'",
                self.name
            ));
        }
        if datatype != "FP32" {
            return Err(format!("input '{name}' expects FP32, got {datatype}"));
        }
        if shape.len() != self.item_shape.len() + 1
            || shape[1..] != self.item_shape[..]
            || shape[0] < 1
        {
            return Err(format!(
                "unexpected shape for input '{name}' for model '{}': expected [-1,{}], got {shape:?}",
                self.name,
                self.item_shape
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        let want = shape.iter().product::<i64>() as usize * 4;
        if bytes != want {
            return Err(format!("input '{name}' has {bytes} bytes, expected {want}"));
        }
        Ok(())
    }
}

/// What the server saw (for tests).
#[derive(Debug, Default)]
pub struct ServerStats {
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    /// Most inference requests in progress at once.
    pub max_in_flight: AtomicU64,
}

struct State {
    models: Vec<TestModel>,
    stats: Arc<ServerStats>,
}

impl State {
    fn model(&self, name: &str) -> Option<&TestModel> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// A running server: its addresses and what it saw. It stops with its runtime.
pub struct V2Server {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub stats: Arc<ServerStats>,
}

/// How the server sends what it sends, beyond the models' answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerOptions {
    /// Split every gRPC answer into HTTP/2 DATA frames of at most this many bytes:
    /// legal, and the frames of one answer reach the client at once, before it has
    /// read any of them.
    pub grpc_frame_bytes: Option<usize>,
}

impl V2Server {
    /// Starts both endpoints on the current tokio runtime. Port 0 picks free ports.
    pub async fn start(
        models: Vec<TestModel>,
        http: SocketAddr,
        grpc: SocketAddr,
    ) -> std::io::Result<V2Server> {
        Self::start_with(models, http, grpc, ServerOptions::default()).await
    }

    /// [`V2Server::start`], sending as `options` say.
    pub async fn start_with(
        models: Vec<TestModel>,
        http: SocketAddr,
        grpc: SocketAddr,
        options: ServerOptions,
    ) -> std::io::Result<V2Server> {
        let stats = Arc::new(ServerStats::default());
        let state = Arc::new(State {
            models,
            stats: Arc::clone(&stats),
        });
        let http_listener = TcpListener::bind(http).await?;
        let grpc_listener = TcpListener::bind(grpc).await?;
        let (http, grpc) = (http_listener.local_addr()?, grpc_listener.local_addr()?);
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = http_listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle_http(Arc::clone(&st), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let svc = GrpcInferenceServiceServer::new(Grpc(state))
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let incoming =
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        tokio::spawn(async move {
            // The open loop cancels the requests still out when a step stops: many
            // stream resets at once, which h2's defences against reset floods (20
            // pending, 1024 local) answered with GOAWAY ENHANCE_YOUR_CALM, failing
            // the next step's requests (ResourceExhausted) on a loaded machine. A
            // test server has nobody to defend against.
            let _ = tonic::transport::Server::builder()
                .http2_max_pending_accept_reset_streams(Some(1 << 20))
                .http2_max_local_error_reset_streams(Some(1 << 20))
                // h2 budgets small unread DATA frames at half the connection window;
                // an identity server at capacity holds many small requests unread.
                .initial_connection_window_size(64 << 20)
                .layer(tower::util::MapResponseLayer::new(
                    move |r: http::Response<tonic::body::Body>| {
                        r.map(|inner| Split::new(inner, options.grpc_frame_bytes))
                    },
                ))
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(V2Server { http, grpc, stats })
    }
}

/// A response body that hands its data on in pieces of at most `piece` bytes, each
/// of which h2 sends as a DATA frame of its own.
struct Split {
    inner: tonic::body::Body,
    rest: Bytes,
    piece: usize,
}

impl Split {
    fn new(inner: tonic::body::Body, piece: Option<usize>) -> Split {
        Split {
            inner,
            rest: Bytes::new(),
            piece: piece.unwrap_or(usize::MAX).max(1),
        }
    }
}

impl http_body::Body for Split {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if !this.rest.is_empty() {
                let n = this.piece.min(this.rest.len());
                return Poll::Ready(Some(Ok(http_body::Frame::data(this.rest.split_to(n)))));
            }
            match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response<Full<Bytes>> {
    respond(status, json!({ "error": msg.into() }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle_http(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    let get = req.method() == Method::GET;
    Ok(match segs.as_slice() {
        ["v2"] if get => respond(
            StatusCode::OK,
            json!({"name": "loadgen-v2-test", "version": env!("CARGO_PKG_VERSION"),
                   "extensions": ["binary_tensor_data"]}),
        ),
        ["v2", "health", "ready" | "live"] if get => respond(StatusCode::OK, json!({})),
        ["v2", "models", name, rest @ ..] => {
            let rest = match rest {
                ["versions", _, r @ ..] => r,
                r => r,
            };
            let Some(model) = state.model(name) else {
                return Ok(error(
                    StatusCode::NOT_FOUND,
                    format!("Request for unknown model: '{name}' is not found"),
                ));
            };
            match rest {
                [] if get => respond(
                    StatusCode::OK,
                    serde_json::to_value(model.metadata()).unwrap_or(Value::Null),
                ),
                ["ready"] if get => respond(StatusCode::OK, json!({})),
                ["infer"] if req.method() == Method::POST => {
                    let model = model.clone();
                    http_infer(&state, &model, req).await
                }
                _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    })
}

async fn http_infer(
    state: &State,
    model: &TestModel,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let header_len: Option<usize> = req
        .headers()
        .get(wire::HEADER_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let json_len = header_len.unwrap_or(body.len());
    if json_len > body.len() {
        return error(StatusCode::BAD_REQUEST, "header length past the body");
    }
    let head: Value = match serde_json::from_slice(&body[..json_len]) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")),
    };
    let Some(input) = head["inputs"].as_array().and_then(|a| a.first()) else {
        return error(StatusCode::BAD_REQUEST, "no inputs");
    };
    let name = input["name"].as_str().unwrap_or_default();
    let datatype = input["datatype"].as_str().unwrap_or_default();
    let shape: Vec<i64> = input["shape"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let raw = match input["parameters"]["binary_data_size"].as_u64() {
        Some(size) => {
            let end = json_len + size as usize;
            if end > body.len() {
                return error(StatusCode::BAD_REQUEST, "binary data past the body");
            }
            body.slice(json_len..end)
        }
        None => match input["data"].as_array() {
            Some(values) => {
                let floats: Option<Vec<f32>> = values
                    .iter()
                    .map(|v| v.as_f64().map(|x| x as f32))
                    .collect();
                match floats {
                    Some(f) => wire::f32_bytes(&f),
                    None => return error(StatusCode::BAD_REQUEST, "data holds a non-number"),
                }
            }
            None => return error(StatusCode::BAD_REQUEST, "input has no data"),
        },
    };
    let binary_out = head["outputs"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|o| o["parameters"]["binary_data"].as_bool())
        .unwrap_or(false);
    let (shape, out) = match model.infer(&state.stats, name, datatype, &shape, raw).await {
        Ok(x) => x,
        Err(e) if model.fail_after.is_some() => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let mut tensor = json!({"name": model.output, "datatype": "FP32", "shape": shape});
    if !binary_out {
        let values: Vec<f32> = out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensor["data"] = json!(values);
        return respond(
            StatusCode::OK,
            json!({"model_name": model.name, "model_version": "1", "outputs": [tensor]}),
        );
    }
    tensor["parameters"] = json!({"binary_data_size": out.len()});
    let head = json!({"model_name": model.name, "model_version": "1", "outputs": [tensor]})
        .to_string()
        .into_bytes();
    let mut buf = Vec::with_capacity(head.len() + out.len());
    buf.extend_from_slice(&head);
    buf.extend_from_slice(&out);
    let mut r = Response::new(Full::new(Bytes::from(buf)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert(wire::HEADER_LENGTH, HeaderValue::from(head.len()));
    r
}

struct Grpc(Arc<State>);

impl Grpc {
    fn model(&self, name: &str) -> Result<&TestModel, Status> {
        self.0.model(name).ok_or_else(|| {
            Status::not_found(format!("Request for unknown model: '{name}' is not found"))
        })
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        _: GrpcRequest<proto::ServerLiveRequest>,
    ) -> Result<GrpcResponse<proto::ServerLiveResponse>, Status> {
        Ok(GrpcResponse::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: GrpcRequest<proto::ServerReadyRequest>,
    ) -> Result<GrpcResponse<proto::ServerReadyResponse>, Status> {
        Ok(GrpcResponse::new(proto::ServerReadyResponse {
            ready: true,
        }))
    }

    async fn model_ready(
        &self,
        r: GrpcRequest<proto::ModelReadyRequest>,
    ) -> Result<GrpcResponse<proto::ModelReadyResponse>, Status> {
        let ready = self.0.model(&r.get_ref().name).is_some();
        Ok(GrpcResponse::new(proto::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: GrpcRequest<proto::ServerMetadataRequest>,
    ) -> Result<GrpcResponse<proto::ServerMetadataResponse>, Status> {
        Ok(GrpcResponse::new(proto::ServerMetadataResponse {
            name: "loadgen-v2-test".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into()],
        }))
    }

    async fn model_metadata(
        &self,
        r: GrpcRequest<proto::ModelMetadataRequest>,
    ) -> Result<GrpcResponse<proto::ModelMetadataResponse>, Status> {
        let m = self.model(&r.get_ref().name)?.metadata();
        let t = |v: Vec<wire::TensorMetadata>| {
            v.into_iter()
                .map(|t| proto::model_metadata_response::TensorMetadata {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                })
                .collect()
        };
        Ok(GrpcResponse::new(proto::ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: t(m.inputs),
            outputs: t(m.outputs),
        }))
    }

    async fn model_infer(
        &self,
        r: GrpcRequest<proto::ModelInferRequest>,
    ) -> Result<GrpcResponse<proto::ModelInferResponse>, Status> {
        let mut r = r.into_inner();
        let model = self.model(&r.model_name)?;
        let (Some(input), Some(raw)) = (r.inputs.first(), r.raw_input_contents.pop()) else {
            return Err(Status::invalid_argument(
                "expected one input in raw_input_contents",
            ));
        };
        let (shape, out) = model
            .infer(
                &self.0.stats,
                &input.name,
                &input.datatype,
                &input.shape,
                raw,
            )
            .await
            .map_err(|e| {
                if model.fail_after.is_some() {
                    Status::internal(e)
                } else {
                    Status::invalid_argument(e)
                }
            })?;
        Ok(GrpcResponse::new(proto::ModelInferResponse {
            model_name: model.name.clone(),
            model_version: "1".into(),
            outputs: vec![proto::model_infer_response::InferOutputTensor {
                name: model.output.clone(),
                datatype: "FP32".into(),
                shape,
                ..Default::default()
            }],
            raw_output_contents: vec![out],
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_partial_escapes() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("x%2"), "x%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(
            percent_decode("%é"),
            "%é",
            "no panic inside a multi-byte character"
        );
    }
}
