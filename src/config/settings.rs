//! Test settings: the scenario file gives defaults, the profile gives model
//! conventions, flags override both. Everything is checked here, once, so that later
//! code can trust it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::kserve::KserveConfig;
use crate::backend::{BackendConfig, BackendKind, Device, Layout, Precision};
use crate::base::limits;
use crate::base::text::{quote, quote_path, quote_up_to};
use crate::config::cli::CommonArgs;
use crate::config::profile::{self, Profile};
use crate::measure::schedule::Distribution;
use crate::measure::step::StepSpec;
use crate::tune::candidates::{self, Candidate};

/// A bad flag or scenario value: one sentence, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, SettingsError> {
    Err(SettingsError(msg.into()))
}

/// The default `search_time`, in multiples of `time`: 320 s for the cloud scenario's
/// eight searches of 10-s steps, 40 s each, about what the first bracket and
/// bisection take on ResNet-50 (see docs/METHOD.md, "The time budget").
pub const DEFAULT_SEARCH_STEPS: f64 = 32.0;

/// A scenario file (`scenarios/*.toml`). Every key is optional.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: Option<String>,
    pub accuracy: Option<bool>,
    pub distributions: Option<Vec<String>>,
    pub max_latency: Option<Vec<f64>>,
    pub time: Option<f64>,
    pub count: Option<usize>,
    pub batch_size: Option<usize>,
    pub min_queries: Option<u64>,
    pub warmup: Option<f64>,
    pub seed: Option<u64>,
    pub threads: Option<usize>,
    pub confidence: Option<f64>,
    pub search_time: Option<f64>,
    /// `--precision`'s key.
    pub precision: Option<String>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, SettingsError> {
        // A FIFO or device would block the read or never end it.
        if let Ok(m) = std::fs::metadata(path) {
            if !m.is_file() {
                return bad(format!(
                    "scenario file {} is not a regular file; name a .toml file",
                    quote_path(path)
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingsError(format!(
                "cannot read scenario file {}: {e}",
                quote_path(path)
            ))
        })?;
        toml::from_str(&text).map_err(|e| {
            // The parser's message may carry a key or value from the file; its own
            // words (the keys it expected) fit in 400 characters.
            let msg = quote_up_to(e.message(), 400);
            SettingsError(format!(
                "scenario file {} is not valid: {msg}",
                quote_path(path)
            ))
        })
    }

    /// `--scenario`, else `scenarios/cloud.toml` of the project, else built-in defaults
    /// equal to cloud.toml (so the binary works from any folder).
    pub fn resolve(flag: Option<&Path>) -> Result<(Scenario, Option<PathBuf>), SettingsError> {
        if let Some(p) = flag {
            return Ok((Scenario::load(p)?, Some(p.to_path_buf())));
        }
        if let Some(root) = crate::base::paths::project_root() {
            let p = root.join("scenarios/cloud.toml");
            return Ok((Scenario::load(&p)?, Some(p)));
        }
        Ok((Scenario::cloud_defaults(), None))
    }

    pub fn cloud_defaults() -> Scenario {
        Scenario {
            name: Some("cloud".into()),
            accuracy: Some(true),
            distributions: Some(vec!["linear".into(), "exponential".into()]),
            max_latency: Some(vec![0.01, 0.05, 0.1, 0.2]),
            time: Some(10.0),
            count: Some(500),
            batch_size: Some(1),
            min_queries: Some(100),
            warmup: Some(2.0),
            seed: Some(42),
            threads: None,
            confidence: Some(0.99),
            search_time: None,
            precision: None,
        }
    }
}

/// Everything a run needs, resolved and checked.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub scenario: String,
    pub scenario_file: Option<PathBuf>,
    pub profile: Option<String>,
    pub backend: BackendKind,
    pub model: Option<PathBuf>,
    pub device: Device,
    pub dataset_path: Option<PathBuf>,
    pub dataset_list: Option<PathBuf>,
    pub data_format: Option<Layout>,
    pub inputs: Option<String>,
    pub outputs: Option<String>,
    pub batch_size: usize,
    pub threads: usize,
    pub intra_threads: Option<usize>,
    pub inter_threads: Option<usize>,
    /// `--requests` (OpenVINO): asynchronous infer requests per worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<usize>,
    /// `--precision` asked for (`None`: the fp32 model, the runtime's default kernels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<crate::base::model::Precision>,
    /// `--cores`, `--socket-id`: where the threads and memory go (`None`: where the
    /// OS puts them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::base::placement::Placement>,
    pub count: usize,
    pub cache: bool,
    pub seed: u64,
    pub sim_service_time: Option<String>,
    pub warmup: f64,
    pub time: f64,
    pub max_latency: Vec<f64>,
    pub distributions: Vec<Distribution>,
    pub min_queries: u64,
    /// Confidence of each step's verdict (docs/CONTRACT.md §7.1).
    pub confidence: f64,
    /// Seconds of steps all the run's searches may take, shared equally among them
    /// (see [`Settings::search_share`]); 0: no limit.
    pub search_time: f64,
    pub accuracy: bool,
    pub quiet: bool,
    /// `--verbose`: leave the runtimes' own log lines on (see
    /// [`BackendConfig::verbose`]).
    #[serde(skip)]
    pub verbose: bool,
    /// `--op-profile` (`throughput`, `latency`): the runtime's per-operation profiler.
    #[serde(skip)]
    pub op_profile: bool,
    /// Whether `run` calibrates configurations and chooses one per target
    /// (docs/CONTRACT.md §7.2).
    #[serde(skip)]
    pub tune: Tune,
    /// `--backend kserve`: the server and how to talk to it.
    pub kserve: Option<KserveConfig>,
    #[serde(skip)]
    pub profile_info: Option<&'static Profile>,
}

