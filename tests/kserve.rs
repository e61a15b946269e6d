//! The `kserve` backend against the small in-process KServe v2 server
//! (`loadgen::backend::kserve::server`): the protocol encodings give the same answers
//! over HTTP (binary and JSON tensors) and gRPC, bad input is one sentence before
//! anything is measured, and the open loop keeps many requests in flight with
//! latency counted from the planned send time. The tests against a real Triton are in
//! `tests/triton.rs` (ignored; `scripts/test.sh` starts the server and runs them).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadgen::backend::kserve::wire::TensorFormat;
use loadgen::backend::kserve::KserveConfig;
use loadgen::backend::{
    self, Backend, BackendConfig, BackendError, BackendKind, Batch, Layout, Prediction,
};
use loadgen::data::dataset::Dataset;
use loadgen::measure::pool::{SampleLibrary, WorkerPool};
use loadgen::measure::schedule::Distribution;
use loadgen::measure::step::{self, RunOn, StepSpec, Verdict};
use loadgen_testkit::{ServerOptions, TestModel, V2Server};
use serde_json::Value;

/// A runtime holding the test server; the server stops when it is dropped.
struct Server {
    _rt: tokio::runtime::Runtime,
    info: V2Server,
}

fn start(models: Vec<TestModel>) -> Server {
    start_with(models, ServerOptions::default())
}

fn start_with(models: Vec<TestModel>, options: ServerOptions) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let info = rt
        .block_on(V2Server::start_with(models, any, options))
        .unwrap();
    Server { _rt: rt, info }
}

fn identity() -> Server {
    start(vec![TestModel::identity("identity", &[16])])
}

fn config(url: String, model: &str) -> BackendConfig {
    BackendConfig {
        workers: 1,
        kserve: Some(KserveConfig {
            url,
            model_name: model.into(),
            model_version: None,
            headers: vec![("Authorization".into(), "Bearer test".into())],
            tensor_format: TensorFormat::Binary,
            connections: None,
            concurrency: Some(4),
            ready_timeout_s: 5.0,
            request_timeout_s: 30.0,
            io_threads: 1,
            batch_size: 2,
        }),
        ..BackendConfig::default()
    }
}

fn load(cfg: &BackendConfig) -> Result<Arc<dyn Backend>, BackendError> {
    backend::load(BackendKind::Kserve, cfg)
}

fn bad_input(cfg: &BackendConfig) -> String {
    match load(cfg) {
        Err(BackendError::BadInput(msg)) => msg,
        Err(e) => panic!("expected bad input, got {e}"),
        Ok(_) => panic!("expected bad input, the backend loaded"),
    }
}

fn argmax(row: &[f32]) -> i64 {
    let mut best = 0;
    for (i, x) in row.iter().enumerate() {
        if *x > row[best] {
            best = i;
        }
    }
    best as i64
}

