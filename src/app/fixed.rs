//! `loadgen fixed`: one step at a fixed offered rate.

use anyhow::Result;

use crate::config::cli::FixedArgs;
use crate::config::settings::{check_rate, parse_latencies, RunOverrides, SettingsError};
use crate::measure::schedule::Distribution;
use crate::measure::step::{self, StepSpec};
use crate::output::lines;
use crate::signals;

use super::common::*;

/// The settings of `loadgen fixed`'s flags, its distribution and target (an agent
/// resolves its coordinator's the same way).
pub(crate) fn fixed_settings(args: &FixedArgs) -> Result<(Settings, Distribution, Option<f64>)> {
    let dist = Distribution::parse(&args.distribution).ok_or_else(|| {
        SettingsError(format!(
            "unknown distribution '{}': use linear or exponential",
            crate::base::text::quote(&args.distribution)
        ))
    })?;
    let target = match &args.max_latency {
        Some(s) => Some(parse_latencies(s)?[0]),
        None => None,
    };
    let o = RunOverrides {
        time: args.time,
        min_queries: args.min_queries,
        ..RunOverrides::default()
    };
    let settings = Settings::resolve(&args.common, &o)?;
    // Before loading anything: a rate too low for the step is bad input.
    check_rate(args.qps, settings.time)?;
    Ok((settings, dist, target))
}

/// `loadgen fixed`: one step at a fixed offered rate, here or split over `--agents`.
pub fn fixed(args: FixedArgs) -> Result<()> {
    let (settings, dist, target) = fixed_settings(&args)?;
    let mut agents = super::coordinator::Agents::from_flags(&args.spread)?;
    let (sut, mut progress) = match agents {
        Some(_) => (load_sut(&settings)?, Progress::new(settings.quiet)),
        None => load_and_warm_up(&settings)?,
    };
    let spec = StepSpec::judged(
        dist,
        args.qps,
        settings.time,
        settings.min_queries,
        target.map(crate::base::limits::duration),
        settings.seed,
        settings.confidence,
    );
    let name = lines::step_name(dist, target, args.qps);
    progress.stage("fixed", &name);
    let summary = match &mut agents {
        Some(a) => {
            let s = a.step(&spec, &name)?;
            a.close();
            s
        }
        None => {
            progress.track(sut.pool.live_handle(), spec.planned);
            step::run_open(&sut.pool, &spec, signals::flag())?
        }
    };
    cut_short(&mut progress, "step")?;
    progress.finish();
    if summary.stop() == crate::measure::step::StopReason::TimeCap {
        progress.note(&format!(
            "loadgen: {name}: issuing stopped at the step's time cap (4 × --time, at least 1 s): {} of {} planned queries were sent",
            summary.issued, summary.planned
        ));
    }
    human_line(&lines::step_line(&name, &summary), args.json);
    single_step_fault(&settings, &sut, &summary, &format!("step {name}"))?;
    finish_single(&summary, args.json, None)
}
