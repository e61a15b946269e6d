//! The command line. Flags keep the old tool's names (`--batch_size`, `--max-latency`,
//! …); values are checked here where clap can say what is wrong in one sentence, and
//! in [`crate::config::settings`] where the check needs the scenario file.
//!
//! Every flag that takes a number (or a list of them) allows values that start with a
//! hyphen: otherwise clap reads `--max-latency -inf` or `--qps -1` as an unknown flag
//! `-i` / `-1`, and the user learns nothing about the value. With it, such a value
//! reaches the flag's own parser and its sentence (`--qps takes a positive number of
//! queries per second, e.g. 100; got '-1'`). The cost is that a forgotten value
//! (`--time --quiet`) is reported as a bad value of `--time`, which still names the
//! flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::base::limits;
use crate::base::text::{quote, QUOTE_MAX};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "How many queries per second can this model serve while 99 % of answers come back within a target latency?",
    propagate_version = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The whole procedure of a scenario (default cloud.toml): accuracy pass, then the
    /// highest passing rate per target latency and distribution.
    Run(RunArgs),
    /// One step at a fixed offered rate.
    Fixed(FixedArgs),
    /// Closed loop: `--threads` batches in flight, the most the system can do.
    Throughput(ThroughputArgs),
    /// One query at a time, back to back (benchmark_app's sync API, MLPerf's
    /// SingleStream): min, median, mean, p90, p99, max, 1/mean, and the p90 that holds
    /// with the stated confidence.
    Latency(LatencyArgs),
    /// The accuracy pass alone.
    Accuracy(AccuracyArgs),
    /// Two results.json side by side: per distribution and target, both answers, B/A
    /// and whether the confidence intervals show B faster or slower.
    #[command(long_about = COMPARE_ABOUT)]
    Compare(CompareArgs),
    /// One self-contained HTML page of plots from one or more results.json (several
    /// are overlaid); `loadgen run` writes one beside its results.json.
    #[command(long_about = REPORT_ABOUT)]
    Report(ReportArgs),
    /// Serve load for a coordinator (`loadgen run --agents`): each step's share, at
    /// the instant agreed, with exact counts sent back.
    Agent(AgentArgs),
    /// Kubernetes manifests (YAML on stdout) for a run spread over N agent pods.
    #[command(long_about = K8S_ABOUT)]
    K8s(K8sArgs),
    /// Serve the sim or null backend over KServe v2 (HTTP/REST and gRPC on one port):
    /// a model server whose service law is known, to measure clients against.
    #[command(long_about = SERVE_ABOUT)]
    Serve(ServeArgs),
}

/// `loadgen k8s --help` (docs/CONTRACT.md §4.7).
const K8S_ABOUT: &str = "Kubernetes manifests, as one multi-document YAML on stdout, for \
a run spread over N agent pods: a Secret with the agents' token (a random one unless \
--token or --no-secret), a ConfigMap with the scenario file, a headless Service, the \
agents as an Indexed Job (`loadgen agent --listen 0.0.0.0:7420`) and the coordinator \
Job (`loadgen run --agents NAME-agents-0.NAME-agents:7420,… --url URL RUN_FLAGS…`). \
Pipe it to `kubectl apply -f -`; the coordinator's log ends with ===FINAL_RESULT. \
Flags after the others (or after `--`) go to the coordinator's `loadgen run`. Exit 2 \
on a bad value, one sentence.";

/// The most agent pods `loadgen k8s` writes.
pub const K8S_MAX_AGENTS: u64 = 1000;

/// `loadgen k8s --agents N --url URL [...] [-- RUN_FLAGS...]`.
#[derive(Args, Debug, Clone)]
pub struct K8sArgs {
    /// Agent pods (1 to 1000).
    #[arg(long, allow_hyphen_values = true, value_parser = k8s_agents)]
    pub agents: u32,
    /// The server under test, passed to the coordinator's `loadgen run --url`.
    #[arg(long)]
    pub url: String,
    /// Container image with `loadgen` on its PATH (Dockerfile.cpu builds it).
    #[arg(long, default_value = "loadgen:cpu")]
    pub image: String,
    /// Namespace of every object (default: kubectl's).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Prefix of every object's name: lowercase letters, digits and '-'.
    #[arg(long, default_value = "loadgen")]
    pub name: String,
    /// Scenario file put into the ConfigMap (default: scenarios/cloud.toml).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Token the Secret holds (default: 32 random hex digits).
    #[arg(long, conflicts_with = "no_secret")]
    pub token: Option<String>,
    /// No Secret document: make NAME-token (key `token`) yourself.
    #[arg(long = "no-secret")]
    pub no_secret: bool,
    /// Seconds the coordinator keeps trying to reach every agent.
    #[arg(long = "agents-wait", default_value_t = 60, allow_hyphen_values = true, value_parser = k8s_agents_wait)]
    pub agents_wait: u32,
    /// activeDeadlineSeconds of both Jobs: the agents end then at the latest.
    #[arg(long, default_value_t = 3600, allow_hyphen_values = true, value_parser = k8s_deadline)]
    pub deadline: u32,
    /// PersistentVolumeClaim to keep results.json in (mounted at /results).
    #[arg(long = "results-pvc", value_name = "CLAIM")]
    pub results_pvc: Option<String>,
    /// `loadgen run` flags for the coordinator (after the others, or after `--`).
    #[arg(
        value_name = "RUN_FLAGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub run_flags: Vec<String>,
}

