//! `loadgen serve` as a program: loadgen's own KServe client measures it over HTTP
//! and gRPC (one port), its sim backend's queue law shows in the latencies, bad
//! requests are refused as a real server refuses them, and bad flags are one sentence.
//! Every test waits for the server's "listening" line, never for a fixed time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use loadgen::backend::kserve::proto;
use loadgen::backend::kserve::proto::grpc_inference_service_client::GrpcInferenceServiceClient;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

/// The most a server may take to print its line, or to stop after SIGTERM: far
/// beyond what either takes on a loaded machine, short of a hung test.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `loadgen serve`, stopped (SIGTERM) by [`Served::stop`] or killed when
/// dropped.
struct Served {
    child: Child,
    /// HOST:PORT from its line.
    addr: String,
    /// Its stderr lines after the first.
    lines: mpsc::Receiver<String>,
}

impl Served {
    /// Starts `loadgen serve ARGS --listen 127.0.0.1:0` and waits for its line.
    fn start(args: &[&str]) -> Served {
        let mut child = loadgen()
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("loadgen runs");
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("loadgen serve printed no line ({e})"));
        let prefix = "loadgen serve: listening on http://";
        let rest = first
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("not the listening line: {first}"));
        let addr = rest.split(' ').next().unwrap().to_string();
        assert!(
            rest.ends_with(" (HTTP and gRPC), model null") || rest.ends_with("model sim"),
            "{first}"
        );
        assert!(!addr.ends_with(":0"), "the real port, not 0: {first}");
        Served { child, addr, lines }
    }

    /// SIGTERM, then its exit status and what it printed meanwhile.
    fn stop(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid, which has not been waited for.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let until = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < until,
                "loadgen serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let lines = self.lines.try_iter().collect();
        (status, lines)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `loadgen fixed` against a served model: its exit and its JSON summary.
fn fixed(url: &str, model: &str, qps: &str, time: &str) -> (Output, Value) {
    let out = loadgen()
        .args([
            "fixed",
            "--backend",
            "kserve",
            "--url",
            url,
            "--model-name",
            model,
        ])
        .args([
            "--qps",
            qps,
            "--time",
            time,
            "--distribution",
            "exponential",
        ])
        // No closed-loop warm-up: it would leave a backlog in the server's queue
        // that the step's first queries wait behind.
        .args(["--warmup", "0", "--quiet", "--json"])
        .output()
        .expect("loadgen runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, doc)
}

#[test]
fn null_serves_loadgen_over_http_and_grpc_on_one_port_and_stops_on_sigterm() {
    let s = Served::start(&["--backend", "null"]);
    for scheme in ["http", "grpc"] {
        let url = format!("{scheme}://{}", s.addr);
        let (out, doc) = fixed(&url, "null", "50", "1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{url}: {:?}: {stderr}", out.status);
        assert_eq!(doc["errors"], 0, "{url}: {doc}");
        assert_eq!(doc["count"], doc["planned"], "{url}: every query answered");
        assert!(doc["count"].as_u64().unwrap() >= 40, "{url}: {doc}");
        // The client read the server's metadata: the model and its shape.
        assert!(!stderr.contains("warning"), "{url}: {stderr}");
    }
    let (status, lines) = s.stop();
    assert_eq!(status.code(), Some(0), "{lines:?}");
    assert_eq!(lines, ["loadgen serve: stopping (SIGTERM)"]);
}

/// `sim --sim-service-time exp:5ms --threads 1` under Poisson arrivals at 50/s is an
/// M/M/1 queue with μ = 200/s, λ = 50/s: a mean sojourn of 1/(μ - λ) = 6.7 ms.
///
/// The bounds follow from the mechanism. Below: every answer takes at least its own
/// drawn service time, whose mean over the ~150 queries of 3 s is 5 ms with a standard
/// error of 5/√150 = 0.4 ms, so a mean under 3 ms (5 standard errors below the service
/// alone) means the service law is not applied (null answers in ~0.2 ms). Above: the
/// queue's mean over 150 correlated queries strays by about 15 % at ρ = 0.25 (8 ms),
/// and the loopback round trip and the thread wake-ups of client and server add
/// about 1 ms per query with the other core busy (7.1 to 8.7 ms measured over HTTP
/// and gRPC with a spinning process beside them, on 2 cores); 15 ms means requests
/// wait for something other than the one worker: a slower law (exp:10ms is 20 ms at
/// this rate), a service applied twice, or a backlog.
#[test]
fn sim_with_one_worker_is_an_mm1_queue() {
    let s = Served::start(&[
        "--backend",
        "sim",
        "--sim-service-time",
        "exp:5ms",
        "--threads",
        "1",
    ]);
    let url = format!("http://{}", s.addr);
    let (out, doc) = fixed(&url, "sim", "50", "3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(doc["errors"], 0, "{doc}");
    let mean = doc["mean"].as_f64().expect("a mean") * 1e3;
    assert!(
        (3.0..15.0).contains(&mean),
        "mean sojourn {mean:.2} ms; M/M/1 theory 6.7 ms"
    );
    let (status, _) = s.stop();
    assert_eq!(status.code(), Some(0));
}

/// One HTTP/1.1 request, `Connection: close`: the status code and the body.
fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

#[test]
fn bad_requests_are_refused_with_a_sentence_over_http_and_grpc() {
    let s = Served::start(&["--backend", "null", "--shape", "2,3"]);
    let zeros = ["0"; 6].join(",");
    let req = |name: &str, shape: &str, data: &str| {
        format!(
            r#"{{"inputs":[{{"name":"{name}","datatype":"FP32","shape":{shape},"data":[{data}]}}]}}"#
        )
    };
    let path = "/v2/models/null/infer";
    let (code, body) = post(&s.addr, path, &req("INPUT0", "[1,2,3]", &zeros));
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["outputs"][0]["shape"], serde_json::json!([1, 1]));
    for (input, want) in [
        (
            req("WRONG", "[1,2,3]", &zeros),
            "unexpected inference input 'WRONG' for model 'null'",
        ),
        (
            req("INPUT0", "[1,3,2]", &zeros),
            "unexpected shape for input 'INPUT0' for model 'null': expected [-1,2,3], got [1, 3, 2]",
        ),
        (
            req("INPUT0", "[1,2,3]", "0,0"),
            "input 'INPUT0' has 8 bytes, expected 24",
        ),
    ] {
        let (code, body) = post(&s.addr, path, &input);
        assert_eq!(code, 400, "{input}: {body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["error"], want, "{input}");
    }
    let (code, body) = post(
        &s.addr,
        "/v2/models/other/infer",
        &req("INPUT0", "[1,2,3]", &zeros),
    );
    assert_eq!(code, 404, "{body}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let mut c = GrpcInferenceServiceClient::connect(format!("http://{}", s.addr))
            .await
            .unwrap();
        let r = proto::ModelInferRequest {
            model_name: "null".into(),
            inputs: vec![proto::model_infer_request::InferInputTensor {
                name: "WRONG".into(),
                datatype: "FP32".into(),
                shape: vec![1, 2, 3],
                ..Default::default()
            }],
            raw_input_contents: vec![vec![0u8; 24].into()],
            ..Default::default()
        };
        c.model_infer(r).await.unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "unexpected inference input 'WRONG' for model 'null'"
    );
    let (status, _) = s.stop();
    assert_eq!(status.code(), Some(0));
}

/// A flag the server cannot use: exit 2 and one line.
fn refused(args: &[&str], says: &str) {
    let out = loadgen().arg("serve").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with(says), "{args:?}: {stderr}");
}

#[test]
fn bad_flags_and_a_busy_port_are_one_sentence_and_exit_2() {
    refused(
        &["--backend", "null", "--listen", "nowhere"],
        "loadgen: --listen takes HOST:PORT, e.g. 127.0.0.1:8000; got 'nowhere'",
    );
    refused(
        &["--backend", "onnxruntime"],
        "loadgen: --backend takes sim or null; got 'onnxruntime'",
    );
    refused(
        &["--backend", "sim", "--sim-service-time", "exp:fast"],
        "loadgen: --sim-service-time 'exp:fast': 'fast' is not a duration",
    );
    refused(
        &["--backend", "null", "--sim-service-time", "exp:5ms"],
        "loadgen: --sim-service-time sets the sim backend's law",
    );
    refused(
        &["--backend", "null", "--shape", "3,0"],
        "loadgen: --shape takes up to 8 positive dimensions",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refused(
        &["--backend", "null", "--listen", &addr],
        &format!("loadgen: could not listen on {addr}: "),
    );
}
