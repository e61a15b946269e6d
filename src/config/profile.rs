//! Model profiles of the old tool: the tensor names, layout, preprocessing and label
//! offset that go with a published model.

use crate::backend::{BackendKind, Layout};
use crate::data::preprocess::Preprocess;

#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub backend: BackendKind,
    pub inputs: Option<&'static str>,
    pub outputs: Option<&'static str>,
    pub data_format: Layout,
    pub preprocess: Preprocess,
    /// Subtracted from the model's class index to get the dataset label
    /// (1 for 1001-class models whose class 0 is "background").
    pub label_offset: i64,
    /// Default model file under `models/`.
    pub model_file: &'static str,
}

pub const PROFILES: &[Profile] = &[
    Profile {
        name: "resnet50-tf",
        backend: BackendKind::Tf,
        inputs: Some("input_tensor:0"),
        outputs: Some("ArgMax:0"),
        data_format: Layout::Nhwc,
        preprocess: Preprocess::Resnet50,
        label_offset: 1,
        model_file: "resnet50_v1.pb",
    },
    Profile {
        name: "resnet50-onnxruntime",
        backend: BackendKind::OnnxRuntime,
        inputs: None,
        outputs: None,
        data_format: Layout::Nchw,
        preprocess: Preprocess::Resnet50,
        label_offset: 0,
        model_file: "resnet50_v1.onnx",
    },
    Profile {
        name: "resnet50-openvino",
        backend: BackendKind::OpenVino,
        inputs: None,
        outputs: None,
        data_format: Layout::Nchw,
        preprocess: Preprocess::Resnet50,
        label_offset: 0,
        model_file: "resnet50_v1.onnx",
    },
    Profile {
        name: "mobilenet-tf",
        backend: BackendKind::Tf,
        inputs: Some("input:0"),
        outputs: Some("MobilenetV1/Predictions/Reshape_1:0"),
        data_format: Layout::Nhwc,
        preprocess: Preprocess::Mobilenet,
        label_offset: 1,
        model_file: "mobilenet_v1_1.0_224_frozen.pb",
    },
    Profile {
        name: "mobilenet-onnx",
        backend: BackendKind::OnnxRuntime,
        inputs: Some("input:0"),
        outputs: Some("MobilenetV1/Predictions/Reshape_1:0"),
        data_format: Layout::Nhwc,
        preprocess: Preprocess::Mobilenet,
        label_offset: 1,
        model_file: "mobilenet_v1_1.0_224.onnx",
    },
];

pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// The profile a backend uses when `--profile` is not given.
pub fn default_for(backend: BackendKind) -> Option<&'static Profile> {
    match backend {
        BackendKind::Tf => find("resnet50-tf"),
        BackendKind::OnnxRuntime => find("resnet50-onnxruntime"),
        BackendKind::OpenVino => find("resnet50-openvino"),
        BackendKind::Sim | BackendKind::Null | BackendKind::Kserve => None,
    }
}

pub fn names() -> String {
    PROFILES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}