/// `loadgen serve --help`: the queue law ([`crate::serve::queue`]).
const SERVE_ABOUT: &str = "Serve the sim or null backend as a KServe v2 model server, \
HTTP/REST and gRPC on one port, model named after the backend, one FP32 input INPUT0 \
[-1, --shape] and one FP32 output OUTPUT0 [-1, 1] (each item's top-1 class). Requests \
wait in one first-in first-out queue served by --threads workers, each with its own \
session: sim with --sim-service-time exp:5ms and --threads c is an M/M/c queue under \
Poisson arrivals; null answers at once. Prints one line on stderr once the port is \
bound; stops on SIGINT or SIGTERM (exit 0). Exit 2 on a bad flag or a port that \
cannot be bound.";

/// Dimensions of a tensor, from a comma-separated list (a type of its own: clap reads
/// a `Vec` field as a repeated flag).
#[derive(Clone, Debug, PartialEq)]
pub struct Dims(pub Vec<i64>);

/// `loadgen serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// sim or null.
    #[arg(long, value_parser = served_backend)]
    pub backend: String,
    /// HOST:PORT to listen on, for HTTP and gRPC alike; port 0 picks a free one.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000", value_parser = listen_addr)]
    pub listen: std::net::SocketAddr,
    /// Worker threads serving the queue, each with its own session.
    #[arg(long, default_value = "1", allow_hyphen_values = true, value_parser = threads)]
    pub threads: usize,
    /// Dimensions of one input item, comma separated (the batch dimension is -1).
    #[arg(long, value_name = "D1,D2,...", default_value = "16", allow_hyphen_values = true, value_parser = item_shape)]
    pub shape: Dims,
    /// Service-time law of the sim backend: fixed:5ms (default), exp:5ms,
    /// lognormal:5ms:0.5, uniform:2ms:8ms.
    #[arg(long = "sim-service-time", allow_hyphen_values = true)]
    pub sim_service_time: Option<String>,
    /// Seed of the sim backend's service times.
    #[arg(long, default_value = "42", allow_hyphen_values = true, value_parser = seed)]
    pub seed: u64,
}

/// `loadgen report --help`.
const REPORT_ABOUT: &str = "One self-contained HTML page (inline SVG, nothing fetched: it \
opens from disk) from one or more results.json: the answers side by side; per \
distribution and target, each step's offered rate against its p99 with the target, \
pass/fail, the interval and the answer, and the percentile spectrum of the answering \
step and the failing step above it; achieved against offered rate; the tuning \
candidates' predicted against measured answers; and each run's command line, system, \
settings and warnings. `loadgen run` writes the same page beside its results.json \
(report.html, or NAME.html beside NAME.json). Several files are overlaid, one colour \
each. Exit 2 on a file that cannot be read or is not a loadgen results.json.";

/// The most results files one report overlays (one colour each).
pub const REPORT_MAX_FILES: usize = 8;

/// `loadgen report RESULTS.json [MORE.json …] [-o FILE]`.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The results.json files (up to 8); several are overlaid.
    #[arg(value_name = "RESULTS.json", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The page to write (default: with one file, the report beside it, report.html
    /// beside results.json; with several, report.html in the current folder).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `loadgen compare --help`: the verdict's rule ([`crate::output::compare::verdict`]).
const COMPARE_ABOUT: &str = "Two results.json side by side: per distribution and target \
present in either file, both answers (qps, FAIL, or - when absent), their ratio B/A, \
and a verdict from the confidence intervals. Each target's interval [low, high] holds \
the highest rate shown to pass and the lowest shown to fail, so the true answer lies \
between them: B is 'faster' when B's low end is above A's high end, 'slower' when B's \
high end is below A's low end, and otherwise 'cannot tell'. An end that is null (not \
shown) decides nothing; a target absent from either file cannot be told. Exit 0, or 1 \
with --fail-on-regression when any target is 'slower'; 2 on a file that cannot be read \
or is not a loadgen results.json.";

