//! The subcommands, gluing settings, backend, samples, pool, search and report
//! together. Measuring lives in `step`/`search`, formatting in `report`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::accuracy;
use crate::backend::{self, Backend};
use crate::cli::{FixedArgs, RunArgs, ThroughputArgs};
use crate::dataset::{Dataset, DatasetOptions};
use crate::error::Interrupted;
use crate::pool::{SampleLibrary, WorkerPool};
use crate::preprocess::Preprocess;
use crate::progress::Progress;
use crate::report::{self, Results};
use crate::schedule::Distribution;
use crate::search::{self, SearchStop, StepRunner};
use crate::settings::{parse_latencies, RunOverrides, Settings, SettingsError};
use crate::signals;
use crate::step::{self, StepSpec, StepSummary};

/// A loaded system under test: backend, samples and the worker pool.
struct Sut {
    backend: Arc<dyn Backend>,
    dataset: Arc<Dataset>,
    pool: WorkerPool,
}

/// Loads the backend, the samples and the pool. Diagnostics go to stderr directly: the
/// dataset draws its own progress bar while it loads.
fn load_sut(settings: &Settings) -> Result<Sut> {
    let backend = backend::load(settings.backend, &settings.backend_config())?;
    let dataset = Arc::new(load_samples(settings, &backend)?);
    let samples: Arc<dyn SampleLibrary> = dataset.clone();
    let pool = WorkerPool::start(&backend, samples, settings.threads, settings.batch_size)?;
    Ok(Sut {
        backend,
        dataset,
        pool,
    })
}

/// The samples: the dataset preprocessed for this model, synthetic tensors of the
/// model's shape without one, or nothing for backends that take no input.
fn load_samples(settings: &Settings, backend: &Arc<dyn Backend>) -> Result<Dataset> {
    let model = backend.model();
    if model.item_len() == 0 {
        return Ok(Dataset::empty(settings.count));
    }
    let kind = settings
        .profile_info
        .map_or(Preprocess::Resnet50, |p| p.preprocess);
    let Some(hw) = model.image_hw() else {
        anyhow::bail!(backend::BackendError::BadInput(format!(
            "the model input {:?} is not an image tensor in {} layout",
            model.item_shape,
            model.layout.as_str()
        )));
    };
    match &settings.dataset_path {
        Some(root) => {
            let mut o = DatasetOptions::new(root, kind, model.layout, hw);
            o.list = settings.dataset_list.clone();
            o.count = Some(settings.count);
            o.quiet = settings.quiet;
            o.cache_dir = settings.cache.then(|| PathBuf::from("out/cache"));
            Ok(Dataset::load(&o)?)
        }
        None => {
            if !settings.quiet {
                eprintln!(
                    "loadgen: no --dataset-path: using {} synthetic inputs of shape {:?}; the accuracy pass is skipped",
                    settings.count, model.item_shape
                );
            }
            Ok(Dataset::synthetic_in_range(
                &model.item_shape,
                model.layout,
                settings.count,
                settings.seed,
                kind.value_range(),
            )?)
        }
    }
}

/// The accuracy pass, when the settings ask for it and the samples have labels.
fn accuracy_pass(
    sut: &Sut,
    settings: &Settings,
    keep_scores: bool,
) -> Result<Option<accuracy::AccuracyRun>> {
    if sut.dataset.is_synthetic() || sut.dataset.labels().is_none() {
        return Ok(None);
    }
    let model = sut.backend.model();
    let offset = accuracy::label_offset(model, settings.profile_info.map(|p| p.label_offset));
    Ok(Some(accuracy::run(
        &sut.pool,
        &sut.dataset,
        model,
        offset,
        keep_scores,
    )?))
}

/// Warm-up, so that the first timed step does not pay for lazy initialisation.
fn warm_up(sut: &Sut, settings: &Settings, progress: &mut Progress) -> Result<()> {
    if settings.warmup > 0.0 {
        progress.stage("warm-up", &format!("{:.0} s closed loop", settings.warmup));
        step::run_closed(
            &sut.pool,
            Duration::from_secs_f64(settings.warmup),
            signals::flag(),
        )?;
    }
    Ok(())
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The step runner the search drives: runs a step on the pool, prints its line and
/// records it in the results.
struct PoolRunner<'a> {
    sut: &'a Sut,
    settings: &'a Settings,
    progress: &'a mut Progress,
    results: &'a mut Results,
}

