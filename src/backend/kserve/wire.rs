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
    /// The output's datatype and shape as the metadata declares them (`-1`: any
    /// size). Every answer is checked against them ([`check_answer`]): a server whose
    /// answers contradict its own metadata is not measured.
    pub output_datatype: String,
    pub output_shape: Vec<i64>,
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

    /// The output shape an answer of `n` items must have: the metadata's, with a
    /// leading `-1` of a batched model read as `n`.
    pub fn answer_shape(&self, n: usize) -> Vec<i64> {
        let mut s = self.output_shape.clone();
        if let Some(first) = s.first_mut() {
            if self.batched && *first == -1 {
                *first = n as i64;
            }
        }
        s
    }

    /// The most bytes an answer of `n` items may take before it is refused: the
    /// values the metadata allows at [`MAX_VALUE_BYTES`] each (a JSON number's
    /// text; raw values take 8 at most), plus [`ANSWER_SLACK`] for the JSON around
    /// them. Where the metadata leaves an output dimension open, [`MAX_OPEN_ANSWER`].
    /// Without a cap a server that announces 10 GB and sends it slowly fills memory.
    pub fn answer_cap(&self, n: usize) -> usize {
        let shape = self.answer_shape(n);
        if shape.iter().any(|&d| d < 0) {
            return MAX_OPEN_ANSWER;
        }
        shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .and_then(|v| v.checked_mul(MAX_VALUE_BYTES))
            .and_then(|b| b.checked_add(ANSWER_SLACK))
            .map_or(MAX_OPEN_ANSWER, |b| b.min(MAX_OPEN_ANSWER))
    }
}

/// Bytes a value of an answer may take: a JSON number's text (`-1.2345678e-12,`
/// is 15; 32 leaves room for any float's shortest form and spaces).
pub const MAX_VALUE_BYTES: usize = 32;
/// Bytes an answer may add around its values: the JSON header, names, parameters.
pub const ANSWER_SLACK: usize = 64 << 10;
/// The cap of an answer whose size the metadata leaves open, and of every answer.
pub const MAX_OPEN_ANSWER: usize = 64 << 20;
/// The cap of the readiness and metadata answers: a model's metadata lists its
/// tensors, kilobytes even for models with hundreds of them.
pub const MAX_METADATA_ANSWER: usize = 4 << 20;

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
    pub datatype: String,
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
            datatype: out.datatype.clone(),
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

/// Checks an answer of `n` items against the metadata: the datatype it declares,
/// its shape (a batched model's leading `-1` being `n`) and as many values as that
/// shape holds. A server that answers `[n, 10]` for a model declared `[-1, 1000]`,
/// or `[n, 1000]` holding 10 values, is not serving the model it describes.
pub fn check_answer(plan: &Plan, t: &OutputTensor, n: usize) -> Result<(), BackendError> {
    let lie = |what: String| {
        BackendError::Runtime(format!(
            "the answer contradicts the model's metadata: output '{}' {what}",
            plan.output
        ))
    };
    if t.datatype != plan.output_datatype {
        return Err(lie(format!(
            "is {} where the metadata declares {}",
            crate::base::text::quote(&t.datatype),
            plan.output_datatype
        )));
    }
    let want = plan.answer_shape(n);
    let fits = t.shape.len() == want.len()
        && t.shape
            .iter()
            .zip(&want)
            .all(|(&got, &w)| got >= 0 && (w < 0 || got == w));
    if !fits {
        return Err(lie(format!(
            "has shape {:?} for {n} item(s) where the metadata declares {:?}",
            t.shape, plan.output_shape
        )));
    }
    let len = match &t.values {
        Values::F32(v) => v.len(),
        Values::I64(v) => v.len(),
    };
    let declared = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    if declared != Some(len) || len == 0 || !len.is_multiple_of(n.max(1)) {
        return Err(lie(format!(
            "holds {len} values where its shape {:?} holds {}",
            t.shape,
            declared.map_or_else(|| "too many".to_string(), |d| d.to_string())
        )));
    }
    Ok(())
}

