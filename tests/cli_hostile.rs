//! Hostile input, special files and signals (issue 9, docs/CONTRACT.md §9): the built `loadgen`
//! binary against a table of cases. Each case runs in its own temporary folder holding
//! a FIFO, a device node (when we may make one), a socket, a folder, regular files and
//! symlinks, and asserts the exit code, a one-line stderr, and the state of every file
//! afterwards (special files stay special, results.json is valid against the schema).
//! Signals are sent to real child processes. Nothing here depends on timing beyond
//! generous time-outs that only catch hangs.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A run that takes longer than this hangs.
const HANG: Duration = Duration::from_secs(40);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Waits for `child`, killing it (and failing) when it hangs.
fn wait(mut child: Child, what: &str) -> Ran {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {HANG:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// A running child whose stdout and stderr are read line by line as they come, so that
/// a test waits for the line of the stage it means to interrupt instead of sleeping.
struct Watched {
    child: Child,
    /// Every line of either stream, as it arrives.
    lines: mpsc::Receiver<String>,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

impl Watched {
    fn spawn(cmd: &mut Command) -> Watched {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let read = |stream: Box<dyn Read + Send>, tx: mpsc::Sender<String>| {
            std::thread::spawn(move || {
                let mut all = String::new();
                let mut r = BufReader::new(stream);
                let mut buf = Vec::new();
                while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    all.push_str(&line);
                    let _ = tx.send(line.trim_end().to_string());
                    buf.clear();
                }
                all
            })
        };
        let out = read(Box::new(child.stdout.take().unwrap()), tx.clone());
        let err = read(Box::new(child.stderr.take().unwrap()), tx);
        Watched {
            child,
            lines,
            out,
            err,
        }
    }

    /// Waits for a line starting with `prefix` on either stream; fails the test when
    /// none comes within [`HANG`] or the child closes its output first.
    fn wait_for(&mut self, prefix: &str) {
        let deadline = Instant::now() + HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return,
                Ok(_) => {}
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("no line starting with {prefix:?} ({e})");
                }
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the child to end (killing it, and failing, when it hangs).
    fn finish(mut self, what: &str) -> Ran {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > HANG {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{what}: still running after {HANG:?} (a hang)");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ran {
            code: status.code(),
            stdout: self.out.join().unwrap(),
            stderr: self.err.join().unwrap(),
        }
    }
}

fn schema_check(doc: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/results.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "schema: {}", errors.join("\n"));
}

fn read_results(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", p.display()));
    schema_check(&doc);
    doc
}

// ------------------------------------------------------------------ the fixture folder

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path in our own temporary folder.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// A character device equal to /dev/null (1, 3) inside our folder; false when this user
/// may not make device nodes (then the device cases check a FIFO only).
fn mknod_null(p: &Path) -> bool {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path in our own temporary folder.
    unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) == 0 }
}

/// The fixture: special files, regular files, links, a tiny dataset folder, scenarios.
fn fixture(d: &Path) -> bool {
    mkfifo(&d.join("fifo"));
    let has_dev = mknod_null(&d.join("dev"));
    let _ = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    std::fs::create_dir(d.join("dir")).unwrap();
    std::fs::write(d.join("file"), "x").unwrap();
    std::fs::write(d.join("target.json"), "old").unwrap();
    std::os::unix::fs::symlink(d.join("fifo"), d.join("link_to_fifo")).unwrap();
    std::os::unix::fs::symlink("target.json", d.join("link_to_file")).unwrap();
    std::os::unix::fs::symlink("made.json", d.join("dangling")).unwrap();
    std::fs::create_dir(d.join("dump_fifo")).unwrap();
    mkfifo(&d.join("dump_fifo/inputs.npy"));
    let scen = |name: &str, body: &str| std::fs::write(d.join(name), body).unwrap();
    scen("s_time.toml", "time = 1e20\n");
    scen("s_empty.toml", "max_latency = []\n");
    scen("s_dup.toml", "max_latency = [0.1, 0.1]\n");
    scen("s_huge.toml", "max_latency = [1e17]\n");
    scen("s_threads.toml", "threads = 100000\n");
    scen("s_minq.toml", "min_queries = 100000000000\n");
    scen("s_count.toml", "count = 0\n");
    scen("s_warmup.toml", "warmup = -1\n");
    scen("s_batch.toml", "batch_size = 100000\n");
    scen("s_key.toml", "tme = 3\n");
    scen("s_nan.toml", "time = nan\n");
    std::fs::write(d.join("not_a_lib.so"), "not a library").unwrap();
    has_dev
}

// ------------------------------------------------------------------ the table

/// What a file must be after the case.
#[derive(Clone, Copy, Debug)]
enum After {
    Fifo,
    CharDev,
    Socket,
    Dir,
    /// A regular file with exactly this text.
    Text(&'static str),
    /// A symlink (not replaced by a file).
    Link,
    /// Absent.
    Absent,
}

struct Case {
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    code: i32,
    /// stderr (one line) contains this.
    says: &'static str,
    after: &'static [(&'static str, After)],
}

const fn c(args: &'static [&'static str], says: &'static str) -> Case {
    Case {
        args,
        env: &[],
        code: 2,
        says,
        after: &[],
    }
}

const fn cf(
    args: &'static [&'static str],
    says: &'static str,
    after: &'static [(&'static str, After)],
) -> Case {
    Case {
        args,
        env: &[],
        code: 2,
        says,
        after,
    }
}

