//! The search's system under test: what runs one step for it. The real runner drives
//! the worker pool (`app::run`); tests use a discrete-event model on a virtual clock
//! (`measure::virtual_clock`). Its own file, so that the search and the virtual clock
//! both depend on it and not on each other.

use std::time::Duration;

use crate::measure::schedule::Distribution;
use crate::measure::step::{RunOn, StepSpec, StepSummary, END_STRETCH};

/// The run was interrupted (a signal) or failed; the search gives up.
#[derive(Debug)]
pub enum SearchStop {
    Interrupted,
    Failed(anyhow::Error),
}

/// One step the search asks for.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    pub dist: Distribution,
    /// Offered rate.
    pub qps: f64,
    pub target: Duration,
    /// The step's own schedule seed.
    pub seed: u64,
    /// The size of late bursts seen so far (see [`crate::measure::step::StepSpec::burst`]).
    pub burst: f64,
    /// For a step of the interval's ends: how far it runs on, and to which
    /// confidence ([`crate::measure::policy::end_step`]).
    pub end: Option<EndStep>,
    /// The highest rate passed so far and the lowest failed above it (spoiled steps
    /// say nothing): how far the search has narrowed, for the progress bar.
    pub bracket: (Option<f64>, Option<f64>),
}

impl Ask {
    /// What the ask adds to a step's spec: the bursts seen so far and, for an end
    /// step, running on to its own confidence within a cap [`END_STRETCH`] times an
    /// ordinary step's.
    pub fn shape(&self, spec: &mut StepSpec) {
        spec.burst = self.burst;
        if let Some(end) = self.end {
            spec.run_on = end.run_on;
            spec.confidence = end.confidence;
            spec.cap = spec.cap.saturating_mul(END_STRETCH);
            spec.time_cap = spec.time_cap.saturating_mul(END_STRETCH as u32);
        }
    }
}

/// A step for one of the interval's ends: it runs on while its verdict is open, as
/// `run_on` says, until it is confident at `confidence` (the end's, not the
/// verdicts').
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EndStep {
    pub run_on: RunOn,
    pub confidence: f64,
}

/// Runs steps for the search. The real one drives the worker pool; tests use a
/// discrete-event model on a virtual clock (`crate::measure::virtual_clock`).
pub trait StepRunner {
    /// One open-loop step as `ask` says, judged against its target.
    fn step(&mut self, ask: &Ask) -> Result<StepSummary, SearchStop>;

    /// Called before a spoiled step is run again for the `retry`-th time: a real
    /// runner gives the machine [`retry_pause`] to get over its slow spell (a virtual
    /// one has none to get over).
    fn pause_before_retry(&mut self, _retry: u32) -> Result<(), SearchStop> {
        Ok(())
    }
}

/// The pause before the `retry`-th run of a spoiled step: 2 s, then 4 s. The slow
/// spells of the development VM lasted several seconds; a step retried at once ran
/// into the same spell.
pub fn retry_pause(retry: u32) -> Duration {
    Duration::from_secs(1u64 << retry.clamp(1, 4))
}