impl StepRunner for PoolRunner<'_> {
    fn step(
        &mut self,
        dist: Distribution,
        qps: f64,
        target: Duration,
    ) -> Result<StepSummary, SearchStop> {
        let spec = StepSpec {
            distribution: dist,
            offered_qps: qps,
            queries: StepSpec::query_count(qps, self.settings.time, self.settings.min_queries),
            target: Some(target),
            seed: self.settings.seed,
        };
        let name = report::step_name(dist, Some(target.as_secs_f64()), qps);
        self.progress.stage(
            &format!(
                "{} {}",
                dist.as_str(),
                report::py_float(target.as_secs_f64())
            ),
            &name,
        );
        self.progress
            .track(self.sut.pool.live_handle(), spec.queries);
        let summary = step::run_open(&self.sut.pool, &spec, signals::flag())
            .map_err(|e| SearchStop::Failed(e.into()))?;
        self.progress.end_step();
        if signals::interrupted() {
            return Err(SearchStop::Interrupted);
        }
        self.progress.println(&report::step_line(&name, &summary));
        if summary.passed {
            self.progress.println(report::TAKEN);
        } else {
            self.progress.note(&format!(
                "loadgen: {name}: {}",
                report::verdict_text(&summary)
            ));
        }
        self.results.add_step(dist, name, summary.clone());
        Ok(summary)
    }
}

fn write_results(path: &std::path::Path, results: &Results) -> Result<()> {
    report::write_json_atomic(path, &results.to_json())?;
    Ok(())
}