/// `loadgen compare A B`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The baseline results.json.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The results.json compared against it.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Exit 1 when any target is 'slower' (for CI).
    #[arg(long = "fail-on-regression")]
    pub fail_on_regression: bool,
    /// Print a JSON array, one object per row, instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Flags shared by every subcommand: what to load and how to run it.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Scenario file with the defaults (default: scenarios/cloud.toml).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// resnet50-tf, resnet50-onnxruntime, mobilenet-tf or mobilenet-onnx.
    #[arg(long)]
    pub profile: Option<String>,
    /// Model file (default: the profile's file under models/).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// onnxruntime, tf (tensorflow), kserve (triton: a remote server), sim or null.
    #[arg(long)]
    pub backend: Option<String>,
    /// cpu or gpu.
    #[arg(long)]
    pub device: Option<String>,
    /// ImageNet-layout folder; without it inputs are synthetic and the accuracy pass is skipped.
    #[arg(long = "dataset-path", alias = "dataset_path")]
    pub dataset_path: Option<PathBuf>,
    /// Image list (default: <dataset-path>/val_map.txt).
    #[arg(long = "dataset-list", alias = "dataset_list")]
    pub dataset_list: Option<PathBuf>,
    /// NCHW or NHWC (default: from the model).
    #[arg(long = "data-format", alias = "data_format")]
    pub data_format: Option<String>,
    /// Input tensor name(s), comma separated (default: from the profile or model).
    #[arg(long)]
    pub inputs: Option<String>,
    /// Output tensor name(s), comma separated.
    #[arg(long)]
    pub outputs: Option<String>,
    /// Queries per batch sent to the backend.
    #[arg(long = "batch_size", alias = "batch-size", allow_hyphen_values = true, value_parser = batch_size)]
    pub batch_size: Option<usize>,
    /// Worker threads, each with its own session (default: one per core).
    #[arg(long, allow_hyphen_values = true, value_parser = threads)]
    pub threads: Option<usize>,
    /// Intra-op threads per session (default: cores / threads).
    #[arg(long = "intra-threads", allow_hyphen_values = true, value_parser = runtime_threads)]
    pub intra_threads: Option<usize>,
    /// Inter-op threads per session (default: 1).
    #[arg(long = "inter-threads", allow_hyphen_values = true, value_parser = runtime_threads)]
    pub inter_threads: Option<usize>,
    /// fp32, int8 (the QDQ model scripts/setup.sh quantizes; onnxruntime and
    /// openvino) or bf16 (openvino and tf, where the CPU has bf16 instructions). Left out:
    /// the fp32 model with the runtime's default kernels (OpenVINO's is bf16 where
    /// the CPU has it).
    #[arg(long)]
    pub precision: Option<String>,
    /// Run every thread on these CPUs (a list as the kernel writes one: `0-3,8`), as
    /// `numactl --physcpubind`; the issuer uses CPUs left outside the list, if any.
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Run on NUMA node N's CPUs with memory bound to node N, as `numactl
    /// --cpunodebind=N --membind=N` (the Model Zoo's --socket-id).
    #[arg(long = "socket-id", alias = "socket_id", value_name = "N")]
    pub socket_id: Option<usize>,
    /// openvino: infer requests each worker keeps in flight through OpenVINO's
    /// asynchronous API (benchmark_app's -nireq), one stream each; without it each
    /// worker runs one synchronous request.
    #[arg(long, alias = "nireq", allow_hyphen_values = true, value_parser = infer_requests)]
    pub requests: Option<usize>,
    /// Dataset items loaded into memory; queries cycle over them.
    #[arg(long, allow_hyphen_values = true, value_parser = count)]
    pub count: Option<usize>,
    /// 1 keeps preprocessed images under out/cache/ for the next run.
    #[arg(long, allow_hyphen_values = true, value_parser = zero_or_one)]
    pub cache: Option<bool>,
    /// Seed of the exponential schedule and of synthetic data.
    #[arg(long, allow_hyphen_values = true, value_parser = seed)]
    pub seed: Option<u64>,
    /// Service-time law of the sim backend: fixed:5ms, exp:5ms, lognormal:5ms:0.5, uniform:2ms:8ms.
    #[arg(long = "sim-service-time", allow_hyphen_values = true)]
    pub sim_service_time: Option<String>,
    /// Confidence of a step's verdict (MLPerf early-stopping rule): 0.5 < c < 1,
    /// default 0.99.
    #[arg(long, allow_hyphen_values = true, value_parser = confidence_level)]
    pub confidence: Option<f64>,
    /// kserve: the server, http://HOST:PORT or grpc://HOST:PORT.
    #[arg(long)]
    pub url: Option<String>,
    /// kserve: the model's name on the server.
    #[arg(long = "model-name", alias = "model_name")]
    pub model_name: Option<String>,
    /// kserve: the model version (default: the server's choice).
    #[arg(long = "model-version", alias = "model_version")]
    pub model_version: Option<String>,
    /// kserve: a header sent with every request, 'NAME: VALUE' (repeatable; e.g. auth).
    #[arg(
        long = "http-headers",
        alias = "http-header",
        value_name = "NAME: VALUE"
    )]
    pub http_headers: Vec<String>,
    /// kserve over HTTP: binary (the binary tensor extension) or json tensors.
    #[arg(long = "tensor-format")]
    pub tensor_format: Option<String>,
    /// kserve: HTTP connections (= HTTP requests in flight) or gRPC HTTP/2 connections.
    #[arg(long, allow_hyphen_values = true, value_parser = kserve_connections)]
    pub connections: Option<usize>,
    /// kserve: requests in flight in closed-loop runs (warm-up, capacity probe, throughput).
    #[arg(long, allow_hyphen_values = true, value_parser = kserve_connections)]
    pub concurrency: Option<usize>,
    /// kserve: seconds to wait for the server and the model to be ready (default 30).
    #[arg(long = "ready-timeout", allow_hyphen_values = true, value_parser = ready_timeout)]
    pub ready_timeout: Option<f64>,
    /// kserve: seconds one inference may wait for its answer before it counts as an
    /// error (default 30).
    #[arg(long = "request-timeout", allow_hyphen_values = true, value_parser = request_timeout)]
    pub request_timeout: Option<f64>,
    /// kserve: threads of the client's I/O runtime (default: one per core, at most 4).
    #[arg(long = "io-threads", allow_hyphen_values = true, value_parser = io_threads)]
    pub io_threads: Option<usize>,
    /// Closed-loop warm-up seconds before timing.
    #[arg(long, allow_hyphen_values = true, value_parser = warmup_seconds)]
    pub warmup: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Show the runtimes' own log lines (ONNX Runtime, TensorFlow).
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// results.json path.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Seconds per search step.
    #[arg(long, allow_hyphen_values = true, value_parser = step_seconds)]
    pub time: Option<f64>,
    /// Target p99 latencies in seconds, comma separated: 0.01,0.05,0.1,0.2.
    #[arg(
        long = "max-latency",
        alias = "max_latency",
        allow_hyphen_values = true
    )]
    pub max_latency: Option<String>,
    /// Distributions to search, comma separated: linear,exponential.
    #[arg(long)]
    pub distributions: Option<String>,
    /// Fewest queries in a step.
    #[arg(long = "min-queries", allow_hyphen_values = true, value_parser = min_queries)]
    pub min_queries: Option<u64>,
    /// Seconds of steps all searches may take, shared equally per distribution and
    /// target; 0: no limit (default: 32 × --time).
    #[arg(long = "search-time", allow_hyphen_values = true, value_parser = search_seconds)]
    pub search_time: Option<f64>,
    /// Skip the accuracy pass.
    #[arg(long = "no-accuracy")]
    pub no_accuracy: bool,
    /// Measure with one configuration (the flags' or the defaults), without tuning.
    #[arg(long = "no-tune")]
    pub no_tune: bool,
    /// Configurations to tune over, comma separated WORKERSxINTRA[xINTER[xBATCH]]
    /// (default: every split of the cores, and batch 4 where the model allows).
    #[arg(long, allow_hyphen_values = true)]
    pub configs: Option<String>,
    /// Internal: a tuned TensorFlow run's child. It calibrates the --configs given
    /// (which share one thread setting), writes them to --output, then searches what
    /// the parent asks on stdin (see app/tune_processes.rs).
    #[arg(long = "tune-child", hide = true)]
    pub tune_child: bool,
    #[command(flatten)]
    pub spread: AgentsFlags,
}

