//! The `loadgen` binary with real runtimes and real images: bad input gets one
//! sentence and exit code 2. Tests marked `#[ignore]` need `scripts/setup.sh`
//! (ONNX Runtime in `.venv`, `models/resnet50_v1.onnx`); `scripts/test.sh` runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const NEEDS: &str = "needs ONNX Runtime: run scripts/test.sh";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loadgen(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    c.args(args).current_dir(root());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn expect_exit_2(o: &Output, words: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for w in words {
        assert!(err.contains(w), "missing '{w}' in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("loadgen: "),
        "the error is the last line: {err}"
    );
}

/// results.json against the committed schema.
fn schema_check(doc: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/results.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errs: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:?}");
}

/// A generated ImageNet-layout set (`scripts/make_dataset.py`), with a truncated JPEG
/// when `corrupt`.
fn make_set(dir: &Path, count: usize, corrupt: bool) -> Option<String> {
    let py = root().join(".venv/bin/python");
    let mut c = Command::new(py);
    c.arg(root().join("scripts/make_dataset.py"))
        .arg("--out")
        .arg(dir)
        .args(["--count", &count.to_string()]);
    if corrupt {
        c.arg("--corrupt");
    }
    let o = c
        .output()
        .expect("python from .venv (run scripts/setup.sh onnxruntime)");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    // The third line of val_map.txt is the corrupt image.
    corrupt.then(|| {
        let list = std::fs::read_to_string(dir.join("val_map.txt")).unwrap();
        let _ = text;
        list.lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    })
}

/// A file that exists, so that a missing library (not a missing model) is what stops
/// the run, on a fresh clone without models too.
fn some_model_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b"placeholder").unwrap();
    p
}

