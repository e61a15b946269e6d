//! A step that stops on a failure while queries are still being served must not be
//! recorded as a pass, on either serving path: a blocking session (the in-process
//! runtimes: the batch in a worker's hands) and an asynchronous one (a network
//! client: requests submitted to the server and not yet answered). The server here
//! answers its first queries at once and then turns slow, as an overloaded Triton
//! does: every query before the turn is on time, every one after it late, and the
//! late ones are still being served when the step stops.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{
    AsyncSession, Backend, BackendError, Batch, Completion, ModelInfo, Prediction, Session,
};
use crate::measure::pool::{SampleLibrary, WorkerPool};
use crate::measure::schedule::Distribution;
use crate::measure::step::{run_open, StepSpec, StepSummary, StopReason};

/// Answers the first `fast` requests after 1 ms, every later one after `slow`.
struct TurnsSlow {
    info: ModelInfo,
    fast: u64,
    slow: Duration,
    asynchronous: bool,
    served: Arc<AtomicU64>,
}

impl TurnsSlow {
    fn delay(served: &AtomicU64, fast: u64, slow: Duration) -> Duration {
        if served.fetch_add(1, Ordering::SeqCst) < fast {
            Duration::from_millis(1)
        } else {
            slow
        }
    }
}

impl Backend for TurnsSlow {
    fn name(&self) -> &'static str {
        "turns-slow"
    }
    fn version(&self) -> String {
        "0".into()
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn session(&self, _worker: usize) -> Result<Box<dyn Session>, BackendError> {
        Ok(Box::new(TurnsSlowSession {
            fast: self.fast,
            slow: self.slow,
            asynchronous: self.asynchronous,
            served: Arc::clone(&self.served),
            outstanding: Arc::new(AtomicUsize::new(0)),
            cancelled: Arc::new(AtomicU64::new(0)),
        }))
    }
}

struct TurnsSlowSession {
    fast: u64,
    slow: Duration,
    asynchronous: bool,
    served: Arc<AtomicU64>,
    outstanding: Arc<AtomicUsize>,
    /// Bumped by `cancel_all`: requests submitted before never complete.
    cancelled: Arc<AtomicU64>,
}

impl Session for TurnsSlowSession {
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
        std::thread::sleep(TurnsSlow::delay(&self.served, self.fast, self.slow));
        out.top1.extend(std::iter::repeat_n(0, batch.len));
        Ok(())
    }

    fn as_async(&mut self) -> Option<&mut dyn AsyncSession> {
        if self.asynchronous {
            Some(self)
        } else {
            None
        }
    }
}

impl AsyncSession for TurnsSlowSession {
    fn max_in_flight(&self) -> usize {
        256
    }
    fn closed_in_flight(&self) -> usize {
        1
    }
    fn submit(&mut self, _batch: Batch<'_>, done: Completion) {
        let delay = TurnsSlow::delay(&self.served, self.fast, self.slow);
        let outstanding = Arc::clone(&self.outstanding);
        let cancelled = Arc::clone(&self.cancelled);
        let generation = cancelled.load(Ordering::SeqCst);
        outstanding.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            if cancelled.load(Ordering::SeqCst) == generation {
                done(Ok(()));
            }
            outstanding.fetch_sub(1, Ordering::SeqCst);
        });
    }
    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }
    fn cancel_all(&mut self) {
        self.cancelled.fetch_add(1, Ordering::SeqCst);
    }
}

struct NoSamples;

impl SampleLibrary for NoSamples {
    fn count(&self) -> usize {
        1
    }
    fn item_len(&self) -> usize {
        0
    }
    fn items(&self, _start: usize, _n: usize) -> &[f32] {
        &[]
    }
}

/// 1000 queries at 200/s against 100 ms; the server turns slow (1 s) after 200.
fn stopped_step(asynchronous: bool) -> StepSummary {
    let backend: Arc<dyn Backend> = Arc::new(TurnsSlow {
        info: ModelInfo::none(),
        fast: 200,
        slow: Duration::from_secs(1),
        asynchronous,
        served: Arc::new(AtomicU64::new(0)),
    });
    let pool = WorkerPool::start(&backend, Arc::new(NoSamples), 1, 1).unwrap();
    let spec = StepSpec {
        distribution: Distribution::Linear,
        offered_qps: 200.0,
        planned: 1000,
        cap: 1000,
        time_cap: Duration::from_secs(60),
        target: Some(Duration::from_millis(100)),
        also_count: Vec::new(),
        seed: 1,
        confidence: 0.99,
        burst: 1.0,
        service_ref: None,
    };
    run_open(&pool, &spec, &AtomicBool::new(false)).unwrap()
}

fn check(s: &StepSummary, path: &str) {
    // More than 1 % of the cap (10 queries) were late when it stopped: certain.
    assert_eq!(s.stop(), StopReason::CertainFail, "{path}: {s:?}");
    assert!(
        !s.passed(),
        "{path}: a step stopped on a certain failure passed: {s:?}"
    );
    assert!(
        s.late > 10,
        "{path}: the late queries served at the stop: {s:?}"
    );
    assert_eq!(s.judged, s.count + s.abandoned, "{path}: {s:?}");
    assert_eq!(s.issued, s.count + s.errors + s.abandoned, "{path}: {s:?}");
}

#[test]
fn a_step_stopped_with_requests_in_flight_is_not_a_pass() {
    check(&stopped_step(true), "in flight");
}

#[test]
fn a_step_stopped_with_a_query_in_a_workers_hands_is_not_a_pass() {
    check(&stopped_step(false), "in process");
}