/// Tuning (docs/CONTRACT.md §7.2), as the flags and the backend decide it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Tune {
    /// One configuration: the flags' or the defaults.
    #[default]
    Off,
    /// The default candidates, derived once the model is loaded (its batch dimension).
    Default,
    /// The user's `--configs`.
    List(Vec<Candidate>),
}

/// Parses `0.01,0.05` into seconds and checks them ([`check_latencies`]).
pub fn parse_latencies(s: &str) -> Result<Vec<f64>, SettingsError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => out.push(v),
            _ => {
                let within = if part == s.trim() {
                    String::new()
                } else {
                    format!(" in '{}'", quote(s))
                };
                return bad(format!(
                    "--max-latency takes positive seconds, e.g. 0.05 (or a list: 0.01,0.05,0.1,0.2); got '{}'{within}",
                    quote(part)
                ));
            }
        }
    }
    check_latencies(&out, "--max-latency")?;
    Ok(out)
}

/// Targets must be non-empty, within [`limits::MIN_TARGET_SECONDS`] ..=
/// [`limits::MAX_TARGET_SECONDS`], and distinct: two equal targets (`0.1,0.1`,
/// `0.050,5e-2`) would be the same key of FINAL_RESULT, so they are refused rather than
/// silently merged (the user probably meant another value).
pub fn check_latencies(v: &[f64], source: &str) -> Result<(), SettingsError> {
    let show = |t: f64| {
        if (1e-4..1e6).contains(&t) {
            format!("{t}")
        } else {
            format!("{t:e}")
        }
    };
    if v.is_empty() {
        return bad(format!(
            "{source} needs at least one latency in seconds (example: 0.01,0.05)"
        ));
    }
    for (i, &t) in v.iter().enumerate() {
        if !(t.is_finite() && t > 0.0) {
            return bad(format!(
                "{source}: {} is not a positive number of seconds",
                show(t)
            ));
        }
        if t < limits::MIN_TARGET_SECONDS {
            return bad(format!(
                "{source}: {} s is below the smallest target of 1 µs (1e-6 s)",
                show(t)
            ));
        }
        if t > limits::MAX_TARGET_SECONDS {
            return bad(format!(
                "{source}: {} s is above the largest target of an hour ({} s)",
                show(t),
                limits::MAX_TARGET_SECONDS
            ));
        }
        if v[..i].contains(&t) {
            return bad(format!(
                "{source} lists the target {} s twice; give each target once",
                show(t)
            ));
        }
    }
    Ok(())
}

pub fn parse_distributions(items: &[String]) -> Result<Vec<Distribution>, SettingsError> {
    let mut out = Vec::new();
    for d in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match Distribution::parse(d) {
            Some(x) if !out.contains(&x) => out.push(x),
            Some(_) => {}
            None => {
                return bad(format!(
                "unknown distribution '{}': use linear, exponential or both (linear,exponential)",
                quote(d)
            ))
            }
        }
    }
    if out.is_empty() {
        return bad("--distributions needs linear, exponential or both");
    }
    Ok(out)
}

/// Per-subcommand values that are not in [`CommonArgs`].
#[derive(Debug, Default, Clone)]
pub struct RunOverrides {
    pub time: Option<f64>,
    pub max_latency: Option<String>,
    pub distributions: Option<String>,
    pub min_queries: Option<u64>,
    pub search_time: Option<f64>,
    pub no_accuracy: bool,
    /// `run` only: `--no-tune` and `--configs`.
    pub no_tune: bool,
    pub configs: Option<String>,
    /// Whether the subcommand tunes at all (`run` does).
    pub tunes: bool,
    /// `throughput` and `latency`: `--op-profile`.
    pub op_profile: bool,
}

