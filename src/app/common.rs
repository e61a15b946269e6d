//! What the subcommands share: loading the system under test and the samples, the
//! accuracy pass, warming up, and the signal messages. Its own file, so that each
//! subcommand depends on it and the module list in `mod.rs` on the subcommands, with
//! no circle between them.

pub(super) use std::path::PathBuf;
pub(super) use std::sync::Arc;
pub(super) use std::time::{SystemTime, UNIX_EPOCH};

pub(super) use anyhow::Result;

pub(super) use crate::backend::{self, Backend};
pub(super) use crate::base::limits;
pub(super) use crate::config::settings::Settings;
pub(super) use crate::data::dataset::{Dataset, DatasetOptions};
pub(super) use crate::data::preprocess::Preprocess;
pub(super) use crate::error::{Cancelled, Interrupted};
pub(super) use crate::measure::pool::{SampleLibrary, WorkerPool};
pub(super) use crate::measure::step::{self, StepSummary};
pub(super) use crate::output::progress::Progress;
pub(super) use crate::output::results::{self};
pub(super) use crate::signals;

/// A loaded system under test: backend, samples and the worker pool.
pub(crate) struct Sut {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) dataset: Arc<Dataset>,
    pub(crate) pool: WorkerPool,
}

/// Loads the backend, the samples and the pool. Diagnostics go to stderr directly: the
/// dataset draws its own progress bar while it loads.
pub(crate) fn load_sut(settings: &Settings) -> Result<Sut> {
    place(settings)?;
    let backend = backend::load(settings.backend, &settings.backend_config())?;
    for w in backend.warnings() {
        crate::output::lines::note(&format!("loadgen: warning: {w}"));
    }
    let dataset = Arc::new(load_samples(settings, &backend)?);
    sessions_over(settings, backend, dataset)
}

/// Loads a tuning candidate's sessions over samples already prepared.
pub(crate) fn load_candidate(settings: &Settings, dataset: &Arc<Dataset>) -> Result<Sut> {
    place(settings)?;
    let backend = backend::load(settings.backend, &settings.backend_config())?;
    sessions_over(settings, backend, Arc::clone(dataset))
}

/// `--cores`, `--socket-id`: confines the process before anything is loaded, so that
/// the runtimes' threads and the samples' memory start inside ([`placement`]).
///
/// [`placement`]: crate::base::placement
fn place(settings: &Settings) -> Result<()> {
    if let Some(p) = &settings.placement {
        crate::base::placement::apply(p).map_err(crate::config::settings::SettingsError)?;
    }
    Ok(())
}

/// The worker pool of `settings` over `backend` and `dataset`.
fn sessions_over(
    settings: &Settings,
    backend: Arc<dyn Backend>,
    dataset: Arc<Dataset>,
) -> Result<Sut> {
    let samples: Arc<dyn SampleLibrary> = dataset.clone();
    let pool = WorkerPool::start_interruptible(
        &backend,
        samples,
        settings.threads,
        settings.batch_size,
        signals::flag(),
    )?;
    // Every session is loaded: what their loads freed goes back to the system.
    crate::base::memory::release_free_heap();
    Ok(Sut {
        backend,
        dataset,
        pool,
    })
}

