//! `loadgen run`: the scenario's whole procedure (accuracy pass, capacity probe, then
//! the search per distribution and target).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::coordinator::Agents;
use crate::backend::{BackendKind, Device};
use crate::config::cli::RunArgs;
use crate::config::settings::{RunOverrides, Settings, Tune};
use crate::error::{Interrupted, ServerFault};
use crate::measure::fault;
use crate::measure::policy;
use crate::measure::schedule::Distribution;
use crate::measure::search::{self, Ask, SearchResult, SearchStop, StepRunner};
use crate::measure::stats::ServiceTimes;
use crate::measure::step::{self, StepSpec, StepSummary};
use crate::output::files;
use crate::output::lines;
use crate::output::progress::Progress;
use crate::output::report;
use crate::output::results::{self, ConfigReport, Results};
use crate::signals;
use crate::tune::candidates::{self, Candidate};
use crate::tune::predict::Calibration;

use super::common::*;
use super::tune_processes::{CHILD_CALIBRATED, CHILD_SEARCHED};
use super::{tune, tune_processes};

/// The step runner the search drives: runs a step on the pool, prints its line and
/// records it in the results.
struct PoolRunner<'a> {
    sut: &'a Sut,
    settings: &'a Settings,
    progress: &'a mut Progress,
    results: &'a mut Results,
    /// The configuration measured, when the run tunes (shown in the progress bar).
    label: Option<String>,
    /// The capacity probe's call times, against which a failed step's are judged
    /// (in-process runtimes; see [`StepSpec::service_ref`]).
    service_ref: Option<ServiceTimes>,
    /// `--agents`: the steps run on them, not on the pool.
    agents: Option<&'a mut Agents>,
}

