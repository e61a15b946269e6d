//! Backends: the system under test. Each implements the traits of [`crate::base::sut`]
//! ([`Backend`], [`Session`], [`AsyncSession`]); [`load`] picks one by kind. Nothing
//! here measures time: the worker pool does. Backends import only `base`.

pub mod config;
pub mod kserve;
pub mod null;
pub mod onnxruntime;
pub mod openvino;
mod ov_capi;
pub mod sim;
pub mod tf;
mod tf_capi;

use std::sync::Arc;

pub use crate::base::model::{BackendKind, Device, Layout, ModelInfo};
pub use crate::base::sut::{
    AsyncSession, Backend, BackendError, Batch, Completion, Prediction, Session,
};
pub use config::BackendConfig;

/// Loads the backend named by `kind`.
pub fn load(kind: BackendKind, cfg: &BackendConfig) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match kind {
        BackendKind::Null => Arc::new(null::NullBackend::new()),
        BackendKind::Sim => Arc::new(sim::SimBackend::new(cfg)?),
        BackendKind::OnnxRuntime => Arc::new(onnxruntime::OrtBackend::load(cfg)?),
        BackendKind::Tf => Arc::new(tf::TfBackend::load(cfg)?),
        BackendKind::Kserve => Arc::new(kserve::KserveBackend::connect(cfg)?),
        BackendKind::OpenVino => Arc::new(openvino::OvBackend::load(cfg)?),
    })
}