/// `loadgen run`: the scenario's whole procedure.
pub fn run(args: RunArgs, cmdline: String) -> Result<()> {
    let o = RunOverrides {
        time: args.time,
        max_latency: args.max_latency.clone(),
        distributions: args.distributions.clone(),
        min_queries: args.min_queries,
        no_accuracy: args.no_accuracy,
    };
    let settings = Settings::resolve(&args.common, &o)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/results.json"));
    report::check_writable(&output)?;
    let sut = load_sut(&settings)?;
    let mut progress = Progress::new(settings.quiet);
    let mut results = Results {
        runtime: sut.backend.name().to_string(),
        version: sut.backend.version(),
        time: epoch_seconds(),
        cmdline,
        settings: report::settings_json(&settings),
        system: crate::system::describe(),
        ..Results::default()
    };
    if settings.accuracy {
        progress.stage("accuracy", &format!("{} items", sut.dataset.len()));
        match accuracy_pass(&sut, &settings, false)? {
            Some(run) => {
                progress.println(&report::accuracy_line(&run.report));
                results.check_accuracy = Some(run.report);
            }
            None if !settings.backend.needs_model() => {}
            None => progress.note("loadgen: accuracy pass skipped: synthetic inputs have no labels (give --dataset-path)"),
        }
    }
    write_results(&output, &results)?;
    let interrupted = || Interrupted(output.display().to_string());

    warm_up(&sut, &settings, &mut progress)?;
    // Capacity probe: the closed-loop rate bounds every open-loop answer from above.
    let probe_time = (settings.time / 4.0).clamp(1.0, 5.0);
    progress.stage("probe", &format!("{probe_time:.0} s closed loop"));
    let probe = step::run_closed(
        &sut.pool,
        Duration::from_secs_f64(probe_time),
        signals::flag(),
    )?;
    if signals::interrupted() {
        results.interrupted = true;
        write_results(&output, &results)?;
        return Err(interrupted().into());
    }
    if probe.count == 0 {
        anyhow::bail!(
            "the capacity probe completed no query in {probe_time:.0} s{}",
            probe
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    progress.note(&format!(
        "loadgen: capacity probe: {:.1} queries/s closed loop with {} threads, batch {}",
        probe.qps, settings.threads, settings.batch_size
    ));
    results.capacity = Some(probe.clone());

    for &dist in &settings.distributions {
        let mut known: Option<StepSummary> = None;
        for (t, target) in settings.targets() {
            let mut runner = PoolRunner {
                sut: &sut,
                settings: &settings,
                progress: &mut progress,
                results: &mut results,
            };
            let bounds = search::Bounds::new(probe.qps, settings.min_queries, settings.time);
            match search::search(&mut runner, dist, target, bounds, known.as_ref()) {
                Ok(found) => {
                    progress.println(&report::result_line(dist, t, found.best.as_ref()));
                    results.set_result(dist, t, found.best.clone());
                    write_results(&output, &results)?;
                    if found.best.is_some() {
                        known = found.best;
                    }
                }
                Err(SearchStop::Interrupted) => {
                    results.interrupted = true;
                    write_results(&output, &results)?;
                    return Err(interrupted().into());
                }
                Err(SearchStop::Failed(e)) => {
                    write_results(&output, &results)?;
                    return Err(e);
                }
            }
        }
    }
    progress.finish();
    println!("{}", results.final_results.line());
    write_results(&output, &results)?;
    Ok(())
}

/// Settings, a loaded system under test warmed up, and the progress bar: what `fixed`
/// and `throughput` start with.
fn prepare(common: &crate::cli::CommonArgs, o: &RunOverrides) -> Result<(Settings, Sut, Progress)> {
    let settings = Settings::resolve(common, o)?;
    let sut = load_sut(&settings)?;
    let mut progress = Progress::new(settings.quiet);
    warm_up(&sut, &settings, &mut progress)?;
    Ok((settings, sut, progress))
}

/// Prints a one-step summary (`--json`) and turns an interruption into exit code 130.
fn finish_single(summary: &StepSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", report::step_json(summary));
    }
    if signals::interrupted() {
        return Err(Interrupted("stdout".into()).into());
    }
    Ok(())
}

/// `loadgen fixed`: one step at a fixed offered rate.
pub fn fixed(args: FixedArgs) -> Result<()> {
    let dist = Distribution::parse(&args.distribution).ok_or_else(|| {
        SettingsError(format!(
            "unknown distribution '{}': use linear or exponential",
            args.distribution
        ))
    })?;
    let target = match &args.max_latency {
        Some(s) => Some(parse_latencies(s)?[0]),
        None => None,
    };
    let o = RunOverrides {
        time: args.time,
        min_queries: args.min_queries,
        ..RunOverrides::default()
    };
    let (settings, sut, mut progress) = prepare(&args.common, &o)?;
    let spec = StepSpec {
        distribution: dist,
        offered_qps: args.qps,
        queries: StepSpec::query_count(args.qps, settings.time, settings.min_queries),
        target: target.map(Duration::from_secs_f64),
        seed: settings.seed,
    };
    let name = report::step_name(dist, target, args.qps);
    progress.stage("fixed", &name);
    progress.track(sut.pool.live_handle(), spec.queries);
    let summary = step::run_open(&sut.pool, &spec, signals::flag())?;
    progress.finish();
    println!("{}", report::step_line(&name, &summary));
    finish_single(&summary, args.json)
}

/// `loadgen throughput`: closed loop, the most the system can do.
pub fn throughput(args: ThroughputArgs) -> Result<()> {
    let o = RunOverrides {
        time: args.time,
        ..RunOverrides::default()
    };
    let (settings, sut, mut progress) = prepare(&args.common, &o)?;
    progress.stage("throughput", &format!("{:.0} s closed loop", settings.time));
    progress.track(sut.pool.live_handle(), 0);
    let summary = step::run_closed(
        &sut.pool,
        Duration::from_secs_f64(settings.time),
        signals::flag(),
    )?;
    progress.finish();
    println!("Throughput: {:.2} images/sec", summary.qps);
    finish_single(&summary, args.json)
}

/// `loadgen accuracy`: the accuracy pass alone.
pub fn accuracy(args: crate::cli::AccuracyArgs) -> Result<()> {
    let settings = Settings::resolve(&args.common, &RunOverrides::default())?;
    if !settings.backend.needs_model() {
        anyhow::bail!(SettingsError(format!(
            "the accuracy pass needs a model: the {} backend has none (use onnxruntime or tf)",
            settings.backend.name()
        )));
    }
    if settings.dataset_path.is_none() {
        anyhow::bail!(SettingsError(
            "the accuracy pass needs labelled images: give --dataset-path (an ImageNet-layout folder with val_map.txt)".into()
        ));
    }
    let sut = load_sut(&settings)?;
    let run = accuracy_pass(&sut, &settings, args.dump.is_some())?
        .ok_or_else(|| SettingsError("the dataset has no labels".into()))?;
    println!("{}", report::accuracy_line(&run.report));
    if let Some(dir) = &args.dump {
        accuracy::dump(dir, &sut.dataset, &run, sut.backend.model().num_classes)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&run.report)?);
    }
    Ok(())
}
