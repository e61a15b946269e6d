//! KServe v2 over HTTP/REST: health, server and model metadata, model readiness and
//! inference with JSON tensors or the binary tensor extension (the client's default:
//! a JSON header of `Inference-Header-Content-Length` bytes, then raw values), and an
//! answer in the form the request asked for (`binary_data` on its output).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::backend::kserve::wire;

use super::model::{InferInput, Models, Refusal, ServedModel};

/// The largest request body read: a batch of images, with room to spare.
pub const MAX_BODY: usize = 256 << 20;

pub type HttpResponse = Response<Full<Bytes>>;

fn respond(status: StatusCode, body: Value) -> HttpResponse {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: impl Into<String>) -> HttpResponse {
    respond(status, json!({ "error": msg.into() }))
}

/// Percent-decodes a path segment (the client encodes model names).
pub fn percent_decode(s: &str) -> String {
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

/// Answers one HTTP request.
pub async fn handle(models: Arc<Models>, req: Request<Incoming>) -> HttpResponse {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    let get = req.method() == Method::GET;
    match segs.as_slice() {
        ["v2"] if get => respond(
            StatusCode::OK,
            serde_json::to_value(models.server_metadata()).unwrap_or(Value::Null),
        ),
        ["v2", "health", "ready" | "live"] if get => respond(StatusCode::OK, json!({})),
        ["v2", "models", name, rest @ ..] => {
            let rest = match rest {
                ["versions", _, r @ ..] => r,
                r => r,
            };
            let Some(model) = models.find(name) else {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("Request for unknown model: '{name}' is not found"),
                );
            };
            match rest {
                [] if get => respond(
                    StatusCode::OK,
                    serde_json::to_value(model.metadata()).unwrap_or(Value::Null),
                ),
                ["ready"] if get => respond(StatusCode::OK, json!({})),
                ["infer"] if req.method() == Method::POST => {
                    let model = Arc::clone(model);
                    infer(model.as_ref(), req).await
                }
                _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// `POST /v2/models/{m}/infer`.
async fn infer(model: &dyn ServedModel, req: Request<Incoming>) -> HttpResponse {
    let header_len: Option<usize> = req
        .headers()
        .get(wire::HEADER_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
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
            let end = json_len.checked_add(size as usize);
            match end.filter(|&e| e <= body.len()) {
                Some(end) => body.slice(json_len..end),
                None => return error(StatusCode::BAD_REQUEST, "binary data past the body"),
            }
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
    let input = InferInput {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        raw,
    };
    let out = match model.infer(input).await {
        Ok(out) => out,
        Err(Refusal::BadRequest(e)) => return error(StatusCode::BAD_REQUEST, e),
        Err(Refusal::Failed(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let meta = model.metadata();
    let (out_name, out_type) = meta
        .outputs
        .first()
        .map_or(("", ""), |t| (t.name.as_str(), t.datatype.as_str()));
    let mut tensor = json!({"name": out_name, "datatype": out_type, "shape": out.shape});
    let version = meta.versions.first().cloned().unwrap_or_default();
    if !binary_out {
        let values: Vec<f32> = out
            .raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensor["data"] = json!(values);
        return respond(
            StatusCode::OK,
            json!({"model_name": meta.name, "model_version": version, "outputs": [tensor]}),
        );
    }
    tensor["parameters"] = json!({"binary_data_size": out.raw.len()});
    let head = json!({"model_name": meta.name, "model_version": version, "outputs": [tensor]})
        .to_string()
        .into_bytes();
    let mut buf = Vec::with_capacity(head.len() + out.raw.len());
    buf.extend_from_slice(&head);
    buf.extend_from_slice(&out.raw);
    let mut r = Response::new(Full::new(Bytes::from(buf)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert(wire::HEADER_LENGTH, HeaderValue::from(head.len()));
    r
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
