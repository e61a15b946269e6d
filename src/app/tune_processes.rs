//! Tuning with a process per thread setting, for TensorFlow: its intra- and inter-op
//! pools belong to the process and the first session sizes them, so candidates with
//! different thread counts sharing one process would all run on the first one's.
//!
//! This process measures nothing itself. It starts `loadgen run --tune-child` once per
//! group of candidates that share a thread setting (on 2 cores: `2x1` with
//! `2x1x0x4`, and `1x2`), one at a time; each loads its candidates' sessions once,
//! calibrates them, writes the calibrations to its results file and says so on stdout.
//! With every candidate calibrated, this process ranks them per target, as a tuning
//! run in process does, and asks the child holding each winner for its search
//! (`DIST TARGET CONFIG` on the child's stdin), in the procedure's order. So no
//! session is built twice and no process loads TensorFlow twice. The children's log
//! lines pass through; their results files are merged into one.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::settings::Settings;
use crate::error::{Interrupted, Reported};
use crate::measure::schedule::Distribution;
use crate::output::files;
use crate::output::lines::{py_float, FinalResults};
use crate::output::results::{candidate_json, ConfigReport};
use crate::signals;
use crate::tune::candidates::Candidate;
use crate::tune::predict::Calibration;

use super::tune;

/// Lines a TensorFlow tuning child (`app::run` in the child) prints on stdout for this
/// parent: its candidates are calibrated, and a requested search is done.
pub(crate) const CHILD_CALIBRATED: &str = "===LOADGEN_CHILD calibrated";
pub(crate) const CHILD_SEARCHED: &str = "===LOADGEN_CHILD searched";

/// Flags of this run that the children get from the parent instead (with a value).
const SET_BY_PARENT: [&str; 5] = [
    "--configs",
    "--output",
    "--max-latency",
    "--max_latency",
    "--distributions",
];
/// Switches the children get from the parent instead.
const SWITCHES_SET_BY_PARENT: [&str; 3] = ["--no-accuracy", "--no-tune", "--tune-child"];