/// h2 refuses a connection that holds many small DATA frames unread (more than half
/// its receive window's worth, at ~256 bytes each) with GOAWAY(ENHANCE_YOUR_CALM). A
/// 64 KiB window let ~130 do it: a client a few hundred answers behind on a busy
/// machine, or one answer sent in small frames, failed every request in flight.
#[test]
fn grpc_answers_in_many_small_frames_are_read() {
    let options = ServerOptions {
        grpc_frame_bytes: Some(1),
    };
    let s = start_with(vec![TestModel::identity("identity", &[512])], options);
    let mut cfg = config(format!("grpc://{}", s.info.grpc), "identity");
    cfg.kserve.as_mut().unwrap().batch_size = 1;
    let b = load(&cfg).unwrap();
    let mut session = b.session(0).unwrap();
    let mut data = vec![0.5f32; 512];
    data[300] = 2.0;
    for _ in 0..3 {
        // 512 floats: over 2,000 one-byte frames per answer.
        let mut out = Prediction::default();
        session
            .predict(
                Batch {
                    data: &data,
                    len: 1,
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(out.top1, [300]);
    }
}

#[test]
fn every_protocol_and_tensor_format_returns_the_identity_models_argmax() {
    let s = identity();
    // Two items whose largest values sit at known places (negative values, odd floats).
    let mut data = vec![-1.5f32; 32];
    data[7] = 3.25;
    data[16 + 13] = 1e-3;
    data[16] = -0.0;
    let want = vec![argmax(&data[..16]), argmax(&data[16..])];
    assert_eq!(want, [7, 13]);
    let cases = [
        (format!("http://{}", s.info.http), TensorFormat::Binary),
        (format!("http://{}", s.info.http), TensorFormat::Json),
        (format!("grpc://{}", s.info.grpc), TensorFormat::Binary),
    ];
    for (url, format) in cases {
        let mut cfg = config(url.clone(), "identity");
        cfg.kserve.as_mut().unwrap().tensor_format = format;
        let b = load(&cfg).unwrap_or_else(|e| panic!("{url}: {e}"));
        let m = b.model();
        assert_eq!(
            (m.input_name.as_str(), m.output_name.as_str()),
            ("INPUT0", "OUTPUT0")
        );
        assert_eq!(m.item_shape, [16]);
        assert_eq!(m.num_classes, 16);
        let mut session = b.session(0).unwrap();
        let mut out = Prediction {
            keep_scores: true,
            ..Prediction::default()
        };
        session
            .predict(
                Batch {
                    data: &data,
                    len: 2,
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(out.top1, want, "{url} {format:?}");
        assert_eq!(
            out.scores, data,
            "{url} {format:?}: scores come back bit for bit"
        );
        let info = b.server_info().unwrap();
        assert_eq!(info["name"], "loadgen-v2-test");
        assert_eq!(info["extensions"][0], "binary_tensor_data");
        assert_eq!(
            info["model"]["inputs"][0]["shape"],
            serde_json::json!([-1, 16])
        );
        assert_eq!(b.name(), "kserve");
    }
}

#[test]
fn a_wrong_model_input_shape_or_a_down_server_is_one_sentence() {
    let s = identity();
    let url = format!("http://{}", s.info.http);
    let grpc = format!("grpc://{}", s.info.grpc);
    for u in [&url, &grpc] {
        let msg = bad_input(&config(u.clone(), "resnet"));
        assert!(
            msg.contains("no model 'resnet'") && msg.contains("--model-name"),
            "{msg}"
        );
        let mut cfg = config(u.clone(), "identity");
        cfg.inputs = Some("data".into());
        let msg = bad_input(&cfg);
        assert!(
            msg.contains("no input 'data'") && msg.contains("INPUT0"),
            "{msg}"
        );
        let mut cfg = config(u.clone(), "identity");
        cfg.data_format = Some(Layout::Nhwc);
        assert!(
            load(&cfg).is_ok(),
            "a non-image tensor has no layout to contradict"
        );
    }
    // A server that wants images gets told the layout is wrong.
    let img = start(vec![TestModel::identity("img", &[3, 8, 8])]);
    let mut cfg = config(format!("http://{}", img.info.http), "img");
    cfg.data_format = Some(Layout::Nhwc);
    let msg = bad_input(&cfg);
    assert!(msg.contains("NCHW and not NHWC"), "{msg}");
    // Nothing listens on a port that was just freed.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for u in [format!("http://{free}"), format!("grpc://{free}")] {
        let mut cfg = config(u.clone(), "identity");
        cfg.kserve.as_mut().unwrap().ready_timeout_s = 0.3;
        let msg = bad_input(&cfg);
        assert!(
            msg.contains("no server answers at") && msg.contains("serve_triton.sh"),
            "{msg}"
        );
    }
    assert_eq!(s.info.stats.in_flight.load(Ordering::SeqCst), 0);
}

#[test]
fn an_answer_beyond_its_size_cap_is_refused_over_both_protocols() {
    // 8 MiB for an answer the metadata sizes at 2 × 16 values: over the cap of
    // 32 values × 32 bytes + 64 KiB, on HTTP (the body) and gRPC (the message).
    let mut m = TestModel::identity("big", &[16]);
    m.oversize = Some(8 << 20);
    let s = start(vec![m]);
    for u in [
        format!("http://{}", s.info.http),
        format!("grpc://{}", s.info.grpc),
    ] {
        let msg = bad_input(&config(u.clone(), "big"));
        assert!(
            msg.contains("test request")
                && (msg.contains("larger than") || msg.contains("too large")),
            "{u}: {msg}"
        );
    }
}

fn samples(shape: &[usize], n: usize) -> Arc<dyn SampleLibrary> {
    Arc::new(Dataset::synthetic_in_range(shape, Layout::Nchw, n, 1, (0.0, 1.0)).unwrap())
}

/// A step of exactly `queries` queries (planned = cap) judged against `target`.
fn spec(
    distribution: Distribution,
    offered_qps: f64,
    queries: u64,
    target: Duration,
    seed: u64,
) -> StepSpec {
    StepSpec {
        distribution,
        offered_qps,
        planned: queries,
        cap: queries,
        time_cap: Duration::from_secs(60),
        target: Some(target),
        also_count: Vec::new(),
        seed,
        confidence: 0.99,
        burst: 1.0,
        run_on: RunOn::NearBoundary,
        share: None,
        service_ref: None,
    }
}

#[test]
fn the_open_loop_keeps_many_requests_in_flight_and_times_from_the_plan() {
    let mut slow = TestModel::identity("slow", &[16]);
    slow.delay = Some(Duration::from_millis(50));
    let s = start(vec![slow]);
    for url in [
        format!("http://{}", s.info.http),
        format!("grpc://{}", s.info.grpc),
    ] {
        let mut cfg = config(url.clone(), "slow");
        cfg.kserve.as_mut().unwrap().batch_size = 1;
        let b = load(&cfg).unwrap();
        let pool = WorkerPool::start(&b, samples(&[16], 8), 1, 1).unwrap();
        s.info.stats.max_in_flight.store(0, Ordering::SeqCst);
        let spec = spec(Distribution::Linear, 400.0, 200, Duration::from_secs(5), 1);
        let interrupt = AtomicBool::new(false);
        let sum = step::run_open(&pool, &spec, &interrupt).unwrap();
        assert_eq!((sum.count, sum.errors), (200, 0), "{url}: {sum:?}");
        // 400/s for 50 ms each is 20 in flight on average: a client that waited for
        // each answer could not have more than one.
        let most = s.info.stats.max_in_flight.load(Ordering::SeqCst);
        assert!(most >= 10, "{url}: at most {most} requests in flight");
        // No answer comes before the server's delay.
        assert!(sum.percentiles.get(50.0) >= 0.05, "{url}: {sum:?}");
        let live: u64 = pool
            .live()
            .iter()
            .map(|l| l.done.load(Ordering::Acquire))
            .sum();
        assert_eq!(live, 200, "live counters agree with the histograms");
        let late: u64 = pool
            .live()
            .iter()
            .map(|l| l.late.load(Ordering::Acquire))
            .sum();
        assert_eq!(
            late, sum.late,
            "{url}: the live late count is the exact one"
        );
        assert!(pool
            .live()
            .iter()
            .all(|l| l.busy.load(Ordering::Acquire) == 0));
    }
}

#[test]
fn closed_loops_keep_their_window_and_failed_requests_fail_the_step() {
    let mut slow = TestModel::identity("slow", &[16]);
    slow.delay = Some(Duration::from_millis(20));
    let mut flaky = TestModel::identity("flaky", &[16]);
    flaky.fail_after = Some(1);
    let s = start(vec![slow, flaky]);
    let url = format!("http://{}", s.info.http);
    let mut cfg = config(url.clone(), "slow");
    cfg.kserve.as_mut().unwrap().batch_size = 1;
    let b = load(&cfg).unwrap();
    let pool = WorkerPool::start(&b, samples(&[16], 8), 1, 1).unwrap();
    s.info.stats.max_in_flight.store(0, Ordering::SeqCst);
    let interrupt = AtomicBool::new(false);
    let sum = step::run_closed(&pool, Duration::from_millis(300), &interrupt).unwrap();
    assert!(sum.count > 0 && sum.errors == 0, "{sum:?}");
    let most = s.info.stats.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&most),
        "--concurrency 4, yet {most} in flight"
    );
    assert_eq!(
        s.info.stats.in_flight.load(Ordering::SeqCst),
        0,
        "the last window was drained"
    );

    // The test request passes, every later one fails: errors, and the step fails.
    let mut cfg = config(url, "flaky");
    cfg.kserve.as_mut().unwrap().batch_size = 1;
    let b = load(&cfg).unwrap();
    let pool = WorkerPool::start(&b, samples(&[16], 8), 1, 1).unwrap();
    let spec = spec(
        Distribution::Exponential,
        200.0,
        50,
        Duration::from_secs(1),
        2,
    );
    let sum = step::run_open(&pool, &spec, &interrupt).unwrap();
    assert_eq!((sum.count, sum.errors), (0, 50), "{sum:?}");
    assert_eq!(sum.verdict(), Verdict::Errors);
    assert!(sum.error.unwrap_or_default().contains("500"));
}

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("loadgen runs")
}

