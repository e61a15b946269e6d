//! `null`: answers at once. Measures the generator's own ceiling.

use crate::base::model::ModelInfo;
use crate::base::sut::{Backend, BackendError, Batch, Prediction, Session};

pub struct NullBackend {
    info: ModelInfo,
}

impl NullBackend {
    pub fn new() -> NullBackend {
        NullBackend {
            info: ModelInfo::none(),
        }
    }
}

impl Default for NullBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for NullBackend {
    fn name(&self) -> &'static str {
        "null"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn session(&self, _worker: usize) -> Result<Box<dyn Session>, BackendError> {
        Ok(Box::new(NullSession))
    }
}

struct NullSession;

impl Session for NullSession {
    #[inline]
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
        out.top1.extend(std::iter::repeat_n(0, batch.len));
        Ok(())
    }
}