/// `--agents` and what goes with it (`run`, `fixed`).
#[derive(Args, Debug, Clone, Default)]
pub struct AgentsFlags {
    /// Spread each step's load over these agents (`loadgen agent`), comma separated
    /// HOST:PORT; this process coordinates, judges and writes the results.
    #[arg(long, value_delimiter = ',')]
    pub agents: Vec<String>,
    /// Seconds to keep trying to reach every agent before giving up (exit 2).
    #[arg(long = "agents-wait", default_value_t = 60.0, allow_hyphen_values = true, value_parser = wait_seconds)]
    pub agents_wait: f64,
    /// The token agents expect (default: the LOADGEN_TOKEN environment variable).
    #[arg(long)]
    pub token: Option<String>,
}

/// `loadgen agent`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// Address to listen on for a coordinator.
    #[arg(long, default_value = "0.0.0.0:7420")]
    pub listen: String,
    /// The token a coordinator must present (default: the LOADGEN_TOKEN environment
    /// variable; one of the two is required).
    #[arg(long)]
    pub token: Option<String>,
    /// Quit after serving this many coordinators (default: serve until stopped).
    #[arg(long)]
    pub sessions: Option<u64>,
}

/// `--agents-wait`: 0 to 3600 s.
fn wait_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected seconds from 0 to 3600, got {}",
            crate::base::text::quote(s)
        )),
    }
}

