//! The command line. Flags keep the old tool's names (`--batch_size`, `--max-latency`,
//! …); values are checked here where clap can say what is wrong in one sentence, and
//! in [`crate::config::settings`] where the check needs the scenario file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::base::limits;

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
    /// The accuracy pass alone.
    Accuracy(AccuracyArgs),
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
    #[arg(long = "batch_size", alias = "batch-size", value_parser = batch_size)]
    pub batch_size: Option<usize>,
    /// Worker threads, each with its own session (default: one per core).
    #[arg(long, value_parser = threads)]
    pub threads: Option<usize>,
    /// Intra-op threads per session (default: cores / threads).
    #[arg(long = "intra-threads", value_parser = runtime_threads)]
    pub intra_threads: Option<usize>,
    /// Inter-op threads per session (default: 1).
    #[arg(long = "inter-threads", value_parser = runtime_threads)]
    pub inter_threads: Option<usize>,
    /// Dataset items loaded into memory; queries cycle over them.
    #[arg(long, value_parser = count)]
    pub count: Option<usize>,
    /// 1 keeps preprocessed images under out/cache/ for the next run.
    #[arg(long, value_parser = zero_or_one)]
    pub cache: Option<bool>,
    /// Seed of the exponential schedule and of synthetic data.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Service-time law of the sim backend: fixed:5ms, exp:5ms, lognormal:5ms:0.5, uniform:2ms:8ms.
    #[arg(long = "sim-service-time")]
    pub sim_service_time: Option<String>,
    /// Confidence of a step's verdict (MLPerf early-stopping rule): 0.5 < c < 1,
    /// default 0.99.
    #[arg(long, value_parser = confidence_level)]
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
    #[arg(long, value_parser = kserve_connections)]
    pub connections: Option<usize>,
    /// kserve: requests in flight in closed-loop runs (warm-up, capacity probe, throughput).
    #[arg(long, value_parser = kserve_connections)]
    pub concurrency: Option<usize>,
    /// kserve: seconds to wait for the server and the model to be ready (default 30).
    #[arg(long = "ready-timeout", value_parser = ready_timeout)]
    pub ready_timeout: Option<f64>,
    /// kserve: seconds one inference may wait for its answer before it counts as an
    /// error (default 30).
    #[arg(long = "request-timeout", value_parser = request_timeout)]
    pub request_timeout: Option<f64>,
    /// kserve: threads of the client's I/O runtime (default: one per core, at most 4).
    #[arg(long = "io-threads", value_parser = io_threads)]
    pub io_threads: Option<usize>,
    /// Closed-loop warm-up seconds before timing.
    #[arg(long, value_parser = warmup_seconds)]
    pub warmup: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// results.json path.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Seconds per search step.
    #[arg(long, value_parser = step_seconds)]
    pub time: Option<f64>,
    /// Target p99 latencies in seconds, comma separated: 0.01,0.05,0.1,0.2.
    #[arg(long = "max-latency", alias = "max_latency")]
    pub max_latency: Option<String>,
    /// Distributions to search, comma separated: linear,exponential.
    #[arg(long)]
    pub distributions: Option<String>,
    /// Fewest queries in a step.
    #[arg(long = "min-queries", value_parser = min_queries)]
    pub min_queries: Option<u64>,
    /// Seconds of steps all searches may take, shared equally per distribution and
    /// target; 0: no limit (default: 32 × --time).
    #[arg(long = "search-time", value_parser = search_seconds)]
    pub search_time: Option<f64>,
    /// Skip the accuracy pass.
    #[arg(long = "no-accuracy")]
    pub no_accuracy: bool,
    /// Measure with one configuration (the flags' or the defaults), without tuning.
    #[arg(long = "no-tune")]
    pub no_tune: bool,
    /// Configurations to tune over, comma separated WORKERSxINTRA[xINTER[xBATCH]]
    /// (default: every split of the cores, and batch 4 where the model allows).
    #[arg(long)]
    pub configs: Option<String>,
    /// Internal: a tuned TensorFlow run's child. It calibrates the --configs given
    /// (which share one thread setting), writes them to --output, then searches what
    /// the parent asks on stdin (see app/tune_processes.rs).
    #[arg(long = "tune-child", hide = true)]
    pub tune_child: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FixedArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Offered queries per second.
    #[arg(long, value_parser = qps)]
    pub qps: f64,
    /// linear or exponential.
    #[arg(long, default_value = "linear")]
    pub distribution: String,
    /// Seconds to offer load.
    #[arg(long, value_parser = step_seconds)]
    pub time: Option<f64>,
    /// A p99 target in seconds to judge the step against (and stop it early).
    #[arg(long = "max-latency", alias = "max_latency")]
    pub max_latency: Option<String>,
    #[arg(long = "min-queries", value_parser = min_queries)]
    pub min_queries: Option<u64>,
    /// Print the step summary as JSON on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds to run.
    #[arg(long, value_parser = step_seconds)]
    pub time: Option<f64>,
    /// Print the step summary as JSON on the last line.
    #[arg(long)]
    pub json: bool,
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