const fn ce(
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    says: &'static str,
) -> Case {
    Case {
        args,
        env,
        code: 2,
        says,
        after: &[],
    }
}

/// Every special file of the fixture, as it must stay.
const SPECIAL: &[(&str, After)] = &[
    ("fifo", After::Fifo),
    ("dev", After::CharDev),
    ("sock", After::Socket),
    ("dir", After::Dir),
    ("file", After::Text("x")),
    ("target.json", After::Text("old")),
    ("link_to_fifo", After::Link),
];

const SIM: &str = "--backend=sim";

/// `{d}` in an argument or value is the case's folder.
const CASES: &[Case] = &[
    // Numbers out of range: flags.
    c(&["run", SIM, "--time", "1e20"], "limit of 86400 s"),
    c(&["run", SIM, "--time", "86401"], "limit of 86400 s"),
    c(&["run", SIM, "--time", "0"], "positive"),
    c(&["run", SIM, "--time=-1"], "positive"),
    c(
        &["run", SIM, "--time", "nan"],
        "--time takes positive seconds",
    ),
    c(
        &["run", SIM, "--time", "inf"],
        "--time takes positive seconds",
    ),
    c(
        &["run", SIM, "--time", "-1"],
        "--time takes positive seconds",
    ),
    c(&["run", SIM, "--warmup", "1e20"], "limit of 86400 s"),
    c(
        &["run", SIM, "--warmup=-1"],
        "--warmup takes zero or more seconds",
    ),
    c(
        &["run", SIM, "--max-latency", "1e20"],
        "largest target of an hour",
    ),
    c(
        &["run", SIM, "--max-latency", "1e18"],
        "largest target of an hour",
    ),
    c(
        &["run", SIM, "--max-latency", "1e17"],
        "largest target of an hour",
    ),
    c(
        &["run", SIM, "--max-latency", "3601"],
        "largest target of an hour",
    ),
    c(&["run", SIM, "--max-latency", "1e-9"], "smallest target"),
    c(&["run", SIM, "--max-latency", "0.1,0.1"], "twice"),
    // A bad value is named before a missing backend.
    c(&["run", "--max-latency", "-inf"], "--max-latency takes"),
    c(&["run", SIM, "--max-latency", "0.050,5e-2"], "twice"),
    c(&["run", SIM, "--max-latency", ""], "at least one latency"),
    c(&["run", SIM, "--max-latency", ",,"], "at least one latency"),
    c(
        &["run", SIM, "--max-latency", "0"],
        "--max-latency takes positive seconds",
    ),
    c(
        &["run", SIM, "--max-latency", "nan"],
        "--max-latency takes positive seconds",
    ),
    c(
        &["run", SIM, "--max-latency", "-inf"],
        "--max-latency takes positive seconds, e.g. 0.05",
    ),
    c(&["run", SIM, "--threads", "0"], "must be at least 1"),
    c(&["run", SIM, "--threads", "100000"], "workers (64 per core"),
    c(&["run", SIM, "--threads", "1025"], "workers (64 per core"),
    c(&["run", SIM, "--threads", "1e3"], "takes a whole number"),
    c(&["run", SIM, "--threads=-3"], "takes a whole number"),
    c(
        &["throughput", SIM, "--intra-threads", "100000"],
        "threads per session",
    ),
    c(
        &["throughput", SIM, "--inter-threads", "100000"],
        "threads per session",
    ),
    c(&["run", SIM, "--intra-threads", "0"], "must be at least 1"),
    c(
        &["run", SIM, "--min-queries", "100000000000"],
        "limit of 10000000",
    ),
    c(&["run", SIM, "--min-queries=-1"], "takes a whole number"),
    c(&["run", SIM, "--count", "0"], "must be at least 1"),
    c(
        &["run", SIM, "--count", "100000000"],
        "limit of 10000000 items",
    ),
    c(&["run", SIM, "--batch_size", "0"], "must be at least 1"),
    c(&["run", SIM, "--batch-size", "100000"], "queries per batch"),
    c(
        &["fixed", SIM, "--qps", "1e12"],
        "limit of 10000000 queries/s",
    ),
    c(&["fixed", SIM, "--qps", "0"], "positive number of queries"),
    c(
        &["fixed", SIM, "--qps", "nan"],
        "positive number of queries",
    ),
    c(
        &["fixed", SIM, "--qps", "10", "--time", "1e20"],
        "limit of 86400 s",
    ),
    c(
        &["fixed", SIM, "--qps", "10", "--max-latency", "1e20"],
        "an hour",
    ),
    c(
        &["fixed", SIM, "--qps", "10", "--distribution", "poisson"],
        "unknown distribution",
    ),
    // A rate whose next query falls beyond the step's time cap measures nothing.
    c(
        &["fixed", "--backend=null", "--qps", "1e-9", "--time", "1"],
        "--qps 1e-9 is below 0.25 queries/s",
    ),
    c(
        &["fixed", SIM, "--qps", "0.9", "--time", "0.001"],
        "--qps 0.9 is below 1 queries/s",
    ),
    c(&["throughput", SIM, "--time", "1e20"], "limit of 86400 s"),
    c(
        &["run", SIM, "--sim-service-time", "fixed:1e20s"],
        "not a duration",
    ),
    c(
        &["run", SIM, "--sim-service-time", "exp:3601s"],
        "limit of an hour",
    ),
    c(
        &["run", SIM, "--sim-service-time", "uniform:1ms:4000s"],
        "limit of an hour",
    ),
    c(
        &["run", SIM, "--sim-service-time", "lognormal:5ms:100"],
        "sigma",
    ),
    c(
        &["run", SIM, "--sim-service-time", "uniform:8ms:2ms"],
        "lower bound",
    ),
    c(
        &["run", "--backend=null", "--sim-service-time", "fixed:1ms"],
        "only applies",
    ),
    c(&["run", SIM, "--seed=-1"], "--seed"),
    c(&["run", SIM, "--seed", "18446744073709551616"], "--seed"),
    c(&["run", SIM, "--cache", "2"], "--cache takes 0 or 1"),
    c(&["run", SIM, "--tme", "3"], "unexpected argument '--tme'"),
    c(&["run"], "say which backend"),
    // Numbers out of range: scenario files.
    c(
        &["run", SIM, "--scenario", "{d}/s_time.toml"],
        "at most a day",
    ),
    c(
        &["run", SIM, "--scenario", "{d}/s_nan.toml"],
        "at most a day",
    ),
    c(
        &["run", SIM, "--scenario", "{d}/s_empty.toml"],
        "at least one latency",
    ),
    c(&["run", SIM, "--scenario", "{d}/s_dup.toml"], "twice"),
    c(&["run", SIM, "--scenario", "{d}/s_huge.toml"], "an hour"),
    c(
        &["run", SIM, "--scenario", "{d}/s_threads.toml"],
        "threads 100000 is out of range",
    ),
    c(
        &["run", SIM, "--scenario", "{d}/s_minq.toml"],
        "min_queries",
    ),
    c(
        &["run", SIM, "--scenario", "{d}/s_count.toml"],
        "count 0 is out of range",
    ),
    c(&["run", SIM, "--scenario", "{d}/s_warmup.toml"], "warmup"),
    c(
        &["run", SIM, "--scenario", "{d}/s_batch.toml"],
        "batch_size 100000",
    ),
    c(&["run", SIM, "--scenario", "{d}/s_key.toml"], "tme"),
    cf(
        &["run", SIM, "--scenario", "{d}/fifo"],
        "not a regular file",
        SPECIAL,
    ),
    c(&["run", SIM, "--scenario", "{d}/dir"], "not a regular file"),
    c(
        &["run", SIM, "--scenario", "{d}/nope.toml"],
        "cannot read scenario file",
    ),
    // Names and conflicts.
    c(
        &[
            "run",
            "--profile",
            "resnet50-tf",
            "--backend",
            "onnxruntime",
        ],
        "is for the tensorflow backend",
    ),
    c(
        &[
            "run",
            "--profile",
            "resnet50-onnxruntime",
            "--backend",
            "tf",
        ],
        "is for the onnxruntime backend",
    ),
    c(&["run", "--profile", "nope"], "unknown profile 'nope'"),
    c(&["run", "--backend", "mxnet"], "unknown backend 'mxnet'"),
    c(&["run", SIM, "--device", "tpu"], "unknown device"),
    c(
        &["run", SIM, "--data-format", "NCWH"],
        "unknown --data-format",
    ),
    c(
        &["run", SIM, "--distributions", "poisson"],
        "unknown distribution",
    ),
    c(
        &["run", SIM, "--distributions", ","],
        "needs linear, exponential",
    ),
    c(&["run", SIM, "--dataset-list", "{d}/dir"], "is a folder"),
    c(
        &["run", SIM, "--dataset-path", "{d}/file"],
        "is not a folder",
    ),
    c(
        &["run", SIM, "--dataset-path", "{d}/nope"],
        "is not a folder",
    ),
    cf(
        &["run", "--backend", "onnxruntime", "--model", "{d}/fifo"],
        "not a regular file",
        SPECIAL,
    ),
    // Output files that are not regular files: refused, left as they were.
    cf(&["run", SIM, "--output", "{d}/fifo"], "FIFO", SPECIAL),
    cf(&["run", SIM, "--output", "{d}/dev"], "device", SPECIAL),
    cf(&["run", SIM, "--output", "{d}/sock"], "socket", SPECIAL),
    cf(&["run", SIM, "--output", "{d}/dir"], "folder", SPECIAL),
    cf(
        &["run", SIM, "--output", "{d}/link_to_fifo"],
        "FIFO",
        SPECIAL,
    ),
    cf(
        &["run", SIM, "--output", "{d}/file/results.json"],
        "is a file, not a folder",
        SPECIAL,
    ),
    cf(
        &["run", SIM, "--output", "{d}/file/a/b/results.json"],
        "is a file, not a folder",
        SPECIAL,
    ),
    c(&["run", SIM, "--output", ""], "--output"),
    c(
        &["run", SIM, "--output", "/proc/self/fd/1"],
        "not a regular file",
    ),
    // --dump: checked before the pass (and before loading any runtime).
    cf(
        &[
            "accuracy",
            "--backend",
            "onnxruntime",
            "--dataset-path",
            "{d}/dir",
            "--dump",
            "{d}/fifo",
        ],
        "FIFO",
        SPECIAL,
    ),
    cf(
        &[
            "accuracy",
            "--backend",
            "onnxruntime",
            "--dataset-path",
            "{d}/dir",
            "--dump",
            "{d}/file",
        ],
        "it is a file, not a folder",
        SPECIAL,
    ),
    cf(
        &[
            "accuracy",
            "--backend",
            "onnxruntime",
            "--dataset-path",
            "{d}/dir",
            "--dump",
            "{d}/file/sub",
        ],
        "is a file, not a folder",
        SPECIAL,
    ),
    cf(
        &[
            "accuracy",
            "--backend",
            "onnxruntime",
            "--dataset-path",
            "{d}/dir",
            "--dump",
            "{d}/dump_fifo",
        ],
        "inputs.npy",
        &[("dump_fifo/inputs.npy", After::Fifo)],
    ),
    c(
        &["accuracy", SIM, "--dataset-path", "{d}/dir"],
        "needs a model",
    ),
    // A runtime library that fails its checks: one sentence, exit 2, never a crash.
    ce(
        &[
            "throughput",
            "--backend",
            "onnxruntime",
            "--model",
            "{d}/file",
        ],
        &[("ORT_DYLIB_PATH", "{d}/not_a_lib.so")],
        "could not be loaded as a shared library",
    ),
    ce(
        &[
            "throughput",
            "--backend",
            "onnxruntime",
            "--model",
            "{d}/file",
        ],
        &[("ORT_DYLIB_PATH", "{d}/dir")],
        "no such file",
    ),
    ce(
        &[
            "throughput",
            "--backend",
            "onnxruntime",
            "--model",
            "{d}/file",
        ],
        &[("ORT_DYLIB_PATH", "{d}/nope.so")],
        "no such file",
    ),
];

