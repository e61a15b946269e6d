//! The progress bar on stderr: stage, target and step, with completed queries, the
//! step's p99 and late queries so far, and where the search stands (the highest rate
//! passed, the lowest failed). A ticker thread reads the workers' counters; the timed
//! path never touches the bar.
//! Hidden when stderr is not a terminal or with `--quiet`.
//!
//! With `LOADGEN_STAGE_LINES=1` each stage is also one line on stderr
//! (`loadgen: stage NAME: WHAT`), bar or not: a script or test that must act during a
//! stage (signal the run in its warm-up, say) waits for that line instead of guessing
//! how long loading takes.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::measure::live_histogram;
use crate::measure::pool::LiveCounters;

pub struct Progress {
    bar: ProgressBar,
    /// The stage's message, which the step's live figures follow.
    message: std::cell::RefCell<String>,
    ticker: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    enabled: bool,
    /// `LOADGEN_STAGE_LINES=1`: each stage as a line on stderr.
    stage_lines: bool,
}

/// The variable that asks for one stderr line per stage.
pub const STAGE_LINES_ENV: &str = "LOADGEN_STAGE_LINES";

fn stage_lines() -> bool {
    std::env::var_os(STAGE_LINES_ENV).is_some_and(|v| v == "1")
}

/// The stage's line on stderr, when `LOADGEN_STAGE_LINES=1`: for the stages of a
/// subcommand that shows no bar.
pub fn stage_line(stage: &str, msg: &str) {
    if stage_lines() {
        crate::output::lines::note(&format!("loadgen: stage {stage}: {msg}"));
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let enabled = !quiet && std::io::stderr().is_terminal();
        let bar = if enabled {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10))
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix:.bold} {msg} [{bar:30}] {pos}/{len} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress {
            bar,
            message: std::cell::RefCell::new(String::new()),
            ticker: None,
            enabled,
            stage_lines: stage_lines(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Names what is running now, e.g. stage `linear 0.01`, message `step 129 qps`.
    pub fn stage(&self, stage: &str, msg: &str) {
        if self.stage_lines {
            self.note(&format!("loadgen: stage {stage}: {msg}"));
        }
        self.bar.set_prefix(stage.to_string());
        self.bar.set_message(msg.to_string());
        *self.message.borrow_mut() = msg.to_string();
    }

    /// Adds where the search stands to the stage's message: the highest rate passed so
    /// far and the lowest failed above it (see [`crate::measure::search::bracket`]).
    pub fn bracket(&self, passed: Option<f64>, failed: Option<f64>) {
        let show = |q: Option<f64>| q.map_or("?".to_string(), |q| format!("{q}"));
        if passed.is_some() || failed.is_some() {
            let mut m = self.message.borrow_mut();
            *m = format!("{m} · answer in [{}, {})", show(passed), show(failed));
            self.bar.set_message(m.clone());
        }
    }

    /// Follows the workers' completion counters until [`Progress::end_step`].
    pub fn track(&mut self, live: Arc<[CachePadded<LiveCounters>]>, total: u64) {
        self.end_step();
        if !self.enabled {
            return;
        }
        self.bar.set_length(total);
        self.bar.set_position(0);
        let stop = Arc::new(AtomicBool::new(false));
        let bar = self.bar.clone();
        let s = Arc::clone(&stop);
        let message = self.message.borrow().clone();
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let done: u64 = live.iter().map(|w| w.done.load(Ordering::Relaxed)).sum();
                bar.set_position(done.min(total));
                bar.set_message(live_message(&message, &live, done));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        self.ticker = Some((stop, handle));
    }

    pub fn end_step(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }

    /// Prints a line on stdout without tearing the bar.
    pub fn println(&self, line: &str) {
        if self.enabled {
            self.bar.suspend(|| println!("{line}"));
        } else {
            println!("{line}");
        }
    }

    /// A diagnostic on stderr (see [`crate::output::lines::note`]).
    pub fn note(&self, line: &str) {
        if self.enabled {
            self.bar.suspend(|| crate::output::lines::note(line));
        } else {
            crate::output::lines::note(line);
        }
    }

    pub fn finish(&mut self) {
        self.end_step();
        self.bar.finish_and_clear();
    }
}

/// The stage's message with the step's figures so far: its p99 (to within the live
/// histogram's bucket, see [`live_histogram`]) and its late queries.
fn live_message(message: &str, live: &[CachePadded<LiveCounters>], done: u64) -> String {
    let mut counts = [0u64; live_histogram::BUCKETS];
    for w in live {
        w.latency.add_to(&mut counts);
    }
    let late: u64 = live.iter().map(|w| w.late.load(Ordering::Relaxed)).sum();
    match live_histogram::quantile(&counts, 0.99) {
        Some(p99) if done > 0 => format!(
            "{message} · p99 so far ≤{:.1} ms · late {late} of {done}",
            p99 * 1e3
        ),
        _ => message.to_string(),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
