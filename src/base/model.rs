//! What a model is and where it runs: tensor [`Layout`], [`Device`], which backend
//! ([`BackendKind`]) and the model's inputs and outputs ([`ModelInfo`]).

use serde::Serialize;

/// Memory order of an image tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

impl Layout {
    /// Parses `NCHW` / `NHWC` (any case).
    pub fn parse(s: &str) -> Option<Layout> {
        match s.to_ascii_uppercase().as_str() {
            "NCHW" => Some(Layout::Nchw),
            "NHWC" => Some(Layout::Nhwc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }
}

/// CPU or GPU execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    Gpu,
}

/// The arithmetic a run asks for (`--precision`): the model's weights and the
/// runtime's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    /// A QDQ-quantized model (`models/resnet50_v1.int8.onnx`).
    Int8,
    /// The runtime's bfloat16 kernels on the fp32 model.
    Bf16,
}

impl Precision {
    pub fn parse(s: &str) -> Option<Precision> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" => Some(Precision::Fp32),
            "int8" => Some(Precision::Int8),
            "bf16" | "bfloat16" => Some(Precision::Bf16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Which backend to load (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    OnnxRuntime,
    Tf,
    Sim,
    Null,
    /// A remote KServe v2 (Open Inference Protocol) server, e.g. Triton.
    Kserve,
    /// OpenVINO Runtime, in process.
    OpenVino,
}

impl BackendKind {
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s {
            "onnxruntime" | "ort" => Some(BackendKind::OnnxRuntime),
            "tf" | "tensorflow" => Some(BackendKind::Tf),
            "sim" => Some(BackendKind::Sim),
            "null" => Some(BackendKind::Null),
            "kserve" | "triton" => Some(BackendKind::Kserve),
            "openvino" | "ov" => Some(BackendKind::OpenVino),
            _ => None,
        }
    }

    /// The name written to logs and `results.json` (`runtime`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::OnnxRuntime => "onnxruntime",
            BackendKind::Tf => "tensorflow",
            BackendKind::Sim => "sim",
            BackendKind::Null => "null",
            BackendKind::Kserve => "kserve",
            BackendKind::OpenVino => "openvino",
        }
    }

    /// Whether the backend runs a real model on real tensors.
    pub fn needs_model(self) -> bool {
        matches!(
            self,
            BackendKind::OnnxRuntime | BackendKind::Tf | BackendKind::OpenVino
        )
    }

    /// Whether the backend classifies real inputs (so an accuracy pass means something).
    pub fn classifies(self) -> bool {
        self.needs_model() || self == BackendKind::Kserve
    }
}

/// What the model wants and gives, read from the model (flags may override).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Feed name, e.g. `input_tensor:0` (TF) or `gpu_0/data_0` (ONNX).
    pub input_name: String,
    /// Fetch name whose result gives the class, e.g. `ArgMax:0` or `softmax`.
    pub output_name: String,
    /// Shape of one item, without the batch dimension: `[3,224,224]` for NCHW.
    pub item_shape: Vec<usize>,
    pub layout: Layout,
    /// Number of classes the output covers (1001 when class 0 is "background").
    pub num_classes: usize,
    /// Largest batch the model accepts (`None`: any).
    pub max_batch: Option<usize>,
}

impl ModelInfo {
    /// Elements in one item (0 for backends that take no input).
    pub fn item_len(&self) -> usize {
        if self.item_shape.is_empty() {
            0
        } else {
            self.item_shape.iter().product()
        }
    }

    /// Image height and width, from the layout.
    pub fn image_hw(&self) -> Option<(usize, usize)> {
        match (self.layout, self.item_shape.as_slice()) {
            (Layout::Nchw, [_, h, w]) | (Layout::Nhwc, [h, w, _]) => Some((*h, *w)),
            _ => None,
        }
    }

    /// The info of a backend that takes no input (`sim`, `null`).
    pub fn none() -> ModelInfo {
        ModelInfo {
            input_name: String::new(),
            output_name: String::new(),
            item_shape: Vec::new(),
            layout: Layout::Nchw,
            num_classes: 0,
            max_batch: None,
        }
    }
}