fn fill(s: &str, d: &Path) -> String {
    s.replace("{d}", &d.to_string_lossy())
}

fn check_after(d: &Path, name: &str, want: After, has_dev: bool, ctx: &str) {
    let p = d.join(name);
    let m = std::fs::symlink_metadata(&p);
    let ft = m.as_ref().map(|m| m.file_type());
    let ok = match want {
        After::Fifo => ft.is_ok_and(|t| t.is_fifo()),
        After::CharDev => !has_dev || ft.is_ok_and(|t| t.is_char_device()),
        After::Socket => ft.is_ok_and(|t| t.is_socket()),
        After::Dir => ft.is_ok_and(|t| t.is_dir()),
        After::Link => ft.is_ok_and(|t| t.is_symlink()),
        After::Absent => m.is_err(),
        After::Text(t) => {
            ft.is_ok_and(|f| f.is_file()) && std::fs::read_to_string(&p).unwrap() == t
        }
    };
    assert!(ok, "{ctx}: {name} should be {want:?}, is {ft:?}");
}

/// Runs one case in a fresh fixture folder and checks everything it promises.
fn run_case(i: usize, case: &Case) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let has_dev = fixture(d);
    let args: Vec<String> = case.args.iter().map(|a| fill(a, d)).collect();
    let ctx = format!("case {i} {args:?}");
    if args.iter().any(|a| a.ends_with("/dev")) && !has_dev {
        eprintln!("{ctx}: skipped (cannot make a device node here)");
        return;
    }
    let mut cmd = loadgen();
    cmd.args(&args)
        .current_dir(d)
        .env_remove("ORT_DYLIB_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in case.env {
        cmd.env(k, fill(v, d));
    }
    let r = wait(cmd.spawn().unwrap(), &ctx);
    let err = r.stderr.trim();
    assert_eq!(r.code, Some(case.code), "{ctx}: stderr {err}");
    assert!(
        err.contains(case.says),
        "{ctx}: expected '{}' in: {err}",
        case.says
    );
    assert_eq!(err.lines().count(), 1, "{ctx}: one line: {err}");
    assert!(err.starts_with("loadgen: "), "{ctx}: {err}");
    assert!(!err.contains("panicked"), "{ctx}: {err}");
    assert!(r.stdout.is_empty(), "{ctx}: stdout {}", r.stdout);
    for (name, want) in case.after {
        check_after(d, name, *want, has_dev, &ctx);
    }
    // Nothing measured, so nothing written where the default output would go.
    check_after(d, "out/results.json", After::Absent, has_dev, &ctx);
}

