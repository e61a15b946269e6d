//! What the protocol code serves: a [`ServedModel`] has metadata and answers checked
//! inference requests. The HTTP and gRPC front ends only decode and encode; the model
//! decides what an answer is, so that the product's backend model and the tests'
//! trivial ones (testkit) share one protocol server.

use std::sync::Arc;

use bytes::Bytes;

use crate::backend::kserve::wire;
use crate::base::sut::{Backend, BackendError};

use super::queue::Queue;

/// One inference request's single input tensor, as it came off the wire.
#[derive(Clone, Debug)]
pub struct InferInput {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    /// The values' raw little-endian bytes.
    pub raw: Bytes,
}

/// The answer: the output tensor's shape and raw little-endian bytes. Its name and
/// datatype are the metadata's first output's.
#[derive(Clone, Debug)]
pub struct InferOutput {
    pub shape: Vec<i64>,
    pub raw: Bytes,
}

/// Why a request got no answer: the client's fault (HTTP 400, gRPC INVALID_ARGUMENT)
/// or the model's (HTTP 500, gRPC INTERNAL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    BadRequest(String),
    Failed(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::BadRequest(m) | Refusal::Failed(m) => m,
        }
    }
}

/// A model the server offers.
#[tonic::async_trait]
pub trait ServedModel: Send + Sync {
    /// Name, tensors, datatypes and shapes (a leading -1 is the batch).
    fn metadata(&self) -> &wire::ModelMetadata;
    /// Checks and answers one request.
    async fn infer(&self, input: InferInput) -> Result<InferOutput, Refusal>;
}

/// Checks a request's input against the model's first input as a real server would
/// (name, datatype, shape, byte count); the items it holds (its batch dimension).
/// The sentences are Triton's, so that a client's error handling sees what it would.
pub fn check_input(meta: &wire::ModelMetadata, input: &InferInput) -> Result<usize, String> {
    let Some(want) = meta.inputs.first() else {
        return Err(format!("model '{}' takes no input", meta.name));
    };
    let name = &input.name;
    if *name != want.name {
        return Err(format!(
            "unexpected inference input '{name}' for model '{}'",
            meta.name
        ));
    }
    if input.datatype != want.datatype {
        return Err(format!(
            "input '{name}' expects {}, got {}",
            want.datatype, input.datatype
        ));
    }
    let shape = &input.shape;
    let fits = shape.len() == want.shape.len()
        && shape
            .iter()
            .zip(&want.shape)
            .all(|(&got, &w)| got >= 1 && (w < 0 || got == w));
    if !fits {
        let dims: Vec<String> = want.shape.iter().map(i64::to_string).collect();
        return Err(format!(
            "unexpected shape for input '{name}' for model '{}': expected [{}], got {shape:?}",
            meta.name,
            dims.join(",")
        ));
    }
    let values = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    let width = match input.datatype.as_str() {
        "FP64" | "INT64" | "UINT64" => 8,
        "FP16" | "BF16" | "INT16" | "UINT16" => 2,
        "INT8" | "UINT8" | "BOOL" => 1,
        _ => 4,
    };
    match values.and_then(|v| v.checked_mul(width)) {
        Some(bytes) if bytes == input.raw.len() => {}
        want => {
            return Err(format!(
                "input '{name}' has {} bytes, expected {}",
                input.raw.len(),
                want.map_or_else(|| "more than memory holds".into(), |b| b.to_string())
            ))
        }
    }
    Ok(shape.first().map_or(1, |&n| n.max(1) as usize))
}

/// The models a server offers, and what it says of itself.
pub struct Models {
    server: wire::ServerMetadata,
    models: Vec<Arc<dyn ServedModel>>,
}

impl Models {
    /// `name` is the server's name in its metadata.
    pub fn new(name: &str, models: Vec<Arc<dyn ServedModel>>) -> Models {
        Models {
            server: wire::ServerMetadata {
                name: name.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: vec!["binary_tensor_data".into()],
            },
            models,
        }
    }

