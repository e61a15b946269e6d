//! `onnxruntime`: ONNX Runtime through `ort` (load-dynamic). Placeholder until issue 3.

use super::{Backend, BackendConfig, BackendError, ModelInfo, Session};

pub struct OrtBackend {
    info: ModelInfo,
}

impl OrtBackend {
    pub fn load(_cfg: &BackendConfig) -> Result<OrtBackend, BackendError> {
        Err(BackendError::BadInput(
            "the onnxruntime backend is not built yet".into(),
        ))
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }
    fn version(&self) -> String {
        String::new()
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn session(&self, _worker: usize) -> Result<Box<dyn Session>, BackendError> {
        Err(BackendError::BadInput("not built".into()))
    }
}
