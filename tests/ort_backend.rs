//! The `onnxruntime` backend against the real library and model. Ignored by default:
//! they need `scripts/setup.sh onnxruntime` (the wheel's library in `.venv` and
//! `models/resnet50_v1.onnx`); `scripts/test.sh` runs them with `--ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

use loadgen::backend::onnxruntime::OrtBackend;
use loadgen::backend::{Backend, BackendConfig, BackendError, Batch, Device, Layout, Prediction};

const NEEDS: &str = "needs ONNX Runtime: run scripts/test.sh";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> PathBuf {
    root().join("models/resnet50_v1.onnx")
}

fn cfg(model: &Path) -> BackendConfig {
    BackendConfig {
        model: Some(model.to_path_buf()),
        workers: 1,
        ..Default::default()
    }
}

fn load(cfg: &BackendConfig) -> Result<OrtBackend, BackendError> {
    OrtBackend::load(cfg)
}

fn bad_input(cfg: &BackendConfig) -> String {
    match load(cfg) {
        Err(BackendError::BadInput(msg)) => {
            eprintln!("BadInput: {msg}");
            msg
        }
        Err(e) => panic!("expected BadInput, got {e:?}"),
        Ok(_) => panic!("expected BadInput, the model loaded"),
    }
}

/// One structured NCHW 3x224x224 item (stripes of a colour, in the range of
/// mean-subtracted RGB), different for each `i`.
fn item(i: usize) -> Vec<f32> {
    let (h, w) = (224usize, 224usize);
    let fx = 1.0 + (i % 5) as f32 * 3.0;
    let fy = (i / 5) as f32 * 2.0;
    let colour = [
        ((i * 37) % 255) as f32,
        ((i * 91 + 40) % 255) as f32,
        ((i * 53 + 200) % 255) as f32,
    ];
    let means = [123.68f32, 116.78, 103.94];
    let mut v = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let t =
                    (2.0 * std::f32::consts::PI * (fx * x as f32 + fy * y as f32) / w as f32).sin();
                let px = if t > 0.0 {
                    colour[c]
                } else {
                    255.0 - colour[c]
                };
                v.push(px - means[c]);
            }
        }
    }
    v
}