#[derive(Args, Debug, Clone)]
pub struct FixedArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Offered queries per second.
    #[arg(long, allow_hyphen_values = true, value_parser = qps)]
    pub qps: f64,
    /// linear or exponential.
    #[arg(long, default_value = "linear")]
    pub distribution: String,
    /// Seconds to offer load.
    #[arg(long, allow_hyphen_values = true, value_parser = step_seconds)]
    pub time: Option<f64>,
    /// A p99 target in seconds to judge the step against (and stop it early).
    #[arg(
        long = "max-latency",
        alias = "max_latency",
        allow_hyphen_values = true
    )]
    pub max_latency: Option<String>,
    #[arg(long = "min-queries", allow_hyphen_values = true, value_parser = min_queries)]
    pub min_queries: Option<u64>,
    /// Print the step summary as JSON: stdout then holds that one JSON document and
    /// nothing else; the human-readable line goes to stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub spread: AgentsFlags,
}

/// `loadgen latency`.
#[derive(Args, Debug, Clone)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds to run (at most; see --queries).
    #[arg(long, allow_hyphen_values = true, value_parser = step_seconds)]
    pub time: Option<f64>,
    /// Stop after this many queries (or at --time, whichever comes first).
    #[arg(long, allow_hyphen_values = true, value_parser = queries)]
    pub queries: Option<u64>,
    /// Print the figures as one JSON document on stdout (the line goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write the figures, with the system and settings, to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(long, help = OP_PROFILE_HELP)]
    pub op_profile: bool,
}

/// `--op-profile` of `latency` and `throughput`.
const OP_PROFILE_HELP: &str = "Turn on the runtime's per-operation profiler (OpenVINO's \
performance counters, ONNX Runtime's session profile, TensorFlow's step stats): the \
operations that took longest, their share and runs, on stderr, and every one in the \
JSON (op_profile). The profiler slows the runtime a little; the figures are those of \
the profiled run.";

#[derive(Args, Debug, Clone)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds to run.
    #[arg(long, allow_hyphen_values = true, value_parser = step_seconds)]
    pub time: Option<f64>,
    /// Print the step summary as JSON: stdout then holds that one JSON document and
    /// nothing else; the human-readable line goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Also write the step summary, with the system and settings, to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(long, help = OP_PROFILE_HELP)]
    pub op_profile: bool,
    #[command(flatten)]
    pub spread: AgentsFlags,
}

#[derive(Args, Debug, Clone)]
pub struct AccuracyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print the accuracy block as JSON on the last line.
    #[arg(long)]
    pub json: bool,
    /// Write inputs.npy, top1.npy, labels.npy, names.txt (and scores.npy) to this
    /// folder, for comparing with another implementation.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
}

/// `got '<value>'`, the value quoted as a prefix when long.
fn got(s: &str) -> String {
    format!("got '{}'", quote(s))
}

/// A whole number in `lo..=hi`; `what` names the unit and the limit in the sentence,
/// `example` is a value that works.
fn whole_in(s: &str, lo: u64, hi: u64, what: &str, example: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("takes a whole number, e.g. {example}; {}", got(s)))?;
    if n < lo {
        return Err(format!("must be at least {lo}; got {n}"));
    }
    if n > hi {
        return Err(format!("{n} is more than the limit of {hi} {what}"));
    }
    Ok(n)
}

/// A number of seconds in `0..=hi` (0 itself only when `zero_ok`); `what` names the
/// limit in words, `example` is a value that works.
fn seconds_in(s: &str, zero_ok: bool, hi: f64, what: &str, example: &str) -> Result<f64, String> {
    let kind = if zero_ok {
        "zero or more seconds"
    } else {
        "positive seconds"
    };
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (v > 0.0 || (v == 0.0 && zero_ok)) => {
            if v > hi {
                Err(format!(
                    "{} s is more than the limit of {hi} s ({what})",
                    quote(s)
                ))
            } else {
                Ok(v)
            }
        }
        _ => Err(format!("takes {kind}, e.g. {example}; {}", got(s))),
    }
}

fn usize_in(s: &str, lo: usize, hi: usize, what: &str, example: &str) -> Result<usize, String> {
    whole_in(s, lo as u64, hi as u64, what, example).map(|n| n as usize)
}