#[test]
fn the_table_of_hostile_inputs() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    // Two threads: the cases are short and independent.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = CASES.get(i) else { return };
                // Every case runs; the failures are listed together at the end.
                if std::panic::catch_unwind(|| run_case(i, case)).is_err() {
                    failed.lock().unwrap().push(i);
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "failed cases (see above): {failed:?}");
}

/// Runs loadgen with `args` in the project folder (its scenario file) and returns
/// its exit code and stderr, checking that nothing went to stdout.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let r = wait(
        loadgen()
            .args(args)
            .current_dir(root())
            .env_remove("ORT_DYLIB_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        &format!(
            "{:?}",
            args.iter()
                .map(|a| &a[..a.len().min(40)])
                .collect::<Vec<_>>()
        ),
    );
    assert!(r.stdout.is_empty(), "stdout {}", r.stdout);
    (r.code, r.stderr)
}

/// Issue 41: `--max-latency -inf` was an unknown argument `-i`. Every flag that takes
/// a number (or a list or law of them) hands a negative-looking value to its own
/// parser, which names the flag and the value in one sentence.
#[test]
fn negative_looking_values_are_bad_values_of_their_own_flag() {
    const FLAGS: &[(&[&str], &str)] = &[
        (&["run", SIM], "--batch_size"),
        (&["run", SIM], "--batch-size"),
        (&["run", SIM], "--threads"),
        (&["run", SIM], "--intra-threads"),
        (&["run", SIM], "--inter-threads"),
        (&["run", SIM], "--count"),
        (&["run", SIM], "--cache"),
        (&["run", SIM], "--seed"),
        (&["run", SIM], "--confidence"),
        (&["run", SIM], "--connections"),
        (&["run", SIM], "--concurrency"),
        (&["run", SIM], "--ready-timeout"),
        (&["run", SIM], "--request-timeout"),
        (&["run", SIM], "--io-threads"),
        (&["run", SIM], "--warmup"),
        (&["run", SIM], "--time"),
        (&["run", SIM], "--min-queries"),
        (&["run", SIM], "--search-time"),
        (&["run", SIM], "--max-latency"),
        (&["run", SIM], "--configs"),
        (&["run", SIM], "--sim-service-time"),
        (&["fixed", SIM], "--qps"),
        (&["fixed", SIM, "--qps", "10"], "--time"),
        (&["fixed", SIM, "--qps", "10"], "--max-latency"),
        (&["fixed", SIM, "--qps", "10"], "--min-queries"),
        (&["throughput", SIM], "--time"),
    ];
    for &(before, flag) in FLAGS {
        for v in ["-inf", "-1", "-0.5", "-1e3", "-nan"] {
            let mut args = before.to_vec();
            args.extend([flag, v]);
            let (code, err) = refused(&args);
            let err = err.trim();
            let ctx = format!("{args:?}");
            assert_eq!(code, Some(2), "{ctx}: {err}");
            assert_eq!(err.lines().count(), 1, "{ctx}: {err}");
            // The flag's own name (an alias reports the flag's main spelling).
            let name = if flag == "--batch-size" {
                "--batch_size"
            } else {
                flag
            };
            assert!(
                err.starts_with(&format!("loadgen: {name} ")),
                "{ctx}: {err}"
            );
            assert!(err.contains(&format!("'{v}'")), "{ctx}: {err}");
            assert!(!err.contains("unexpected argument"), "{ctx}: {err}");
        }
    }
}

