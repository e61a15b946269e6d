//! Tuning with a process per candidate, for TensorFlow: its intra-op pool belongs to
//! the process and the first session sizes it, so candidates sharing one process
//! would all run on the first one's threads.
//!
//! This process measures nothing itself. It starts `loadgen run` again with each
//! candidate's configuration pinned: first `--calibrate-only` per candidate, then the
//! searches, one process per run of consecutive targets with the same winner (one in
//! all when a single candidate wins everywhere, so no session is built twice). The
//! children's log lines pass through; their results.json files are merged into one.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::candidates::Candidate;
use crate::config::settings::Settings;
use crate::error::{Interrupted, Reported};
use crate::measure::schedule::Distribution;
use crate::measure::tuning::Calibration;
use crate::output::files;
use crate::output::lines::{self, py_float, FinalResults};
use crate::output::results::{candidate_json, ConfigReport};
use crate::signals;

use super::tune;

/// Flags of this run that the children get from the parent instead (with a value).
const SET_BY_PARENT: [&str; 5] = [
    "--configs",
    "--output",
    "--max-latency",
    "--max_latency",
    "--distributions",
];
/// Switches the children get from the parent instead.
const SWITCHES_SET_BY_PARENT: [&str; 3] = ["--no-accuracy", "--no-tune", "--calibrate-only"];

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

/// The flags that pin a candidate's configuration.
fn pins(c: Candidate) -> Vec<String> {
    let mut v = vec![
        "--threads".into(),
        c.workers.to_string(),
        "--intra-threads".into(),
        c.intra_threads.to_string(),
        "--batch_size".into(),
        c.batch_size.to_string(),
    ];
    if let Some(n) = c.inter_threads {
        v.extend(["--inter-threads".into(), n.to_string()]);
    }
    v
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

fn calibration_of(doc: &Value) -> Option<Calibration> {
    let c = &doc["configurations"][0]["calibration"];
    Some(Calibration {
        servers: doc["configurations"][0]["workers"].as_u64()? as usize,
        batch: doc["configurations"][0]["batch_size"].as_u64()? as usize,
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

/// One search process: consecutive targets of one distribution won by one candidate
/// (or every target, when one candidate wins them all).
struct Group {
    candidate: usize,
    dists: Vec<Distribution>,
    targets: Vec<f64>,
}

/// A tuned run with a process per candidate; see the module doc.
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

    // Calibration, one process per candidate.
    let mut reports: Vec<ConfigReport> = Vec::new();
    let mut calibrated: Vec<(Candidate, Calibration)> = Vec::new();
    for &c in cands {
        let path = scratch.0.join(format!("calibrate-{c}.json"));
        let mut child = Command::new(&exe)
            .arg("run")
            .args(&base)
            .args(pins(c))
            .args(["--calibrate-only", "--no-accuracy", "--quiet", "--output"])
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start a calibration process")?;
        let done = forward_signals(&child);
        let status = child.wait()?;
        done.store(true, Ordering::Relaxed);
        if signals::interrupted() {
            return Err(interrupted());
        }
        if status.code() == Some(2) {
            // Bad input (a missing model, a wrong tensor name): the child said so in one
            // sentence before measuring, and every other candidate would say it again.
            return Err(Reported(2).into());
        }
        let cal = status
            .success()
            .then(|| read_json(&path).as_ref().and_then(calibration_of))
            .flatten();
        match cal {
            Some(cal) => {
                eprintln!("{}", lines::calibration_line(&c.to_string(), &cal));
                calibrated.push((c, cal));
                reports.push(ConfigReport {
                    candidate: c,
                    calibration: Some(cal),
                    error: None,
                    predicted: Vec::new(),
                    measured: Vec::new(),
                });
            }
            None => {
                let why = format!("its calibration process ended with {status}");
                eprintln!("loadgen: configuration {c} left out: {why}");
                reports.push(ConfigReport {
                    candidate: c,
                    calibration: None,
                    error: Some(why),
                    predicted: Vec::new(),
                    measured: Vec::new(),
                });
            }
        }
    }
    if calibrated.is_empty() {
        anyhow::bail!("no configuration could be calibrated; see the reasons above");
    }
    let names: Vec<Candidate> = calibrated.iter().map(|(c, _)| *c).collect();
    let cals: Vec<Calibration> = calibrated.iter().map(|(_, c)| *c).collect();

    // The winner per distribution and target, in the procedure's order.
    let mut plan: Vec<(Distribution, f64, usize)> = Vec::new();
    for &dist in &settings.distributions {
        for (t, _) in settings.targets() {
            let choice = tune::choose(&names, &cals, dist, t);
            eprintln!("{}", choice.note);
            for (i, c) in names.iter().enumerate() {
                if let Some(r) = reports.iter_mut().find(|r| r.candidate == *c) {
                    r.predicted
                        .push((dist, t, tune::round_prediction(choice.predicted[i])));
                }
            }
            plan.push((dist, t, choice.best));
        }
    }
    let mut groups: Vec<Group> = Vec::new();
    if plan.iter().all(|p| p.2 == plan[0].2) {
        groups.push(Group {
            candidate: plan[0].2,
            dists: settings.distributions.clone(),
            targets: settings.max_latency.clone(),
        });
    } else {
        for &(dist, t, w) in &plan {
            match groups.last_mut() {
                Some(g) if g.candidate == w && g.dists == [dist] => g.targets.push(t),
                _ => groups.push(Group {
                    candidate: w,
                    dists: vec![dist],
                    targets: vec![t],
                }),
            }
        }
    }

    // The searches. Only the first process runs the accuracy pass.
    let mut merged: Option<Value> = None;
    let mut failure: Option<anyhow::Error> = None;
    for (k, g) in groups.iter().enumerate() {
        let c = names[g.candidate];
        let path = scratch.0.join(format!("search-{k}.json"));
        let dists: Vec<&str> = g.dists.iter().map(|d| d.as_str()).collect();
        let targets: Vec<String> = g.targets.iter().map(|&t| py_float(t)).collect();
        let mut cmd = Command::new(&exe);
        cmd.arg("run")
            .args(&base)
            .args(pins(c))
            .args(["--distributions", &dists.join(",")])
            .args(["--max-latency", &targets.join(",")])
            .arg("--output")
            .arg(&path)
            .stdout(Stdio::piped());
        if k > 0 || !settings.accuracy {
            cmd.arg("--no-accuracy");
        }
        let mut child = cmd.spawn().context("cannot start a search process")?;
        let done = forward_signals(&child);
        if let Some(out) = child.stdout.take() {
            // The children's log lines, as they come; FINAL_RESULT is this run's.
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if !line.starts_with("===FINAL_RESULT") {
                    println!("{line}");
                }
            }
        }
        let status = child.wait()?;
        done.store(true, Ordering::Relaxed);
        if let Some(doc) = read_json(&path) {
            for (dist, t) in g
                .dists
                .iter()
                .flat_map(|&d| g.targets.iter().map(move |&t| (d, t)))
            {
                let q = doc["final_results"][dist.as_str()][py_float(t)].as_f64();
                if let (Some(q), Some(r)) = (q, reports.iter_mut().find(|r| r.candidate == c)) {
                    r.measured.push((dist, t, q));
                }
            }
            merge(&mut merged, doc);
        }
        if signals::interrupted() {
            failure = Some(interrupted());
            break;
        }
        if !status.success() {
            // The child said why on stderr; its exit code is this run's.
            failure = Some(Reported(status.code().unwrap_or(1)).into());
            break;
        }
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
    }
    if let Some(e) = failure {
        return Err(e);
    }
    println!("{}", finals.line());
    Ok(())
}