impl Settings {
    pub fn resolve(c: &CommonArgs, o: &RunOverrides) -> Result<Settings, SettingsError> {
        let (sc, scenario_file) = Scenario::resolve(c.scenario.as_deref())?;
        let defaults = Scenario::cloud_defaults();
        // First: a bad value of a flag is reported as such whatever else is missing
        // (`run --max-latency -inf` names the value before asking for a backend).
        let max_latency = match &o.max_latency {
            Some(s) => parse_latencies(s)?,
            None => sc
                .max_latency
                .clone()
                .or(defaults.max_latency)
                .unwrap_or_default(),
        };
        if o.max_latency.is_none() {
            check_latencies(&max_latency, "max_latency in the scenario file")?;
        }

        let profile_info = match &c.profile {
            Some(name) => Some(profile::find(name).ok_or_else(|| {
                SettingsError(format!(
                    "unknown profile '{}': use one of {}",
                    quote(name),
                    profile::names()
                ))
            })?),
            None => None,
        };
        let backend = match (&c.backend, profile_info) {
            (Some(b), _) => BackendKind::parse(b).ok_or_else(|| {
                SettingsError(format!(
                    "unknown backend '{}': use onnxruntime, tf, kserve, sim or null",
                    quote(b)
                ))
            })?,
            (None, Some(p)) => p.backend,
            (None, None) => {
                return bad("say which backend to measure: --backend onnxruntime|tf|kserve|sim|null (or --profile NAME)")
            }
        };
        let profile_info = profile_info.or_else(|| profile::default_for(backend));
        let device = match c.device.as_deref() {
            None | Some("cpu") => Device::Cpu,
            Some("gpu") => Device::Gpu,
            Some(d) => return bad(format!("unknown device '{}': use cpu or gpu", quote(d))),
        };
        let data_format = match c.data_format.as_deref() {
            None => None,
            Some(f) => Some(Layout::parse(f).ok_or_else(|| {
                SettingsError(format!(
                    "unknown --data-format '{}': use NCHW or NHWC",
                    quote(f)
                ))
            })?),
        };
        let precision = match c.precision.as_deref().or(sc.precision.as_deref()) {
            None => None,
            Some(p) => Some(Precision::parse(p).ok_or_else(|| {
                SettingsError(format!(
                    "unknown --precision '{}': use fp32, int8 or bf16",
                    quote(p)
                ))
            })?),
        };
        check_precision(precision, backend)?;
        let model = match (&c.model, profile_info) {
            (Some(m), _) => Some(m.clone()),
            (None, Some(p)) if precision == Some(Precision::Int8) => {
                let int8 = default_model_path(INT8_MODEL);
                if p.model_file != "resnet50_v1.onnx" {
                    return bad(format!(
                        "--precision int8 has a quantized model for resnet50_v1.onnx only; give --model with an int8 model for {}",
                        p.model_file
                    ));
                }
                if !int8.is_file() {
                    return bad(format!(
                        "--precision int8 runs {}, which is not there: run scripts/setup.sh onnxruntime (it quantizes the fp32 model), or give --model with an int8 model",
                        quote_path(&int8)
                    ));
                }
                Some(int8)
            }
            (None, Some(p)) if backend.needs_model() => Some(default_model_path(p.model_file)),
            _ => None,
        };
        let distributions = match &o.distributions {
            Some(s) => parse_distributions(&s.split(',').map(String::from).collect::<Vec<_>>())?,
            None => parse_distributions(
                &sc.distributions
                    .clone()
                    .or(defaults.distributions)
                    .unwrap_or_default(),
            )?,
        };
        let pick = |flag: Option<f64>, file: Option<f64>, def: Option<f64>| {
            flag.or(file).or(def).unwrap_or(0.0)
        };
        let time = pick(o.time, sc.time, defaults.time);
        if !(time.is_finite() && time > 0.0 && time <= limits::MAX_STEP_SECONDS) {
            return bad(format!(
                "time {time} must be a positive number of seconds, at most a day ({} s)",
                limits::MAX_STEP_SECONDS
            ));
        }
        let warmup = pick(c.warmup, sc.warmup, defaults.warmup);
        if !((0.0..=limits::MAX_STEP_SECONDS).contains(&warmup)) {
            return bad(format!(
                "warmup {warmup} must be zero or more seconds, at most a day ({} s)",
                limits::MAX_STEP_SECONDS
            ));
        }
        let threads = c.threads.or(sc.threads).unwrap_or_else(|| {
            if backend == BackendKind::Kserve {
                // One worker submits everything; the requests run on the client's own
                // I/O threads.
                1
            } else {
                limits::cores()
            }
        });
        let batch_size = c
            .batch_size
            .or(sc.batch_size)
            .or(defaults.batch_size)
            .unwrap_or(1);
        let count = c.count.or(sc.count).or(defaults.count).unwrap_or(500);
        let min_queries = o
            .min_queries
            .or(sc.min_queries)
            .or(defaults.min_queries)
            .unwrap_or(0);
        within("threads", threads as u64, 1, limits::max_threads() as u64)?;
        within("batch_size", batch_size as u64, 1, limits::MAX_BATCH as u64)?;
        within("count", count as u64, 1, limits::MAX_COUNT as u64)?;
        within("min_queries", min_queries, 0, limits::MAX_MIN_QUERIES)?;
        for (name, v) in [
            ("intra-threads", c.intra_threads),
            ("inter-threads", c.inter_threads),
        ] {
            if let Some(v) = v {
                within(name, v as u64, 1, limits::max_runtime_threads() as u64)?;
            }
        }
        if let (Some(name), Some(p)) = (&c.profile, profile_info) {
            if p.backend != backend {
                return bad(format!(
                    "--profile {name} is for the {} backend but --backend is {}: drop one of them or pick a matching profile ({})",
                    p.backend.name(),
                    backend.name(),
                    profile::names()
                ));
            }
        }
        let placement = crate::base::placement::decide(
            &crate::base::placement::Topology::read(),
            c.cores.as_deref(),
            c.socket_id,
        )
        .map_err(SettingsError)?;
        if c.requests.is_some() && backend != BackendKind::OpenVino {
            return bad("--requests applies to --backend openvino (its asynchronous infer requests); drop it");
        }
        let pinned = c.threads.is_some()
            || c.requests.is_some()
            || c.intra_threads.is_some()
            || c.inter_threads.is_some()
            || c.batch_size.is_some();
        let tune = match (&o.configs, o.tunes) {
            (Some(_), _) if o.no_tune => {
                return bad("--configs lists configurations to tune over and --no-tune turns tuning off: drop one of them");
            }
            (Some(_), _) if pinned => {
                return bad("--configs lists whole configurations: drop --threads, --requests, --intra-threads, --inter-threads and --batch_size, or drop --configs");
            }
            // A remote server is not tuned: its configuration is the server's.
            (Some(_), _) if backend == BackendKind::Kserve => {
                return bad("--configs tunes in-process runtimes; a kserve server's configuration is the server's (drop --configs)");
            }
            (Some(list), _) => {
                Tune::List(candidates::parse_candidates(list).map_err(|e| SettingsError(e.0))?)
            }
            // The real runtimes tune unless pinned; sim and null only when asked.
            (None, true)
                if !o.no_tune
                    && !pinned
                    && matches!(
                        backend,
                        BackendKind::OnnxRuntime | BackendKind::Tf | BackendKind::OpenVino
                    ) =>
            {
                Tune::Default
            }
            _ => Tune::Off,
        };
        if backend == BackendKind::Sim {
            if let Some(spec) = &c.sim_service_time {
                crate::backend::sim::ServiceTime::parse(spec).map_err(SettingsError)?;
            }
        } else if c.sim_service_time.is_some() {
            return bad("--sim-service-time only applies to --backend sim");
        }
        if let Some(m) = &model {
            // Reading a model from a FIFO or device would block or never end.
            if let Ok(md) = std::fs::metadata(m) {
                if !md.is_file() && !md.is_dir() {
                    return bad(format!(
                        "--model {} is not a regular file; name the model file",
                        quote_path(m)
                    ));
                }
            }
        }
        if let Some(l) = &c.dataset_list {
            if l.is_dir() {
                return bad(format!(
                    "--dataset-list {} is a folder; it must name the image list file (a val_map.txt of `<relative path> <label>` lines)",
                    quote_path(l)
                ));
            }
        }
        let kserve = kserve_config(c, backend, batch_size, device)?;
        if let Some(p) = &c.dataset_path {
            if !p.is_dir() {
                return bad(format!(
                    "--dataset-path {} is not a folder (expected an ImageNet-layout folder with val_map.txt)",
                    quote_path(p)
                ));
            }
        }
        let confidence = c
            .confidence
            .or(sc.confidence)
            .or(defaults.confidence)
            .unwrap_or(0.99);
        if !(confidence > 0.5 && confidence <= 0.9999) {
            return bad("confidence in the scenario file must be above 0.5 and at most 0.9999 (default 0.99)");
        }
        let search_time = o
            .search_time
            .or(sc.search_time)
            // A day-long `--time` must not trip a limit the user never set.
            .unwrap_or((DEFAULT_SEARCH_STEPS * time).min(limits::MAX_SEARCH_SECONDS));
        if !(search_time.is_finite() && (0.0..=limits::MAX_SEARCH_SECONDS).contains(&search_time)) {
            return bad(format!(
                "search_time {search_time} must be zero (no limit) or more seconds, at most thirty days ({} s)",
                limits::MAX_SEARCH_SECONDS
            ));
        }
        Ok(Settings {
            confidence,
            search_time,
            scenario: sc.name.clone().unwrap_or_else(|| "cloud".into()),
            scenario_file,
            profile: profile_info.map(|p| p.name.to_string()),
            backend,
            model,
            device,
            dataset_path: c.dataset_path.clone(),
            dataset_list: c.dataset_list.clone(),
            data_format: data_format.or(profile_info
                .filter(|_| c.profile.is_some())
                .map(|p| p.data_format)),
            inputs: c
                .inputs
                .clone()
                .or_else(|| profile_info.and_then(|p| p.inputs.map(String::from))),
            outputs: c
                .outputs
                .clone()
                .or_else(|| profile_info.and_then(|p| p.outputs.map(String::from))),
            batch_size,
            threads,
            intra_threads: c.intra_threads,
            requests: c.requests,
            precision,
            placement,
            inter_threads: c.inter_threads,
            count,
            cache: c.cache.unwrap_or(false),
            seed: c.seed.or(sc.seed).or(defaults.seed).unwrap_or(42),
            sim_service_time: c.sim_service_time.clone(),
            warmup,
            time,
            max_latency,
            distributions,
            min_queries,
            accuracy: !o.no_accuracy && sc.accuracy.or(defaults.accuracy).unwrap_or(true),
            quiet: c.quiet,
            verbose: c.verbose,
            op_profile: o.op_profile,
            tune,
            kserve,
            profile_info,
        })
    }