/// The samples: the dataset preprocessed for this model, synthetic tensors of the
/// model's shape without one, or nothing for backends that take no input.
pub(crate) fn load_samples(settings: &Settings, backend: &Arc<dyn Backend>) -> Result<Dataset> {
    let model = backend.model();
    if model.item_len() == 0 {
        return Ok(Dataset::empty(settings.count));
    }
    let kind = settings
        .profile_info
        .map_or(Preprocess::Resnet50, |p| p.preprocess);
    let Some(hw) = model.image_hw() else {
        // A server's model may take any tensor (e.g. an `identity` model): synthetic
        // inputs of its shape still measure it.
        if settings.dataset_path.is_none() && settings.backend == backend::BackendKind::Kserve {
            return Ok(Dataset::synthetic_in_range(
                &model.item_shape,
                model.layout,
                settings.count,
                settings.seed,
                kind.value_range(),
            )?);
        }
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
            if model.num_classes > 0 {
                let offset = super::accuracy_pass::label_offset(
                    model,
                    settings.profile_info.map(|p| p.label_offset),
                );
                o.label_limit = Some(model.num_classes as i64 - offset);
            }
            Ok(Dataset::load(&o)?)
        }
        None => {
            if !settings.quiet {
                crate::output::lines::note(&format!(
                    "loadgen: no --dataset-path: using {} synthetic inputs of shape {:?}; the accuracy pass is skipped",
                    settings.count, model.item_shape
                ));
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
pub(crate) fn accuracy_pass(
    sut: &Sut,
    settings: &Settings,
    keep_scores: bool,
) -> Result<Option<super::accuracy_pass::AccuracyRun>> {
    if sut.dataset.is_synthetic() || sut.dataset.labels().is_none() {
        return Ok(None);
    }
    let model = sut.backend.model();
    let offset =
        super::accuracy_pass::label_offset(model, settings.profile_info.map(|p| p.label_offset));
    let reference = settings.fp32_reference();
    let mut run = super::accuracy_pass::run(
        &sut.pool,
        &sut.dataset,
        model,
        offset,
        keep_scores || reference.is_some(),
    )?;
    if let Some(r) = reference {
        let a = fp32_agreement(&r, sut, &run)?;
        crate::output::lines::note(&format!(
            "loadgen: {} agrees with fp32 on the top-1 class of {} % of {} items; top-5 overlap {}",
            settings.precision.map_or("?", |p| p.name()),
            a.top1,
            a.items,
            a.top5_overlap.map_or("-".into(), |o| format!("{o} %"))
        ));
        run.report.fp32_agreement = Some(a);
        if !keep_scores {
            run.scores = None;
        }
    }
    Ok(Some(run))
}

/// The fp32 model's answers on the same items, against `run`'s (a lower precision).
fn fp32_agreement(
    reference: &Settings,
    sut: &Sut,
    run: &super::accuracy_pass::AccuracyRun,
) -> Result<crate::output::accuracy::Agreement> {
    let backend = backend::load(reference.backend, &reference.backend_config())?;
    let samples: Arc<dyn SampleLibrary> = sut.dataset.clone();
    let pool = WorkerPool::start_interruptible(
        &backend,
        samples,
        reference.threads,
        reference.batch_size,
        signals::flag(),
    )?;
    let classes = backend.model().num_classes;
    let fp32 = pool.run_accuracy(sut.dataset.len(), classes, true)?;
    Ok(crate::output::accuracy::Agreement::of(
        &run.top1,
        run.scores.as_deref(),
        &fp32.top1,
        fp32.scores.as_deref(),
        classes,
    ))
}

/// Who a fault sentence names ([`crate::measure::fault`]): the server's URL, or the
/// backend.
pub(crate) fn fault_subject(settings: &Settings, sut: &Sut) -> String {
    match &settings.backend_config().kserve {
        Some(k) => format!("the server at {}", crate::base::text::quote(&k.url)),
        None => format!("the {} backend", sut.backend.name()),
    }
}

/// After a single step (`fixed`, `throughput`): a step spoiled by errors, or after
/// which the server held its requests without answering, measured a broken system
/// ([`crate::measure::fault`]), so the command ends with exit 1 and a sentence
/// instead of a figure.
pub(crate) fn single_step_fault(
    settings: &Settings,
    sut: &Sut,
    summary: &StepSummary,
    name: &str,
) -> Result<()> {
    match crate::measure::fault::of(summary) {
        Some(f) => {
            Err(crate::error::ServerFault(f.describe(&fault_subject(settings, sut), name)).into())
        }
        None => Ok(()),
    }
}

/// Warm-up, so that the first timed step does not pay for lazy initialisation.
pub(crate) fn warm_up(sut: &Sut, settings: &Settings, progress: &mut Progress) -> Result<()> {
    if settings.warmup > 0.0 {
        progress.stage("warm-up", &format!("{:.0} s closed loop", settings.warmup));
        step::run_closed(
            &sut.pool,
            limits::duration(settings.warmup),
            signals::flag(),
        )?;
    }
    Ok(())
}

pub(crate) fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A loaded system under test warmed up, and the progress bar, for settings already
/// resolved (and checked further by the caller).
pub(crate) fn load_and_warm_up(settings: &Settings) -> Result<(Sut, Progress)> {
    let sut = load_sut(settings)?;
    let mut progress = Progress::new(settings.quiet);
    warm_up(&sut, settings, &mut progress)?;
    Ok((sut, progress))
}

/// After a single step: an interrupted one reports no figure (it would read like a
/// measurement), only a sentence and the signal's exit code.
pub(crate) fn cut_short(progress: &mut Progress, what: &str) -> Result<()> {
    if signals::interrupted() {
        progress.finish();
        return Err(Cancelled(format!(
            "the {what} was cut short, so no figure is reported"
        ))
        .into());
    }
    Ok(())
}

/// Prints a one-step summary (`--json`) and turns an interruption into the signal's
/// exit code.
/// The human-readable result line of `fixed` and `throughput`: on stdout, or on stderr
/// with `--json`, so that stdout then holds one JSON document a pipe into a JSON
/// parser accepts whole (issue 42).
pub(crate) fn human_line(line: &str, json: bool) {
    if json {
        crate::output::lines::note(line);
    } else {
        println!("{line}");
    }
}

pub(crate) fn finish_single(
    summary: &StepSummary,
    json: bool,
    op_profile: Option<serde_json::Value>,
) -> Result<()> {
    if json {
        let mut doc = results::step_json(summary);
        if let Some(p) = op_profile {
            doc["op_profile"] = p;
        }
        println!("{doc}");
    }
    if signals::interrupted() {
        return Err(Interrupted("stdout".into()).into());
    }
    Ok(())
}

/// `--op-profile`: ends the workers (a runtime hands its profile over as its sessions
/// end), prints the table on stderr and returns the JSON block. `measured_s`: the mean
/// inference time loadgen measured, which the table's sum is compared with.
pub(crate) fn op_profile(
    sut: Sut,
    settings: &Settings,
    measured_s: Option<f64>,
) -> Option<serde_json::Value> {
    if !settings.op_profile {
        return None;
    }
    let Sut { backend, pool, .. } = sut;
    drop(pool);
    let p = backend.op_profile()?;
    for w in &p.problems {
        crate::output::lines::note(&format!("loadgen: warning: {w}"));
    }
    for l in crate::output::op_profile::lines(&p, measured_s) {
        crate::output::lines::note(&l);
    }
    Some(crate::output::op_profile::to_json(&p, measured_s))
}

/// The document `--output` writes for a single measurement (`latency`, `throughput`):
/// what ran, where and how, and `key` holding the figures.
pub(crate) fn single_file(
    backend: &dyn Backend,
    settings: &Settings,
    cmdline: &str,
    key: &str,
    figures: serde_json::Value,
    op_profile: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "runtime": backend.name(),
        "version": backend.version(),
        "cmdline": cmdline,
        "time": epoch_seconds(),
        "settings": results::settings_json(settings),
        "system": crate::output::system::describe(),
    });
    if let Some(info) = backend.runtime_info() {
        doc["runtime_info"] = info;
    }
    doc[key] = figures;
    if let Some(p) = op_profile {
        doc["op_profile"] = p;
    }
    doc
}

/// Installs the signal handlers ([`signals::install`]), printing what they hear.
pub fn install_signals() {
    signals::install(|heard| {
        match heard {
        // Step lines may be printing on stdout meanwhile: one write (see `note`).
        signals::Heard::First(name) => crate::output::lines::note(&format!(
            "loadgen: interrupted ({name}); finishing the current step and writing results (a second signal quits at once)"
        )),
        signals::Heard::Second => crate::output::lines::note("loadgen: interrupted twice, exiting now"),
        signals::Heard::NotInstalled => {
            eprintln!("loadgen: warning: could not install the signal handlers")
        }
    }
    });
}
