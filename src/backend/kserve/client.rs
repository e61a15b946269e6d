//! The two transports of the KServe v2 protocol: HTTP/1.1 through a pool of hyper
//! connections (one request per connection at a time), and gRPC through tonic
//! channels (HTTP/2, many requests per connection). Both offer the same calls;
//! requests are encoded on the caller's thread ([`Client::prepare`]) so that the
//! async side only moves bytes.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::proto;
use super::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use super::wire::{self, ModelMetadata, OutputTensor, Plan, ServerMetadata, TensorFormat};

/// Reset streams one gRPC connection remembers (their late frames are then ignored):
/// more than the requests one connection carries at once.
const MAX_REMEMBERED_RESETS: usize = 1 << 16;

/// A gRPC connection's receive window: bytes of answers the server may send ahead of
/// the client reading them (and, halved, h2's budget for small unread DATA frames).
const CONNECTION_WINDOW: u32 = 64 << 20;

/// One gRPC stream's receive window: more than any one answer of an image model.
const STREAM_WINDOW: u32 = 16 << 20;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Nothing answered (connection refused, reset, timed out): the server is down or
    /// not up yet.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered with an error (HTTP status or gRPC code) and this message.
    #[error("{status}: {message}")]
    Refused { status: String, message: String },
    /// The answer could not be read: not HTTP, not the protocol, larger than its cap,
    /// or contradicting the metadata.
    #[error("{0}")]
    Protocol(String),
}

/// Which protocol a `--url` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Grpc,
}

/// A parsed `--url`: `http://host:port[/prefix]` or `grpc://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub protocol: Protocol,
    /// `host:port`.
    pub authority: String,
    /// Path prefix before `/v2` (HTTP only), without a trailing slash.
    pub prefix: String,
}