    pub fn backend_config(&self) -> BackendConfig {
        BackendConfig {
            model: self.model.clone(),
            device: self.device,
            workers: self.threads,
            batch_size: self.batch_size,
            intra_threads: self.intra_threads,
            inter_threads: self.inter_threads,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            data_format: self.data_format,
            sim_service_time: self.sim_service_time.clone(),
            seed: self.seed,
            kserve: self.kserve.clone(),
            verbose: self.verbose,
            op_profile: self.op_profile,
            requests: self.requests,
            precision: self.precision,
        }
    }

    /// The settings of the fp32 run a lower `--precision` is checked against (the
    /// accuracy pass's agreement): the same backend on the profile's fp32 model, or
    /// `None` for fp32 itself, and for an int8 model the user named (whose fp32
    /// original loadgen does not know).
    pub fn fp32_reference(&self) -> Option<Settings> {
        let mut r = self.clone();
        match self.precision? {
            Precision::Fp32 => return None,
            Precision::Bf16 => {}
            Precision::Int8 => {
                let default_int8 = default_model_path(INT8_MODEL);
                if self.model.as_deref() != Some(default_int8.as_path()) {
                    return None;
                }
                r.model = Some(default_model_path(self.profile_info?.model_file));
            }
        }
        r.precision = Some(Precision::Fp32);
        r.op_profile = false;
        r.requests = None;
        Some(r)
    }