fn threads(s: &str) -> Result<usize, String> {
    usize_in(
        s,
        1,
        limits::max_threads(),
        &format!(
            "workers ({} per core on {} cores, 1024 at most)",
            limits::MAX_THREADS_PER_CORE,
            limits::cores()
        ),
        "4",
    )
}

fn runtime_threads(s: &str) -> Result<usize, String> {
    let hi = limits::max_runtime_threads();
    usize_in(
        s,
        1,
        hi,
        &format!(
            "threads per session ({} per core on {} cores)",
            limits::MAX_RUNTIME_THREADS_PER_CORE,
            limits::cores()
        ),
        "2",
    )
}

/// The most `--requests` one worker keeps: as many streams as runtime threads.
fn infer_requests(s: &str) -> Result<usize, String> {
    usize_in(
        s,
        1,
        limits::max_runtime_threads(),
        "infer requests per worker (one stream each)",
        "2",
    )
}

fn batch_size(s: &str) -> Result<usize, String> {
    usize_in(s, 1, limits::MAX_BATCH, "queries per batch", "4")
}

fn count(s: &str) -> Result<usize, String> {
    usize_in(s, 1, limits::MAX_COUNT, "items", "500")
}

/// `latency --queries`: at least one, at most a billion.
fn queries(s: &str) -> Result<u64, String> {
    whole_in(s, 1, 1_000_000_000, "queries", "1000")
}

fn min_queries(s: &str) -> Result<u64, String> {
    whole_in(s, 0, limits::MAX_MIN_QUERIES, "queries", "100")
}

/// `--seed`: any 64-bit unsigned number (clap's own parser would say only "invalid
/// digit found in string").
fn seed(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "takes a whole number from 0 to {}, e.g. 42; {}",
            u64::MAX,
            got(s)
        )
    })
}

fn step_seconds(s: &str) -> Result<f64, String> {
    seconds_in(s, false, limits::MAX_STEP_SECONDS, "a day", "10")
}

fn search_seconds(s: &str) -> Result<f64, String> {
    seconds_in(s, true, limits::MAX_SEARCH_SECONDS, "thirty days", "320")
}

fn warmup_seconds(s: &str) -> Result<f64, String> {
    seconds_in(s, true, limits::MAX_STEP_SECONDS, "a day", "2")
}

/// `--connections` / `--concurrency` of kserve.
fn kserve_connections(s: &str) -> Result<usize, String> {
    usize_in(s, 1, 65_536, "requests in flight", "64")
}

/// `--io-threads` of kserve.
fn io_threads(s: &str) -> Result<usize, String> {
    usize_in(s, 1, 256, "I/O threads", "4")
}

/// `--ready-timeout` of kserve.
fn ready_timeout(s: &str) -> Result<f64, String> {
    seconds_in(s, true, 3600.0, "an hour", "30")
}

/// `--request-timeout` of kserve: a positive time (0 would fail every request).
fn request_timeout(s: &str) -> Result<f64, String> {
    seconds_in(s, false, 3600.0, "an hour", "30")
}

fn qps(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= limits::MAX_QPS => Ok(v),
        Ok(v) if v.is_finite() && v > limits::MAX_QPS => Err(format!(
            "{} queries/s is more than the limit of {} queries/s",
            quote(s),
            limits::MAX_QPS
        )),
        _ => Err(format!(
            "takes a positive number of queries per second, e.g. 100; {}",
            got(s)
        )),
    }
}

fn confidence_level(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.5 && v <= 0.9999 => Ok(v),
        _ => Err(format!(
            "takes a confidence level above 0.5 and at most 0.9999, e.g. 0.99; {}",
            got(s)
        )),
    }
}

fn k8s_agents(s: &str) -> Result<u32, String> {
    whole_in(s, 1, K8S_MAX_AGENTS, "agent pods", "2").map(|n| n as u32)
}

fn k8s_agents_wait(s: &str) -> Result<u32, String> {
    whole_in(s, 1, 3_600, "seconds", "60").map(|n| n as u32)
}

fn k8s_deadline(s: &str) -> Result<u32, String> {
    whole_in(s, 1, 30 * 86_400, "seconds", "3600").map(|n| n as u32)
}

/// `serve --backend`: the built-in backends only.
fn served_backend(s: &str) -> Result<String, String> {
    match s {
        "sim" | "null" => Ok(s.to_string()),
        _ => Err(format!("takes sim or null; {}", got(s))),
    }
}

