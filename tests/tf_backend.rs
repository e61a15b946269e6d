//! The `tf` backend against the real TensorFlow C API and the project's frozen
//! ResNet-50. Ignored by default (they need `scripts/setup.sh tf`); run with
//! `TENSORFLOW_DIR=... cargo test --test tf_backend -- --ignored`.
//! The model is `$LOADGEN_TF_MODEL`, else `models/resnet50_v1.pb`.
//!
//! Closed-loop throughput is a benchmark, not a test: `scripts/bench_runtime.sh tf`
//! (loadgen against Python's TensorFlow; `loadgen throughput --profile resnet50-tf`
//! with `--threads`, `--intra-threads`, `--inter-threads`, `--batch_size` and
//! `LOADGEN_TF_SESSIONS` measures one configuration).

use std::path::PathBuf;

use loadgen::backend::tf::{SessionMode, TfBackend};
use loadgen::backend::{Backend, BackendConfig, BackendError, Batch, Device, Layout, Prediction};

const NEEDS_TF: &str = "needs TensorFlow: run scripts/test.sh";

fn model_path() -> PathBuf {
    std::env::var_os("LOADGEN_TF_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/resnet50_v1.pb"))
}

fn config() -> BackendConfig {
    BackendConfig {
        model: Some(model_path()),
        workers: 1,
        ..BackendConfig::default()
    }
}

fn load(cfg: &BackendConfig) -> TfBackend {
    match TfBackend::load(cfg) {
        Ok(b) => b,
        Err(e) => panic!("{NEEDS_TF}: {e}"),
    }
}

/// MLPerf-preprocessed (RGB minus means) 224x224x3 images: flat colours, stripes,
/// gradients and checkerboards, so that a calibrated model tells them apart.
fn images(n: usize) -> Vec<f32> {
    const MEANS: [f32; 3] = [123.68, 116.78, 103.94];
    let (h, w) = (224usize, 224usize);
    let mut out = Vec::with_capacity(n * h * w * 3);
    for i in 0..n {
        let c0 = [
            (i * 97 % 256) as f32,
            (i * 57 % 256) as f32,
            (i * 181 % 256) as f32,
        ];
        let c1 = [255.0 - c0[1], c0[2], 255.0 - c0[0]];
        let f = 2.0 + (i % 7) as f32 * 3.0;
        for y in 0..h {
            for x in 0..w {
                let (xf, yf) = (x as f32 / w as f32, y as f32 / h as f32);
                let t = match i % 4 {
                    0 => xf,
                    1 => 0.5 + 0.5 * (std::f32::consts::TAU * f * (xf + yf)).sin(),
                    2 => (((x / (8 + i)) + (y / (8 + i))) % 2) as f32,
                    _ => {
                        let r = ((xf - 0.5).powi(2) + (yf - 0.5).powi(2)).sqrt();
                        (r < 0.1 + 0.03 * (i % 9) as f32) as u8 as f32
                    }
                };
                for c in 0..3 {
                    out.push(c0[c] + t * (c1[c] - c0[c]) - MEANS[c]);
                }
            }
        }
    }
    out
}

