//! Backends: the system under test. Each implements the traits of [`crate::base::sut`]
//! ([`Backend`], [`Session`], [`AsyncSession`]); [`load`] picks one by kind. Nothing
//! here measures time: the worker pool does. Backends import only `base`.

pub mod config;
pub mod kserve;
pub mod null;
pub mod onnxruntime;
pub mod openvino;
mod openvino_async;
mod ort_profile;
mod ov_capi;
pub mod sim;
pub mod tf;
mod tf_capi;
mod tf_profile;

use std::sync::Arc;

pub use crate::base::model::{BackendKind, Device, Layout, ModelInfo, Precision};
pub use crate::base::sut::{
    AsyncSession, Backend, BackendError, Batch, Completion, Prediction, Session,
};
pub use config::BackendConfig;

/// Loads the backend named by `kind`.
pub fn load(kind: BackendKind, cfg: &BackendConfig) -> Result<Arc<dyn Backend>, BackendError> {
    let profiles = matches!(
        kind,
        BackendKind::OnnxRuntime | BackendKind::Tf | BackendKind::OpenVino
    );
    if cfg.op_profile && !profiles {
        return Err(BackendError::BadInput(format!(
            "--op-profile reads a runtime's own profiler, which --backend {} has not: use it with \
             openvino, onnxruntime or tf",
            kind.name()
        )));
    }
    Ok(match kind {
        BackendKind::Null => Arc::new(null::NullBackend::new()),
        BackendKind::Sim => Arc::new(sim::SimBackend::new(cfg)?),
        BackendKind::OnnxRuntime => Arc::new(onnxruntime::OrtBackend::load(cfg)?),
        BackendKind::Tf => Arc::new(tf::TfBackend::load(cfg)?),
        BackendKind::Kserve => Arc::new(kserve::KserveBackend::connect(cfg)?),
        BackendKind::OpenVino => Arc::new(openvino::OvBackend::load(cfg)?),
    })
}