fn predict(backend: &OrtBackend, items: &[Vec<f32>], keep_scores: bool) -> Prediction {
    let mut session = backend.session(0).expect("session");
    let data: Vec<f32> = items.concat();
    let mut out = Prediction {
        keep_scores,
        ..Default::default()
    };
    session
        .predict(
            Batch {
                data: &data,
                len: items.len(),
            },
            &mut out,
        )
        .expect("predict");
    out
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn reads_the_model_description() {
    let b = load(&cfg(&model())).expect(NEEDS);
    let info = b.model();
    assert_eq!(info.item_shape, vec![3, 224, 224]);
    assert_eq!(info.layout, Layout::Nchw);
    assert_eq!(info.num_classes, 1000);
    assert_eq!(info.max_batch, None);
    assert_eq!(info.input_name, "gpu_0/data_0");
    assert_eq!(info.output_name, "gpu_0/softmax_1");
    assert_eq!(b.name(), "onnxruntime");
    assert_eq!(b.version(), "1.31.1");
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_batch_gives_what_single_runs_give() {
    let b = load(&cfg(&model())).expect(NEEDS);
    let items: Vec<Vec<f32>> = (0..4).map(|i| item(i * 3 + 1)).collect();
    let batch = predict(&b, &items, true);
    assert_eq!(batch.top1.len(), 4);
    assert_eq!(batch.scores.len(), 4 * 1000);
    let mut session = b.session(1).expect("second session");
    for (i, it) in items.iter().enumerate() {
        let mut one = Prediction {
            keep_scores: true,
            ..Default::default()
        };
        session
            .predict(Batch { data: it, len: 1 }, &mut one)
            .expect("predict one");
        assert_eq!(one.top1, vec![batch.top1[i]], "item {i}");
        let diff = one
            .scores
            .iter()
            .zip(&batch.scores[i * 1000..(i + 1) * 1000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "item {i}: scores differ by {diff}");
    }
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn different_inputs_give_different_classes() {
    let b = load(&cfg(&model())).expect(NEEDS);
    let items: Vec<Vec<f32>> = (0..12).map(item).collect();
    let out = predict(&b, &items, false);
    let mut classes = out.top1.clone();
    classes.sort_unstable();
    classes.dedup();
    eprintln!("top-1 of 12 items: {:?}", out.top1);
    assert!(classes.len() >= 2, "top-1 {:?}", out.top1);
    assert!(out.top1.iter().all(|c| (0..1000).contains(c)));
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_missing_model_says_how_to_make_one() {
    let msg = bad_input(&cfg(Path::new("/nonexistent/resnet50_v1.onnx")));
    assert!(msg.contains("/nonexistent/resnet50_v1.onnx"), "{msg}");
    assert!(
        msg.contains("scripts/setup.sh onnxruntime") && msg.contains("--model"),
        "{msg}"
    );
}

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("models/make_test_models.py"))
        .arg(dir.path())
        .status()
        .expect(NEEDS);
    assert!(status.success(), "make_test_models.py failed");
    dir
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_file_that_is_not_onnx_is_refused() {
    let dir = fixtures();
    let path = dir.path().join("not_onnx.onnx");
    let msg = bad_input(&cfg(&path));
    assert!(msg.contains("is not an ONNX model"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_model_without_an_image_input_is_refused() {
    let dir = fixtures();
    let msg = bad_input(&cfg(&dir.path().join("not_image.onnx")));
    assert!(msg.contains("input 'features' has shape [?,10]"), "{msg}");
    assert!(msg.contains("[N,3,H,W] or [N,H,W,3]"), "{msg}");
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn unknown_tensor_names_list_the_real_ones() {
    let mut c = cfg(&model());
    c.inputs = Some("nope".into());
    let msg = bad_input(&c);
    assert!(
        msg.contains("--inputs 'nope'") && msg.contains("'gpu_0/data_0'"),
        "{msg}"
    );

    let mut c = cfg(&model());
    c.outputs = Some("ArgMax:0".into());
    let msg = bad_input(&c);
    assert!(
        msg.contains("--outputs 'ArgMax:0'") && msg.contains("'gpu_0/softmax_1'"),
        "{msg}"
    );
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn flags_may_name_the_tensors() {
    let mut c = cfg(&model());
    c.inputs = Some("gpu_0/data_0".into());
    c.outputs = Some("gpu_0/softmax_1".into());
    c.data_format = Some(Layout::Nchw);
    let b = load(&c).expect(NEEDS);
    assert_eq!(b.model().output_name, "gpu_0/softmax_1");
    let mut c = cfg(&model());
    c.data_format = Some(Layout::Nhwc);
    let msg = bad_input(&c);
    assert!(msg.contains("--data-format NHWC"), "{msg}");
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn gpu_without_cuda_is_refused() {
    let mut c = cfg(&model());
    c.device = Device::Gpu;
    match load(&c) {
        Err(BackendError::DeviceUnavailable(msg)) => {
            eprintln!("DeviceUnavailable: {msg}");
            assert!(
                msg.contains("--device gpu") && msg.contains("CUDA"),
                "{msg}"
            )
        }
        Err(e) => panic!("expected DeviceUnavailable, got {e:?}"),
        Ok(_) => panic!("--device gpu loaded without a GPU"),
    }
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn threads_default_to_the_cores_shared_by_the_workers() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut c = cfg(&model());
    c.workers = 2;
    assert_eq!(load(&c).expect(NEEDS).intra_threads(), (cores / 2).max(1));
    c.intra_threads = Some(3);
    assert_eq!(load(&c).expect(NEEDS).intra_threads(), 3);
}

/// The library is loaded once per process, so a wrong `ORT_DYLIB_PATH` is tried in a
/// child process: this same test binary, running only this test.
#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_missing_ort_dylib_path_is_library_not_found() {
    const CHILD: &str = "LOADGEN_ORT_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        match load(&cfg(&model())) {
            Err(BackendError::LibraryNotFound(msg)) => {
                eprintln!("LibraryNotFound: {msg}");
                assert!(
                    msg.contains("ORT_DYLIB_PATH")
                        && msg.contains("/nonexistent/libonnxruntime.so.1.31.1"),
                    "{msg}"
                );
                return;
            }
            Err(e) => panic!("expected LibraryNotFound, got {e:?}"),
            Ok(_) => panic!("loaded although ORT_DYLIB_PATH names no file"),
        }
    }
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "a_missing_ort_dylib_path_is_library_not_found",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