/// Top-1 class per item of an `n`-item answer into `top1` (and the scores, when
/// `scores` is given). Float outputs are scores (argmax, first of equals); an integer
/// output with one value per item is the class itself.
pub fn top1(
    plan: &Plan,
    t: &OutputTensor,
    n: usize,
    top1: &mut Vec<i64>,
    scores: Option<&mut Vec<f32>>,
) -> Result<(), BackendError> {
    check_answer(plan, t, n)?;
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
        Ok(e) => crate::base::text::quote(&e.error),
        Err(_) => {
            let s = String::from_utf8_lossy(body);
            let s = s.trim();
            if s.is_empty() {
                "no message".into()
            } else {
                crate::base::text::quote(s)
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
            output_datatype: "FP32".into(),
            output_shape: vec![-1, 3],
        }
    }

    fn out_plan(datatype: &str, shape: &[i64]) -> Plan {
        Plan {
            output_datatype: datatype.into(),
            output_shape: shape.to_vec(),
            ..plan()
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
        top1(&plan(), &t, 1, &mut classes, None).unwrap();
        assert_eq!(classes, [1]);
    }

    #[test]
    fn decodes_json_outputs_and_integer_classes() {
        let body =
            br#"{"outputs":[{"name":"ArgMax","datatype":"INT64","shape":[2],"data":[4,9]}]}"#;
        let t = decode_http(body, None, "ArgMax").unwrap();
        let mut classes = Vec::new();
        top1(&out_plan("INT64", &[-1]), &t, 2, &mut classes, None).unwrap();
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
            datatype: "FP32".into(),
            shape: vec![3],
            values: Values::F32(vec![1.0, 2.0, 3.0]),
        };
        assert!(
            top1(&out_plan("FP32", &[-1]), &t, 2, &mut Vec::new(), None).is_err(),
            "3 values for 2 items"
        );
        assert!(raw_values("FP32", &[0u8; 5], "x").is_err());
        assert!(raw_values("BYTES", &[0u8; 4], "x").is_err());
    }

    #[test]
    fn answers_that_contradict_the_metadata_are_named() {
        let t = |datatype: &str, shape: &[i64], n: usize| OutputTensor {
            datatype: datatype.into(),
            shape: shape.to_vec(),
            values: Values::F32(vec![0.5; n]),
        };
        // (declared datatype, declared shape, answer, items, Ok or a word of the error)
        type Case<'a> = (&'a str, &'a [i64], OutputTensor, usize, Result<(), &'a str>);
        let cases: &[Case] = &[
            ("FP32", &[-1, 3], t("FP32", &[2, 3], 6), 2, Ok(())),
            ("FP32", &[1, 3], t("FP32", &[1, 3], 3), 1, Ok(())),
            ("FP32", &[-1, -1], t("FP32", &[2, 5], 10), 2, Ok(())),
            (
                "FP32",
                &[-1, 1000],
                t("FP32", &[2, 10], 20),
                2,
                Err("shape [2, 10]"),
            ),
            (
                "FP32",
                &[-1, 1000],
                t("FP32", &[2, 1000], 10),
                2,
                Err("holds 10 values"),
            ),
            (
                "FP32",
                &[-1, 3],
                t("FP32", &[3, 3], 9),
                2,
                Err("for 2 item(s)"),
            ),
            ("FP32", &[-1, 3], t("FP32", &[2, 3, 1], 6), 2, Err("shape")),
            ("FP32", &[-1, 3], t("FP32", &[2, -3], 6), 2, Err("shape")),
            ("FP32", &[-1, 3], t("INT64", &[2, 3], 6), 2, Err("is INT64")),
            ("FP32", &[-1, 3], t("FP32", &[0, 3], 0), 2, Err("shape")),
        ];
        for (dt, shape, answer, n, want) in cases {
            let got = check_answer(&out_plan(dt, shape), answer, *n);
            match (want, got) {
                (Ok(()), Ok(())) => {}
                (Err(word), Err(e)) => assert!(e.to_string().contains(word), "{e} lacks {word}"),
                (w, g) => panic!("{dt} {shape:?} {answer:?}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn answer_caps_follow_the_metadata() {
        let p = out_plan("FP32", &[-1, 1000]);
        assert_eq!(p.answer_cap(4), 4000 * MAX_VALUE_BYTES + ANSWER_SLACK);
        assert_eq!(out_plan("FP32", &[-1, -1]).answer_cap(4), MAX_OPEN_ANSWER);
        assert_eq!(
            out_plan("FP32", &[-1, i64::MAX]).answer_cap(4),
            MAX_OPEN_ANSWER,
            "no overflow"
        );
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