/// [`loadgen`], killed (and the test failed) if it runs past `limit`: a run that
/// hangs must fail the test, not hold the suite.
fn loadgen_within(args: &[&str], limit: Duration) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen runs");
    let start = std::time::Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("killed");
            panic!(
                "loadgen {args:?} still ran after {limit:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("finished")
}

fn expect_exit_2(o: &Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for w in words {
        assert!(err.contains(w), "missing '{w}' in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        String::from_utf8_lossy(&o.stdout).is_empty(),
        "nothing measured"
    );
}

#[test]
fn the_binary_refuses_bad_flags_and_servers_before_measuring() {
    let s = identity();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let out_s = out.to_str().unwrap();
    let http = format!("http://{}", s.info.http);
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (vec!["--url".into(), http.clone()], &["--model-name"]),
        (vec!["--model-name".into(), "identity".into()], &["--url"]),
        (
            vec![
                "--url".into(),
                "127.0.0.1:1".into(),
                "--model-name".into(),
                "m".into(),
            ],
            &["http://"],
        ),
        (
            vec![
                "--url".into(),
                http.clone(),
                "--model-name".into(),
                "nope".into(),
            ],
            &["no model 'nope'"],
        ),
        (
            vec![
                "--url".into(),
                http.clone(),
                "--model-name".into(),
                "identity".into(),
                "--inputs".into(),
                "x".into(),
            ],
            &["no input 'x'"],
        ),
        (
            vec![
                "--url".into(),
                format!("grpc://{}", s.info.grpc),
                "--model-name".into(),
                "identity".into(),
                "--tensor-format".into(),
                "json".into(),
            ],
            &["--tensor-format"],
        ),
        (
            vec![
                "--url".into(),
                http.clone(),
                "--model-name".into(),
                "identity".into(),
                "--configs".into(),
                "1x1x1x1".into(),
            ],
            &["--configs", "kserve"],
        ),
    ];
    for (extra, words) in cases {
        let mut args = vec![
            "run",
            "--backend",
            "triton",
            "--time",
            "1",
            "--output",
            out_s,
            "--quiet",
        ];
        args.extend(extra.iter().map(String::as_str));
        expect_exit_2(&loadgen(&args), words);
        assert!(!out.exists(), "no results.json for {extra:?}");
    }
    expect_exit_2(
        &loadgen(&["run", "--backend", "sim", "--url", &http, "--output", out_s]),
        &["--url only applies to --backend kserve"],
    );
}