/// Issue 41: a message that echoes a user's value quotes at most a prefix of it.
#[test]
fn a_50_kb_value_gives_a_short_message() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m".repeat(50_000));
    let model = model.to_string_lossy().into_owned();
    let nines = "9".repeat(50_000);
    let xs = "x".repeat(50_000);
    let flag = format!("--{xs}");
    let cases: &[&[&str]] = &[
        &["run", "--backend", "onnxruntime", "--model", &model],
        &["throughput", "--backend", "tf", "--model", &model],
        &["run", SIM, "--max-latency", &xs],
        &["run", SIM, "--max-latency", &nines],
        &["fixed", SIM, "--qps", "10", "--max-latency", &xs],
        &["run", SIM, "--time", &nines],
        &["fixed", SIM, "--qps", &xs],
        &["run", SIM, &flag],
        &["run", SIM, &format!("{flag}=1")],
        &[&xs],
        &["run", "--profile", &xs],
        &["run", "--backend", &xs],
        &["run", SIM, "--device", &xs],
        &["run", SIM, "--data-format", &xs],
        &["run", SIM, "--distributions", &xs],
        &["run", SIM, "--configs", &xs],
        &["run", SIM, "--sim-service-time", &xs],
        &[
            "run",
            SIM,
            "--sim-service-time",
            &format!("uniform:{xs}:{xs}"),
        ],
        &["run", "--max-latency", &xs],
        &["run", SIM, "--dataset-path", &model],
        &["fixed", SIM, "--qps", "10", "--distribution", &xs],
    ];
    for args in cases {
        let (code, err) = refused(args);
        let ctx = format!(
            "{:?}",
            args.iter()
                .map(|a| &a[..a.len().min(30)])
                .collect::<Vec<_>>()
        );
        assert_eq!(code, Some(2), "{ctx}: {}", &err[..err.len().min(400)]);
        assert!(
            err.len() < 300,
            "{ctx}: {} bytes: {}",
            err.len(),
            &err[..err.len().min(400)]
        );
        assert!(err.contains("bytes in all)"), "{ctx}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{ctx}: {err}");
    }
}

/// Issue 41: a step in which no query finished (every request still at a slow server
/// when the step stopped, certain of its failure) printed the dropped queries' ages as
/// its latency percentiles, as small as the gap between a send and the stop, and
/// zeros as its uncorrected ones. Its step line now says that no query finished.
#[test]
fn a_step_in_which_no_query_finished_says_so() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut slow = loadgen_testkit::TestModel::identity("slow", &[16]);
    // No answer comes within a second; the step stops on its first query older than
    // its 100 ms target. (At a 10 ms target the generator's tolerance is 2.5 ms, and a
    // loaded 2-core machine once held the issuer back 3.7 ms: the step then read as
    // spoiled by the generator, which is right, but not what this test is about. A
    // 25-ms tolerance takes several lost time slices in a row.)
    slow.delay = Some(Duration::from_secs(1));
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = rt
        .block_on(loadgen_testkit::V2Server::start(vec![slow], any))
        .unwrap();
    let url = format!("http://{}", server.http);
    let r = wait(
        loadgen()
            .args(["fixed", "--backend", "kserve", "--url", &url])
            .args(["--model-name", "slow", "--qps", "200", "--time", "0.05"])
            .args([
                "--max-latency",
                "0.1",
                "--min-queries",
                "0",
                "--warmup",
                "0",
            ])
            .args(["--quiet", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        "a step with no answer",
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // With --json stdout is the JSON document alone; the step line is on stderr.
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("linear/0.1/200 qps="))
        .unwrap_or_default();
    assert!(
        line.starts_with("linear/0.1/200 qps=0.00, no query finished: ")
            && line.ends_with("dropped unanswered when the step stopped"),
        "{}",
        r.stderr
    );
    let step: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(step["count"], 0, "{step}");
    assert_eq!(step["verdict"], "too_many_late", "{step}");
    assert!(step["percentiles_uncorrected"].is_null(), "{step}");
    assert_eq!(step["percentiles_include_abandoned"], true, "{step}");
    let root: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/results.schema.json")).unwrap(),
    )
    .unwrap();
    let schema =
        serde_json::json!({"definitions": root["definitions"], "$ref": "#/definitions/step"});
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&step), "{step}");
}