#[test]
fn a_missing_onnx_runtime_library_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let model = some_model_file(dir.path(), "m.onnx");
    let o = loadgen(&[
        "throughput",
        "--backend",
        "onnxruntime",
        "--time",
        "1",
        "--model",
    ])
    .arg(&model)
    .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")
    .output()
    .unwrap();
    expect_exit_2(&o, &["/nonexistent/libonnxruntime.so.1.31.1"]);
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_corrupt_jpeg_is_warned_about_counted_and_skipped() {
    let _ = NEEDS;
    let dir = tempfile::tempdir().unwrap();
    let bad = make_set(dir.path(), 6, true).unwrap();
    let o = loadgen(&[
        "accuracy",
        "--backend",
        "onnxruntime",
        "--json",
        "--dataset-path",
    ])
    .arg(dir.path())
    .output()
    .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&bad), "the warning names {bad}: {err}");
    // With --json, stdout is one JSON document (issue 42) and the line is on stderr.
    let out = String::from_utf8_lossy(&o.stdout);
    let block: Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(block["skipped_items"], 1);
    assert_eq!(
        block["total_items"], 6,
        "6 good images besides the corrupt one: {block}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("check_accuracy accuracy=")),
        "{err}"
    );
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_val_map_line_without_a_label_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    make_set(dir.path(), 3, false);
    let list = dir.path().join("val_map.txt");
    let text = std::fs::read_to_string(&list).unwrap();
    let first = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&list, format!("{text}{first}\n")).unwrap();
    let o = loadgen(&["accuracy", "--backend", "onnxruntime", "--dataset-path"])
        .arg(dir.path())
        .output()
        .unwrap();
    expect_exit_2(&o, &["val_map.txt", "line 4"]);
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn a_missing_model_and_a_non_onnx_file_get_one_sentence() {
    let o = loadgen(&[
        "throughput",
        "--backend",
        "onnxruntime",
        "--model",
        "/nonexistent/m.onnx",
    ])
    .output()
    .unwrap();
    expect_exit_2(&o, &["/nonexistent/m.onnx"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.onnx");
    std::fs::write(&f, "this is not a model").unwrap();
    let o = loadgen(&["throughput", "--backend", "onnxruntime", "--model"])
        .arg(&f)
        .output()
        .unwrap();
    expect_exit_2(&o, &["m.onnx"]);
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn run_on_onnx_runtime_writes_a_valid_results_file_with_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    make_set(&dir.path().join("data"), 8, false);
    let out = dir.path().join("results.json");
    let o = loadgen(&[
        "run",
        "--profile",
        "resnet50-onnxruntime",
        "--time",
        "1",
        "--max-latency",
        "0.5",
        "--distributions",
        "linear",
        "--warmup",
        "1",
        "--min-queries",
        "10",
        "--count",
        "8",
        "--quiet",
        "--dataset-path",
    ])
    .arg(dir.path().join("data"))
    .arg("--output")
    .arg(&out)
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", stderr(&o));
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("check_accuracy accuracy="),
        "{stdout}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["runtime"], "onnxruntime");
    assert_eq!(doc["version"], "1.31.1");
    assert_eq!(doc["check_accuracy"]["total_items"], 8);
    let q = doc["final_results"]["linear"]["0.5"].as_f64().unwrap();
    assert!(
        q > 0.0,
        "ResNet-50 at ~40 ms serves something within 0.5 s: {stdout}"
    );
    // No configuration was pinned: every candidate was calibrated on the real
    // runtime, and the answer names the one it was measured on. A batch candidate
    // may be left out after its probe where a full batch takes over 1.5 × the target
    // (on this VM with a busy core: 874 ms for 2x1x0x4 against 750 ms); the error
    // says so, and the batch-1 candidates are calibrated in full.
    let configs = doc["configurations"].as_array().expect("a tuned run");
    assert!(configs.len() >= 2, "{configs:?}");
    for c in configs {
        let cap = c["calibration"]["capacity"].as_f64().unwrap_or(0.0);
        let left_out = c["batch_size"].as_u64() > Some(1)
            && c["error"]
                .as_str()
                .is_some_and(|e| e.contains("it cannot meet any target"));
        assert!(
            cap > 0.0 || left_out,
            "every candidate served something: {c}"
        );
    }
    assert!(
        configs
            .iter()
            .filter(|c| c["batch_size"].as_u64() == Some(1))
            .count()
            >= 2,
        "{configs:?}"
    );
    let chosen = &doc["results"]["linear"]["0.5"]["config"]["name"];
    assert!(
        configs.iter().any(|c| &c["name"] == chosen),
        "{chosen} is one of the candidates"
    );
    schema_check(&doc);
}

#[test]
fn a_missing_tensorflow_library_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let model = some_model_file(dir.path(), "m.pb");
    let o = loadgen(&["throughput", "--backend", "tf", "--time", "1", "--model"])
        .arg(&model)
        .env("TENSORFLOW_DIR", "/nonexistent/tf-lib")
        .output()
        .unwrap();
    expect_exit_2(&o, &["/nonexistent/tf-lib", "scripts/setup.sh tf"]);
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn an_unknown_tf_input_names_the_graphs_placeholders() {
    let o = loadgen(&[
        "throughput",
        "--profile",
        "resnet50-tf",
        "--inputs",
        "nope:0",
        "--time",
        "1",
        "--quiet",
    ])
    .output()
    .unwrap();
    expect_exit_2(&o, &["nope:0", "input_tensor:0"]);
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn a_tuned_tf_run_loads_tensorflow_once_per_thread_setting() {
    // TF sizes its intra-op pool once per process, so candidates with different
    // threads are calibrated and searched in `loadgen run`s of their own, and those
    // with the same threads (2x1 and its batch) share one; this run merges them into
    // one results file and prints one FINAL_RESULT.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let o = loadgen(&[
        "run",
        "--profile",
        "resnet50-tf",
        "--configs",
        "1x2,2x1,2x1x0x2",
        "--time",
        "1",
        // What is checked is the tuning's processes, not the search: a short one
        // (84 s of this test's were the search's default 32 s budget and the
        // calibrations, on a busy machine).
        "--search-time",
        "8",
        "--max-latency",
        "1.0",
        "--distributions",
        "linear",
        "--warmup",
        "1",
        "--min-queries",
        "10",
        "--count",
        "4",
    ])
    .arg("--output")
    .arg(&out)
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let err = stderr(&o);
    assert!(o.status.success(), "{stdout}\n{err}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("===FINAL_RESULT"))
            .count(),
        1,
        "{stdout}"
    );
    // Each process that loads the model makes its synthetic inputs once and says so
    // (this run is not --quiet): two thread settings, two processes, whichever
    // candidate wins the search.
    assert_eq!(err.matches("synthetic inputs of shape").count(), 2, "{err}");
    assert!(!stdout.contains("LOADGEN_CHILD"), "{stdout}");
    // The note names the configuration searched, in one of two forms. Which one
    // depends on the machine's load: run beside the other runtime tests with a 0.5 s
    // target, this run once succeeded with every candidate pruned (their lone queries
    // or full batches slower than that under the load), the only other note `choose`
    // writes. The target is 1 s so that `2x1x0x2` (a full batch and the wait: ~0.34 s
    // at 17.7 qps here) is calibrated in full unless its capacity falls below 4 qps:
    // past 1.5 × the loosest target it would be left out after its probe.
    assert!(
        err.contains("loadgen: linear 1.0: configuration ")
            || err.contains(
                "loadgen: linear 1.0: no configuration answers a lone query within the target; searching "
            ),
        "{err}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["runtime"], "tensorflow");
    let configs = doc["configurations"].as_array().unwrap();
    let caps: Vec<f64> = configs
        .iter()
        .map(|c| c["calibration"]["capacity"].as_f64().unwrap_or(0.0))
        .collect();
    assert_eq!(caps.len(), 3, "{configs:?}");
    assert!(caps.iter().all(|&c| c > 0.0), "{configs:?}");
    // The winner's search ran in the process with its threads: that child's
    // settings (its first candidate's) head the merged file and say so.
    let chosen = &doc["results"]["linear"]["1.0"]["config"];
    assert_eq!(chosen["workers"], doc["settings"]["threads"], "{chosen}");
    assert_eq!(
        chosen["intra_threads"], doc["settings"]["intra_threads"],
        "{chosen}"
    );
    assert!(doc["final_results"]["linear"]["1.0"].as_f64().unwrap() > 0.0);
    // No scratch files are left beside the results: results.json and its report.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["report.html", "results.json"]);
    schema_check(&doc);
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn a_tuned_tf_run_with_a_wrong_input_says_so_once_and_exits_2() {
    let o = loadgen(&[
        "run",
        "--profile",
        "resnet50-tf",
        "--inputs",
        "nope:0",
        "--time",
        "1",
    ])
    .output()
    .unwrap();
    expect_exit_2(&o, &["nope:0", "input_tensor:0"]);
    let err = stderr(&o);
    assert_eq!(err.matches("nope:0").count(), 1, "{err}");
}

/// `loadgen latency` on the real ONNX Runtime: one query at a time, every query counted.
#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn latency_on_onnx_runtime_counts_every_query() {
    let _ = NEEDS;
    let o = loadgen(&[
        "latency",
        "--backend",
        "onnxruntime",
        "--queries",
        "12",
        "--warmup",
        "1",
        "--json",
    ])
    .output()
    .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let doc: Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(doc["count"], 12, "{doc}");
    // A ResNet-50 call takes milliseconds at least, and the figures are ordered.
    let f = |k: &str| doc[k].as_f64().unwrap();
    assert!(
        f("min") > 0.001 && f("min") <= f("median") && f("p99") <= f("max"),
        "{doc}"
    );
    assert_eq!(
        doc["p90_early_stopping"]["queries_needed"], 44,
        "12 queries give none"
    );
}

const NEEDS_OV: &str = "needs OpenVINO: run scripts/setup.sh openvino (scripts/test.sh does)";

/// The int64 values of a `.npy` file `--dump` wrote (`top1.npy`): after the header.
fn npy_i64(path: &Path) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    assert!(header.contains("<i8"), "{header}");
    bytes[10 + header_len..]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Issue 43: OpenVINO reads the project's ONNX model, and the same model saved as
/// OpenVINO IR (`.xml` + `.bin`, by the wheel's `openvino.save_model`, fp32 weights),
/// and classifies the generated set as ONNX Runtime does (the same model and
/// preprocessing): top-1 equal on at least 99 % of the images (here all 24).
#[test]
#[ignore = "needs OpenVINO: run scripts/setup.sh openvino (scripts/test.sh does)"]
fn openvino_classifies_as_onnx_runtime_does() {
    let _ = (NEEDS, NEEDS_OV);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_set(&data, 24, false);
    let ir = dir.path().join("resnet50.xml");
    let o = Command::new(root().join(".venv/bin/python"))
        .args([
            "-c",
            "import sys, openvino as ov; ov.save_model(ov.Core().read_model(sys.argv[1]), sys.argv[2], compress_to_fp16=False)",
        ])
        .arg(root().join("models/resnet50_v1.onnx"))
        .arg(&ir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("resnet50.bin").is_file());
    let mut top1 = Vec::new();
    for (backend, model) in [
        ("onnxruntime", None),
        ("openvino", None),
        ("openvino", Some(&ir)),
    ] {
        let dump = dir.path().join(format!("{backend}-{}", top1.len()));
        let mut c = loadgen(&[
            "accuracy",
            "--backend",
            backend,
            "--batch_size",
            "4",
            "--quiet",
        ]);
        if let Some(m) = model {
            c.arg("--model").arg(m);
        }
        let o = c
            .arg("--dataset-path")
            .arg(&data)
            .arg("--dump")
            .arg(&dump)
            .output()
            .unwrap();
        assert!(o.status.success(), "{backend} {model:?}: {}", stderr(&o));
        top1.push(npy_i64(&dump.join("top1.npy")));
    }
    assert_eq!(top1[0].len(), 24);
    for other in &top1[1..] {
        let same = top1[0].iter().zip(other).filter(|(a, b)| a == b).count();
        assert!(same * 100 >= 99 * 24, "{same} of 24 equal: {top1:?}");
    }
}

/// `loadgen latency` and `throughput` on OpenVINO; results.json names its version.
#[test]
#[ignore = "needs OpenVINO: run scripts/setup.sh openvino (scripts/test.sh does)"]
fn openvino_measures_latency_throughput_and_a_run() {
    let o = loadgen(&[
        "latency",
        "--backend",
        "ov",
        "--queries",
        "10",
        "--warmup",
        "1",
        "--json",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(doc["count"], 10, "{doc}");
    assert!(doc["min"].as_f64().unwrap() > 0.001, "{doc}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let o = loadgen(&[
        "run",
        "--backend",
        "openvino",
        "--time",
        "1",
        "--max-latency",
        "0.5",
        "--distributions",
        "linear",
        "--warmup",
        "1",
        "--min-queries",
        "10",
        "--count",
        "8",
        // Tuned over two OpenVINO configurations: streams x threads per stream.
        "--configs",
        "2x1,1x2",
        "--quiet",
        "--output",
    ])
    .arg(&out)
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", stderr(&o));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["runtime"], "openvino");
    let configs = doc["configurations"].as_array().expect("tuned");
    assert_eq!(configs.len(), 2, "{configs:?}");
    assert!(
        configs
            .iter()
            .all(|c| c["calibration"]["capacity"].as_f64() > Some(0.0)),
        "{configs:?}"
    );
    assert!(doc["runtime_info"]["compiled_model"]["NUM_STREAMS"].is_string());
    assert!(
        doc["version"].as_str().unwrap().starts_with("2026.4.1"),
        "{}",
        doc["version"]
    );
    assert!(
        doc["final_results"]["linear"]["0.5"].as_f64().unwrap() > 0.0,
        "{stdout}"
    );
    schema_check(&doc);
}

/// `--requests` (issue 43): one worker keeps several OpenVINO infer requests in flight
/// through the asynchronous API, one stream each. A closed loop keeps them all busy
/// (the compiled model reports the streams); an open-loop step far above capacity is
/// stopped early as a certain failure, which cancels the requests still running, and
/// the program still ends cleanly; with `--op-profile` the counters of the requests the
/// reaper collects add up like the synchronous ones.
#[test]
#[ignore = "needs OpenVINO: run scripts/setup.sh openvino (scripts/test.sh does)"]
fn openvino_async_requests_serve_closed_and_open_loops() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("throughput.json");
    let args = [
        "throughput",
        "--backend",
        "openvino",
        "--threads",
        "1",
        "--requests",
        "2",
        "--time",
        "2",
        "--warmup",
        "0.5",
        "--op-profile",
        "--json",
        "--quiet",
        "--output",
        out.to_str().unwrap(),
    ];
    let doc = check_op_profile(&args, dir.path());
    assert!(doc["count"].as_u64().unwrap() > 3, "{doc}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let compiled = &file["runtime_info"]["compiled_model"];
    assert_eq!(compiled["NUM_STREAMS"], "2", "{compiled}");
    assert_eq!(file["settings"]["requests"], 2);
    // Far above capacity with a tight target: the step is cut short with requests
    // running, and their cancellation must neither hang nor crash the process.
    let o = loadgen(&[
        "fixed",
        "--backend",
        "openvino",
        "--threads",
        "1",
        "--requests",
        "2",
        "--qps",
        "2000",
        "--time",
        "3",
        "--max-latency",
        "0.05",
        "--warmup",
        "0",
        "--json",
        "--quiet",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    let step: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(step["passed"], false, "{step}");
    assert!(
        step["runtime"].as_f64().unwrap() < 3.0,
        "stopped early: {step}"
    );
}

/// A model OpenVINO cannot read, a wrong library path, and a GPU that is not there:
/// one sentence each, exit 2, before measuring.
#[test]
#[ignore = "needs OpenVINO: run scripts/setup.sh openvino (scripts/test.sh does)"]
fn openvino_bad_model_library_or_device_is_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a model").unwrap();
    let o = loadgen(&[
        "throughput",
        "--backend",
        "openvino",
        "--time",
        "1",
        "--model",
    ])
    .arg(&junk)
    .output()
    .unwrap();
    expect_exit_2(&o, &["OpenVINO cannot use model", "junk.onnx"]);
    let o = loadgen(&["throughput", "--backend", "openvino", "--time", "1"])
        .env("OPENVINO_LIB", "/nonexistent/libopenvino_c.so.1")
        .output()
        .unwrap();
    expect_exit_2(&o, &["OPENVINO_LIB", "/nonexistent/libopenvino_c.so.1"]);
    let not_a_lib = dir.path().join("libopenvino_c.so.9");
    std::fs::write(&not_a_lib, b"not ELF").unwrap();
    let o = loadgen(&["throughput", "--backend", "openvino", "--time", "1"])
        .env("OPENVINO_LIB", &not_a_lib)
        .output()
        .unwrap();
    expect_exit_2(&o, &["not a usable OpenVINO C library"]);
    let o = loadgen(&[
        "throughput",
        "--backend",
        "openvino",
        "--time",
        "1",
        "--device",
        "gpu",
    ])
    .output()
    .unwrap();
    expect_exit_2(&o, &["GPU"]);
}

/// `--op-profile` (issue 43): the runtime's own per-operation times, summed per node.
/// They must describe the same inferences loadgen timed: at least 10 operations whose
/// time per inference is within 20 % of the mean latency loadgen measured (the rest is
/// the runtime's work outside its nodes and loadgen's hand-off), shares that add up to
/// one, and the table on stderr led by the longest operation.
fn check_op_profile(args: &[&str], tmp: &Path) -> Value {
    let o = loadgen(args).env("TMPDIR", tmp).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{args:?}: {err}");
    let doc: Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let p = &doc["op_profile"];
    let ops = p["ops"].as_array().expect("every operation");
    assert!(ops.len() >= 10, "{args:?}: {p}");
    assert_eq!(p["operations"].as_u64(), Some(ops.len() as u64));
    assert!(p["inferences"].as_u64().unwrap() > 0, "{p}");
    let coverage = p["coverage"].as_f64().expect("a measured time to compare");
    assert!(
        (0.8..=1.2).contains(&coverage),
        "{args:?}: the operations add up to {coverage} of the measured time: {err}"
    );
    let shares: f64 = ops.iter().map(|o| o["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-6, "{shares}");
    let times: Vec<f64> = ops
        .iter()
        .map(|o| o["total_ms"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "longest first");
    let top = ops[0]["name"].as_str().unwrap();
    assert!(
        err.lines()
            .any(|l| l.contains("op profile: ") && l.contains("% of the")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.ends_with(top)),
        "{err}"
    );
    doc
}

#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn op_profile_on_onnx_runtime_adds_up_to_the_measured_time() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let common = [
        "--time",
        "2",
        "--warmup",
        "0.5",
        "--op-profile",
        "--json",
        "--quiet",
    ];
    let mut args = vec!["latency", "--backend", "onnxruntime"];
    args.extend(common);
    check_op_profile(&args, &tmp);
    let out = dir.path().join("throughput.json");
    let mut args = vec!["throughput", "--backend", "onnxruntime", "--threads", "2"];
    args.extend(common);
    args.extend(["--output", out.to_str().unwrap()]);
    let doc = check_op_profile(&args, &tmp);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(file["runtime"], "onnxruntime");
    assert_eq!(file["throughput"]["qps"], doc["qps"]);
    assert_eq!(file["op_profile"], doc["op_profile"]);
    assert_eq!(file["op_profile"]["ops"][0]["exec"], "CPUExecutionProvider");
    // The profile files ONNX Runtime wrote are read and removed (its own `.ses` stays).
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("loadgen-ort-profile")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[ignore = "needs OpenVINO: run scripts/setup.sh openvino (scripts/test.sh does)"]
fn op_profile_on_openvino_adds_up_to_the_measured_time() {
    let dir = tempfile::tempdir().unwrap();
    for (cmd, threads) in [("latency", "1"), ("throughput", "2")] {
        let args = [
            cmd,
            "--backend",
            "openvino",
            "--threads",
            threads,
            "--time",
            "2",
            "--warmup",
            "0.5",
            "--op-profile",
            "--json",
            "--quiet",
        ];
        let doc = check_op_profile(&args, dir.path());
        // OpenVINO names its kernels (benchmark_app's execType).
        let exec = &doc["op_profile"]["ops"][0]["exec"];
        assert!(exec.as_str().is_some_and(|e| !e.is_empty()), "{doc}");
    }
}

#[test]
#[ignore = "needs TensorFlow: run scripts/test.sh"]
fn op_profile_on_tensorflow_adds_up_to_the_measured_time() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "latency",
        "--backend",
        "tf",
        "--time",
        "2",
        "--warmup",
        "0.5",
        "--op-profile",
        "--json",
        "--quiet",
    ];
    check_op_profile(&args, dir.path());
}

/// `--cores 0` (issue 44): every thread of the process, the runtime's pool included,
/// may run on CPU 0 alone while it measures. The test waits for the measuring stage's
/// line, then reads each thread's `Cpus_allowed_list`; results say where it ran.
#[test]
#[ignore = "needs ONNX Runtime: run scripts/test.sh"]
fn cores_pin_every_thread_of_a_run() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("throughput.json");
    let mut child = loadgen(&[
        "throughput",
        "--backend",
        "onnxruntime",
        "--threads",
        "2",
        "--cores",
        "0",
        "--time",
        "3",
        "--warmup",
        "0.5",
        "--output",
        out.to_str().unwrap(),
    ])
    .env("LOADGEN_STAGE_LINES", "1")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no stage line: {seen}"
        );
        seen.push_str(&line);
        if line.starts_with("loadgen: stage throughput") {
            break;
        }
    }
    let tasks = format!("/proc/{}/task", child.id());
    let mut masks = Vec::new();
    for t in std::fs::read_dir(&tasks).unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue; // a thread that ended meanwhile
        };
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        masks.push((name.trim().to_string(), mask));
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}");
    // The main thread, the workers and ONNX Runtime's intra-op threads at least.
    assert!(masks.len() >= 4, "{masks:?}");
    assert!(masks.iter().all(|(_, m)| m == "0"), "{masks:?}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let p = &file["settings"]["placement"];
    assert_eq!(p["cpus"], "0", "{p}");
    assert_eq!(p["memory_policy"], "default", "{p}");
    // Another CPU is left: the issuer's (a closed loop issues nothing, but it is said).
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert_ne!(p["issuer_cpus"], "0", "{p}");
    }
}