#[test]
fn a_server_that_accepts_and_never_answers_is_one_sentence_within_the_ready_timeout() {
    // Accepts every connection and holds it, reading and writing nothing: before, the
    // readiness call waited for ever (over HTTP and gRPC) and --ready-timeout never
    // fired.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    for url in [format!("http://{addr}"), format!("grpc://{addr}")] {
        // The bound, from the mechanism: the 2 s wait, plus at most one call's
        // second past it, plus the process's start; 30 s leaves a busy machine room.
        let o = loadgen_within(
            &[
                "run",
                "--backend",
                "kserve",
                "--url",
                &url,
                "--model-name",
                "m",
                "--ready-timeout",
                "2",
                "--time",
                "1",
                "--quiet",
            ],
            Duration::from_secs(30),
        );
        expect_exit_2(
            &o,
            &[
                &format!("no server answers at {url}"),
                "got no answer within",
            ],
        );
    }
}

#[test]
fn the_binary_runs_the_cloud_procedure_over_both_protocols() {
    let s = identity();
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("http://{}", s.info.http),
        format!("grpc://{}", s.info.grpc),
    ] {
        let out = dir.path().join("results.json");
        let o = loadgen(&[
            "run",
            "--backend",
            "kserve",
            "--url",
            &url,
            "--model-name",
            "identity",
            "--time",
            "0.5",
            "--max-latency",
            "0.5",
            "--distributions",
            "linear",
            "--warmup",
            "0.2",
            "--min-queries",
            "20",
            "--count",
            "8",
            "--quiet",
            "--output",
            out.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        let qps: f64 = last
            .split("'0.5': ")
            .nth(1)
            .and_then(|r| r.split('}').next())
            .and_then(|q| q.parse().ok())
            .unwrap_or(-1.0);
        assert!(qps > 0.0, "{url}: {stdout}");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(doc["runtime"], "kserve");
        assert_eq!(doc["server"]["name"], "loadgen-v2-test");
        assert_eq!(doc["server"]["model"]["name"], "identity");
        assert_eq!(doc["settings"]["kserve"]["headers"], serde_json::json!([]));
        schema_check(&doc);
    }
}

fn schema_check(doc: &Value) {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/results.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "results.json does not match the schema:\n{}",
        errors.join("\n")
    );
}