// ------------------------------------------------------------------ real runs

/// A short sim run: one 2 ms server, one or two targets, one-second steps.
fn sim_run(out: &Path, targets: &str) -> Command {
    let mut cmd = loadgen();
    cmd.args([
        "run",
        "--backend",
        "sim",
        "--sim-service-time",
        "fixed:2ms",
        "--threads",
        "1",
        "--max-latency",
        targets,
        "--distributions",
        "linear,exponential",
        "--time",
        "1",
        "--warmup",
        "0",
        "--min-queries",
        "20",
        "--quiet",
        "--output",
    ])
    .arg(out)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_symlinked_output_is_followed_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("target.json"), "old").unwrap();
    std::os::unix::fs::symlink("target.json", d.join("link.json")).unwrap();
    std::os::unix::fs::symlink("made.json", d.join("dangling.json")).unwrap();
    for (link, target) in [("link.json", "target.json"), ("dangling.json", "made.json")] {
        // One short search: what is checked is where its results go.
        let mut run = sim_run(&d.join(link), "0.05");
        run.args(["--distributions", "linear", "--search-time", "4"]);
        let r = wait(run.spawn().unwrap(), "symlinked output");
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let m = std::fs::symlink_metadata(d.join(link)).unwrap();
        assert!(m.file_type().is_symlink(), "{link} was replaced");
        let doc = read_results(&d.join(target));
        assert!(doc["final_results"]["linear"]["0.05"].as_f64().unwrap() > 0.0);
    }
}

/// Starts a sim run, waits for its first `===RESULT` line, sends `signals` (each after
/// the one before has been acknowledged on stderr), and returns the exit code and the
/// stdout lines after that first result.
fn signal_after_first_result(out: &Path, signals: &[i32]) -> (Option<i32>, Vec<String>) {
    let mut child = Watched::spawn(&mut sim_run(out, "0.02,0.05"));
    child.wait_for("===RESULT:");
    for (k, &sig) in signals.iter().enumerate() {
        if k > 0 {
            child.wait_for("loadgen: interrupted (");
        }
        child.signal(sig);
    }
    let r = child.finish("signalled sim run");
    let rest = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("===RESULT:"))
        .skip(1)
        .map(str::to_string)
        .collect();
    (r.code, rest)
}

#[test]
fn sigterm_and_sighup_write_interrupted_results_with_their_exit_codes() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("results.json");
        let (got, rest) = signal_after_first_result(&out, &[sig]);
        assert_eq!(got, Some(code), "signal {sig}: {rest:?}");
        assert!(!rest.iter().any(|l| l.starts_with("===FINAL_RESULT")));
        let doc = read_results(&out);
        assert_eq!(doc["interrupted"], true, "{doc}");
        assert!(doc["final_results"]["linear"]["0.02"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn a_second_signal_never_leaves_a_truncated_results_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results.json");
    let (got, _) = signal_after_first_result(&out, &[libc::SIGINT, libc::SIGINT]);
    assert_eq!(got, Some(130));
    // The file written after the first target, or the interrupted one: whole either way.
    let doc = read_results(&out);
    assert!(doc["final_results"]["linear"]["0.02"].as_f64().unwrap() > 0.0);
}

/// Starts a subcommand, waits until it prints that it entered `stage` on stderr
/// (`LOADGEN_STAGE_LINES`), then signals it.
fn signal_single(args: &[&str], stage: &str, sig: i32) -> Ran {
    let mut child = Watched::spawn(loadgen().args(args).env("LOADGEN_STAGE_LINES", "1"));
    child.wait_for(&format!("loadgen: stage {stage}:"));
    child.signal(sig);
    child.finish(&format!("{args:?}"))
}

#[test]
fn interrupted_throughput_and_fixed_print_no_figure() {
    let r = signal_single(
        &[
            "throughput",
            SIM,
            "--time",
            "30",
            "--warmup",
            "0",
            "--quiet",
        ],
        "throughput",
        libc::SIGTERM,
    );
    assert_eq!(r.code, Some(143), "{}", r.stderr);
    assert!(!r.stdout.contains("Throughput"), "{}", r.stdout);
    assert!(r.stderr.contains("no figure is reported"), "{}", r.stderr);
    let r = signal_single(
        &[
            "fixed", SIM, "--qps", "50", "--time", "30", "--warmup", "0", "--quiet", "--json",
        ],
        "fixed",
        libc::SIGHUP,
    );
    assert_eq!(r.code, Some(129), "{}", r.stderr);
    assert!(r.stdout.trim().is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("no figure is reported"), "{}", r.stderr);
}

#[test]
fn a_signal_during_warm_up_writes_interrupted_results() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results.json");
    let out_s = out.to_string_lossy().into_owned();
    let r = signal_single(
        &[
            "run", SIM, "--warmup", "30", "--time", "1", "--quiet", "--output", &out_s,
        ],
        "warm-up",
        libc::SIGTERM,
    );
    assert_eq!(r.code, Some(143), "{}", r.stderr);
    let doc = read_results(&out);
    assert_eq!(doc["interrupted"], true);
    assert!(!r.stdout.contains("FINAL_RESULT"), "{}", r.stdout);
}