/// This run's flags after `run`, without those the parent sets per child.
fn base_args() -> Vec<String> {
    let argv: Vec<String> = std::env::args().collect();
    let start = argv.iter().position(|a| a == "run").map_or(1, |i| i + 1);
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in &argv[start..] {
        if skip_value {
            skip_value = false;
            continue;
        }
        if SET_BY_PARENT.contains(&a.as_str()) {
            skip_value = true;
            continue;
        }
        if SET_BY_PARENT
            .iter()
            .any(|f| a.starts_with(&format!("{f}=")))
            || SWITCHES_SET_BY_PARENT.contains(&a.as_str())
        {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// The candidates that may share one process: those with the same intra- and
/// inter-op threads, in the order given.
fn thread_groups(cands: &[Candidate]) -> Vec<Vec<Candidate>> {
    let mut groups: Vec<Vec<Candidate>> = Vec::new();
    for &c in cands {
        let same = |g: &&mut Vec<Candidate>| {
            g[0].intra_threads == c.intra_threads && g[0].inter_threads == c.inter_threads
        };
        match groups.iter_mut().find(same) {
            Some(g) => g.push(c),
            None => groups.push(vec![c]),
        }
    }
    groups
}

/// Sends SIGTERM to the child once this process is asked to stop (a signal sent to
/// this process alone would otherwise leave the child measuring).
fn forward_signals(child: &Child) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let pid = child.id() as libc::pid_t;
    let d = Arc::clone(&done);
    std::thread::spawn(move || {
        while !d.load(Ordering::Relaxed) {
            if signals::interrupted() {
                // SAFETY: kill(2) on our own child's pid; it is still ours, as `done`
                // is set only after the child has been waited for.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    done
}

/// Removes the children's scratch folder however the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

/// A candidate's calibration from a child's `configurations` entry.
fn calibration_of(entry: &Value) -> Option<Calibration> {
    let c = &entry["calibration"];
    Some(Calibration {
        servers: entry["workers"].as_u64()? as usize,
        batch: entry["batch_size"].as_u64()? as usize,
        capacity: c["capacity"].as_f64()?,
        closed_loop: c["closed_loop"].as_f64()?,
        unloaded_mean: c["unloaded_mean"].as_f64()?,
        unloaded_p50: c["unloaded_p50"].as_f64()?,
        unloaded_p99: c["unloaded_p99"].as_f64()?,
        unloaded_cv2: c["unloaded_cv2"].as_f64()?,
    })
}

/// Adds a child's scan, results, final results and warnings to `into`.
fn merge(into: &mut Option<Value>, from: Value) {
    let Some(doc) = into else {
        *into = Some(from);
        return;
    };
    for key in ["scan", "results", "final_results"] {
        if let Some(dists) = from[key].as_object() {
            for (d, entries) in dists {
                if let Some(entries) = entries.as_object() {
                    if !doc[key][d].is_object() {
                        doc[key][d] = json!({});
                    }
                    for (k, v) in entries {
                        doc[key][d][k] = v.clone();
                    }
                }
            }
        }
    }
    if let Some(w) = from["warnings"].as_array() {
        if let Some(all) = doc["warnings"].as_array_mut() {
            all.extend(w.iter().cloned());
        }
    }
    if doc["check_accuracy"].is_null() && !from["check_accuracy"].is_null() {
        doc["check_accuracy"] = from["check_accuracy"].clone();
    }
    if from["interrupted"] == json!(true) {
        doc["interrupted"] = json!(true);
    }
}

/// A child process holding the sessions of one thread group.
struct Host {
    cands: Vec<Candidate>,
    child: Child,
    /// Closed to tell the child there is nothing more to search.
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    results: PathBuf,
    /// Stops the signal-forwarding thread once the child has been waited for.
    forwarding: Arc<AtomicBool>,
}

impl Host {
    /// Passes the child's log lines through until `sentinel`; false if its output
    /// ended first (it exited). FINAL_RESULT is this run's, so the child's is dropped.
    fn pass_through_until(&mut self, sentinel: Option<&str>) -> bool {
        for line in self.stdout.by_ref().map_while(|l| l.ok()) {
            if Some(line.as_str()) == sentinel {
                return true;
            }
            if !line.starts_with("===FINAL_RESULT") {
                println!("{line}");
            }
        }
        false
    }

    /// Closes its stdin (the child ends its last search, writes its results and
    /// exits) and waits for it.
    fn finish(&mut self) -> std::io::Result<ExitStatus> {
        drop(self.stdin.take());
        self.pass_through_until(None);
        let status = self.child.wait();
        self.forwarding.store(true, Ordering::Relaxed);
        status
    }
}

impl Drop for Host {
    /// However the run ends, no child is left waiting for a request.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A tuned run with a process per thread setting; see the module doc.
pub(crate) fn run(
    settings: &Settings,
    cands: &[Candidate],
    output: &Path,
    cmdline: String,
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find this program to start it again")?;
    let base = base_args();
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = Scratch(dir.join(format!(".loadgen-tune-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("cannot create {}", scratch.0.display()))?;
    let interrupted = || -> anyhow::Error { Interrupted(output.display().to_string()).into() };
    let dists: Vec<&str> = settings.distributions.iter().map(|d| d.as_str()).collect();
    let targets: Vec<String> = settings.max_latency.iter().map(|&t| py_float(t)).collect();

    // Calibration: one child per thread group, one after the other; each stays, idle,
    // until asked for its searches. Only the first runs the accuracy pass.
    let mut reports: Vec<ConfigReport> = Vec::new();
    let mut calibrated: Vec<(Candidate, Calibration)> = Vec::new();
    let mut hosts: Vec<Host> = Vec::new();
    for (k, group) in thread_groups(cands).into_iter().enumerate() {
        let path = scratch.0.join(format!("child-{k}.json"));
        let configs: Vec<String> = group.iter().map(|c| c.to_string()).collect();
        let mut cmd = Command::new(&exe);
        cmd.arg("run")
            .args(&base)
            .args(["--configs", &configs.join(",")])
            .args(["--distributions", &dists.join(",")])
            .args(["--max-latency", &targets.join(",")])
            .arg("--tune-child")
            .arg("--output")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if k > 0 || !settings.accuracy {
            cmd.arg("--no-accuracy");
        }
        let mut child = cmd.spawn().context("cannot start a tuning process")?;
        let forwarding = forward_signals(&child);
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut host = Host {
            cands: group,
            child,
            stdin,
            stdout,
            results: path,
            forwarding,
        };
        let ready = host.pass_through_until(Some(CHILD_CALIBRATED));
        if signals::interrupted() {
            return Err(interrupted());
        }
        let doc = if ready {
            read_json(&host.results)
        } else {
            None
        };
        let Some(doc) = doc else {
            let status = host.finish()?;
            if status.code() == Some(2) {
                // Bad input (a missing model, a wrong tensor name): the child said so
                // in one sentence before measuring, and every other would say it again.
                return Err(Reported(2).into());
            }
            let why = format!("its tuning process ended with {status}");
            for &c in &host.cands {
                crate::output::lines::note(&format!("loadgen: configuration {c} left out: {why}"));
                reports.push(ConfigReport {
                    candidate: c,
                    calibration: None,
                    error: Some(why.clone()),
                    predicted: Vec::new(),
                    measured: Vec::new(),
                });
            }
            continue;
        };
        for &c in &host.cands {
            let entry = doc["configurations"]
                .as_array()
                .and_then(|a| a.iter().find(|e| e["name"] == json!(c.to_string())));
            let cal = entry.and_then(calibration_of);
            if let Some(cal) = cal {
                calibrated.push((c, cal));
            }
            // The child has said why a candidate was left out.
            let error = match cal {
                Some(_) => None,
                None => Some(
                    entry
                        .and_then(|e| e["error"].as_str())
                        .unwrap_or("its tuning process did not calibrate it")
                        .to_string(),
                ),
            };
            reports.push(ConfigReport {
                candidate: c,
                calibration: cal,
                error,
                predicted: Vec::new(),
                measured: Vec::new(),
            });
        }
        hosts.push(host);
    }
    if calibrated.is_empty() {
        anyhow::bail!("no configuration could be calibrated; see the reasons above");
    }
    let names: Vec<Candidate> = calibrated.iter().map(|(c, _)| *c).collect();
    let cals: Vec<Calibration> = calibrated.iter().map(|(_, c)| *c).collect();

    // The winner per distribution and target, in the procedure's order, searched by
    // the child that holds it.
    let mut plan: Vec<(Distribution, f64, usize)> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let mut order: Vec<usize> = Vec::new();
    'procedure: for &dist in &settings.distributions {
        for (t, _) in settings.targets() {
            let choice = tune::choose(&names, &cals, dist, t);
            crate::output::lines::note(&choice.note);
            for (i, c) in names.iter().enumerate() {
                if let Some(r) = reports.iter_mut().find(|r| r.candidate == *c) {
                    r.predicted
                        .push((dist, t, tune::round_prediction(choice.predicted[i])));
                }
            }
            plan.push((dist, t, choice.best));
            let winner = names[choice.best];
            let h = (hosts.iter())
                .position(|h| h.cands.contains(&winner))
                .expect("every calibrated candidate has its host");
            if !order.contains(&h) {
                order.push(h);
            }
            let host = &mut hosts[h];
            let request = format!("{} {} {winner}\n", dist.as_str(), py_float(t));
            let sent = host.stdin.as_mut().is_some_and(|w| {
                w.write_all(request.as_bytes())
                    .and_then(|_| w.flush())
                    .is_ok()
            });
            if !(sent && host.pass_through_until(Some(CHILD_SEARCHED))) {
                let status = host.finish()?;
                failure = Some(if signals::interrupted() {
                    interrupted()
                } else {
                    // The child said why on stderr; its exit code is this run's.
                    Reported(status.code().unwrap_or(1)).into()
                });
                break 'procedure;
            }
        }
    }
    // Every child writes its results and exits; those that searched are merged, the
    // first to search first (its settings head the merged file).
    let mut merged: Option<Value> = None;
    for host in &mut hosts {
        host.finish()?;
    }
    for &h in &order {
        let host = &hosts[h];
        let Some(doc) = read_json(&host.results) else {
            continue;
        };
        for &(dist, t, w) in &plan {
            let c = names[w];
            if !host.cands.contains(&c) {
                continue;
            }
            let q = doc["final_results"][dist.as_str()][py_float(t)].as_f64();
            if let (Some(q), Some(r)) = (q, reports.iter_mut().find(|r| r.candidate == c)) {
                r.measured.push((dist, t, q));
            }
        }
        merge(&mut merged, doc);
    }
    if failure.is_none() && signals::interrupted() {
        failure = Some(interrupted());
    }

    let mut doc = merged.unwrap_or_else(|| json!({}));
    doc["cmdline"] = json!(cmdline);
    doc["configurations"] = Value::Array(reports.iter().map(ConfigReport::to_json).collect());
    let mut finals = FinalResults::default();
    for &(dist, t, w) in &plan {
        let key = py_float(t);
        if doc["results"][dist.as_str()][&key].is_object() {
            doc["results"][dist.as_str()][&key]["config"] = candidate_json(&names[w]);
        }
        if let Some(q) = doc["final_results"][dist.as_str()][&key].as_f64() {
            finals.set(dist, t, q);
        }
    }
    if failure.is_some() && signals::interrupted() {
        doc["interrupted"] = json!(true);
    }
    if doc.get("runtime").is_some() {
        files::write_json_atomic(output, &doc)?;
        crate::app::report::write_beside(output, &doc)?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    println!("{}", finals.line());
    Ok(())
}