impl StepRunner for PoolRunner<'_> {
    fn step(&mut self, ask: &Ask) -> Result<StepSummary, SearchStop> {
        let &Ask {
            dist,
            qps,
            target,
            seed,
            ..
        } = ask;
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
        ask.shape(&mut spec);
        spec.service_ref = self.service_ref;
        let name = lines::step_name(dist, Some(target.as_secs_f64()), qps);
        let stage = format!(
            "{} {}",
            dist.as_str(),
            lines::py_float(target.as_secs_f64())
        );
        let stage = match &self.label {
            Some(c) => format!("{stage} [{c}]"),
            None => stage,
        };
        self.progress.stage(&stage, &name);
        self.progress.bracket(ask.bracket.0, ask.bracket.1);
        let summary = match self.agents.as_deref_mut() {
            Some(agents) => {
                let s = agents.step(&spec, &name);
                self.results.agents = Some(agents.record());
                s.map_err(|e| {
                    if signals::interrupted() {
                        SearchStop::Interrupted
                    } else {
                        SearchStop::Failed(e)
                    }
                })?
            }
            None => {
                self.progress
                    .track(self.sut.pool.live_handle(), spec.planned);
                step::run_open(&self.sut.pool, &spec, signals::flag())
                    .map_err(|e| SearchStop::Failed(e.into()))?
            }
        };
        self.progress.end_step();
        if signals::interrupted() {
            return Err(SearchStop::Interrupted);
        }
        self.progress.println(&lines::step_line(&name, &summary));
        if summary.stop() == crate::measure::step::StopReason::TimeCap {
            self.progress.note(&format!(
                "loadgen: {name}: issuing stopped at the step's time cap (4 × --time, at least 1 s): {} of {} planned queries were sent",
                summary.issued, summary.planned
            ));
        }
        if summary.passed() {
            self.progress.println(lines::TAKEN);
        } else {
            self.progress.note(&format!(
                "loadgen: {name}: {}",
                lines::verdict_text(&summary)
            ));
        }
        let fault = fault::of(&summary);
        self.results.add_step(dist, name.clone(), summary.clone());
        if let Some(f) = fault {
            let sentence = f.describe(
                &fault_subject(self.settings, self.sut),
                &format!("step {name}"),
            );
            return Err(SearchStop::Failed(ServerFault(sentence).into()));
        }
        Ok(summary)
    }

    fn pause_before_retry(&mut self, retry: u32) -> Result<(), SearchStop> {
        let pause = search::retry_pause(retry);
        self.progress.note(&format!(
            "loadgen: pausing {} s before running that rate again",
            pause.as_secs()
        ));
        let until = std::time::Instant::now() + pause;
        while std::time::Instant::now() < until {
            if signals::interrupted() {
                return Err(SearchStop::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// The call times a failed step's are judged against (see [`StepSpec::service_ref`]),
/// where the capacity probe is the slowest the calls can be: ONNX Runtime with one
/// intra-op thread per worker, whose closed loop keeps every worker busy. With more
/// intra-op threads the pool's threads sleep between open-loop queries, and calls
/// measured 27 ms there against 20.7 ms in the closed loop (1 worker × 2 threads,
/// ResNet-50, this VM) with the machine at its usual speed; TF schedules ops on its
/// own inter-op pool. A simulated server's slowdowns are its stalls, and a remote
/// server's calls include its own queueing. On a GPU the closed loop bounds nothing:
/// on an H200, `16x1x0x4` took 13.6 ms a call in its probe and 20–750 ms in open-loop
/// steps at every rate from 12 % to 100 % of its capacity and on every retry, so the
/// slowness was the system's own; blamed on the machine, each of those steps ran three
/// times and the run outlasted 450 s where it had taken 240 s.
fn slowdown_reference(settings: &Settings, probe: &StepSummary) -> Option<ServiceTimes> {
    (settings.backend == BackendKind::OnnxRuntime
        && settings.device == Device::Cpu
        && settings.intra_threads == Some(1))
    .then_some(probe.service)
}

/// Writes results.json and the report beside it (results first: the report is drawn
/// from it, and a report that cannot be written must not cost the results).
fn write_results(path: &std::path::Path, results: &Results) -> Result<()> {
    let doc = results.to_json();
    files::write_json_atomic(path, &doc)?;
    crate::app::report::write_beside(path, &doc)?;
    Ok(())
}

/// Marks the results cut short by a signal, writes what was measured and returns the
/// error that ends the run (or the write's own error).
fn end_interrupted(path: &std::path::Path, results: &mut Results) -> anyhow::Error {
    results.interrupted = true;
    match write_results(path, results) {
        Ok(()) => Interrupted(path.display().to_string()).into(),
        Err(e) => e,
    }
}

/// Every distribution and target of the run, in the procedure's order.
fn all_targets(settings: &Settings) -> impl Iterator<Item = (Distribution, f64)> + '_ {
    (settings.distributions.iter()).flat_map(|&d| settings.max_latency.iter().map(move |&t| (d, t)))
}

/// An answer of a distribution's search, kept to bound looser targets' answers.
struct Answered {
    target: f64,
    config: Option<Candidate>,
    answer: SearchResult,
}

impl Answered {
    fn qps(&self) -> f64 {
        (self.answer.best.as_ref())
            .and_then(|b| b.offered_qps)
            .unwrap_or(-1.0)
    }
}

/// A configuration's name in a sentence.
fn name_of(c: Option<Candidate>) -> String {
    c.map_or_else(|| "the flags' configuration".to_string(), |c| c.to_string())
}

/// What every search of a run writes to: its settings, progress bar and results.
struct Searcher<'a> {
    settings: &'a Settings,
    progress: &'a mut Progress,
    results: &'a mut Results,
    output: &'a Path,
    agents: Option<&'a mut Agents>,
}

impl Searcher<'_> {
    /// Searches one distribution and target on one configuration, prints its
    /// `===RESULT` line and records it. `carried` holds the configuration's earlier
    /// steps of this distribution (each counted every target exactly), which the
    /// search pools and starts from; this search's steps are added to it. `index` is
    /// the distribution's and the target's place in the procedure, which seeds it.
    ///
    /// `stricter` holds the answers so far of this distribution, each with its target
    /// and configuration: an answer below another configuration's answer at a
    /// stricter target gives way to it (see [`search::keep_monotone`]). This answer
    /// joins them.
    fn search(
        &mut self,
        arm: &tune::Arm,
        carried: &mut Vec<StepSummary>,
        stricter: &mut Vec<Answered>,
        dist: Distribution,
        index: (usize, usize),
        (t, target): (f64, Duration),
    ) -> Result<()> {
        let settings_here = match arm.candidate {
            Some(c) => tune::with_candidate(self.settings, c),
            None => self.settings.clone(),
        };
        let mut runner = PoolRunner {
            sut: &arm.sut,
            settings: &settings_here,
            progress: self.progress,
            results: self.results,
            label: arm.candidate.map(|c| c.to_string()),
            service_ref: slowdown_reference(&settings_here, &arm.probe),
            agents: self.agents.as_deref_mut(),
        };
        let task = search::Search {
            dist,
            target,
            bounds: search::Bounds::new(
                arm.probe.qps,
                self.settings.min_queries,
                self.settings.time,
            ),
            seed: search::mix_seed(
                self.settings.seed,
                ((index.0 as u64) << 32) | index.1 as u64,
            ),
            confidence: self.settings.confidence,
            budget: self.settings.search_share(),
        };
        match search::run(&mut runner, &task, carried) {
            Ok(mut found) => {
                let own = found.best.as_ref().and_then(|b| b.offered_qps);
                let mut config = arm.candidate;
                if let Some(a) = (stricter.iter())
                    .filter(|a| a.target < t && a.config != arm.candidate)
                    .max_by(|a, b| a.qps().total_cmp(&b.qps()))
                {
                    if search::keep_monotone(&mut found, &a.answer, t) {
                        found.warnings.push(format!(
                            "{} {}: configuration {} answered {}, below the {} qps that {} \
                             answered at the stricter {} s, whose queries meet {} s too: that answer stands",
                            dist.as_str(),
                            lines::py_float(t),
                            name_of(arm.candidate),
                            own.map_or("FAIL".to_string(), |q| format!("{q} qps")),
                            a.qps(),
                            name_of(a.config),
                            lines::py_float(a.target),
                            lines::py_float(t),
                        ));
                        config = a.config;
                    }
                }
                for w in &found.warnings {
                    self.progress.note(&format!("loadgen: warning: {w}"));
                }
                if found.budget_spent {
                    self.progress.note(&format!(
                        "loadgen: {} {}: this target's share of --search-time ({:.0} s of steps) is spent: the answer stands on its {} steps",
                        dist.as_str(),
                        lines::py_float(t),
                        self.settings.search_share().unwrap_or(0.0),
                        found.steps.len()
                    ));
                }
                let note = lines::interval_note(
                    &found.interval,
                    policy::end_confidence(self.settings.confidence),
                    self.settings.time,
                );
                if let Some(n) = &note {
                    self.progress.note(&format!(
                        "loadgen: {} {}: {n}",
                        dist.as_str(),
                        lines::py_float(t)
                    ));
                }
                carried.extend(found.steps.iter().cloned());
                self.results.set_result(
                    dist,
                    t,
                    &found,
                    config,
                    note,
                    policy::interval_confidence(self.settings.confidence),
                );
                stricter.push(Answered {
                    target: t,
                    config,
                    answer: SearchResult {
                        best: found.best.clone(),
                        interval: found.interval,
                        confident: found.confident,
                        ..SearchResult::default()
                    },
                });
                if let Some(c) = arm.candidate {
                    let q = own.unwrap_or(-1.0);
                    if let Some(r) = self
                        .results
                        .configurations
                        .iter_mut()
                        .find(|r| r.candidate == c)
                    {
                        r.measured.push((dist, t, q));
                    }
                }
                // On disk before it is on stdout: a second signal right after the
                // `===RESULT` line (it exits at once) must not lose that answer.
                write_results(self.output, self.results)?;
                self.progress.println(&lines::result_line(
                    dist,
                    t,
                    found.best.as_ref(),
                    found.interval.ends(),
                ));
                Ok(())
            }
            Err(SearchStop::Interrupted) => Err(end_interrupted(self.output, self.results)),
            Err(SearchStop::Failed(e)) => {
                self.progress.finish();
                self.results
                    .mark_failed(format!("{e:#}"), all_targets(self.settings));
                write_results(self.output, self.results)?;
                Err(e)
            }
        }
    }

    /// A TensorFlow tuning child, once calibrated: searches each `DIST TARGET CONFIG`
    /// line its parent writes on stdin, in the procedure's order, until the parent
    /// closes stdin (which it also does when it dies, so a child never outlives it).
    fn serve_parent(&mut self, arms: &[tune::Arm]) -> Result<()> {
        self.progress.println(CHILD_CALIBRATED);
        let mut carried: Vec<Vec<StepSummary>> = vec![Vec::new(); arms.len()];
        let mut stricter = Vec::new();
        let mut last_dist = None;
        for line in std::io::stdin().lock().lines() {
            let line = line.context("cannot read the tuning parent's request")?;
            let bad = || {
                anyhow::anyhow!("the tuning parent sent a request this run cannot serve: {line:?}")
            };
            let mut words = line.split_whitespace();
            let (Some(dist), Some(t), Some(config), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(bad());
            };
            let d = (self.settings.distributions.iter())
                .position(|x| x.as_str() == dist)
                .ok_or_else(bad)?;
            let k = (self.settings.max_latency.iter())
                .position(|&x| lines::py_float(x) == t)
                .ok_or_else(bad)?;
            let pick = (arms.iter())
                .position(|a| a.candidate.is_some_and(|c| c.to_string() == config))
                .ok_or_else(bad)?;
            let dist = self.settings.distributions[d];
            if last_dist != Some(dist) {
                // Evidence is pooled within a distribution only, as in process.
                carried = vec![Vec::new(); arms.len()];
                stricter.clear();
                last_dist = Some(dist);
            }
            let t = self.settings.max_latency[k];
            self.search(
                &arms[pick],
                &mut carried[pick],
                &mut stricter,
                dist,
                (d, k),
                (t, limits::duration(t)),
            )?;
            self.progress.println(CHILD_SEARCHED);
        }
        if signals::interrupted() {
            return Err(end_interrupted(self.output, self.results));
        }
        self.progress.finish();
        write_results(self.output, self.results)
    }
}

/// The settings of `loadgen run`'s flags (an agent resolves its coordinator's the
/// same way). With `--agents` the configuration is the flags' (no tuning): the
/// agents' sessions are loaded once, before the run.
pub(crate) fn run_settings(args: &RunArgs) -> Result<Settings> {
    let o = RunOverrides {
        time: args.time,
        max_latency: args.max_latency.clone(),
        distributions: args.distributions.clone(),
        min_queries: args.min_queries,
        search_time: args.search_time,
        no_accuracy: args.no_accuracy,
        no_tune: args.no_tune,
        configs: args.configs.clone(),
        tunes: true,
        op_profile: false,
    };
    let mut settings = Settings::resolve(&args.common, &o)?;
    if !args.spread.agents.is_empty() {
        settings.tune = Tune::Off;
    }
    Ok(settings)
}

/// `loadgen run`: the scenario's whole procedure.
pub fn run(args: RunArgs, cmdline: String) -> Result<()> {
    let settings = run_settings(&args)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/results.json"));
    files::check_writable(&output)?;
    files::check_file(&report::path_beside(&output), files::OUTPUT_FIX)?;
    if settings.backend == BackendKind::Tf && settings.tune != Tune::Off && !args.tune_child {
        // TF's intra-op pool belongs to the process and the first session sizes it:
        // the candidates run in a child process per thread setting.
        let candidates = match &settings.tune {
            Tune::List(list) => list.clone(),
            _ => candidates::default_candidates(crate::base::limits::cores(), true),
        };
        return tune_processes::run(&settings, &candidates, &output, cmdline);
    }
    // A TensorFlow tuning child loads every session with its candidates' threads:
    // the process's first session sizes its pools (they share one setting).
    let settings = match &settings.tune {
        Tune::List(list) if args.tune_child && !list.is_empty() => {
            tune::with_candidate(&settings, list[0])
        }
        _ => settings,
    };
    // Agents first: one that cannot take part is refused before anything is measured.
    let mut agents = Agents::from_flags(&args.spread)?;
    let sut = load_sut(&settings)?;
    let mut progress = Progress::new(settings.quiet);
    let mut results = Results {
        runtime: sut.backend.name().to_string(),
        version: sut.backend.version(),
        time: epoch_seconds(),
        cmdline,
        settings: results::settings_json(&settings),
        system: crate::output::system::describe(),
        server: sut.backend.server_info(),
        runtime_info: sut.backend.runtime_info(),
        warnings: sut.backend.warnings(),
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
            None if !settings.backend.classifies() => {}
            None => progress.note("loadgen: accuracy pass skipped: synthetic inputs have no labels (give --dataset-path)"),
        }
    }
    if signals::interrupted() {
        return Err(end_interrupted(&output, &mut results));
    }
    write_results(&output, &results)?;

    // The configurations to measure: the one of the flags, or every tuning
    // candidate, each with its own sessions and calibration.
    let candidates = match &settings.tune {
        Tune::Off => Vec::new(),
        Tune::List(list) => list.clone(),
        Tune::Default => candidates::default_candidates(
            crate::base::limits::cores(),
            sut.backend.model().max_batch.is_none() && sut.backend.model().item_len() > 0,
        ),
    };
    let mut arms: Vec<tune::Arm> = Vec::new();
    if candidates.is_empty() {
        if agents.is_none() {
            warm_up(&sut, &settings, &mut progress)?;
        } else {
            results.agents = agents.as_ref().map(|a| a.record());
        }
        let probe = match tune::probe_on(&sut, &settings, &mut progress, "probe", agents.as_mut()) {
            Ok(p) => p,
            // A broken server found by the probe (or an agent lost): results.json says
            // so too.
            Err(e) if e.is::<ServerFault>() || e.is::<crate::error::AgentLost>() => {
                progress.finish();
                results.mark_failed(format!("{e:#}"), all_targets(&settings));
                write_results(&output, &results)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if signals::interrupted() {
            return Err(end_interrupted(&output, &mut results));
        }
        progress.note(&format!(
            "loadgen: capacity probe: {:.1} queries/s closed loop with {} threads, batch {}",
            probe.qps, settings.threads, settings.batch_size
        ));
        results.capacity = Some(probe.clone());
        arms.push(tune::Arm {
            candidate: None,
            sut,
            probe,
            calibration: None,
            open_loop_call: None,
        });
    } else {
        // Free the accuracy pass's sessions before loading the candidates'.
        let dataset = std::sync::Arc::clone(&sut.dataset);
        drop(sut);
        // A batch candidate that cannot meet any target is left out after its probe,
        // where a batch-1 candidate remains for the tight targets.
        let prune_batch = candidates.iter().any(|o| o.batch_size == 1);
        for &c in &candidates {
            let arm = tune::calibrate(&settings, &dataset, c, prune_batch, &mut progress);
            if signals::interrupted() {
                return Err(end_interrupted(&output, &mut results));
            }
            match arm {
                Ok(arm) => {
                    results.configurations.push(ConfigReport {
                        candidate: c,
                        calibration: None,
                        error: None,
                        predicted: Vec::new(),
                        measured: Vec::new(),
                    });
                    arms.push(arm);
                }
                Err(e) => {
                    // A candidate the runtime refuses (a batch the model cannot take)
                    // is left out, and said so; the others still compete.
                    progress.note(&format!("loadgen: configuration {c} left out: {e:#}"));
                    results.configurations.push(ConfigReport {
                        candidate: c,
                        calibration: None,
                        error: Some(format!("{e:#}")),
                        predicted: Vec::new(),
                        measured: Vec::new(),
                    });
                }
            }
        }
        // Each candidate's second probe, now that the others' calibrations lie
        // between its two (see [`tune::reprobe`]).
        for arm in &mut arms {
            tune::reprobe(arm, &settings, &mut progress)?;
            if signals::interrupted() {
                return Err(end_interrupted(&output, &mut results));
            }
            let c = arm.candidate.expect("tuning arms have candidates");
            let cal = arm.calibration.expect("calibrated unless interrupted");
            progress.note(&lines::calibration_line(&c.to_string(), &cal));
            if let Some(r) = results.configurations.iter_mut().find(|r| r.candidate == c) {
                r.calibration = Some(cal);
            }
        }
        if arms.is_empty() {
            anyhow::bail!("no configuration could be calibrated; see the reasons above");
        }
        results.capacity = Some(arms[0].probe.clone());
        write_results(&output, &results)?;
    }
    let calibrations: Vec<Calibration> = arms.iter().filter_map(|a| a.calibration).collect();

    let mut searcher = Searcher {
        settings: &settings,
        progress: &mut progress,
        results: &mut results,
        output: &output,
        agents: agents.as_mut(),
    };
    if args.tune_child {
        return searcher.serve_parent(&arms);
    }
    for (d, &dist) in settings.distributions.iter().enumerate() {
        // Every step of this distribution so far, per configuration: each counted
        // every target exactly, so a later target pools their evidence and starts from
        // their best pass.
        let mut carried: Vec<Vec<StepSummary>> = vec![Vec::new(); arms.len()];
        let mut stricter = Vec::new();
        for (k, (t, target)) in settings.targets().enumerate() {
            let pick = if calibrations.len() == arms.len() && arms.len() > 1 {
                let cands: Vec<_> = arms
                    .iter()
                    .map(|a| a.candidate.expect("tuning arms have candidates"))
                    .collect();
                let choice = tune::choose(&cands, &calibrations, dist, t);
                for (i, c) in cands.iter().enumerate() {
                    if let Some(r) =
                        (searcher.results.configurations.iter_mut()).find(|r| r.candidate == *c)
                    {
                        r.predicted
                            .push((dist, t, tune::round_prediction(choice.predicted[i])));
                    }
                }
                searcher.progress.note(&choice.note);
                choice.best
            } else {
                0
            };
            searcher.search(
                &arms[pick],
                &mut carried[pick],
                &mut stricter,
                dist,
                (d, k),
                (t, target),
            )?;
        }
    }
    progress.finish();
    println!("{}", results.final_results.line());
    write_results(&output, &results)?;
    if let Some(a) = &mut agents {
        a.close();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::CommonArgs;

    /// Only ONNX Runtime on the CPU with one intra-op thread has a probe whose call
    /// times bound an open-loop step's; elsewhere slow calls are the system's.
    #[test]
    fn slow_calls_are_blamed_on_the_machine_only_where_the_probe_bounds_them() {
        let common = CommonArgs {
            backend: Some("sim".into()),
            ..CommonArgs::default()
        };
        let mut s = Settings::resolve(&common, &RunOverrides::default()).unwrap();
        let mut probe = StepSummary::default();
        for ms in [10, 11, 12, 13, 14] {
            probe.service.record(ms * 1_000_000);
        }
        s.backend = BackendKind::OnnxRuntime;
        s.device = Device::Cpu;
        s.intra_threads = Some(1);
        assert_eq!(slowdown_reference(&s, &probe), Some(probe.service));
        s.device = Device::Gpu;
        assert_eq!(slowdown_reference(&s, &probe), None);
        s.device = Device::Cpu;
        s.intra_threads = Some(2);
        assert_eq!(slowdown_reference(&s, &probe), None);
        s.intra_threads = Some(1);
        s.backend = BackendKind::Sim;
        assert_eq!(slowdown_reference(&s, &probe), None);
    }
}