fn predict(b: &TfBackend, data: &[f32], n: usize, keep_scores: bool) -> Prediction {
    let mut s = b.session(0).expect("session");
    let mut out = Prediction {
        keep_scores,
        ..Prediction::default()
    };
    s.predict(Batch { data, len: n }, &mut out)
        .expect("predict");
    out
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn reads_the_model_info() {
    let b = load(&config());
    let info = b.model();
    assert_eq!(info.item_shape, vec![224, 224, 3]);
    assert_eq!(info.layout, Layout::Nhwc);
    assert_eq!(info.num_classes, 1001);
    assert_eq!(info.input_name, "input_tensor:0");
    assert_eq!(info.output_name, "ArgMax:0");
    assert_eq!(info.max_batch, None);
    assert_eq!(b.name(), "tensorflow");
    assert!(b.version().starts_with("2."), "version {}", b.version());
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn a_batch_of_three_equals_three_single_runs() {
    let b = load(&config());
    let item = b.model().item_len();
    let data = images(3);
    let batch = predict(&b, &data, 3, true);
    assert_eq!(batch.top1.len(), 3);
    assert_eq!(batch.scores.len(), 3 * 1001);
    for i in 0..3 {
        let one = predict(&b, &data[i * item..(i + 1) * item], 1, true);
        assert_eq!(one.top1, vec![batch.top1[i]], "item {i}");
        let row = &batch.scores[i * 1001..(i + 1) * 1001];
        let diff = row
            .iter()
            .zip(&one.scores)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "item {i}: scores differ by {diff}");
    }
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn scores_are_a_softmax_whose_argmax_is_the_class() {
    let b = load(&config());
    let out = predict(&b, &images(4), 4, true);
    for (i, row) in out.scores.chunks_exact(1001).enumerate() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "row {i} sums to {sum}");
        let best = row
            .iter()
            .enumerate()
            .fold(0, |best, (j, v)| if *v > row[best] { j } else { best });
        assert_eq!(best as i64, out.top1[i]);
    }
    // Without keep_scores nothing is fetched.
    assert!(predict(&b, &images(1), 1, false).scores.is_empty());
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn distinct_inputs_give_several_classes() {
    let b = load(&config());
    let n = 12;
    let out = predict(&b, &images(n), n, false);
    let mut classes = out.top1.clone();
    classes.sort_unstable();
    classes.dedup();
    assert!(
        classes.len() >= 2,
        "all {n} images gave class {:?}",
        out.top1
    );
    assert!(out.top1.iter().all(|c| (0..1001).contains(c)));
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn per_worker_sessions_agree_with_the_shared_one() {
    let mut cfg = config();
    cfg.workers = 2;
    let shared = TfBackend::load_with(&cfg, SessionMode::Shared).expect(NEEDS_TF);
    let own = TfBackend::load_with(&cfg, SessionMode::PerWorker).expect(NEEDS_TF);
    assert_eq!(own.mode(), SessionMode::PerWorker);
    let data = images(2);
    for w in 0..2 {
        let mut a = shared.session(w).unwrap();
        let mut b = own.session(w).unwrap();
        let (mut pa, mut pb) = (Prediction::default(), Prediction::default());
        a.predict(
            Batch {
                data: &data,
                len: 2,
            },
            &mut pa,
        )
        .unwrap();
        b.predict(
            Batch {
                data: &data,
                len: 2,
            },
            &mut pb,
        )
        .unwrap();
        assert_eq!(pa.top1, pb.top1, "worker {w}");
    }
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn named_tensors_are_checked_against_the_graph() {
    let mut cfg = config();
    cfg.inputs = Some("nope:0".into());
    match TfBackend::load(&cfg) {
        Err(BackendError::BadInput(m)) => {
            assert!(m.contains("nope:0") && m.contains("input_tensor:0"), "{m}");
        }
        other => panic!("expected BadInput, got {:?}", other.err()),
    }
    let mut cfg = config();
    cfg.outputs = Some("missing:0".into());
    match TfBackend::load(&cfg) {
        Err(BackendError::BadInput(m)) => assert!(m.contains("missing:0"), "{m}"),
        other => panic!("expected BadInput, got {:?}", other.err()),
    }
    // Explicit names, lists take their first; softmax output gives the same classes.
    let mut cfg = config();
    cfg.inputs = Some("input_tensor:0".into());
    cfg.outputs = Some("softmax_tensor:0,ArgMax:0".into());
    let by_scores = load(&cfg);
    assert_eq!(by_scores.model().output_name, "softmax_tensor:0");
    let data = images(4);
    assert_eq!(
        predict(&by_scores, &data, 4, false).top1,
        predict(&load(&config()), &data, 4, false).top1
    );
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn a_missing_model_is_bad_input() {
    let mut cfg = config();
    cfg.model = Some(PathBuf::from("/nonexistent/resnet50_v1.pb"));
    match TfBackend::load(&cfg) {
        Err(BackendError::BadInput(m)) => {
            assert!(m.contains("/nonexistent/resnet50_v1.pb"), "{m}");
            assert!(
                m.contains("scripts/setup.sh tf") && m.contains("--model"),
                "{m}"
            );
        }
        other => panic!("expected BadInput, got {:?}", other.err()),
    }
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn a_file_that_is_not_a_graph_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("text.pb", &b"this is not a GraphDef, just some text\n"[..]),
        ("empty.pb", &b""[..]),
        ("junk.pb", &[0xffu8, 0xfe, 0x00, 0x12, 0x99, 0x07][..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut cfg = config();
        cfg.model = Some(path);
        match TfBackend::load(&cfg) {
            Err(BackendError::BadInput(m)) => {
                assert!(m.contains(name), "{m}");
                assert!(!m.contains('\n'), "one sentence: {m}");
            }
            other => panic!("{name}: expected BadInput, got {:?}", other.err()),
        }
    }
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn gpu_without_a_gpu_is_device_unavailable() {
    let mut cfg = config();
    cfg.device = Device::Gpu;
    match TfBackend::load(&cfg) {
        Err(BackendError::DeviceUnavailable(m)) => assert!(m.contains("GPU"), "{m}"),
        Ok(_) => eprintln!("this machine has a GPU that TensorFlow sees: nothing to check"),
        Err(e) => panic!("expected DeviceUnavailable, got {e:?}"),
    }
}