/// A library whose constructor starts a thread, as libtensorflow.so does: ort used to
/// dlclose it after its symbol check failed, and the thread then ran in unmapped code
/// (SIGSEGV after the right sentence). Needs a C compiler; skipped without one.
#[test]
fn a_foreign_runtime_library_is_refused_without_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let src = d.join("evil.c");
    std::fs::write(
        &src,
        "#include <pthread.h>\n#include <unistd.h>\n\
         static void *spin(void *a) { for (;;) usleep(1000); return a; }\n\
         __attribute__((constructor)) static void init(void) { pthread_t t; pthread_create(&t, 0, spin, 0); }\n",
    )
    .unwrap();
    let lib = d.join("libevil.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-lpthread")
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no C compiler to build the test library");
        return;
    }
    std::fs::write(d.join("m.onnx"), "x").unwrap();
    let r = wait(
        loadgen()
            .args([
                "throughput",
                "--backend",
                "onnxruntime",
                "--time",
                "1",
                "--model",
            ])
            .arg(d.join("m.onnx"))
            .env("ORT_DYLIB_PATH", &lib)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        "foreign library",
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("is not an ONNX Runtime library"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

// ------------------------------------------------------------------ with ONNX Runtime

const NEEDS: &str = "needs ONNX Runtime and the project's model: run scripts/test.sh";

/// A small image set: `n` PNGs and a val_map.txt with `labels`.
fn image_set(d: &Path, labels: &[&str]) {
    std::fs::create_dir_all(d).unwrap();
    let mut list = String::new();
    for (i, l) in labels.iter().enumerate() {
        let img = image::RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, (i * 40) as u8])
        });
        let name = format!("img{i}.JPEG");
        img.save_with_format(d.join(&name), image::ImageFormat::Jpeg)
            .unwrap();
        list.push_str(&format!("{name} {l}\n"));
    }
    std::fs::write(d.join("val_map.txt"), list).unwrap();
}

fn accuracy_on(d: &Path, extra: &[&str]) -> Ran {
    wait(
        loadgen()
            .args([
                "accuracy",
                "--backend",
                "onnxruntime",
                "--json",
                "--dataset-path",
            ])
            .arg(d)
            .args(extra)
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        "accuracy",
    )
}

#[test]
#[ignore = "needs ONNX Runtime and the project's model: run scripts/test.sh"]
fn labels_outside_the_models_classes_are_bad_input() {
    let _ = NEEDS;
    for (bad, line) in [("1000", 2), ("5000", 2), ("-1", 2)] {
        let tmp = tempfile::tempdir().unwrap();
        image_set(tmp.path(), &["3", bad, "7"]);
        let r = accuracy_on(tmp.path(), &[]);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        let last = r.stderr.trim().lines().last().unwrap_or_default();
        assert!(
            last.contains(&format!("line {line} of")) && last.contains("val_map.txt"),
            "{last}"
        );
        assert!(last.contains(&format!("label {bad}")), "{last}");
    }
}

#[test]
#[ignore = "needs ONNX Runtime and the project's model: run scripts/test.sh"]
fn a_jpeg_cut_in_half_is_warned_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    image_set(tmp.path(), &["1", "2", "3"]);
    let p = tmp.path().join("img1.JPEG");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let r = accuracy_on(tmp.path(), &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("img1.JPEG") && r.stderr.contains("truncated"),
        "{}",
        r.stderr
    );
    let block: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(block["skipped_items"], 1, "{block}");
    assert_eq!(block["total_items"], 2, "{block}");
}

