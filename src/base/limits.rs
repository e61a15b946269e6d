//! The documented limits of every number a user can give (docs/CONTRACT.md §8). Values
//! outside them are refused where they are parsed (one sentence, exit code 2), so that
//! nothing later has to guard its arithmetic: a step of a day at 10 M queries/s still
//! fits every counter, and every duration fits a [`std::time::Duration`].

use std::time::Duration;

/// `--time`, `--warmup` (and the scenario's `time`, `warmup`): at most a day.
pub const MAX_STEP_SECONDS: f64 = 86_400.0;
/// `--search-time` (and the scenario's `search_time`): at most thirty days.
pub const MAX_SEARCH_SECONDS: f64 = 30.0 * 86_400.0;
/// A target latency (`--max-latency`, scenario `max_latency`): at most an hour…
pub const MAX_TARGET_SECONDS: f64 = 3_600.0;
/// …and at least a microsecond: below that the histograms cannot tell latencies apart.
pub const MIN_TARGET_SECONDS: f64 = 1e-6;
/// `--threads`: workers, each with its own session (a model copy) and OS thread, so at
/// most this many per core…
pub const MAX_THREADS_PER_CORE: usize = 64;
/// …and never more than this on any machine.
pub const MAX_THREADS: usize = 1024;
/// `--intra-threads`, `--inter-threads`: runtime threads per session, per core.
pub const MAX_RUNTIME_THREADS_PER_CORE: usize = 16;
/// `--batch_size`.
pub const MAX_BATCH: usize = 4096;
/// `--configs`: configurations calibrated in one run (each loads its own sessions).
pub const MAX_CANDIDATES: usize = 16;
/// `--count`: items loaded (ImageNet's validation set has 50 000).
pub const MAX_COUNT: usize = 10_000_000;
/// `--min-queries`.
pub const MAX_MIN_QUERIES: u64 = 10_000_000;
/// `fixed --qps`: ten times the generator's measured ceiling.
pub const MAX_QPS: f64 = 10_000_000.0;
/// Each duration of `--sim-service-time`.
pub const MAX_SERVICE_SECONDS: f64 = 3_600.0;
/// The sigma of `--sim-service-time lognormal:…:SIGMA`.
pub const MAX_SIGMA: f64 = 10.0;

/// The most `--threads` on this machine.
pub fn max_threads() -> usize {
    (cores() * MAX_THREADS_PER_CORE).min(MAX_THREADS)
}

/// The most `--intra-threads` / `--inter-threads` on this machine.
pub fn max_runtime_threads() -> usize {
    cores() * MAX_RUNTIME_THREADS_PER_CORE
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Seconds as a [`Duration`], never panicking: negative or NaN gives zero, too large
/// gives [`Duration::MAX`] (checked values never get there).
pub fn duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_never_panics() {
        assert_eq!(duration(f64::NAN), Duration::ZERO);
        assert_eq!(duration(-1.0), Duration::ZERO);
        assert_eq!(duration(1e300), Duration::MAX);
        assert_eq!(duration(f64::INFINITY), Duration::MAX);
        assert_eq!(duration(0.5), Duration::from_millis(500));
    }
}
