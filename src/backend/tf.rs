//! `tf`: TensorFlow through `tensorflow` (runtime linking). Placeholder until issue 4.

use super::{Backend, BackendConfig, BackendError, ModelInfo, Session};

pub struct TfBackend {
    info: ModelInfo,
}

impl TfBackend {
    pub fn load(_cfg: &BackendConfig) -> Result<TfBackend, BackendError> {
        Err(BackendError::BadInput(
            "the tf backend is not built yet".into(),
        ))
    }
}

impl Backend for TfBackend {
    fn name(&self) -> &'static str {
        "tensorflow"
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