    pub fn targets(&self) -> impl Iterator<Item = (f64, Duration)> + '_ {
        self.max_latency.iter().map(|&t| (t, limits::duration(t)))
    }

    /// One search's budget: an equal share of `search_time` per distribution and
    /// target, so that a run asking more questions gives each less time and its
    /// length stays bounded; a search answering sooner leaves its share unused.
    pub fn search_share(&self) -> Option<f64> {
        let searches = self.distributions.len() * self.max_latency.len();
        (self.search_time > 0.0 && searches > 0).then(|| self.search_time / searches as f64)
    }
}

/// Refuses an offered rate (`fixed --qps`) too low for a step of `time` seconds: its
/// first query is planned at the step's start and the next a mean gap (1/rate) later,
/// so below [`StepSpec::min_usable_qps`] the next query falls beyond the step's time
/// cap and the step would print one query's latency as if it were a measurement.
///
/// `run` needs no such check: its rates come from the measured capacity, never from
/// a flag.
pub fn check_rate(qps: f64, time: f64) -> Result<(), SettingsError> {
    let least = StepSpec::min_usable_qps(time);
    if qps >= least {
        return Ok(());
    }
    // Rounded up, so that the rate the sentence names is itself accepted.
    let shown = round_up_3(least);
    bad(format!(
        "--qps {} is below {shown} queries/s, the lowest rate at which a step of --time {} s plans a second query within its time cap of {} s (4 × --time, at least 1 s): raise --qps or --time",
        show_number(qps),
        show_number(time),
        show_number(StepSpec::time_cap_seconds(time)),
    ))
}