/// `serve --listen`: an address and port, a name resolved (`localhost:8000`).
fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let bad = || format!("takes HOST:PORT, e.g. 127.0.0.1:8000; {}", got(s));
    if let Ok(a) = s.trim().parse() {
        return Ok(a);
    }
    s.trim()
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// `serve --shape`: positive dimensions, as many as a tensor may have.
fn item_shape(s: &str) -> Result<Dims, String> {
    let dims: Option<Vec<i64>> = s
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<i64>()
                .ok()
                .filter(|&d| d > 0 && d <= 1 << 24)
        })
        .collect();
    match dims {
        Some(d)
            if (1..=8).contains(&d.len())
                && d.iter()
                    .try_fold(1i64, |a, &x| a.checked_mul(x))
                    .is_some_and(|n| n <= 1 << 26) =>
        {
            Ok(Dims(d))
        }
        _ => Err(format!(
            "takes up to 8 positive dimensions, comma separated, of at most 2^26 values in all, e.g. 3,224,224; {}",
            got(s)
        )),
    }
}

fn zero_or_one(s: &str) -> Result<bool, String> {
    match s {
        "0" | "false" => Ok(false),
        "1" | "true" => Ok(true),
        _ => Err(format!("takes 0 or 1; {}", got(s))),
    }
}