#[test]
fn requests_in_flight_when_a_step_stops_on_a_failure_are_judged_at_their_age() {
    // Every answer takes 300 ms against a 100 ms target: the step stops certain of
    // its failure with ~30 requests at the server. They are abandoned, and each is
    // judged late at its age (the old summary dropped them: 0 judged, 0 late).
    let mut slow = TestModel::identity("slow", &[16]);
    slow.delay = Some(Duration::from_millis(300));
    let s = start(vec![slow]);
    let mut cfg = config(format!("http://{}", s.info.http), "slow");
    let k = cfg.kserve.as_mut().unwrap();
    k.batch_size = 1;
    k.concurrency = Some(64);
    let b = load(&cfg).unwrap();
    let pool = WorkerPool::start(&b, samples(&[16], 8), 1, 1).unwrap();
    let spec = spec(
        Distribution::Linear,
        200.0,
        1000,
        Duration::from_millis(100),
        3,
    );
    let sum = step::run_open(&pool, &spec, &AtomicBool::new(false)).unwrap();
    assert_eq!(sum.stop(), step::StopReason::CertainFail, "{sum:?}");
    assert!(!sum.passed() && sum.confident(), "{sum:?}");
    assert!(sum.abandoned > 10 && sum.late > 10, "{sum:?}");
    assert_eq!(sum.judged, sum.count + sum.abandoned, "{sum:?}");
    assert_eq!(
        sum.issued,
        sum.count + sum.errors + sum.abandoned,
        "{sum:?}"
    );
}
