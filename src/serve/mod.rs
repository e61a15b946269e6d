//! `loadgen serve`: a KServe v2 server for the built-in backends, HTTP/REST and gRPC on
//! one port. Clients are measured against a server whose service law is known (the
//! [`queue`]'s), which a real model server's never is.
//!
//! One port for both protocols, as Triton's clients may not assume but KServe's
//! allow: every connection is read as HTTP/1.1 or HTTP/2 (by its preface), and a
//! request whose content type is `application/grpc…` goes to the gRPC service, any
//! other to the REST handler. Files: [`model`] (what is served), [`queue`] (who serves
//! it), [`http`] and [`grpc`] (the two front ends).

pub mod grpc;
pub mod http;
pub mod model;
pub mod queue;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tonic::codegen::Service;

use crate::backend::kserve::proto::grpc_inference_service_server::GrpcInferenceServiceServer;

pub use model::Models;

/// The largest gRPC message read or written, as for HTTP bodies.
const MAX_MESSAGE: usize = http::MAX_BODY;

/// A listening server. It serves until its tokio runtime ends.
pub struct Server {
    pub addr: SocketAddr,
}

/// Applied to every gRPC answer before it is sent: a test server may frame its
/// answers otherwise (testkit's `grpc_frame_bytes`). The product passes none.
pub type GrpcAnswerMap = Arc<
    dyn Fn(hyper::Response<tonic::body::Body>) -> hyper::Response<tonic::body::Body> + Send + Sync,
>;

/// The connection settings. HTTP/2 (gRPC): an open-loop client cancels the requests
/// still out when a step stops, many stream resets at once, which h2's defences
/// against reset floods (20 pending, 1024 local) answer with GOAWAY
/// ENHANCE_YOUR_CALM, failing the next step's requests; a measuring server lets the
/// client decide. h2 budgets small unread DATA frames at half the connection window:
/// a server at capacity holds many small requests unread, hence a large window.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // No timeout on a request's head: it would also close a client's idle keep-alive
    // connections, which a load generator holds open between steps.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None::<Duration>);
    b.http2()
        .timer(TokioTimer::new())
        .max_pending_accept_reset_streams(Some(1 << 20))
        .max_local_error_reset_streams(Some(1 << 20))
        .initial_connection_window_size(Some(64 << 20))
        .max_concurrent_streams(None::<u32>);
    b
}

/// Whether a request is gRPC's (`application/grpc`, `application/grpc+proto`).
fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl Server {
    /// Binds `addr` (port 0: a free one) and serves `models` on the current tokio
    /// runtime.
    pub async fn start(models: Models, addr: SocketAddr) -> std::io::Result<Server> {
        Self::start_with(models, addr, None).await
    }

    /// [`Server::start`], each gRPC answer passed through `grpc_map` when given.
    pub async fn start_with(
        models: Models,
        addr: SocketAddr,
        grpc_map: Option<GrpcAnswerMap>,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let models = Arc::new(models);
        let grpc = GrpcInferenceServiceServer::new(grpc::Grpc(Arc::clone(&models)))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let builder = Arc::new(builder());
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    // Out of file descriptors, say: try again a little later rather
                    // than spin.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (models, grpc, builder, grpc_map) = (
                    Arc::clone(&models),
                    grpc.clone(),
                    Arc::clone(&builder),
                    grpc_map.clone(),
                );
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (models, mut grpc) = (Arc::clone(&models), grpc.clone());
                    let grpc_map = grpc_map.clone();
                    async move {
                        if is_grpc(&req) {
                            let r = grpc.call(req).await;
                            Ok::<_, std::convert::Infallible>(match (r, grpc_map) {
                                (Ok(r), Some(f)) => f(r),
                                (Ok(r), None) => r,
                                (Err(never), _) => match never {},
                            })
                        } else {
                            let r = http::handle(models, req).await;
                            Ok(r.map(tonic::body::Body::new))
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(Server { addr })
    }
}