/// Whether the CPU has int8 dot-product instructions (VNNI or AMX). Without them ONNX
/// Runtime's u8×s8 convolutions add pairs of products in 16 bits, which can saturate
/// (its quantization guide says so and suggests 7-bit weights): agreement with fp32
/// then depends on the data, and only its being reported is checked.
fn cpu_has_int8_dot() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines().filter(|l| l.starts_with("flags")).any(|l| {
            l.split_whitespace()
                .any(|f| matches!(f, "avx512_vnni" | "avx_vnni" | "amx_int8"))
        })
    })
}

/// `--precision int8` (issue 44): the QDQ model scripts/setup.sh quantizes runs on ONNX
/// Runtime and OpenVINO, and the accuracy pass says how its answers agree with the
/// fp32 model's on the generated set: at least 90 % of top-1 classes (the random-weight
/// model's top two classes are often close), with the top-5 overlap. bf16 (OpenVINO's
/// and TensorFlow's) runs where the CPU has it, reporting its agreement too, and is
/// refused in one sentence elsewhere.
#[test]
#[ignore = "needs ONNX Runtime, OpenVINO and TensorFlow: run scripts/test.sh"]
fn int8_and_bf16_agree_with_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_set(&data, 32, false);
    let int8_dot = cpu_has_int8_dot();
    for (backend, precision) in [
        ("onnxruntime", "int8"),
        ("openvino", "int8"),
        ("openvino", "bf16"),
        ("tf", "bf16"),
    ] {
        let o = loadgen(&[
            "accuracy",
            "--backend",
            backend,
            "--precision",
            precision,
            "--json",
            "--quiet",
        ])
        .arg("--dataset-path")
        .arg(&data)
        .output()
        .unwrap();
        let err = stderr(&o);
        if precision == "bf16" && o.status.code() == Some(2) {
            assert!(err.contains("no bf16"), "{err}");
            continue;
        }
        assert!(o.status.success(), "{backend} {precision}: {err}");
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        let a = &doc["fp32_agreement"];
        assert_eq!(a["items"], 32, "{doc}");
        let (top1, top5) = (
            a["top1"].as_f64().unwrap(),
            a["top5_overlap"].as_f64().unwrap(),
        );
        assert!(
            (0.0..=100.0).contains(&top1) && (0.0..=100.0).contains(&top5),
            "{a}"
        );
        if precision == "int8" && (backend != "onnxruntime" || int8_dot) {
            assert!(top1 >= 90.0, "{backend} {precision}: {a}");
            assert!(top5 >= 80.0, "{backend} {precision}: {a}");
        } else {
            // bf16 keeps 8 bits of mantissa: on random weights, whose top two classes
            // are often close, some flips are expected (TensorFlow's pass, which also
            // converts the classifier, agreed on 78 % here, OpenVINO's on all). A broken
            // path would agree by chance, on about 1 item in 1000.
            assert!(top1 >= 50.0, "{backend} {precision}: {a}");
        }
        assert!(
            err.contains(&format!("{precision} agrees with fp32")),
            "{err}"
        );
    }
    // What results.json says was asked for and what the runtime used.
    let file = |backend: &str, precision: &str| -> Value {
        let out = dir.path().join(format!("{backend}-{precision}.json"));
        let o = loadgen(&[
            "throughput",
            "--backend",
            backend,
            "--precision",
            precision,
            "--threads",
            "1",
            "--time",
            "1",
            "--warmup",
            "0",
            "--quiet",
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(file["settings"]["precision"], precision);
        file
    };
    let ov = file("openvino", "fp32");
    let hint = &ov["runtime_info"]["compiled_model"]["INFERENCE_PRECISION_HINT"];
    assert_eq!(hint, "f32", "{ov}");
    let ort = file("onnxruntime", "int8");
    let model = ort["runtime_info"]["model"].as_str().unwrap();
    assert!(model.ends_with("resnet50_v1.int8.onnx"), "{model}");
}
