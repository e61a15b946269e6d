//! `loadgen run`: the scenario's whole procedure (accuracy pass, capacity probe, then
//! the search per distribution and target).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::config::cli::RunArgs;
use crate::config::settings::{RunOverrides, Settings};
use crate::error::Interrupted;
use crate::measure::schedule::Distribution;
use crate::measure::search::{self, SearchStop, StepRunner};
use crate::measure::step::{self, StepSpec, StepSummary};
use crate::output::files;
use crate::output::lines;
use crate::output::progress::Progress;
use crate::output::results::{self, Results};
use crate::signals;

use super::*;

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
        seed: u64,
        burst: f64,
    ) -> Result<StepSummary, SearchStop> {
        let mut spec = StepSpec::judged(
            dist,
            qps,
            self.settings.time,
            self.settings.min_queries,
            Some(target),
            seed,
            self.settings.confidence,
        );
        // Count the run's other targets exactly too, so that later targets can pool
        // this step's evidence.
        spec.also_count = self
            .settings
            .targets()
            .map(|(_, d)| d)
            .filter(|&d| d != target)
            .collect();
        spec.burst = burst;
        let name = lines::step_name(dist, Some(target.as_secs_f64()), qps);
        self.progress.stage(
            &format!(
                "{} {}",
                dist.as_str(),
                lines::py_float(target.as_secs_f64())
            ),
            &name,
        );
        self.progress
            .track(self.sut.pool.live_handle(), spec.planned);
        let summary = step::run_open(&self.sut.pool, &spec, signals::flag())
            .map_err(|e| SearchStop::Failed(e.into()))?;
        self.progress.end_step();
        if signals::interrupted() {
            return Err(SearchStop::Interrupted);
        }
        self.progress.println(&lines::step_line(&name, &summary));
        if summary.stop == crate::measure::step::StopReason::TimeCap {
            self.progress.note(&format!(
                "loadgen: {name}: issuing stopped at the step's time cap (4 × --time, at least 1 s): {} of {} planned queries were sent",
                summary.issued, summary.planned
            ));
        }
        if summary.passed {
            self.progress.println(lines::TAKEN);
        } else {
            self.progress.note(&format!(
                "loadgen: {name}: {}",
                lines::verdict_text(&summary)
            ));
        }
        self.results.add_step(dist, name, summary.clone());
        Ok(summary)
    }
}

fn write_results(path: &std::path::Path, results: &Results) -> Result<()> {
    files::write_json_atomic(path, &results.to_json())?;
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
    files::check_writable(&output)?;
    let sut = load_sut(&settings)?;
    let mut progress = Progress::new(settings.quiet);
    let mut results = Results {
        runtime: sut.backend.name().to_string(),
        version: sut.backend.version(),
        time: epoch_seconds(),
        cmdline,
        settings: results::settings_json(&settings),
        system: crate::output::system::describe(),
        ..Results::default()
    };
    if settings.accuracy {
        progress.stage("accuracy", &format!("{} items", sut.dataset.len()));
        match accuracy_pass(&sut, &settings, false)? {
            // A pass cut short by a signal has no accuracy to report.
            Some(_) if signals::interrupted() => {}
            Some(run) => {
                progress.println(&lines::accuracy_line(&run.report));
                results.check_accuracy = Some(run.report);
            }
            None if !settings.backend.needs_model() => {}
            None => progress.note("loadgen: accuracy pass skipped: synthetic inputs have no labels (give --dataset-path)"),
        }
    }
    let interrupted = || Interrupted(output.display().to_string());
    if signals::interrupted() {
        results.interrupted = true;
        write_results(&output, &results)?;
        return Err(interrupted().into());
    }
    write_results(&output, &results)?;

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

    for (d, &dist) in settings.distributions.iter().enumerate() {
        // Every step of this distribution so far: each counted every target exactly,
        // so a later target pools their evidence and starts from their best pass.
        let mut carried: Vec<StepSummary> = Vec::new();
        for (k, (t, target)) in settings.targets().enumerate() {
            let mut runner = PoolRunner {
                sut: &sut,
                settings: &settings,
                progress: &mut progress,
                results: &mut results,
            };
            let mut search = search::Search {
                runner: &mut runner,
                dist,
                target,
                bounds: search::Bounds::new(probe.qps, settings.min_queries, settings.time),
                seed: search::mix_seed(settings.seed, ((d as u64) << 32) | k as u64),
                confidence: settings.confidence,
            };
            match search.run(&carried) {
                Ok(found) => {
                    for w in &found.warnings {
                        progress.note(&format!("loadgen: warning: {w}"));
                    }
                    progress.println(&lines::result_line(
                        dist,
                        t,
                        found.best.as_ref(),
                        found.interval,
                    ));
                    carried.extend(found.steps.iter().cloned());
                    results.set_result(dist, t, &found);
                    write_results(&output, &results)?;
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
