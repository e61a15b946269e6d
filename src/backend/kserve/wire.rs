//! The KServe v2 / Open Inference Protocol on the wire, without any I/O: request
//! bodies for HTTP (binary tensor extension or JSON tensors), the JSON documents the
//! server answers with, and turning an output tensor into top-1 classes. Kept pure so
//! that the encoding is unit-tested byte for byte.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::base::sut::BackendError;

/// The HTTP header that gives the length of the JSON part of a binary-extension body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// How HTTP requests carry tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TensorFormat {
    /// The binary tensor extension: a JSON header then raw little-endian bytes.
    #[default]
    Binary,
    /// Plain JSON: every value as a JSON number.
    Json,
}

impl TensorFormat {
    pub fn parse(s: &str) -> Option<TensorFormat> {
        match s {
            "binary" => Some(TensorFormat::Binary),
            "json" => Some(TensorFormat::Json),
            _ => None,
        }
    }
}

/// `GET /v2` (and `ServerMetadata`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ServerMetadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// One tensor of the model metadata.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    /// `-1` marks a variable dimension (the batch, usually).
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{m}` (and `ModelMetadata`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub inputs: Vec<TensorMetadata>,
    #[serde(default)]
    pub outputs: Vec<TensorMetadata>,
}

/// What every inference request of a run looks like, fixed once the metadata is known.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub model_name: String,
    pub model_version: Option<String>,
    pub input: String,
    pub output: String,
    /// Dimensions of one item as the server wants them (no batch dimension).
    pub item_shape: Vec<usize>,
    /// Whether the model takes a leading batch dimension (`-1` in its metadata). If
    /// not, each request carries exactly one item.
    pub batched: bool,
}

impl Plan {
    /// The tensor shape of a request of `n` items.
    pub fn shape(&self, n: usize) -> Vec<i64> {
        let mut s = Vec::with_capacity(self.item_shape.len() + 1);
        if self.batched {
            s.push(n as i64);
        }
        s.extend(self.item_shape.iter().map(|&d| d as i64));
        s
    }

    /// `/v2/models/{m}[/versions/{v}]`.
    pub fn model_path(&self) -> String {
        model_path(&self.model_name, self.model_version.as_deref())
    }
}

/// `/v2/models/{m}[/versions/{v}]`, names percent-encoded where needed.
pub fn model_path(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!(
            "/v2/models/{}/versions/{}",
            encode_segment(name),
            encode_segment(v)
        ),
        None => format!("/v2/models/{}", encode_segment(name)),
    }
}

/// Percent-encodes a URL path segment (RFC 3986 unreserved characters stay).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Serialize)]
struct JsonRequest<'a> {
    inputs: [JsonInput<'a>; 1],
    outputs: [JsonOutputRequest<'a>; 1],
}

#[derive(Serialize)]
struct JsonInput<'a> {
    name: &'a str,
    shape: Vec<i64>,
    datatype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a [f32]>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

#[derive(Serialize)]
struct JsonOutputRequest<'a> {
    name: &'a str,
    parameters: BinaryData,
}

#[derive(Serialize)]
struct BinaryData {
    binary_data: bool,
}

/// An encoded HTTP request body, and the value of `Inference-Header-Content-Length`
/// (`None` for a JSON body).
#[derive(Debug)]
pub struct HttpBody {
    pub body: Bytes,
    pub header_length: Option<usize>,
}

/// The body of `POST …/infer` for `n` items of `data` (FP32, row-major).
pub fn encode_http(plan: &Plan, format: TensorFormat, data: &[f32], n: usize) -> HttpBody {
    let binary = format == TensorFormat::Binary;
    let req = JsonRequest {
        inputs: [JsonInput {
            name: &plan.input,
            shape: plan.shape(n),
            datatype: "FP32",
            parameters: binary.then_some(BinarySize {
                binary_data_size: data.len() * 4,
            }),
            data: (!binary).then_some(data),
        }],
        outputs: [JsonOutputRequest {
            name: &plan.output,
            parameters: BinaryData {
                binary_data: binary,
            },
        }],
    };
    // Serialising plain structs of strings and numbers cannot fail; non-finite floats
    // become `null`, which the server then rejects with a message.
    let header = serde_json::to_vec(&req).unwrap_or_default();
    if !binary {
        return HttpBody {
            body: Bytes::from(header),
            header_length: None,
        };
    }
    let mut buf = BytesMut::with_capacity(header.len() + data.len() * 4);
    buf.put_slice(&header);
    put_f32s(&mut buf, data);
    HttpBody {
        body: buf.freeze(),
        header_length: Some(header.len()),
    }
}

/// `data` as little-endian bytes (the layout of `raw_input_contents` and of binary
/// tensor data).
pub fn f32_bytes(data: &[f32]) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() * 4);
    put_f32s(&mut buf, data);
    buf.freeze()
}

fn put_f32s(buf: &mut BytesMut, data: &[f32]) {
    for v in data {
        buf.put_slice(&v.to_le_bytes());
    }
}

/// An output tensor of a response, as JSON describes it.
#[derive(Debug, Deserialize)]
struct JsonOutput {
    name: String,
    datatype: String,
    #[serde(default)]
    shape: Vec<i64>,
    #[serde(default)]
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    data: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct JsonResponse {
    #[serde(default)]
    outputs: Vec<JsonOutput>,
}

/// The values of one output tensor, whatever its datatype.
#[derive(Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// An output tensor taken out of a response.
#[derive(Debug, PartialEq)]
pub struct OutputTensor {
    pub shape: Vec<i64>,
    pub values: Values,
}

/// Decodes the `output` tensor of an HTTP response body. `header_length` is the
/// response's `Inference-Header-Content-Length` (`None`: all JSON).
pub fn decode_http(
    body: &[u8],
    header_length: Option<usize>,
    output: &str,
) -> Result<OutputTensor, BackendError> {
    let json_len = header_length.unwrap_or(body.len());
    if json_len > body.len() {
        return Err(BackendError::Runtime(format!(
            "the server's answer is {} bytes but says its JSON header has {json_len}",
            body.len()
        )));
    }
    let resp: JsonResponse = serde_json::from_slice(&body[..json_len]).map_err(|e| {
        BackendError::Runtime(format!("the server's answer is not KServe v2 JSON: {e}"))
    })?;
    let mut offset = json_len;
    for out in &resp.outputs {
        let size = out
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .and_then(serde_json::Value::as_u64)
            .map(|s| s as usize);
        if out.name != output {
            offset += size.unwrap_or(0);
            continue;
        }
        let values = match (size, &out.data) {
            (Some(size), _) => {
                let end = offset.checked_add(size).filter(|&e| e <= body.len());
                let Some(end) = end else {
                    return Err(BackendError::Runtime(format!(
                        "output '{output}' claims {size} binary bytes past the end of the answer"
                    )));
                };
                raw_values(&out.datatype, &body[offset..end], output)?
            }
            (None, Some(data)) => json_values(&out.datatype, data, output)?,
            (None, None) => {
                return Err(BackendError::Runtime(format!(
                    "output '{output}' in the server's answer has neither data nor binary_data_size"
                )))
            }
        };
        return Ok(OutputTensor {
            shape: out.shape.clone(),
            values,
        });
    }
    Err(BackendError::Runtime(format!(
        "the server's answer has no output '{output}'"
    )))
}

/// Values of a tensor from its raw little-endian bytes.
pub fn raw_values(datatype: &str, raw: &[u8], name: &str) -> Result<Values, BackendError> {
    let bad_len = |w: usize| {
        BackendError::Runtime(format!(
            "output '{name}' has {} bytes, not a multiple of {w} ({datatype})",
            raw.len()
        ))
    };
    Ok(match datatype {
        "FP32" => {
            if !raw.len().is_multiple_of(4) {
                return Err(bad_len(4));
            }
            Values::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        "INT64" => {
            if !raw.len().is_multiple_of(8) {
                return Err(bad_len(8));
            }
            Values::I64(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            )
        }
        "INT32" => {
            if !raw.len().is_multiple_of(4) {
                return Err(bad_len(4));
            }
            Values::I64(
                raw.chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            )
        }
        other => return Err(unsupported(name, other)),
    })
}

fn json_values(
    datatype: &str,
    data: &[serde_json::Value],
    name: &str,
) -> Result<Values, BackendError> {
    let not_number = || BackendError::Runtime(format!("output '{name}' holds a non-number"));
    Ok(match datatype {
        "FP32" | "FP64" => Values::F32(
            data.iter()
                .map(|v| v.as_f64().map(|x| x as f32).ok_or_else(not_number))
                .collect::<Result<_, _>>()?,
        ),
        "INT64" | "INT32" => Values::I64(
            data.iter()
                .map(|v| v.as_i64().ok_or_else(not_number))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(unsupported(name, other)),
    })
}

fn unsupported(name: &str, datatype: &str) -> BackendError {
    BackendError::Runtime(format!(
        "output '{name}' has datatype {datatype}; loadgen reads FP32, INT32 and INT64 outputs"
    ))
}

/// Checks that an answer holds the same number of values for each of `n` items
/// (the open loop keeps no classes, but a short answer is an error).
pub fn check_items(t: &OutputTensor, n: usize) -> Result<(), BackendError> {
    let len = match &t.values {
        Values::F32(v) => v.len(),
        Values::I64(v) => v.len(),
    };
    if n == 0 || len == 0 || len % n != 0 {
        return Err(BackendError::Runtime(format!(
            "the answer holds {len} values for {n} items (shape {:?})",
            t.shape
        )));
    }
    Ok(())
}

/// Top-1 class per item of an `n`-item answer into `top1` (and the scores, when
/// `scores` is given). Float outputs are scores (argmax, first of equals); an integer
/// output with one value per item is the class itself.
pub fn top1(
    t: &OutputTensor,
    n: usize,
    top1: &mut Vec<i64>,
    scores: Option<&mut Vec<f32>>,
) -> Result<(), BackendError> {
    check_items(t, n)?;
    let len = match &t.values {
        Values::F32(v) => v.len(),
        Values::I64(v) => v.len(),
    };
    let per = len / n;
    match &t.values {
        Values::F32(v) => {
            top1.extend(v.chunks_exact(per).map(argmax));
            if let Some(s) = scores {
                s.extend_from_slice(v);
            }
        }
        Values::I64(v) if per == 1 => top1.extend_from_slice(v),
        Values::I64(v) => top1.extend(v.chunks_exact(per).map(|row| {
            let mut best = 0;
            for (i, x) in row.iter().enumerate() {
                if *x > row[best] {
                    best = i;
                }
            }
            best as i64
        })),
    }
    Ok(())
}

/// Index of the largest value (the first of equals; NaN never wins).
pub fn argmax(row: &[f32]) -> i64 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best as i64
}

/// The server's error text from a non-200 answer (`{"error": "..."}`), else the body.
pub fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        error: String,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) => e.error,
        Err(_) => {
            let s = String::from_utf8_lossy(body);
            let s = s.trim();
            if s.is_empty() {
                "no message".into()
            } else {
                s.chars().take(200).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            model_name: "m".into(),
            model_version: None,
            input: "INPUT0".into(),
            output: "OUTPUT0".into(),
            item_shape: vec![2, 2],
            batched: true,
        }
    }

    #[test]
    fn binary_body_is_json_header_then_little_endian_floats() {
        let data = [1.0f32, -2.5, 3.0, 0.0, 5.0, 6.0, 7.0, 8.0];
        let b = encode_http(&plan(), TensorFormat::Binary, &data, 2);
        let hl = b.header_length.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&b.body[..hl]).unwrap();
        assert_eq!(
            header,
            serde_json::json!({
                "inputs": [{"name": "INPUT0", "shape": [2, 2, 2], "datatype": "FP32",
                            "parameters": {"binary_data_size": 32}}],
                "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}]
            })
        );
        assert_eq!(b.body.len(), hl + 32);
        assert_eq!(&b.body[hl..hl + 4], &1.0f32.to_le_bytes());
        assert_eq!(&b.body[hl + 4..hl + 8], &(-2.5f32).to_le_bytes());
    }

    #[test]
    fn json_body_carries_the_values_and_asks_for_json_outputs() {
        let mut p = plan();
        p.batched = false;
        let b = encode_http(&p, TensorFormat::Json, &[0.5, 1.0, 1.5, 2.0], 1);
        assert!(b.header_length.is_none());
        let v: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
        assert_eq!(v["inputs"][0]["shape"], serde_json::json!([2, 2]));
        assert_eq!(
            v["inputs"][0]["data"],
            serde_json::json!([0.5, 1.0, 1.5, 2.0])
        );
        assert_eq!(v["outputs"][0]["parameters"]["binary_data"], false);
    }

    #[test]
    fn decodes_binary_outputs_after_other_binary_outputs() {
        let header = serde_json::json!({"model_name": "m", "outputs": [
            {"name": "other", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 8}},
            {"name": "OUTPUT0", "datatype": "FP32", "shape": [1, 3], "parameters": {"binary_data_size": 12}}
        ]})
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&7i64.to_le_bytes());
        for v in [0.1f32, 0.7, 0.2] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        let t = decode_http(&body, Some(header.len()), "OUTPUT0").unwrap();
        assert_eq!(t.values, Values::F32(vec![0.1, 0.7, 0.2]));
        let mut classes = Vec::new();
        top1(&t, 1, &mut classes, None).unwrap();
        assert_eq!(classes, [1]);
    }

    #[test]
    fn decodes_json_outputs_and_integer_classes() {
        let body =
            br#"{"outputs":[{"name":"ArgMax","datatype":"INT64","shape":[2],"data":[4,9]}]}"#;
        let t = decode_http(body, None, "ArgMax").unwrap();
        let mut classes = Vec::new();
        top1(&t, 2, &mut classes, None).unwrap();
        assert_eq!(classes, [4, 9]);
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        assert!(decode_http(b"{}", None, "x").is_err());
        assert!(decode_http(b"not json", None, "x").is_err());
        assert!(decode_http(b"{}", Some(99), "x").is_err());
        let h = r#"{"outputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":400}}]}"#;
        assert!(decode_http(h.as_bytes(), Some(h.len()), "x").is_err());
        let t = OutputTensor {
            shape: vec![3],
            values: Values::F32(vec![1.0, 2.0, 3.0]),
        };
        assert!(
            top1(&t, 2, &mut Vec::new(), None).is_err(),
            "3 values for 2 items"
        );
        assert!(raw_values("FP32", &[0u8; 5], "x").is_err());
        assert!(raw_values("BYTES", &[0u8; 4], "x").is_err());
    }

    #[test]
    fn error_text_prefers_the_servers_message() {
        assert_eq!(error_text(br#"{"error":"unknown model"}"#), "unknown model");
        assert_eq!(error_text(b"  "), "no message");
        assert_eq!(error_text(b"oops"), "oops");
    }

    #[test]
    fn model_paths_encode_odd_names() {
        assert_eq!(model_path("resnet50", None), "/v2/models/resnet50");
        assert_eq!(
            model_path("a/b c", Some("2")),
            "/v2/models/a%2Fb%20c/versions/2"
        );
    }
}
