//! The `loadgen` binary end to end on the `sim` and `null` backends: log lines,
//! results.json against the committed schema, exit codes, Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

/// Timed tests run one at a time: parallel runs on a 2-core machine would measure
/// each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(args: &[&str]) -> Output {
    loadgen().args(args).output().expect("loadgen runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `{'linear': {'0.02': 199}, 'exponential': {}}` → the number for (dist, target).
fn final_qps(out: &str, dist: &str, target: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("===FINAL_RESULT: "))
        .expect("a FINAL_RESULT line");
    let after = line
        .split(&format!("'{dist}': {{"))
        .nth(1)
        .expect("the distribution");
    let after = after
        .split(&format!("'{target}': "))
        .nth(1)
        .expect("the target");
    after
        .split([',', '}'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sim_fixed_service_finds_the_servers_capacity_and_writes_valid_results() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("t/results.json");
    let o = run(&[
        "run",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:5ms",
        "--threads",
        "1",
        "--max-latency",
        "0.02",
        "--distributions",
        "linear",
        "--time",
        "2",
        "--warmup",
        "0",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    // One server at 5 ms serves at most 200/s, and a target of four service times
    // is met up to the capacity: the answer is the capacity the probe measured (the
    // search's top rate), rounded. That capacity is the simulated server's real rate,
    // below 200/s by its sleeps' overshoot on a loaded machine (189.8 with a busy
    // core and the suite's setup beside it): the bound on it allows 10 %.
    let q = final_qps(&out, "linear", "0.02");
    let doc = read_json(&out_path);
    let capacity = doc["capacity_probe"]["qps"].as_f64().unwrap_or(0.0);
    assert!(
        (180.0..=201.0).contains(&capacity) && q <= 201.0 && q >= 0.97 * capacity,
        "qps {q}, probe {capacity}\n{out}\n{}",
        stderr(&o)
    );
    let step_re = |l: &str| {
        let (name, rest) = l.split_once(' ').unwrap();
        name.starts_with("linear/0.02/")
            && rest.starts_with("qps=")
            && rest.contains(", mean=")
            && rest.contains(", tiles=50:")
    };
    assert!(out.lines().any(step_re), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("===RESULT: linear target_latency=0.02 measured_latency=")),
        "{out}"
    );
    assert!(out.contains("'exponential': {}}"), "{out}");
    schema_check(&doc);
    assert_eq!(doc["final_results"]["linear"]["0.02"].as_f64(), Some(q));
    assert_eq!(doc["runtime"], "sim");
    // Every step keeps its histograms, for other HDR tools (the schema checks
    // their form, the library tests that they decode).
    let scan = doc["scan"]["linear"].as_object().unwrap();
    assert!(!scan.is_empty());
    for (name, step) in scan {
        for h in ["corrected", "uncorrected"] {
            let b64 = step["histograms"][h].as_str().unwrap_or_default();
            assert!(b64.starts_with("HISTF"), "{name} {h}: {step}");
        }
    }
    assert!(
        doc["capacity_probe"].is_null() || doc["capacity_probe"]["histograms"].is_object(),
        "{}",
        doc["capacity_probe"]
    );
    let best = &doc["results"]["linear"]["0.02"];
    // At most 1 % late by exact count; the histogram reads p99 to 3 digits.
    assert!(best["percentiles"]["99.0"].as_f64().unwrap() <= 0.02 * 1.001);
}

#[test]
fn mm1_search_agrees_with_queueing_theory() {
    let _guard = serial();
    // M/M/1, mean service 2 ms (mu = 500/s), target 50 ms: max lambda = mu - ln(100)/T = 407.9.
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("results.json");
    let o = run(&[
        "run",
        "--backend",
        "sim",
        "--sim-service-time",
        "exp:2ms",
        "--threads",
        "1",
        "--max-latency",
        "0.05",
        "--distributions",
        "exponential",
        "--time",
        "3",
        // The steps' time, capped: without it the search takes 56 s of steps in the
        // median and up to 118 s over 200 seeds of the truth harness (QUEUE=mm1fast
        // TIME=3 PROBE=1); with 40 s, 41 s and at most 44 s, its answers still within
        // −12.5 % and +14 % there (the bound below), since the budget ends on a pass.
        "--search-time",
        "40",
        "--warmup",
        "0",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let q = final_qps(&out, "exponential", "0.05");
    let theory = 500.0 - 100f64.ln() / 0.05;
    // Why this bound: the same queue and step sizes on the virtual clock (the same
    // search code, the probe drawn as it runs here; `QUEUE=mm1fast TIME=3` in the
    // truth harness) answer from −11 % to +15 % over 800 seeds. Before sitting 18 one
    // seed in 16 fell to the halving's pass near 250 and one in 270 stopped at the
    // capacity; CI caught the first (246). One real run sits in that spread; the
    // tight truth check is scripts/bench_search.sh with 10 s steps.
    assert!(
        q >= theory * 0.80 && q <= theory * 1.20,
        "qps {q}, theory {theory:.1}\n{out}"
    );
    // The probe's calls vary as an exponential law's do (cv ≈ 1): its capacity to
    // 1.5 % needs ~4,400 calls, more than the longest probe (2 × --time = 6 s) gets
    // at 500/s, so it runs those 6 s (to its last call's end) however fast the machine.
    let doc = read_json(&out_path);
    let probe = doc["capacity_probe"]["runtime"].as_f64().unwrap();
    assert!((5.9..7.0).contains(&probe), "the probe ran {probe} s");
}

#[test]
fn null_fixed_step_completes_every_planned_query() {
    let _guard = serial();
    let o = run(&[
        "fixed",
        "--backend",
        "null",
        "--qps",
        "20000",
        "--time",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let last: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(last["count"], 20000);
    assert_eq!(last["planned"], 20000);
    assert_eq!(last["errors"], 0);
    assert_eq!(last["offered_qps"], 20000.0);
    let qps = last["qps"].as_f64().unwrap();
    assert!((qps - 20000.0).abs() < 200.0, "achieved {qps}");
    // With --json the step line goes to stderr.
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l.starts_with("linear/fixed/20000 qps=")),
        "{err}"
    );
}

#[test]
fn throughput_reports_closed_loop_capacity() {
    let _guard = serial();
    let o = run(&[
        "throughput",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:2ms",
        "--threads",
        "2",
        "--time",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // With --json stdout is the JSON document alone and the line goes to stderr.
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(doc["qps"].as_f64().unwrap() > 0.0, "{doc}");
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.starts_with("Throughput: "))
        .expect("Throughput line");
    let x: f64 = line["Throughput: ".len()..]
        .trim_end_matches(" images/sec")
        .parse()
        .unwrap();
    // Two servers at 2 ms: at most 1000/s. One alone could not pass 500/s, so more
    // than 600/s shows both served; the margin is for a busy machine, where each
    // 2 ms wait overshoots by scheduler delay (893/s seen with one core kept busy).
    assert!((600.0..=1001.0).contains(&x), "{line}");
    let qps = doc["qps"].as_f64().unwrap();
    assert!((qps - x).abs() <= 0.01 * x, "line {x} vs JSON {qps}");
}

/// Issue 42: with `--json`, stdout is one JSON document and nothing else, so that
/// `loadgen fixed --json … | python3 -m json.tool` works; the human line is on stderr.
#[test]
fn json_stdout_is_one_json_document() {
    let _guard = serial();
    for (cmd, extra, human) in [
        (
            "fixed",
            &["--qps", "100", "--min-queries", "0"][..],
            "linear/fixed/100 qps=",
        ),
        ("throughput", &[][..], "Throughput: "),
    ] {
        let mut args = vec![
            cmd,
            "--backend",
            "sim",
            "--sim-service-time",
            "fixed:1ms",
            "--time",
            "0.2",
            "--warmup",
            "0",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        let out = stdout(&o);
        let doc: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{cmd}: stdout is not one JSON value ({e}): {out}"));
        assert!(doc.is_object(), "{cmd}: {doc}");
        assert!(doc["count"].as_u64().unwrap() > 0, "{cmd}: {doc}");
        let err = stderr(&o);
        assert!(err.lines().any(|l| l.starts_with(human)), "{cmd}: {err}");
    }
}

fn bad_usage(args: &[&str], expect: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "args {args:?}: {err}");
    assert!(err.contains(expect), "args {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn tuning_searches_each_target_on_the_configuration_that_serves_most() {
    // sim at a fixed 5 ms: one worker serves at most 200/s, three serve 600/s, and a
    // 20 ms target is met up to the capacity either way. The calibration must rank
    // 3x1 first, the search run on it only, and the answer exceed what 1x1 can serve.
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("results.json");
    let o = run(&[
        "run",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:5ms",
        "--configs",
        "1x1,3x1",
        "--max-latency",
        "0.02",
        "--distributions",
        "linear",
        "--time",
        "2",
        "--warmup",
        "0",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        err.contains("loadgen: linear 0.02: configuration 3x1 (predicted"),
        "{err}"
    );
    let q = final_qps(&out, "linear", "0.02");
    assert!(
        q > 200.0,
        "qps {q}: no more than one server's worth\n{out}\n{err}"
    );
    let doc = read_json(&out_path);
    schema_check(&doc);
    assert_eq!(doc["results"]["linear"]["0.02"]["config"]["name"], "3x1");
    let configs = doc["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 2);
    let one = configs.iter().find(|c| c["name"] == "1x1").unwrap();
    let three = configs.iter().find(|c| c["name"] == "3x1").unwrap();
    // Only the winner was searched.
    assert_eq!(three["measured"]["linear"]["0.02"].as_f64(), Some(q));
    assert!(one["measured"].as_object().unwrap().is_empty(), "{one}");
    let cap = |c: &Value| c["calibration"]["capacity"].as_f64().unwrap();
    assert!(cap(three) > 2.0 * cap(one), "{one} {three}");
    // Every step ran on the winner's three workers: more than 200/s offered.
    let steps = doc["scan"]["linear"].as_object().unwrap();
    assert!(steps.values().any(|s| s["qps"].as_f64().unwrap() > 200.0));
}

#[test]
fn a_batch_candidate_that_cannot_meet_any_target_is_left_out_after_its_probe() {
    // sim at a fixed 5 ms serves a batch of 4 in 20 ms: its floor is that call plus
    // the wait for the one session, 40 ms at 200 queries/s (more under load). Against
    // a 20 ms target that is over 1.5 × the target, so its lone queries are skipped;
    // with a 100 ms target among the run's it must be calibrated in full.
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("results.json");
    let args = |targets: &'static str| {
        vec![
            "run",
            "--backend",
            "sim",
            "--sim-service-time",
            "fixed:5ms",
            "--configs",
            "1x1,1x1x0x4",
            "--max-latency",
            targets,
            "--distributions",
            "linear",
            "--time",
            "1",
            "--warmup",
            "0",
            // What is checked is the calibration: short searches after it.
            "--search-time",
            "4",
            "--output",
            out_path.to_str().unwrap(),
        ]
    };
    let batch_entry = |doc: &Value| {
        doc["configurations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "1x1x0x4")
            .cloned()
            .unwrap()
    };

    let o = run(&args("0.02"));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        err.contains("loadgen: configuration 1x1x0x4 left out: a full batch and the wait for a session take "),
        "{err}"
    );
    let doc = read_json(&out_path);
    schema_check(&doc);
    let entry = batch_entry(&doc);
    assert!(entry["calibration"].is_null(), "{entry}");
    assert!(entry["error"]
        .as_str()
        .unwrap()
        .contains("cannot meet any target"));
    assert_eq!(doc["results"]["linear"]["0.02"]["config"]["name"], "1x1");

    let o = run(&args("0.02,0.1"));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    assert!(!err.contains("left out"), "{err}");
    let entry = batch_entry(&read_json(&out_path));
    assert!(
        entry["calibration"]["unloaded_p99"].as_f64() > Some(0.0),
        "{entry}"
    );
}

/// Lines a tuning child prints until `sentinel`, or all of them if it exits first.
fn lines_until(out: &mut impl BufRead, sentinel: &str) -> (Vec<String>, bool) {
    let mut seen = Vec::new();
    for line in out.lines().map_while(|l| l.ok()) {
        if line == sentinel {
            return (seen, true);
        }
        seen.push(line);
    }
    (seen, false)
}

/// A `run --tune-child` on `sim` at a fixed 5 ms, once it has said it is calibrated:
/// the child, its stdin and its stdout.
fn calibrated_child(
    configs: &str,
    targets: &str,
    out_path: &Path,
) -> (
    std::process::Child,
    std::process::ChildStdin,
    BufReader<std::process::ChildStdout>,
) {
    let mut child = loadgen()
        .args([
            "run",
            "--backend",
            "sim",
            "--sim-service-time",
            "fixed:5ms",
            "--configs",
            configs,
            "--max-latency",
            targets,
            "--time",
            "1",
            "--warmup",
            "0",
            "--tune-child",
            "--output",
        ])
        .arg(out_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (seen, ready) = lines_until(&mut out, "===LOADGEN_CHILD calibrated");
    assert!(ready, "the child ended before calibrating: {seen:?}");
    (child, stdin, out)
}

#[test]
fn a_tuning_child_searches_only_what_its_parent_asks_and_ends_with_its_stdin() {
    // A tuned TensorFlow run hosts its candidates in `run --tune-child` processes
    // (TF's threads are per process); the protocol is the same on `sim`. The child
    // calibrates, says so, searches each requested target on the requested
    // configuration, and writes its results and exits once stdin closes.
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("results.json");
    let (mut child, mut stdin, mut out) = calibrated_child("1x1,3x1", "0.02,0.05", &out_path);
    let doc = read_json(&out_path);
    let configs = doc["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 2, "{configs:?}");
    assert!(configs
        .iter()
        .all(|c| c["calibration"]["capacity"].as_f64() > Some(0.0)));
    // The child chooses nothing itself: 1x1 is searched because it was asked for.
    use std::io::Write;
    writeln!(stdin, "exponential 0.05 1x1").unwrap();
    let (seen, done) = lines_until(&mut out, "===LOADGEN_CHILD searched");
    assert!(done, "{seen:?}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with("===RESULT: exponential target_latency=0.05 ")),
        "{seen:?}"
    );
    drop(stdin);
    let rest: Vec<String> = out.lines().map_while(|l| l.ok()).collect();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{rest:?}\n{err}");
    assert!(!err.contains("configuration 3x1 (predicted"), "{err}");
    let doc = read_json(&out_path);
    schema_check(&doc);
    assert_eq!(
        doc["results"]["exponential"]["0.05"]["config"]["name"],
        "1x1"
    );
    // One worker at 5 ms serves at most 200/s.
    let q = doc["final_results"]["exponential"]["0.05"]
        .as_f64()
        .unwrap();
    assert!(q > 0.0 && q <= 200.0, "{q}");
    // Nothing else was searched.
    assert!(doc["results"]["linear"]
        .as_object()
        .is_none_or(|m| m.is_empty()));
    assert!(doc["results"]["exponential"]["0.02"].is_null(), "{doc}");
}

#[test]
fn a_tuning_child_refuses_a_request_outside_its_run() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("results.json");
    let (child, mut stdin, mut out) = calibrated_child("1x1", "0.05", &out_path);
    use std::io::Write;
    // A target this run was not given: refused in a sentence, nothing measured.
    writeln!(stdin, "linear 0.3 1x1").unwrap();
    let (seen, done) = lines_until(&mut out, "===LOADGEN_CHILD searched");
    assert!(!done, "{seen:?}");
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("\"linear 0.3 1x1\""), "{err}");
    let doc = read_json(&out_path);
    assert!(doc["scan"]["linear"]
        .as_object()
        .is_none_or(|m| m.is_empty()));
}

#[test]
fn bad_input_gets_one_sentence_and_exit_code_2() {
    let _guard = serial();
    bad_usage(
        &["run", "--backend", "sim", "--max-latency", "abc"],
        "--max-latency takes positive seconds, e.g. 0.05 (or a list: 0.01,0.05,0.1,0.2); got 'abc'",
    );
    bad_usage(
        &["run", "--backend", "sim", "--threads", "0"],
        "must be at least 1",
    );
    bad_usage(&["run", "--backend", "mxnet"], "unknown backend 'mxnet'");
    bad_usage(
        &["run", "--backend", "sim", "--configs", "2y1"],
        "--configs item '2y1' is not made of whole numbers",
    );
    bad_usage(
        &[
            "run",
            "--backend",
            "sim",
            "--configs",
            "2x1",
            "--threads",
            "2",
        ],
        "drop --threads",
    );
    bad_usage(
        &["run", "--backend", "sim", "--configs", "2x1", "--no-tune"],
        "drop one of them",
    );
    bad_usage(
        &["run", "--backend", "sim", "--sim-service-time", "gauss:5ms"],
        "is not a law",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("results.json");
    bad_usage(
        &["run", "--backend", "sim", "--output", out.to_str().unwrap()],
        "cannot write",
    );
    let o = run(&["run", "--backend", "sim", "--max-latency", "abc"]);
    assert_eq!(
        stderr(&o).trim().lines().count(),
        1,
        "one line: {}",
        stderr(&o)
    );
}

#[test]
fn sigint_after_the_first_target_exits_130_and_keeps_it() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out_path: PathBuf = dir.path().join("results.json");
    let mut child = loadgen()
        .args([
            "run",
            "--backend",
            "sim",
            "--sim-service-time",
            "fixed:2ms",
            "--threads",
            "1",
            "--max-latency",
            "0.02",
            "--distributions",
            "linear,exponential",
            "--time",
            "1",
            "--warmup",
            "0",
            "--output",
        ])
        .arg(&out_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    loop {
        let line = lines
            .next()
            .expect("output until the first RESULT")
            .unwrap();
        if line.starts_with("===RESULT:") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no RESULT line"
        );
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "rest of stdout: {rest:?}");
    assert!(
        !rest.iter().any(|l| l.starts_with("===FINAL_RESULT")),
        "{rest:?}"
    );
    let doc = read_json(&out_path);
    schema_check(&doc);
    assert_eq!(doc["interrupted"], true);
    assert!(
        doc["final_results"]["linear"]["0.02"].as_f64().unwrap() > 0.0,
        "{doc}"
    );
}

#[test]
fn a_step_shorter_than_a_service_time_still_reports_real_latencies() {
    // `fixed --time 0.001` on a 1 ms server: the mean latency is at least the
    // service time (it once read 1 ns).
    let _g = serial();
    let o = run(&[
        "fixed",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:1ms",
        "--qps",
        "100",
        "--time",
        "0.001",
        "--warmup",
        "0",
        "--json",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let doc: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    // At most the 100 minimum queries; the step's time cap (1 s at least) may cut it.
    let count = doc["count"].as_u64().unwrap();
    assert!((1..=100).contains(&count), "count {count}");
    let mean = doc["mean"].as_f64().unwrap();
    assert!(mean >= 0.001, "mean {mean}");
}

#[test]
fn a_rate_the_generator_cannot_release_stops_at_the_time_cap_and_says_so() {
    // 10^6 queries/s for 0.4 s into one 1 ms server: the ring of waiting queries fills
    // and the issuer cannot release the rest; issuing ends at 4 × --time instead of
    // running until every planned query is out, and the drain is bounded too.
    let _g = serial();
    let started = std::time::Instant::now();
    let o = run(&[
        "fixed",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:1ms",
        "--threads",
        "1",
        "--qps",
        "1000000",
        "--time",
        "0.4",
        "--warmup",
        "0",
        "--quiet",
    ]);
    assert!(
        stderr(&o).contains("time cap"),
        "{:?}: {}",
        o.status,
        stderr(&o)
    );
    // 1.6 s of issuing plus the 10 s drain bound; nowhere near the hang it once was.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// Issue 43: `loadgen latency` runs one query at a time for a number of queries: a
/// fixed 5 ms server answers each in at least 5 ms (the sim waits until its drawn
/// instant), so min ≥ 5 ms, 1/mean ≤ 200/s, and the early-stopping p90 bounds the
/// p90 from above without passing the max.
#[test]
fn latency_runs_one_query_at_a_time() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("latency.json");
    let o = run(&[
        "latency",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:5ms",
        "--queries",
        "100",
        "--warmup",
        "0",
        "--json",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_eq!(doc["count"], 100, "{doc}");
    let f = |k: &str| doc[k].as_f64().unwrap();
    // HDR keeps 3 significant digits: a value reads up to 0.1 % below itself.
    assert!(f("min") >= 0.005 * 0.999, "{doc}");
    assert!(f("min") <= f("median") && f("median") <= f("p90") && f("p90") <= f("max"));
    assert!(f("per_second") <= 200.0 && f("per_second") > 0.0, "{doc}");
    let est = doc["p90_early_stopping"]["value"]
        .as_f64()
        .expect("100 queries give one");
    assert!(est >= f("p90") && est <= f("max"), "{doc}");
    assert!(stderr(&o)
        .lines()
        .any(|l| l.starts_with("Latency: count=100, min=")));
    let file = read_json(&out);
    assert_eq!(file["latency"]["count"], 100);
    assert_eq!(file["runtime"], "sim");
    for (args, words) in [
        (vec!["--threads", "2"], "one query at a time"),
        (vec!["--queries", "0"], "--queries"),
        // A simulated server has no operations to profile: refused before measuring.
        (
            vec!["--op-profile"],
            "--op-profile reads a runtime's own profiler",
        ),
        (
            vec!["--requests", "2"],
            "--requests applies to --backend openvino",
        ),
        (vec!["--requests", "0"], "--requests"),
    ] {
        let mut all = vec!["latency", "--backend", "sim", "--warmup", "0"];
        all.extend(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(words), "{all:?}: {}", stderr(&o));
    }
    let o = run(&[
        "throughput",
        "--backend",
        "null",
        "--op-profile",
        "--time",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--backend null") && !stderr(&o).contains("Throughput:"),
        "{}",
        stderr(&o)
    );
    // Placement (issue 44): what does not exist is named, before measuring.
    for (args, words) in [
        (vec!["--cores", "99"], "CPU(s) 99 are not available"),
        (vec!["--cores", "1-0"], "is not a CPU list"),
        (
            vec!["--socket-id", "9"],
            "--socket-id 9: this machine has NUMA node(s)",
        ),
    ] {
        let mut all = vec!["latency", "--backend", "sim", "--warmup", "0"];
        all.extend(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(words), "{all:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("Latency:"), "{}", stderr(&o));
    }
    // Precision (issue 44): refused where the backend cannot give it, before loading
    // anything (so these need no runtime library).
    for (args, words) in [
        (
            vec!["--backend", "tf", "--precision", "int8"],
            "--precision int8 runs on --backend onnxruntime or openvino",
        ),
        (
            vec!["--backend", "null", "--precision", "bf16"],
            "--precision applies to real runtimes",
        ),
        (
            vec!["--backend", "onnxruntime", "--precision", "bf16"],
            "--precision bf16 runs on --backend openvino or tf",
        ),
        (
            vec!["--backend", "sim", "--precision", "int8"],
            "--precision applies to real runtimes",
        ),
        (
            vec!["--backend", "openvino", "--precision", "fp8"],
            "unknown --precision 'fp8'",
        ),
    ] {
        let mut all = vec!["throughput", "--time", "1"];
        all.extend(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(words), "{all:?}: {}", stderr(&o));
    }
    // Node 0 exists on every Linux machine: its CPUs, memory bound to it.
    let o = run(&[
        "latency",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:1ms",
        "--queries",
        "5",
        "--warmup",
        "0",
        "--socket-id",
        "0",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = read_json(&out);
    assert_eq!(file["settings"]["placement"]["node"], 0, "{file}");
    assert_eq!(file["settings"]["placement"]["memory_policy"], "bind");
}
