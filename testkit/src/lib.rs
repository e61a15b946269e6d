//! A small in-process KServe v2 server (HTTP and gRPC, on one port) with trivial
//! models, for the protocol's tests (tests/kserve.rs). The protocol server itself is
//! the product's (`loadgen serve`, [`loadgen::serve`]); this crate adds only the test
//! models, which implement its [`ServedModel`], and what the tests read of them.
//!
//! It lives in this test-support crate, a dev-dependency of loadgen, so that the
//! installed product holds `loadgen` alone.
//!
//! Models echo their input (`identity`), optionally after a delay (to hold requests in
//! flight) or fail after a number of requests (to test error counting). Requests are
//! checked as a real server would ([`loadgen::serve::model::check_input`]): input
//! name, datatype, shape and byte count.

pub mod hostile;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::Status;

use loadgen::backend::kserve::wire;
use loadgen::serve::model::{check_input, InferInput, InferOutput, Refusal, ServedModel};
use loadgen::serve::{Models, Server};

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
}

/// A [`TestModel`] as the server holds it: its metadata, the requests it has served,
/// and the server's counters.
struct Served {
    model: TestModel,
    meta: wire::ModelMetadata,
    served: AtomicU64,
    stats: Arc<ServerStats>,
}

#[tonic::async_trait]
impl ServedModel for Served {
    fn metadata(&self) -> &wire::ModelMetadata {
        &self.meta
    }

    /// Checks one request's input and answers it: the input itself (or `oversize`
    /// bytes), after `delay`; an error once `fail_after` requests were answered. A
    /// failing model's refusals are all server errors (500, INTERNAL).
    async fn infer(&self, input: InferInput) -> Result<InferOutput, Refusal> {
        let stats = &self.stats;
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let checked = check_input(&self.meta, &input);
        if let Some(d) = self.model.delay {
            tokio::time::sleep(d).await;
        }
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        let refuse = |m: String| match self.model.fail_after {
            Some(_) => Refusal::Failed(m),
            None => Refusal::BadRequest(m),
        };
        checked.map_err(refuse)?;
        let served = self.served.fetch_add(1, Ordering::Relaxed);
        if self.model.fail_after.is_some_and(|n| served >= n) {
            return Err(refuse(format!(
                "model '{}' fails this request on purpose",
                self.model.name
            )));
        }
        let raw = match self.model.oversize {
            Some(n) => Bytes::from(vec![0u8; n]),
            None => input.raw,
        };
        Ok(InferOutput {
            shape: input.shape,
            raw,
        })
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

/// A running server: its address (HTTP and gRPC share it; both fields hold it, for
/// the tests that name a protocol) and what it saw. It stops with its runtime.
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
    /// Starts the server on the current tokio runtime. Port 0 picks a free port.
    pub async fn start(models: Vec<TestModel>, addr: SocketAddr) -> std::io::Result<V2Server> {
        Self::start_with(models, addr, ServerOptions::default()).await
    }

    /// [`V2Server::start`], sending as `options` say.
    pub async fn start_with(
        models: Vec<TestModel>,
        addr: SocketAddr,
        options: ServerOptions,
    ) -> std::io::Result<V2Server> {
        let stats = Arc::new(ServerStats::default());
        let served = models
            .into_iter()
            .map(|model| {
                Arc::new(Served {
                    meta: model.metadata(),
                    model,
                    served: AtomicU64::new(0),
                    stats: Arc::clone(&stats),
                }) as Arc<dyn ServedModel>
            })
            .collect();
        let models = Models::new("loadgen-v2-test", served);
        let grpc_map: Option<loadgen::serve::GrpcAnswerMap> =
            options.grpc_frame_bytes.map(|piece| {
                Arc::new(move |r: http::Response<tonic::body::Body>| {
                    r.map(|inner| tonic::body::Body::new(Split::new(inner, Some(piece))))
                }) as loadgen::serve::GrpcAnswerMap
            });
        let server = Server::start_with(models, addr, grpc_map).await?;
        Ok(V2Server {
            http: server.addr,
            grpc: server.addr,
            stats,
        })
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
