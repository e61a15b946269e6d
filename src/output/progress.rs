//! The progress bar on stderr: stage, target and step, with completed queries. A
//! ticker thread reads the workers' counters; the timed path never touches it.
//! Hidden when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::measure::pool::LiveCounters;

pub struct Progress {
    bar: ProgressBar,
    ticker: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    enabled: bool,
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
            ticker: None,
            enabled,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Names what is running now, e.g. stage `linear 0.01`, message `step 129 qps`.
    pub fn stage(&self, stage: &str, msg: &str) {
        self.bar.set_prefix(stage.to_string());
        self.bar.set_message(msg.to_string());
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
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let done: u64 = live.iter().map(|w| w.done.load(Ordering::Relaxed)).sum();
                bar.set_position(done.min(total));
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

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
