//! `loadgen run` against KServe v2 servers that misbehave on purpose
//! (`loadgen_testkit::hostile`): each run ends within a bound argued from the
//! mechanism, with exit 2 (found before measuring) or 1 (found while measuring), one
//! sentence naming the server and the fault, and never a FAIL answer read off a
//! broken server.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen_testkit::hostile::{HostileServer, Mode, MODEL};
use serde_json::Value;

/// The server on its own runtime; it stops when this is dropped.
struct Hostile {
    _rt: tokio::runtime::Runtime,
    url: String,
}

fn start(mode: Mode) -> Hostile {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(HostileServer::start(mode)).unwrap();
    Hostile {
        _rt: rt,
        url: format!("http://{}", s.addr),
    }
}

/// What one run gave: exit code, stdout, stderr, results.json (if written), and the
/// peak resident memory of the loadgen process in bytes.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    results: Option<Value>,
    peak_rss: u64,
}

/// Peak resident memory of a finished child, from `wait4` (Linux reports KiB).
fn wait_child(pid: u32) -> (Option<i32>, u64) {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped; `status` and `usage` are valid.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, pid as i32, "wait4");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss as u64 * 1024)
}

/// `loadgen run` against `url`, with `extra` flags; the test fails if it runs past
/// `limit` (a hang must fail the test, not hold the suite). The child is reaped by
/// `wait4` (for its peak memory), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run(url: &str, extra: &[&str], limit: Duration) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let mut args = vec![
        "run",
        "--backend",
        "kserve",
        "--url",
        url,
        "--model-name",
        MODEL,
        "--max-latency",
        "0.5",
        "--count",
        "8",
        "--quiet",
        "--output",
        out.to_str().unwrap(),
    ];
    for (flag, default) in [
        ("--time", "1"),
        ("--warmup", "0.2"),
        ("--distributions", "linear"),
    ] {
        if !extra.contains(&flag) {
            args.extend_from_slice(&[flag, default]);
        }
    }
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen runs");
    // Read the pipes on threads so that a chatty child never blocks on them.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let read_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut so, &mut s).ok();
        s
    });
    let read_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut se, &mut s).ok();
        s
    });
    let start = Instant::now();
    loop {
        // Peek without reaping, so that wait4 below gets the child's rusage.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer; WNOWAIT leaves the child to be reaped by wait4.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        assert_eq!(r, 0, "waitid");
        // SAFETY: filled by waitid; 0 while the child runs.
        if unsafe { info.si_pid() } != 0 {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "loadgen {args:?} still ran after {limit:?}: {}",
                read_err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, peak_rss) = wait_child(child.id());
    let results = std::fs::read_to_string(&out)
        .ok()
        .map(|s| serde_json::from_str(&s).expect("results.json is JSON"));
    Run {
        code,
        stdout: read_out.join().unwrap(),
        stderr: read_err.join().unwrap(),
        results,
        peak_rss,
    }
}

