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
use crate::measure::step::{run_open, RunOn, StepSpec, StepSummary, StopReason};

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
        run_on: RunOn::NearBoundary,
        share: None,
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

/// The invariants of every step's outcome (see [`StepOutcome`]'s table).
fn invariants(s: &StepSummary, case: &str) {
    use crate::measure::step::{StepOutcome, Verdict};
    assert!(
        !(s.stop().is_failure() && s.passed()),
        "{case}: a failing stop with a passing verdict: {s:?}"
    );
    assert_eq!(s.passed(), s.verdict() == Verdict::Pass, "{case}: {s:?}");
    assert_eq!(s.judged, s.count + s.abandoned, "{case}: {s:?}");
    assert_eq!(s.issued, s.count + s.errors + s.abandoned, "{case}: {s:?}");
    match s.outcome {
        StepOutcome::TooManyLate { confident, stop } => {
            assert!(confident || !stop.is_failure(), "{case}: {s:?}");
            assert!(
                !matches!(stop, StopReason::Interrupted | StopReason::Closed),
                "{case}: {s:?}"
            );
        }
        StepOutcome::Pass { .. } => {
            assert!(!s.stop().is_failure(), "{case}: {s:?}");
            // The counts agree with a pass on the point estimate at least.
            assert!(s.late * 100 <= s.judged, "{case}: {s:?}");
        }
        StepOutcome::Interrupted => assert_eq!(s.stop(), StopReason::Interrupted),
        _ => {}
    }
    // Read against another target it counted, a failing stop never passes either.
    for &(t, _) in &s.late_also {
        if let Some(r) = s.against(t) {
            assert!(
                !(r.stop().is_failure() && r.passed()),
                "{case}: against {t}: {r:?}"
            );
        }
    }
}

/// A small deterministic generator of test parameters.
fn draws(seed: u64) -> impl FnMut(f64, f64) -> f64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    move |lo: f64, hi: f64| rng.random_range(lo..hi)
}

#[test]
fn no_virtual_clock_step_passes_with_a_failing_stop() {
    use crate::measure::virtual_clock::{ServiceLaw, VirtualQueue};
    let mut failing_stops = 0;
    for case in 0..400u64 {
        let mut draw = draws(case);
        let servers = 1 + (draw(0.0, 3.0) as usize);
        let mean = draw(0.002, 0.02);
        let law = if draw(0.0, 1.0) < 0.5 {
            ServiceLaw::Exp(mean)
        } else {
            ServiceLaw::Fixed(mean)
        };
        // From well below capacity to twice it; targets of 1–20 service times.
        let qps = draw(0.3, 2.0) * servers as f64 / mean;
        let target = Duration::from_secs_f64(mean * draw(1.0, 20.0));
        let seconds = draw(0.5, 4.0);
        let dist = if case % 2 == 0 {
            Distribution::Exponential
        } else {
            Distribution::Linear
        };
        let spec = StepSpec::judged(dist, qps, seconds, 100, Some(target), case, 0.99);
        let s = VirtualQueue::new(servers, law, seconds, 100).run(&spec);
        let what = format!("case {case}: {servers} servers, {law:?}, {qps:.1}/s, {target:?}");
        invariants(&s, &what);
        failing_stops += u32::from(s.stop().is_failure());
    }
    assert!(failing_stops >= 40, "only {failing_stops} failing stops");
}

#[test]
fn no_in_process_or_in_flight_step_passes_with_a_failing_stop() {
    use crate::backend::{BackendConfig, BackendKind};
    let mut failing_stops = 0;
    for case in 0..8u64 {
        let mut draw = draws(1000 + case);
        let qps = draw(200.0, 400.0);
        let target = Duration::from_secs_f64(draw(0.02, 0.1));
        let queries = draw(100.0, 200.0) as u64;
        let spec = StepSpec {
            distribution: Distribution::Exponential,
            offered_qps: qps,
            planned: queries,
            cap: queries * 2,
            time_cap: Duration::from_secs(5),
            target: Some(target),
            also_count: vec![target * 3],
            seed: case,
            confidence: 0.99,
            burst: 1.0,
            run_on: RunOn::NearBoundary,
            share: None,
            service_ref: None,
        };
        let backend: Arc<dyn Backend> = if case % 2 == 0 {
            // In process: an M/M/1 sim server at 0.5–2 × its capacity.
            let cfg = BackendConfig {
                workers: 1,
                sim_service_time: Some(format!("exp:{:.2}ms", 1e3 * draw(0.5, 2.0) / qps)),
                seed: case,
                ..BackendConfig::default()
            };
            crate::backend::load(BackendKind::Sim, &cfg).unwrap()
        } else {
            // In flight: a server that turns slow after a random number of answers.
            Arc::new(TurnsSlow {
                info: ModelInfo::none(),
                fast: draw(0.0, queries as f64) as u64,
                slow: Duration::from_secs_f64(draw(0.5, 1.0)),
                asynchronous: true,
                served: Arc::new(AtomicU64::new(0)),
            })
        };
        let pool = WorkerPool::start(&backend, Arc::new(NoSamples), 1, 1).unwrap();
        let s = run_open(&pool, &spec, &AtomicBool::new(false)).unwrap();
        let what = format!("case {case}: {qps:.1}/s, {target:?}, {queries} queries");
        invariants(&s, &what);
        failing_stops += u32::from(s.stop().is_failure());
    }
    assert!(failing_stops >= 2, "only {failing_stops} failing stops");
}

#[test]
fn a_step_read_against_another_target_keeps_a_failing_stop_a_failure() {
    use crate::measure::step::StepOutcome;
    // Stopped certain at 50 ms with 30 late of 400 (cap 2000); at 100 ms only 2 late.
    let s = StepSummary {
        target_latency: Some(0.05),
        offered_qps: Some(100.0),
        cap: 2000,
        planned: 1000,
        issued: 400,
        count: 380,
        abandoned: 20,
        judged: 400,
        late: 30,
        late_also: vec![(0.1, 2), (0.02, 60)],
        outcome: StepOutcome::decided(false, true, StopReason::CertainFail),
        ..StepSummary::default()
    };
    invariants(&s, "certain");
    assert!(
        s.against(0.1).is_none(),
        "a truncated sample says nothing there"
    );
    let stricter = s.against(0.02).unwrap();
    assert_eq!(
        stricter.outcome,
        StepOutcome::TooManyLate {
            confident: true,
            stop: StopReason::CertainFail
        }
    );
    // A pass read against a stricter target it fails keeps its stop.
    let p = StepSummary {
        outcome: StepOutcome::decided(true, true, StopReason::ConfidentPass),
        late: 0,
        ..s
    };
    assert!(!p.against(0.02).unwrap().passed());
    assert!(p.against(0.1).unwrap().passed());
    // No constructor turns a failing stop into a pass.
    for stop in [StopReason::CertainFail, StopReason::ConfidentFail] {
        for (pass, confident) in [(true, true), (true, false), (false, false)] {
            let o = StepOutcome::decided(pass, confident, stop);
            assert!(!o.passed() && o.confident(), "{o:?}");
        }
    }
}
