//! Where and how to reach a KServe v2 server.

use serde::Serialize;

use super::wire::TensorFormat;

/// Where and how to reach the server (from the flags, already checked).
#[derive(Clone, Debug, Serialize)]
pub struct KserveConfig {
    pub url: String,
    pub model_name: String,
    pub model_version: Option<String>,
    /// Sent with every request; only the names are written to results.json.
    #[serde(serialize_with = "header_names")]
    pub headers: Vec<(String, String)>,
    pub tensor_format: TensorFormat,
    /// HTTP: connections (= requests in flight); gRPC: HTTP/2 connections.
    pub connections: Option<usize>,
    /// Requests in flight in closed-loop runs.
    pub concurrency: Option<usize>,
    /// How long to wait for the server and the model to become ready.
    pub ready_timeout_s: f64,
    /// How long one inference may wait for its answer before it is an error.
    pub request_timeout_s: f64,
    /// Threads of the client's I/O runtime.
    pub io_threads: usize,
    /// Items per request (`--batch_size`), checked against the model with a test request.
    pub batch_size: usize,
}

fn header_names<S: serde::Serializer>(h: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(h.iter().map(|(k, _)| k))
}
