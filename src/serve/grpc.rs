//! KServe v2 over gRPC: the generated `GrpcInferenceService` (the client's own
//! protocol types, src/backend/kserve/proto.rs) answering liveness, readiness,
//! metadata and `ModelInfer` with `raw_input_contents`, the path the client uses.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::backend::kserve::proto;
use crate::backend::kserve::proto::grpc_inference_service_server::GrpcInferenceService;
use crate::backend::kserve::wire;

use super::model::{InferInput, Models, Refusal, ServedModel};

/// The service, over the server's models.
pub struct Grpc(pub Arc<Models>);

impl Grpc {
    fn model(&self, name: &str) -> Result<&Arc<dyn ServedModel>, Status> {
        self.0.find(name).ok_or_else(|| {
            Status::not_found(format!("Request for unknown model: '{name}' is not found"))
        })
    }
}

fn tensors(v: &[wire::TensorMetadata]) -> Vec<proto::model_metadata_response::TensorMetadata> {
    v.iter()
        .map(|t| proto::model_metadata_response::TensorMetadata {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: t.shape.clone(),
        })
        .collect()
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        _: Request<proto::ServerLiveRequest>,
    ) -> Result<Response<proto::ServerLiveResponse>, Status> {
        Ok(Response::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<proto::ServerReadyRequest>,
    ) -> Result<Response<proto::ServerReadyResponse>, Status> {
        Ok(Response::new(proto::ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        r: Request<proto::ModelReadyRequest>,
    ) -> Result<Response<proto::ModelReadyResponse>, Status> {
        let ready = self.0.find(&r.get_ref().name).is_some();
        Ok(Response::new(proto::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<proto::ServerMetadataRequest>,
    ) -> Result<Response<proto::ServerMetadataResponse>, Status> {
        let m = self.0.server_metadata();
        Ok(Response::new(proto::ServerMetadataResponse {
            name: m.name,
            version: m.version,
            extensions: m.extensions,
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<proto::ModelMetadataRequest>,
    ) -> Result<Response<proto::ModelMetadataResponse>, Status> {
        let m = self.model(&r.get_ref().name)?.metadata();
        Ok(Response::new(proto::ModelMetadataResponse {
            name: m.name.clone(),
            versions: m.versions.clone(),
            platform: m.platform.clone(),
            inputs: tensors(&m.inputs),
            outputs: tensors(&m.outputs),
        }))
    }

    async fn model_infer(
        &self,
        r: Request<proto::ModelInferRequest>,
    ) -> Result<Response<proto::ModelInferResponse>, Status> {
        let mut r = r.into_inner();
        let model = self.model(&r.model_name)?;
        let (Some(input), Some(raw)) = (r.inputs.first(), r.raw_input_contents.pop()) else {
            return Err(Status::invalid_argument(
                "expected one input in raw_input_contents",
            ));
        };
        let input = InferInput {
            name: input.name.clone(),
            datatype: input.datatype.clone(),
            shape: input.shape.clone(),
            raw,
        };
        let out = model.infer(input).await.map_err(|e| match e {
            Refusal::BadRequest(m) => Status::invalid_argument(m),
            Refusal::Failed(m) => Status::internal(m),
        })?;
        let meta = model.metadata();
        let (name, datatype) = meta
            .outputs
            .first()
            .map_or((String::new(), String::new()), |t| {
                (t.name.clone(), t.datatype.clone())
            });
        Ok(Response::new(proto::ModelInferResponse {
            model_name: meta.name.clone(),
            model_version: meta.versions.first().cloned().unwrap_or_default(),
            outputs: vec![proto::model_infer_response::InferOutputTensor {
                name,
                datatype,
                shape: out.shape,
                ..Default::default()
            }],
            raw_output_contents: vec![out.raw],
            ..Default::default()
        }))
    }
}