#[test]
#[ignore = "needs ONNX Runtime and the project's model: run scripts/test.sh"]
fn a_list_that_is_not_utf8_or_a_fifo_gives_one_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    image_set(tmp.path(), &["1"]);
    std::fs::write(tmp.path().join("val_map.txt"), b"img0.JPEG 1\n\xff\xfe 2\n").unwrap();
    let r = accuracy_on(tmp.path(), &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let last = r.stderr.trim().lines().last().unwrap_or_default();
    assert!(last.contains("is not UTF-8 text (line 2)"), "{last}");
    assert!(!last.contains("stream did not contain"), "{last}");
    mkfifo(&tmp.path().join("list.fifo"));
    let list = tmp.path().join("list.fifo").to_string_lossy().into_owned();
    let r = accuracy_on(tmp.path(), &["--dataset-list", &list]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
}

#[test]
#[ignore = "needs ONNX Runtime and the project's model: run scripts/test.sh"]
fn a_cache_folder_that_is_a_fifo_is_refused_before_measuring() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    image_set(&data, &["1"]);
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    mkfifo(&tmp.path().join("out/cache"));
    let r = wait(
        loadgen()
            .args(["accuracy", "--backend", "onnxruntime", "--cache", "1"])
            .arg("--model")
            .arg(root().join("models/resnet50_v1.onnx"))
            .arg("--dataset-path")
            .arg(&data)
            .current_dir(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        "cache fifo",
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("not a folder"), "{}", r.stderr);
    let ft = std::fs::symlink_metadata(tmp.path().join("out/cache"))
        .unwrap()
        .file_type();
    assert!(ft.is_fifo());
}

#[test]
#[ignore = "needs ONNX Runtime and the project's model: run scripts/test.sh"]
fn a_damaged_cache_file_is_named_once_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    image_set(&data, &["1", "2", "3"]);
    let pass = |dump: &str| {
        wait(
            loadgen()
                .args([
                    "accuracy",
                    "--backend",
                    "onnxruntime",
                    "--cache",
                    "1",
                    "--json",
                ])
                .arg("--model")
                .arg(root().join("models/resnet50_v1.onnx"))
                .arg("--dataset-path")
                .arg(&data)
                .args(["--dump", dump])
                .current_dir(tmp.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            dump,
        )
    };
    let damage_lines = |r: &Ran| -> Vec<String> {
        r.stderr
            .lines()
            .filter(|l| l.contains("was damaged"))
            .map(str::to_string)
            .collect()
    };
    let first = pass("d1");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(damage_lines(&first).is_empty(), "{}", first.stderr);
    let mut files: Vec<_> = std::fs::read_dir(tmp.path().join("out/cache"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    // The middle of one item's values overwritten, its header intact.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].fill(0xFF);
    std::fs::write(&files[0], &bytes).unwrap();

    let second = pass("d2");
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let lines = damage_lines(&second);
    assert_eq!(lines.len(), 1, "{}", second.stderr);
    let line = &lines[0];
    assert!(
        line.starts_with("loadgen: warning: the cached image ")
            && line.contains(&files[0].file_name().unwrap().to_string_lossy()[..])
            && line.contains("(checksum mismatch); rebuilt from ")
            && line.contains(".JPEG"),
        "{line}"
    );
    // The model saw what it saw from a sound cache: same inputs, same answers.
    for f in ["inputs.npy", "top1.npy"] {
        let a = std::fs::read(tmp.path().join("d1").join(f)).unwrap();
        let b = std::fs::read(tmp.path().join("d2").join(f)).unwrap();
        assert!(a == b, "{f} differs after the rebuild");
    }
    let last =
        |r: &Ran| -> Value { serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap() };
    assert_eq!(last(&second)["good_items"], last(&first)["good_items"]);
    assert_eq!(last(&second)["total_items"], 3);

    // Rebuilt means rewritten: the next run reads it without a word.
    let third = pass("d3");
    assert_eq!(third.code, Some(0), "{}", third.stderr);
    assert!(damage_lines(&third).is_empty(), "{}", third.stderr);
}

#[test]
#[ignore = "needs ONNX Runtime and the project's model: run scripts/test.sh"]
fn a_signal_ends_the_accuracy_pass_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let labels: Vec<String> = (0..400).map(|i| (i % 1000).to_string()).collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    image_set(&data, &labels);
    let out = tmp.path().join("results.json");
    for (sub, sig, code) in [("accuracy", libc::SIGTERM, 143), ("run", libc::SIGHUP, 129)] {
        let mut cmd = loadgen();
        cmd.args([sub, "--backend", "onnxruntime", "--count", "400", "--quiet"])
            .arg("--dataset-path")
            .arg(&data)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if sub == "run" {
            cmd.arg("--output").arg(&out);
        }
        // The pass (400 ResNet-50 inferences) takes far longer than its start.
        let mut child = Watched::spawn(cmd.env("LOADGEN_STAGE_LINES", "1"));
        child.wait_for("loadgen: stage accuracy:");
        child.signal(sig);
        let r = child.finish(sub);
        assert_eq!(r.code, Some(code), "{sub}: {}", r.stderr);
        assert!(!r.stdout.contains("check_accuracy"), "{sub}: {}", r.stdout);
        if sub == "run" {
            let doc = read_results(&out);
            assert_eq!(doc["interrupted"], true);
            assert!(
                doc.get("check_accuracy").is_none_or(Value::is_null),
                "{doc}"
            );
        }
    }
}

#[test]
fn run_local_refuses_a_log_copy_that_is_not_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let has_dev = fixture(d);
    for (name, want) in [
        ("fifo", After::Fifo),
        ("link_to_fifo", After::Link),
        ("dir", After::Dir),
        ("sock", After::Socket),
        ("dev", After::CharDev),
    ] {
        if name == "dev" && !has_dev {
            continue;
        }
        let r = wait(
            Command::new("bash")
                .arg(root().join("scripts/run_local.sh"))
                .args(["onnxruntime", "cpu"])
                .env("LOADGEN_LOG_FILE", d.join(name))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            name,
        );
        let err = r.stderr.trim();
        assert_eq!(r.code, Some(2), "{name}: {err}");
        assert!(err.contains("is not a regular file"), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        check_after(d, name, want, has_dev, name);
        check_after(d, "fifo", After::Fifo, has_dev, name);
    }
}