impl ServerUrl {
    /// Parses `--url`; the error is one sentence for the user.
    pub fn parse(full: &str) -> Result<ServerUrl, String> {
        // Messages quote a long URL as a prefix (a 50 KB one must not fill the screen).
        let url = crate::base::text::quote(full);
        let (protocol, rest) = if let Some(r) = full.strip_prefix("http://") {
            (Protocol::Http, r)
        } else if let Some(r) = full.strip_prefix("grpc://") {
            (Protocol::Grpc, r)
        } else if full.starts_with("https://") || full.starts_with("grpcs://") {
            return Err(format!(
                "--url {url}: TLS is not supported; use http://HOST:PORT or grpc://HOST:PORT (behind a local TLS proxy if needed)"
            ));
        } else {
            return Err(format!(
                "--url {url} must start with http:// or grpc:// (e.g. http://127.0.0.1:8000)"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let valid = !authority.is_empty()
            && authority
                .parse::<hyper::http::uri::Authority>()
                .is_ok_and(|a| a.port_u16().is_some() && !a.host().is_empty())
            && !authority.contains('@');
        if !valid {
            return Err(format!(
                "--url {url} needs a host and a port, e.g. {}://127.0.0.1:8000",
                if protocol == Protocol::Http {
                    "http"
                } else {
                    "grpc"
                }
            ));
        }
        let prefix = path.trim_end_matches('/').to_string();
        if protocol == Protocol::Grpc && !prefix.is_empty() {
            return Err(format!("--url {url}: a grpc:// URL takes no path"));
        }
        Ok(ServerUrl {
            protocol,
            authority: authority.to_string(),
            prefix,
        })
    }
}

/// `--http-headers` entries: `Name: value` (or `Name=value`). Checked here so that a
/// bad header is a usage error, not a failure in the middle of a step.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let q = crate::base::text::quote(s);
    let Some(i) = s.find([':', '=']) else {
        return Err(format!(
            "--http-headers '{q}' must be NAME: VALUE, e.g. 'Authorization: Bearer TOKEN'"
        ));
    };
    let (name, value) = (s[..i].trim(), s[i + 1..].trim());
    if HeaderName::from_str(name).is_err() || HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "--http-headers '{q}': '{}' is not a valid header name or its value is not printable ASCII",
            crate::base::text::quote(name)
        ));
    }
    if MetadataKey::<tonic::metadata::Ascii>::from_bytes(name.to_ascii_lowercase().as_bytes())
        .is_err()
    {
        return Err(format!(
            "--http-headers '{q}': '{}' cannot be sent as gRPC metadata",
            crate::base::text::quote(name)
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

type HyperClient = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

struct Http {
    client: HyperClient,
    /// `http://host:port/prefix`.
    base: String,
    headers: HeaderMap,
    format: TensorFormat,
}

struct Grpc {
    /// One channel per HTTP/2 connection; requests go round-robin.
    channels: Vec<GrpcInferenceServiceClient<Channel>>,
    next: AtomicUsize,
    metadata: MetadataMap,
}

enum Transport {
    Http(Box<Http>),
    Grpc(Grpc),
}

/// A request encoded and ready to send.
pub enum Prepared {
    Http(wire::HttpBody),
    Grpc(proto::ModelInferRequest),
}

/// A connection pool to one server.
pub struct Client {
    transport: Transport,
    /// The infer URI (HTTP), once the plan is known.
    infer_uri: Option<Uri>,
}

impl Client {
    /// A pool of `connections` connections (opened lazily). `headers` go with every
    /// request (HTTP headers or gRPC metadata). Must run inside the runtime.
    pub fn new(
        ep: &ServerUrl,
        headers: &[(String, String)],
        format: TensorFormat,
        connections: usize,
    ) -> Result<Client, String> {
        let transport = match ep.protocol {
            Protocol::Http => {
                let mut conn = HttpConnector::new();
                conn.set_nodelay(true);
                conn.set_connect_timeout(Some(Duration::from_secs(5)));
                let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(connections)
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build(conn);
                let mut map = HeaderMap::new();
                for (k, v) in headers {
                    let (Ok(k), Ok(v)) = (HeaderName::from_str(k), HeaderValue::from_str(v)) else {
                        return Err(format!("header '{k}' is not valid"));
                    };
                    map.append(k, v);
                }
                Transport::Http(Box::new(Http {
                    client,
                    base: format!("http://{}{}", ep.authority, ep.prefix),
                    headers: map,
                    format,
                }))
            }
            Protocol::Grpc => {
                let endpoint = Endpoint::from_shared(format!("http://{}", ep.authority))
                    .map_err(|e| format!("{e}"))?
                    .tcp_nodelay(true)
                    .connect_timeout(Duration::from_secs(5))
                    // Fixed, large windows instead of an adaptive one, which starts at
                    // 64 KiB: h2 lets a connection buffer small DATA frames (answers of a
                    // few hundred bytes) unread only up to half its window, and closes it
                    // with GOAWAY(ENHANCE_YOUR_CALM) past that, so a client that falls a
                    // few hundred answers behind on a busy machine failed every request
                    // in flight as ResourceExhausted. Half of 64 MiB is ~130,000 answers.
                    .initial_connection_window_size(CONNECTION_WINDOW)
                    .initial_stream_window_size(STREAM_WINDOW)
                    // The open loop cancels its own requests (those abandoned when a
                    // step stops, or past --request-timeout): h2 resets each stream and
                    // remembers only 10 of them, so the server's answers still on the
                    // way for a forgotten one are frames on a closed stream, which h2
                    // counts toward a per-connection lifetime limit (1024) before it
                    // closes the connection with GOAWAY(ENHANCE_YOUR_CALM) and fails
                    // every request in flight as ResourceExhausted: a long run read as
                    // a failing server. Remember as many reset streams as may be in
                    // flight, and lift the limit: a server that really breaks streams
                    // fails requests, which the step's error rule catches instead.
                    .http2_max_concurrent_reset_streams(MAX_REMEMBERED_RESETS)
                    .http2_max_local_error_reset_streams(None);
                let channels = (0..connections.max(1))
                    .map(|_| {
                        GrpcInferenceServiceClient::new(endpoint.connect_lazy())
                            .max_decoding_message_size(wire::MAX_METADATA_ANSWER)
                            .max_encoding_message_size(usize::MAX)
                    })
                    .collect();
                let mut metadata = MetadataMap::new();
                for (k, v) in headers {
                    let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("header '{k}' cannot be gRPC metadata"))?;
                    let value = MetadataValue::try_from(v.as_str())
                        .map_err(|_| format!("header '{k}' has a value gRPC cannot carry"))?;
                    metadata.append(key, value);
                }
                Transport::Grpc(Grpc {
                    channels,
                    next: AtomicUsize::new(0),
                    metadata,
                })
            }
        };
        Ok(Client {
            transport,
            infer_uri: None,
        })
    }

    /// Fixes the infer URI for `plan` (HTTP), and the cap of gRPC answers for
    /// requests of at most `max_items` items (HTTP answers are capped per request).
    pub fn set_plan(&mut self, plan: &Plan, max_items: usize) -> Result<(), String> {
        match &mut self.transport {
            Transport::Http(h) => {
                let uri = format!("{}{}/infer", h.base, plan.model_path());
                self.infer_uri = Some(
                    uri.parse()
                        .map_err(|e| format!("{}: {e}", crate::base::text::quote(&uri)))?,
                );
            }
            Transport::Grpc(g) => {
                let cap = plan.answer_cap(max_items.max(1));
                for c in &mut g.channels {
                    *c = c.clone().max_decoding_message_size(cap);
                }
            }
        }
        Ok(())
    }

    pub async fn server_ready(&self) -> Result<bool, CallError> {
        match &self.transport {
            Transport::Http(h) => h.ready("/v2/health/ready").await,
            Transport::Grpc(g) => {
                let r = g
                    .client()
                    .server_ready(g.request(proto::ServerReadyRequest {}))
                    .await;
                Ok(grpc_result(r)?.ready)
            }
        }
    }

    pub async fn model_ready(&self, name: &str, version: Option<&str>) -> Result<bool, CallError> {
        match &self.transport {
            Transport::Http(h) => {
                h.ready(&format!("{}/ready", wire::model_path(name, version)))
                    .await
            }
            Transport::Grpc(g) => {
                let r = g
                    .client()
                    .model_ready(g.request(proto::ModelReadyRequest {
                        name: name.into(),
                        version: version.unwrap_or_default().into(),
                    }))
                    .await;
                Ok(grpc_result(r)?.ready)
            }
        }
    }

    pub async fn server_metadata(&self) -> Result<ServerMetadata, CallError> {
        match &self.transport {
            Transport::Http(h) => h.get_json("/v2").await,
            Transport::Grpc(g) => {
                let r = g
                    .client()
                    .server_metadata(g.request(proto::ServerMetadataRequest {}))
                    .await;
                let m = grpc_result(r)?;
                Ok(ServerMetadata {
                    name: m.name,
                    version: m.version,
                    extensions: m.extensions,
                })
            }
        }
    }

    pub async fn model_metadata(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<ModelMetadata, CallError> {
        match &self.transport {
            Transport::Http(h) => h.get_json(&wire::model_path(name, version)).await,
            Transport::Grpc(g) => {
                let r = g
                    .client()
                    .model_metadata(g.request(proto::ModelMetadataRequest {
                        name: name.into(),
                        version: version.unwrap_or_default().into(),
                    }))
                    .await;
                let m = grpc_result(r)?;
                let t = |v: Vec<proto::model_metadata_response::TensorMetadata>| {
                    v.into_iter()
                        .map(|t| wire::TensorMetadata {
                            name: t.name,
                            datatype: t.datatype,
                            shape: t.shape,
                        })
                        .collect()
                };
                Ok(ModelMetadata {
                    name: m.name,
                    versions: m.versions,
                    platform: m.platform,
                    inputs: t(m.inputs),
                    outputs: t(m.outputs),
                })
            }
        }
    }

    /// Encodes a request of `n` items (on the caller's thread: the copy of the tensor
    /// happens here, not on the I/O threads).
    pub fn prepare(&self, plan: &Plan, data: &[f32], n: usize) -> Prepared {
        match &self.transport {
            Transport::Http(h) => Prepared::Http(wire::encode_http(plan, h.format, data, n)),
            Transport::Grpc(_) => Prepared::Grpc(grpc_request(plan, data, n)),
        }
    }

    /// Sends a prepared request of `n` items and returns the plan's output tensor,
    /// checked against the metadata ([`wire::check_answer`]).
    pub async fn infer(
        &self,
        plan: &Plan,
        req: Prepared,
        n: usize,
    ) -> Result<OutputTensor, CallError> {
        let t = self.infer_unchecked(plan, req, n).await?;
        wire::check_answer(plan, &t, n).map_err(|e| CallError::Protocol(e.to_string()))?;
        Ok(t)
    }

    async fn infer_unchecked(
        &self,
        plan: &Plan,
        req: Prepared,
        n: usize,
    ) -> Result<OutputTensor, CallError> {
        match (&self.transport, req) {
            (Transport::Http(h), Prepared::Http(body)) => {
                let Some(uri) = &self.infer_uri else {
                    return Err(CallError::Protocol("no model chosen".into()));
                };
                let (status, header_length, bytes) =
                    h.post(uri.clone(), body, plan.answer_cap(n)).await?;
                if status != StatusCode::OK {
                    return Err(CallError::Refused {
                        status: status.to_string(),
                        message: wire::error_text(&bytes),
                    });
                }
                wire::decode_http(&bytes, header_length, &plan.output)
                    .map_err(|e| CallError::Protocol(e.to_string()))
            }
            (Transport::Grpc(g), Prepared::Grpc(req)) => {
                let r = g.client().model_infer(g.request(req)).await;
                grpc_output(grpc_result(r)?, &plan.output)
            }
            _ => Err(CallError::Protocol(
                "request prepared for the other protocol".into(),
            )),
        }
    }
}

impl Http {
    fn request(&self, method: Method, uri: Uri, body: Full<Bytes>) -> Request<Full<Bytes>> {
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        req.headers_mut().extend(self.headers.clone());
        req
    }

    /// Sends `req` and reads its answer, refusing one larger than `cap` bytes (as
    /// soon as it announces or sends more).
    async fn send(
        &self,
        req: Request<Full<Bytes>>,
        cap: usize,
    ) -> Result<(StatusCode, Option<usize>, Bytes), CallError> {
        let resp = self.client.request(req).await.map_err(|e| {
            // A connection refused, reset or closed says nothing answers; bytes that
            // are not an HTTP answer say something else answers.
            let msg = chain(e.to_string(), &e);
            let parse = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<hyper::Error>())
                .is_some_and(|h| h.is_parse() || h.is_parse_status());
            if parse && !e.is_connect() {
                CallError::Protocol(format!(
                    "it answered with something that is not HTTP ({})",
                    crate::base::text::quote(&msg)
                ))
            } else {
                CallError::Unreachable(crate::base::text::quote(&msg))
            }
        })?;
        let status = resp.status();
        let header_length = resp
            .headers()
            .get(wire::HEADER_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let too_large = |announced: Option<u64>| {
            CallError::Protocol(format!(
                "its answer{} is larger than the {cap} bytes loadgen accepts for it",
                announced.map_or_else(String::new, |n| format!(" announces {n} bytes and"))
            ))
        };
        let announced = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > cap as u64) {
            return Err(too_large(announced));
        }
        let bytes = Limited::new(resp.into_body(), cap)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large(None)
                } else {
                    CallError::Unreachable(format!("reading the answer: {e}"))
                }
            })?
            .to_bytes();
        Ok((status, header_length, bytes))
    }

    fn uri(&self, path: &str) -> Result<Uri, CallError> {
        format!("{}{path}", self.base)
            .parse()
            .map_err(|e| CallError::Protocol(format!("{}{path}: {e}", self.base)))
    }

    async fn ready(&self, path: &str) -> Result<bool, CallError> {
        let req = self.request(Method::GET, self.uri(path)?, Full::default());
        let (status, _, body) = self.send(req, wire::MAX_METADATA_ANSWER).await?;
        match status {
            StatusCode::OK => Ok(true),
            // Triton answers "not ready" with 400 or 503 and a message.
            s if s == StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            s => Err(CallError::Refused {
                status: s.to_string(),
                message: wire::error_text(&body),
            }),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        let req = self.request(Method::GET, self.uri(path)?, Full::default());
        let (status, _, body) = self.send(req, wire::MAX_METADATA_ANSWER).await?;
        if status != StatusCode::OK {
            return Err(CallError::Refused {
                status: status.to_string(),
                message: wire::error_text(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| {
            CallError::Protocol(format!(
                "GET {}: not the expected JSON: {e}",
                crate::base::text::quote(path)
            ))
        })
    }

    async fn post(
        &self,
        uri: Uri,
        body: wire::HttpBody,
        cap: usize,
    ) -> Result<(StatusCode, Option<usize>, Bytes), CallError> {
        let mut req = self.request(Method::POST, uri, Full::new(body.body));
        let h = req.headers_mut();
        match body.header_length {
            Some(n) => {
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                h.insert(wire::HEADER_LENGTH, HeaderValue::from(n));
            }
            None => {
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
        }
        self.send(req, cap).await
    }
}

impl Grpc {
    fn client(&self) -> GrpcInferenceServiceClient<Channel> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[i].clone()
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if !self.metadata.is_empty() {
            *r.metadata_mut() = self.metadata.clone();
        }
        r
    }
}

fn grpc_result<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, CallError> {
    match r {
        Ok(r) => Ok(r.into_inner()),
        Err(s) if s.code() == tonic::Code::Unavailable => Err(CallError::Unreachable(
            crate::base::text::quote(&chain(s.message().to_string(), &s)),
        )),
        Err(s) => Err(CallError::Refused {
            status: format!("{:?}", s.code()),
            message: crate::base::text::quote(s.message()),
        }),
    }
}

/// `msg` followed by the error's causes, each only once (transport errors repeat
/// their cause in their own message).
fn chain(mut msg: String, e: &dyn std::error::Error) -> String {
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg = format!("{msg}: {t}");
        }
        src = s.source();
    }
    msg
}

/// `ModelInfer` request with the tensor in `raw_input_contents`.
pub fn grpc_request(plan: &Plan, data: &[f32], n: usize) -> proto::ModelInferRequest {
    proto::ModelInferRequest {
        model_name: plan.model_name.clone(),
        model_version: plan.model_version.clone().unwrap_or_default(),
        inputs: vec![proto::model_infer_request::InferInputTensor {
            name: plan.input.clone(),
            datatype: "FP32".into(),
            shape: plan.shape(n),
            ..Default::default()
        }],
        outputs: vec![proto::model_infer_request::InferRequestedOutputTensor {
            name: plan.output.clone(),
            ..Default::default()
        }],
        raw_input_contents: vec![wire::f32_bytes(data)],
        ..Default::default()
    }
}

/// The `output` tensor of a `ModelInfer` answer (raw contents, else typed contents).
pub fn grpc_output(r: proto::ModelInferResponse, output: &str) -> Result<OutputTensor, CallError> {
    let Some(i) = r.outputs.iter().position(|o| o.name == output) else {
        return Err(CallError::Protocol(format!(
            "the server's answer has no output '{output}'"
        )));
    };
    let o = &r.outputs[i];
    let values = if let Some(raw) = r.raw_output_contents.get(i) {
        wire::raw_values(&o.datatype, raw, output)
            .map_err(|e| CallError::Protocol(e.to_string()))?
    } else if let Some(c) = &o.contents {
        if !c.fp32_contents.is_empty() {
            wire::Values::F32(c.fp32_contents.clone())
        } else if !c.int64_contents.is_empty() {
            wire::Values::I64(c.int64_contents.clone())
        } else {
            wire::Values::I64(c.int_contents.iter().map(|&v| i64::from(v)).collect())
        }
    } else {
        return Err(CallError::Protocol(format!(
            "output '{output}' came without contents"
        )));
    };
    Ok(OutputTensor {
        datatype: o.datatype.clone(),
        shape: o.shape.clone(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = ServerUrl::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            (e.protocol, e.authority.as_str(), e.prefix.as_str()),
            (Protocol::Http, "127.0.0.1:8000", "")
        );
        let e = ServerUrl::parse("http://host:80/serving/").unwrap();
        assert_eq!(e.prefix, "/serving");
        assert_eq!(
            ServerUrl::parse("grpc://[::1]:8001").unwrap().protocol,
            Protocol::Grpc
        );
        for bad in [
            "127.0.0.1:8000",
            "https://x:1",
            "http://:80",
            "http://host",
            "grpc://h:1/x",
            "ftp://h:1",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_headers() {
        assert_eq!(
            parse_header("Authorization: Bearer abc").unwrap(),
            ("Authorization".into(), "Bearer abc".into())
        );
        assert_eq!(
            parse_header("x-key=1").unwrap(),
            ("x-key".into(), "1".into())
        );
        assert!(parse_header("no separator").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn grpc_request_carries_raw_little_endian_contents() {
        let plan = Plan {
            model_name: "m".into(),
            model_version: Some("3".into()),
            input: "in".into(),
            output: "out".into(),
            item_shape: vec![2],
            batched: true,
            output_datatype: "FP32".into(),
            output_shape: vec![-1, 2],
        };
        let r = grpc_request(&plan, &[1.0, 2.0, 3.0, 4.0], 2);
        assert_eq!(r.model_version, "3");
        assert_eq!(r.inputs[0].shape, [2, 2]);
        assert_eq!(r.inputs[0].datatype, "FP32");
        assert!(r.inputs[0].contents.is_none(), "raw contents only");
        assert_eq!(r.raw_input_contents.len(), 1);
        assert_eq!(&r.raw_input_contents[0][4..8], &2.0f32.to_le_bytes());
        assert_eq!(r.outputs[0].name, "out");
    }
}