/// A command-line error as one line for `main` to print after `loadgen: ` (exit 2).
///
/// A bad value names its flag first and quotes the value as the flag's parser does
/// (clap's own wording, `invalid value '…' for '--time <TIME>': …`, would echo the
/// whole value and then the parser's sentence). Other errors keep clap's message and
/// tip on one line, with every value from the command line longer than
/// [`QUOTE_MAX`] cut to a prefix: a 50 KB argument must not fill the terminal.
pub fn usage_sentence(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use std::error::Error as _;
    if e.kind() == ErrorKind::ValueValidation {
        if let (Some(ContextValue::String(arg)), Some(why)) =
            (e.get(ContextKind::InvalidArg), e.source())
        {
            // `--time <TIME>`: the flag as the user may type it.
            let flag = arg.split(' ').next().unwrap_or(arg);
            return format!("{flag} {why} (see --help)");
        }
    }
    let mut text = e.render().to_string();
    for (_, value) in e.context() {
        let values: Vec<&str> = match value {
            ContextValue::String(s) => vec![s.as_str()],
            ContextValue::Strings(v) => v.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        for v in values {
            if v.chars().count() > QUOTE_MAX {
                text = text.replace(v, &quote(v));
            }
        }
    }
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Usage:")
                && !l.starts_with("For more information")
                && !l.starts_with("loadgen ")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    // Lines joined with "; ", except after a line that introduces the next
    // ("the following required arguments were not provided:").
    let mut line = String::new();
    for p in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(p);
    }
    format!("{line} (see --help)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn old_flag_spellings_parse() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "run",
            "--profile",
            "resnet50-tf",
            "--batch_size",
            "4",
            "--max-latency",
            "0.01,0.1",
            "--dataset-path",
            "/d",
            "--data-format",
            "NHWC",
            "--time",
            "5",
            "--count",
            "50",
            "--cache",
            "1",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!("run")
        };
        assert_eq!(r.common.batch_size, Some(4));
        assert_eq!(r.max_latency.as_deref(), Some("0.01,0.1"));
        assert_eq!(r.common.cache, Some(true));
        let cli = Cli::try_parse_from(["loadgen", "run", "--batch-size", "2"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("run")
        };
        assert_eq!(r.common.batch_size, Some(2));
    }

    /// Every flag that takes a number, with the subcommand that has it. `--max-latency`,
    /// `--configs` and `--sim-service-time` are lists or laws checked by the settings:
    /// here they need only reach them.
    const NUMERIC: &[(&str, &str)] = &[
        ("run", "--batch_size"),
        ("run", "--threads"),
        ("run", "--intra-threads"),
        ("run", "--inter-threads"),
        ("run", "--count"),
        ("run", "--cache"),
        ("run", "--seed"),
        ("run", "--confidence"),
        ("run", "--connections"),
        ("run", "--concurrency"),
        ("run", "--ready-timeout"),
        ("run", "--request-timeout"),
        ("run", "--io-threads"),
        ("run", "--warmup"),
        ("run", "--time"),
        ("run", "--min-queries"),
        ("run", "--search-time"),
        ("fixed", "--qps"),
        ("fixed", "--time"),
        ("fixed", "--min-queries"),
        ("throughput", "--time"),
    ];
    const CHECKED_LATER: &[(&str, &str)] = &[
        ("run", "--max-latency"),
        ("fixed", "--max-latency"),
        ("run", "--configs"),
        ("run", "--sim-service-time"),
    ];
    const NEGATIVE: [&str; 6] = ["-inf", "-1", "-0.5", "-1e3", "-nan", "-x"];

    fn parse(sub: &str, flag: &str, value: &str) -> Result<Cli, clap::Error> {
        let mut args = vec!["loadgen", sub, flag, value];
        if sub == "fixed" && flag != "--qps" {
            args.extend(["--qps", "10"]);
        }
        Cli::try_parse_from(args)
    }

    #[test]
    fn a_negative_looking_value_is_a_bad_value_of_its_own_flag() {
        for &(sub, flag) in NUMERIC {
            for v in NEGATIVE {
                let e = parse(sub, flag, v).expect_err(&format!("{sub} {flag} {v}"));
                assert_eq!(
                    e.kind(),
                    clap::error::ErrorKind::ValueValidation,
                    "{sub} {flag} {v}: {e}"
                );
                let line = usage_sentence(&e);
                assert!(line.starts_with(&format!("{flag} ")), "{line}");
                assert!(line.contains(&format!("got '{v}'")), "{line}");
                assert!(!line.contains('\n'), "{line}");
            }
        }
        for &(sub, flag) in CHECKED_LATER {
            for v in NEGATIVE {
                let cli = parse(sub, flag, v).unwrap_or_else(|e| panic!("{sub} {flag} {v}: {e}"));
                let got = match cli.command {
                    Command::Run(r) => [r.max_latency, r.configs, r.common.sim_service_time],
                    Command::Fixed(f) => [f.max_latency, None, None],
                    _ => unreachable!(),
                };
                assert!(got.contains(&Some(v.to_string())), "{sub} {flag} {v}");
            }
        }
    }

    #[test]
    fn bad_values_say_what_the_flag_takes() {
        for (sub, flag, v, says) in [
            (
                "run",
                "--time",
                "0",
                "--time takes positive seconds, e.g. 10; got '0'",
            ),
            (
                "run",
                "--time",
                "1e20",
                "--time 1e20 s is more than the limit of 86400 s (a day)",
            ),
            (
                "run",
                "--warmup",
                "nan",
                "--warmup takes zero or more seconds, e.g. 2; got 'nan'",
            ),
            (
                "run",
                "--threads",
                "0",
                "--threads must be at least 1; got 0",
            ),
            (
                "run",
                "--threads",
                "2.5",
                "--threads takes a whole number, e.g. 4; got '2.5'",
            ),
            ("run", "--cache", "2", "--cache takes 0 or 1; got '2'"),
            (
                "run",
                "--seed",
                "18446744073709551616",
                "--seed takes a whole number from 0 to 18446744073709551615",
            ),
            (
                "fixed",
                "--qps",
                "1e12",
                "--qps 1e12 queries/s is more than the limit of 10000000 queries/s",
            ),
        ] {
            let line = usage_sentence(&parse(sub, flag, v).unwrap_err());
            assert!(line.starts_with(says), "{line}");
            assert!(line.ends_with(" (see --help)"), "{line}");
        }
        // A forgotten value is a bad value of its flag, which still names it.
        let e = Cli::try_parse_from(["loadgen", "run", "--time", "--quiet"]).unwrap_err();
        assert!(usage_sentence(&e).starts_with("--time takes positive seconds"));
    }

    #[test]
    fn long_values_are_quoted_as_a_prefix() {
        let long = "9".repeat(50_000);
        let flag = format!("--{}", "x".repeat(50_000));
        let cases: [Vec<&str>; 4] = [
            vec!["loadgen", "run", "--time", &long],
            vec!["loadgen", "fixed", "--qps", &long],
            vec!["loadgen", "run", &flag, "1"],
            vec!["loadgen", &long],
        ];
        for args in cases {
            let line = usage_sentence(&Cli::try_parse_from(&args).unwrap_err());
            assert!(line.len() < 300, "{} bytes: {line}", line.len());
            assert!(
                line.contains("(50000 bytes in all)") || line.contains("(50002 bytes in all)"),
                "{line}"
            );
        }
        let e = Cli::try_parse_from(["loadgen", "fixed", "--backend", "sim"]).unwrap_err();
        assert_eq!(
            usage_sentence(&e),
            "the following required arguments were not provided: --qps <QPS> (see --help)"
        );
        // Short unknown flags keep clap's words and suggestion.
        let e = Cli::try_parse_from(["loadgen", "run", "--tme", "3"]).unwrap_err();
        let line = usage_sentence(&e);
        assert!(
            line.starts_with("unexpected argument '--tme' found"),
            "{line}"
        );
        assert!(line.contains("--time"), "{line}");
    }

    #[test]
    fn zero_threads_is_refused() {
        let err = Cli::try_parse_from(["loadgen", "run", "--threads", "0"]).unwrap_err();
        assert!(err.to_string().contains("must be at least 1"), "{err}");
    }
}