/// `v` rounded up to three significant digits (`0.08333…` → `0.0834`).
fn round_up_3(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return v;
    }
    let scale = 10f64.powi(2 - v.log10().floor() as i32);
    let up = (v * scale).ceil() / scale;
    // The division may land a hair below `v`; one more step up keeps it above.
    if up < v {
        up + 1.0 / scale
    } else {
        up
    }
}

/// A number as a sentence shows it: plain in a readable range, else `1e-9`.
fn show_number(v: f64) -> String {
    if v == 0.0 || (1e-4..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// `value` within `lo..=hi`, else a sentence naming the setting and its limits.
fn within(name: &str, value: u64, lo: u64, hi: u64) -> Result<(), SettingsError> {
    if value < lo || value > hi {
        return bad(format!("{name} {value} is out of range: use {lo} to {hi}"));
    }
    Ok(())
}

/// The `kserve` flags, checked; `None` for other backends (which refuse them).
fn kserve_config(
    c: &CommonArgs,
    backend: BackendKind,
    batch_size: usize,
    device: Device,
) -> Result<Option<KserveConfig>, SettingsError> {
    use crate::backend::kserve::{client, wire::TensorFormat};
    if backend != BackendKind::Kserve {
        let given = [
            ("--url", c.url.is_some()),
            ("--model-name", c.model_name.is_some()),
            ("--model-version", c.model_version.is_some()),
            ("--http-headers", !c.http_headers.is_empty()),
            ("--tensor-format", c.tensor_format.is_some()),
            ("--connections", c.connections.is_some()),
            ("--concurrency", c.concurrency.is_some()),
            ("--ready-timeout", c.ready_timeout.is_some()),
            ("--request-timeout", c.request_timeout.is_some()),
            ("--io-threads", c.io_threads.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
            return bad(format!("{flag} only applies to --backend kserve"));
        }
        return Ok(None);
    }
    let Some(url) = c.url.clone() else {
        return bad("--backend kserve needs --url http://HOST:PORT or grpc://HOST:PORT (scripts/serve_triton.sh starts a local Triton)");
    };
    let parsed = client::ServerUrl::parse(&url).map_err(SettingsError)?;
    let Some(model_name) = c.model_name.clone().filter(|m| !m.trim().is_empty()) else {
        return bad(
            "--backend kserve needs --model-name (the model's name on the server, e.g. resnet50)",
        );
    };
    if device == Device::Gpu {
        return bad("--device applies to in-process runtimes; a kserve server decides where its model runs (drop --device gpu)");
    }
    let headers = c
        .http_headers
        .iter()
        .map(|h| client::parse_header(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SettingsError)?;
    let tensor_format = match c.tensor_format.as_deref() {
        None => TensorFormat::Binary,
        Some(f) => TensorFormat::parse(f).ok_or_else(|| {
            SettingsError(format!(
                "unknown --tensor-format '{}': use binary or json",
                quote(f)
            ))
        })?,
    };
    if c.tensor_format.is_some() && parsed.protocol == client::Protocol::Grpc {
        return bad("--tensor-format applies to http:// URLs; gRPC always sends raw tensor bytes");
    }
    const MAX_CONNECTIONS: usize = 65_536;
    if c.connections.is_some_and(|n| n > MAX_CONNECTIONS)
        || c.concurrency.is_some_and(|n| n > MAX_CONNECTIONS)
    {
        return bad(format!(
            "--connections and --concurrency are at most {MAX_CONNECTIONS}"
        ));
    }
    let ready_timeout_s = c.ready_timeout.unwrap_or(30.0);
    if ready_timeout_s > 3600.0 {
        return bad("--ready-timeout is at most 3600 seconds");
    }
    let request_timeout_s = c
        .request_timeout
        .unwrap_or(crate::backend::kserve::DEFAULT_REQUEST_TIMEOUT_S);
    let io_threads = c
        .io_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    if io_threads > 256 {
        return bad("--io-threads is at most 256");
    }
    Ok(Some(KserveConfig {
        url,
        model_name,
        model_version: c.model_version.clone(),
        headers,
        tensor_format,
        connections: c.connections,
        concurrency: c.concurrency,
        ready_timeout_s,
        request_timeout_s,
        io_threads,
        batch_size,
    }))
}

/// The quantized ResNet-50 `models/make_int8_model.py` makes (scripts/setup.sh).
pub const INT8_MODEL: &str = "resnet50_v1.int8.onnx";

/// `--precision` on a backend that cannot give it: one sentence naming those that can.
fn check_precision(p: Option<Precision>, backend: BackendKind) -> Result<(), SettingsError> {
    let refuse = |what: &str| {
        bad(format!(
            "--precision {} runs on {what}; --backend {} runs fp32 here",
            p.map_or("", Precision::name),
            backend.name()
        ))
    };
    match (p, backend) {
        (None | Some(Precision::Fp32), BackendKind::OnnxRuntime | BackendKind::Tf | BackendKind::OpenVino) => Ok(()),
        (Some(_), BackendKind::Kserve) => bad("--precision applies to in-process runtimes; a kserve server's model is the server's (drop --precision)"),
        (Some(_), BackendKind::Sim | BackendKind::Null) => bad(format!("--precision applies to real runtimes, not --backend {}", backend.name())),
        (None, _) => Ok(()),
        (Some(Precision::Int8), BackendKind::OnnxRuntime | BackendKind::OpenVino) => Ok(()),
        (Some(Precision::Int8), _) => refuse("--backend onnxruntime or openvino (a QDQ-quantized ONNX model)"),
        (Some(Precision::Bf16), BackendKind::OpenVino | BackendKind::Tf) => Ok(()),
        (Some(Precision::Bf16), _) => refuse("--backend openvino or tf (their bf16 kernels, where the CPU has them)"),
    }
}

/// `models/<file>` of the project (or of the working directory).
fn default_model_path(file: &str) -> PathBuf {
    crate::base::paths::project_root()
        .map(|r| r.join("models").join(file))
        .unwrap_or_else(|| PathBuf::from("models").join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(backend: &str) -> CommonArgs {
        CommonArgs {
            backend: Some(backend.into()),
            ..CommonArgs::default()
        }
    }

    #[test]
    fn cloud_defaults_then_flags() {
        let s = Settings::resolve(&common("sim"), &RunOverrides::default()).unwrap();
        assert_eq!(s.max_latency, vec![0.01, 0.05, 0.1, 0.2]);
        assert_eq!(
            s.distributions,
            vec![Distribution::Linear, Distribution::Exponential]
        );
        assert_eq!((s.time, s.count, s.batch_size), (10.0, 500, 1));
        let o = RunOverrides {
            time: Some(5.0),
            max_latency: Some("0.02".into()),
            distributions: Some("exponential".into()),
            no_accuracy: true,
            ..RunOverrides::default()
        };
        let s = Settings::resolve(&common("sim"), &o).unwrap();
        assert_eq!(
            (s.time, s.max_latency.clone(), s.accuracy),
            (5.0, vec![0.02], false)
        );
        assert_eq!(s.distributions, vec![Distribution::Exponential]);
    }

    #[test]
    fn each_search_gets_an_equal_share_of_the_search_time() {
        let s = Settings::resolve(&common("sim"), &RunOverrides::default()).unwrap();
        // 32 × 10 s over two distributions × four targets.
        assert_eq!(s.search_share(), Some(40.0));
        let one = RunOverrides {
            max_latency: Some("0.05".into()),
            distributions: Some("exponential".into()),
            time: Some(5.0),
            ..RunOverrides::default()
        };
        let s = Settings::resolve(&common("sim"), &one).unwrap();
        assert_eq!(s.search_share(), Some(160.0));
        let off = RunOverrides {
            search_time: Some(0.0),
            ..RunOverrides::default()
        };
        let s = Settings::resolve(&common("sim"), &off).unwrap();
        assert_eq!(s.search_share(), None);
        // The longest `--time` still resolves, its default budget held to the limit.
        let day = RunOverrides {
            time: Some(limits::MAX_STEP_SECONDS),
            ..RunOverrides::default()
        };
        let s = Settings::resolve(&common("sim"), &day).unwrap();
        assert_eq!(s.search_time, limits::MAX_SEARCH_SECONDS);
    }

    #[test]
    fn bad_values_are_one_sentence() {
        let o = RunOverrides {
            max_latency: Some("abc".into()),
            ..RunOverrides::default()
        };
        let e = Settings::resolve(&common("sim"), &o)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--max-latency takes positive seconds") && e.contains("got 'abc'"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = Settings::resolve(&common("mxnet"), &RunOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown backend 'mxnet'"), "{e}");
        let e = parse_distributions(&["poisson".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown distribution 'poisson'"), "{e}");
    }

    /// The schema's pattern for a target key: `^[0-9]+(\.[0-9]+)?(e-[0-9]+)?$`.
    fn is_target_key(k: &str) -> bool {
        let (num, exp) = match k.split_once("e-") {
            Some((n, e)) => (n, Some(e)),
            None => (k, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let num_ok = match num.split_once('.') {
            Some((a, b)) => digits(a) && digits(b),
            None => digits(num),
        };
        num_ok && exp.is_none_or(digits)
    }

    #[test]
    fn every_accepted_target_is_a_valid_results_key() {
        for t in [
            1e-6,
            1.5e-6,
            9.99e-5,
            1e-4,
            0.01,
            0.05,
            0.123456789,
            1.0,
            999.5,
            3600.0,
        ] {
            check_latencies(&[t], "t").unwrap();
            let k = crate::output::lines::py_float(t);
            assert!(is_target_key(&k), "{t} -> {k}");
        }
        for t in [9e-7, 3600.001, 1e17, f64::INFINITY, f64::NAN, 0.0, -1.0] {
            let e = check_latencies(&[t], "t").unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
        }
        let e = check_latencies(&[0.05, 0.1, 5e-2], "--max-latency")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0.05 s twice"), "{e}");
        assert!(check_latencies(&[], "x").is_err());
    }

    #[test]
    fn a_rate_whose_next_query_falls_beyond_the_time_cap_is_refused() {
        // (qps, --time, accepted): the time cap is 4 × --time, at least 1 s.
        for (qps, time, ok) in [
            (0.25, 1.0, true),
            (0.2499, 1.0, false),
            (1e-9, 1.0, false),
            (1.0, 0.001, true),
            (0.99, 0.001, false),
            (0.025, 10.0, true),
            (0.024, 10.0, false),
            (1e-5, limits::MAX_STEP_SECONDS, true),
        ] {
            assert_eq!(check_rate(qps, time).is_ok(), ok, "{qps} at --time {time}");
        }
        let e = check_rate(1e-9, 1.0).unwrap_err().to_string();
        assert!(
            e.starts_with("--qps 1e-9 is below 0.25 queries/s,") && e.contains("time cap of 4 s"),
            "{e}"
        );
        // The smallest rate named is itself accepted (rounded up, never down).
        let e = check_rate(0.01, 3.0).unwrap_err().to_string();
        assert!(e.contains("below 0.0834 queries/s"), "{e}");
        assert!(check_rate(0.0834, 3.0).is_ok());
        for t in [0.3, 3.0, 7.0, 11.0, 1e3, 12345.0] {
            let least = round_up_3(StepSpec::min_usable_qps(t));
            assert!(check_rate(least, t).is_ok(), "{least} at --time {t}");
        }
    }

    #[test]
    fn profile_sets_backend_and_tensor_names() {
        let c = CommonArgs {
            profile: Some("resnet50-tf".into()),
            ..CommonArgs::default()
        };
        let s = Settings::resolve(&c, &RunOverrides::default()).unwrap();
        assert_eq!(s.backend, BackendKind::Tf);
        assert_eq!(s.inputs.as_deref(), Some("input_tensor:0"));
        assert_eq!(s.outputs.as_deref(), Some("ArgMax:0"));
        assert_eq!(s.data_format, Some(Layout::Nhwc));
        assert!(s.model.unwrap().ends_with("models/resnet50_v1.pb"));
    }

    #[test]
    fn scenario_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, "time = 3\nmax_latncy = [0.1]\n").unwrap();
        let e = Scenario::load(&p).unwrap_err().to_string();
        assert!(e.contains("max_latncy"), "{e}");
        std::fs::write(&p, "time = 3\nmax_latency = [0.1]\n").unwrap();
        let c = CommonArgs {
            scenario: Some(p),
            ..common("null")
        };
        let s = Settings::resolve(&c, &RunOverrides::default()).unwrap();
        assert_eq!((s.time, s.max_latency), (3.0, vec![0.1]));
    }

    #[test]
    fn the_committed_cloud_scenario_matches_the_built_in_defaults() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/cloud.toml");
        let file = Scenario::load(&p).unwrap();
        let def = Scenario::cloud_defaults();
        assert_eq!(
            toml::to_string(&file).unwrap(),
            toml::to_string(&def).unwrap()
        );
    }
}