/// A whole number in `lo..=hi`; `what` names the unit in the sentence.
fn whole_in(s: &str, lo: u64, hi: u64, what: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if n < lo {
        return Err(format!("must be at least {lo}"));
    }
    if n > hi {
        return Err(format!("{n} is more than the limit of {hi} {what}"));
    }
    Ok(n)
}

/// A number of seconds in `lo..=hi` (`lo` itself allowed only when `zero_ok`).
fn seconds_in(s: &str, zero_ok: bool, hi: f64, what: &str) -> Result<f64, String> {
    let v: f64 = match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => return Err(format!("'{s}' is not a number of seconds")),
    };
    if v < 0.0 || (v == 0.0 && !zero_ok) {
        return Err(format!(
            "'{s}' is not a {}number of seconds",
            if zero_ok { "" } else { "positive " }
        ));
    }
    if v > hi {
        return Err(format!("{s} s is more than the limit of {hi} s ({what})"));
    }
    Ok(v)
}

fn usize_in(s: &str, lo: usize, hi: usize, what: &str) -> Result<usize, String> {
    whole_in(s, lo as u64, hi as u64, what).map(|n| n as usize)
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
    )
}

fn batch_size(s: &str) -> Result<usize, String> {
    usize_in(s, 1, limits::MAX_BATCH, "queries per batch")
}

fn count(s: &str) -> Result<usize, String> {
    usize_in(s, 1, limits::MAX_COUNT, "items")
}

fn min_queries(s: &str) -> Result<u64, String> {
    whole_in(s, 0, limits::MAX_MIN_QUERIES, "queries")
}

fn step_seconds(s: &str) -> Result<f64, String> {
    seconds_in(s, false, limits::MAX_STEP_SECONDS, "a day")
}

fn search_seconds(s: &str) -> Result<f64, String> {
    seconds_in(s, true, limits::MAX_SEARCH_SECONDS, "thirty days")
}

fn warmup_seconds(s: &str) -> Result<f64, String> {
    seconds_in(s, true, limits::MAX_STEP_SECONDS, "a day")
}

/// `--connections` / `--concurrency` of kserve.
fn kserve_connections(s: &str) -> Result<usize, String> {
    usize_in(s, 1, 65_536, "requests in flight")
}

/// `--io-threads` of kserve.
fn io_threads(s: &str) -> Result<usize, String> {
    usize_in(s, 1, 256, "I/O threads")
}

/// `--ready-timeout` of kserve.
fn ready_timeout(s: &str) -> Result<f64, String> {
    seconds_in(s, true, 3600.0, "an hour")
}

/// `--request-timeout` of kserve: a positive time (0 would fail every request).
fn request_timeout(s: &str) -> Result<f64, String> {
    seconds_in(s, false, 3600.0, "an hour")
}

fn qps(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= limits::MAX_QPS => Ok(v),
        Ok(v) if v.is_finite() && v > limits::MAX_QPS => Err(format!(
            "{s} queries/s is more than the limit of {} queries/s",
            limits::MAX_QPS
        )),
        _ => Err(format!(
            "'{s}' is not a positive number of queries per second"
        )),
    }
}

fn confidence_level(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.5 && v <= 0.9999 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a confidence level: use a number above 0.5 and at most 0.9999, such as 0.99"
        )),
    }
}

fn zero_or_one(s: &str) -> Result<bool, String> {
    match s {
        "0" | "false" => Ok(false),
        "1" | "true" => Ok(true),
        _ => Err(format!("'{s}' is not 0 or 1")),
    }
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

    #[test]
    fn zero_threads_is_refused() {
        let err = Cli::try_parse_from(["loadgen", "run", "--threads", "0"]).unwrap_err();
        assert!(err.to_string().contains("must be at least 1"), "{err}");
    }
}