    pub fn find(&self, name: &str) -> Option<&Arc<dyn ServedModel>> {
        self.models.iter().find(|m| m.metadata().name == name)
    }

    pub fn server_metadata(&self) -> wire::ServerMetadata {
        self.server.clone()
    }
}

/// One FP32 tensor's metadata.
fn fp32(name: &str, shape: Vec<i64>) -> wire::TensorMetadata {
    wire::TensorMetadata {
        name: name.into(),
        datatype: "FP32".into(),
        shape,
    }
}

/// A backend served through a [`Queue`]: input `INPUT0` FP32 `[-1, item_shape]`,
/// output `OUTPUT0` FP32 `[-1, 1]`, each item's top-1 class as a number (what `sim`
/// and `null` predict; a client reading it as scores finds the same class).
pub struct BackendModel {
    meta: wire::ModelMetadata,
    queue: Queue,
}

impl BackendModel {
    /// Opens `threads` sessions of `backend`, one per worker of the queue.
    pub fn new(
        backend: Arc<dyn Backend>,
        item_shape: &[i64],
        threads: usize,
    ) -> Result<BackendModel, BackendError> {
        let mut input = vec![-1];
        input.extend_from_slice(item_shape);
        let meta = wire::ModelMetadata {
            name: backend.name().into(),
            versions: vec!["1".into()],
            platform: format!("loadgen_{}", backend.name()),
            inputs: vec![fp32("INPUT0", input)],
            outputs: vec![fp32("OUTPUT0", vec![-1, 1])],
        };
        let queue = Queue::start(backend.as_ref(), threads)?;
        Ok(BackendModel { meta, queue })
    }
}

#[tonic::async_trait]
impl ServedModel for BackendModel {
    fn metadata(&self) -> &wire::ModelMetadata {
        &self.meta
    }

    async fn infer(&self, input: InferInput) -> Result<InferOutput, Refusal> {
        let items = check_input(&self.meta, &input).map_err(Refusal::BadRequest)?;
        let top1 = self
            .queue
            .run(input.raw, items)
            .await
            .map_err(|e| Refusal::Failed(e.to_string()))?;
        let classes: Vec<f32> = top1.iter().map(|&c| c as f32).collect();
        Ok(InferOutput {
            shape: vec![items as i64, 1],
            raw: wire::f32_bytes(&classes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> wire::ModelMetadata {
        wire::ModelMetadata {
            name: "m".into(),
            inputs: vec![fp32("INPUT0", vec![-1, 2, 3])],
            outputs: vec![fp32("OUTPUT0", vec![-1, 1])],
            ..Default::default()
        }
    }

    fn input(name: &str, datatype: &str, shape: &[i64], bytes: usize) -> InferInput {
        InferInput {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            raw: Bytes::from(vec![0u8; bytes]),
        }
    }

    #[test]
    fn requests_are_checked_as_a_server_would() {
        let m = meta();
        assert_eq!(
            check_input(&m, &input("INPUT0", "FP32", &[4, 2, 3], 96)),
            Ok(4)
        );
        let e = check_input(&m, &input("x", "FP32", &[1, 2, 3], 24)).unwrap_err();
        assert_eq!(e, "unexpected inference input 'x' for model 'm'");
        let e = check_input(&m, &input("INPUT0", "INT64", &[1, 2, 3], 48)).unwrap_err();
        assert_eq!(e, "input 'INPUT0' expects FP32, got INT64");
        for bad in [&[1, 3, 2][..], &[0, 2, 3], &[2, 3], &[1, 2, 3, 1]] {
            let e = check_input(&m, &input("INPUT0", "FP32", bad, 24)).unwrap_err();
            assert!(e.contains("expected [-1,2,3]"), "{e}");
        }
        let e = check_input(&m, &input("INPUT0", "FP32", &[1, 2, 3], 20)).unwrap_err();
        assert_eq!(e, "input 'INPUT0' has 20 bytes, expected 24");
    }
}