/// The last non-empty stderr line: the run's one sentence.
fn sentence(r: &Run) -> &str {
    r.stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Found before measuring: exit 2, one sentence naming the server and `words`,
/// nothing measured.
fn refused_before_measuring(r: &Run, url: &str, words: &[&str]) {
    let last = sentence(r);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(last.contains(url), "the sentence names the server: {last}");
    for w in words {
        assert!(last.contains(w), "'{w}' missing from: {last}");
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing measured: {}", r.stdout);
    assert!(r.results.is_none(), "no results.json");
}

/// Found while measuring: exit 1, one sentence naming the server and `words`, no
/// FAIL answer, and results.json saying why the run ended and what it left.
fn ended_while_measuring(r: &Run, url: &str, words: &[&str]) {
    let last = sentence(r);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(last.contains(&format!("the server at {url}")), "{last}");
    for w in words {
        assert!(last.contains(w), "'{w}' missing from: {last}");
    }
    assert!(!r.stdout.contains("FINAL_RESULT"), "{}", r.stdout);
    assert!(!r.stdout.contains("qps=FAIL"), "{}", r.stdout);
    // Found by the probe or by a step, results.json says why the run ended and that
    // the target was left without an answer.
    let doc = r.results.as_ref().expect("results.json");
    let unfinished = doc["failed"]["unfinished"].as_array().expect("unfinished");
    assert_eq!(unfinished.len(), 1, "{doc}");
    assert_eq!(unfinished[0]["target_latency"], 0.5, "{doc}");
    assert!(doc["failed"]["error"].as_str().unwrap().contains(url));
    let d = unfinished[0]["distribution"].as_str().unwrap();
    assert_eq!(doc["final_results"][d], serde_json::json!({}), "{doc}");
    schema_check(doc);
}

fn schema_check(doc: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/results.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// The bound of a run whose fault is found before measuring: the readiness,
/// metadata and test calls each end at once (refused, capped or read whole), plus
/// the process's start; a busy machine gets ample room.
const BEFORE: Duration = Duration::from_secs(30);
/// The bound of a run that measures until the fault: warm-up 0.2 s, the probe of a
/// 1 s step, then the fault's step (at most its 4 s cap) or the request timeout of
/// 5 s, twice at most, plus the process; 60 s is the issue's own bound.
///
/// The faults of the `…After` modes start 1.5 s after the server's first inference
/// (the test request), within the 3 s warm-up these runs are given (`--warmup 3`,
/// a closed loop of fixed length that ignores errors): the capacity probe after it
/// always meets them. The search meets a fault in
/// [`a_server_that_fails_under_open_loop_load_ends_the_search_with_exit_1`].
const WHILE: Duration = Duration::from_secs(60);

#[test]
fn a_readiness_answer_that_announces_10_gb_is_refused_at_once() {
    let s = start(Mode::TrickleReady);
    let r = run(&s.url, &[], BEFORE);
    refused_before_measuring(&r, &s.url, &["readiness check", "larger than"]);
}

#[test]
fn an_answer_that_announces_10_gb_is_refused_without_filling_memory() {
    let s = start(Mode::TrickleAnswer);
    let r = run(&s.url, &[], BEFORE);
    refused_before_measuring(&r, &s.url, &["test request", "larger than"]);
    assert!(r.peak_rss < 300 << 20, "peak RSS {} MB", r.peak_rss >> 20);
}

#[test]
fn answers_that_contradict_the_metadata_are_refused_before_measuring() {
    for (mode, word) in [
        (Mode::WrongShape, "has shape [1, 3]"),
        (Mode::ShortValues, "holds 3 values"),
    ] {
        let s = start(mode);
        let r = run(&s.url, &[], BEFORE);
        refused_before_measuring(&r, &s.url, &["contradicts the model's metadata", word]);
    }
}

#[test]
fn garbage_is_named_as_such_not_as_a_missing_server() {
    let s = start(Mode::Garbage);
    let r = run(&s.url, &[], BEFORE);
    refused_before_measuring(&r, &s.url, &["not HTTP"]);
    assert!(!r.stderr.contains("no server answers"), "{}", r.stderr);
}

#[test]
fn a_silent_server_is_one_sentence_within_the_ready_timeout() {
    let s = start(Mode::Silent);
    let r = run(&s.url, &["--ready-timeout", "2"], BEFORE);
    refused_before_measuring(&r, &s.url, &["no server answers", "got no answer within"]);
}

#[test]
fn metadata_naming_another_model_is_a_warning() {
    let s = start(Mode::WrongName);
    // A short search: the warning comes before it, and results.json keeps it.
    let r = run(&s.url, &["--search-time", "3"], WHILE);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let warning = "answered the metadata of model 'another' for --model-name 'm'";
    assert!(r.stderr.contains(warning), "{}", r.stderr);
    let doc = r.results.expect("results.json");
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains(warning)),
        "{doc}"
    );
}

#[test]
fn a_server_that_dies_mid_run_ends_it_with_exit_1_and_no_answer() {
    let s = start(Mode::DiesAfter(Duration::from_millis(1500)));
    let r = run(&s.url, &["--warmup", "3"], WHILE);
    ended_while_measuring(
        &r,
        &s.url,
        &[
            "failed",
            "of the capacity probe",
            "Connection refused",
            "it is down or failing",
        ],
    );
}

#[test]
fn a_server_that_answers_one_request_in_ten_ends_the_run_with_exit_1() {
    let s = start(Mode::FlakyAfter(Duration::from_millis(1500)));
    let r = run(&s.url, &["--warmup", "3"], WHILE);
    ended_while_measuring(&r, &s.url, &["failed", "failing on purpose"]);
}

#[test]
fn a_server_that_falls_silent_mid_run_ends_it_with_exit_1() {
    let s = start(Mode::SilentAfter(Duration::from_millis(1500)));
    let r = run(&s.url, &["--warmup", "3", "--request-timeout", "5"], WHILE);
    let last = sentence(&r).to_string();
    // The probe's last requests get no answer within the request timeout (5 s),
    // or the server holds them after the probe without answering any.
    assert!(
        last.contains("stopped answering") || last.contains("--request-timeout"),
        "{last}"
    );
    ended_while_measuring(&r, &s.url, &[]);
}

#[test]
fn a_server_that_fails_under_open_loop_load_ends_the_search_with_exit_1() {
    // One request at a time in the warm-up and the probe: a sound server of about
    // 150 queries/s (5 ms each). The search's first step offers about that in
    // Poisson arrivals, so about half the requests arrive while another is served
    // and fail: the step is spoiled by errors, and the run ends there. (Constant
    // arrivals at the probe's rate would never overlap.)
    let s = start(Mode::FailsWhenBusy);
    let r = run(
        &s.url,
        &["--concurrency", "1", "--distributions", "exponential"],
        WHILE,
    );
    ended_while_measuring(
        &r,
        &s.url,
        &["of step exponential/0.5/", "busy, failing on purpose"],
    );
    let doc = r.results.as_ref().expect("results.json");
    let steps = doc["scan"]["exponential"]
        .as_object()
        .expect("the step is kept");
    assert!(steps.values().any(|s| s["verdict"] == "errors"), "{doc}");
    assert!(
        doc["results"]["exponential"]["0.5"].is_null(),
        "no answer: {doc}"
    );
}
