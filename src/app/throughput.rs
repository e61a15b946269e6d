//! `loadgen throughput`: closed loop, the most the system can do.

use anyhow::Result;

use crate::config::cli::ThroughputArgs;
use crate::config::settings::{RunOverrides, SettingsError};
use crate::measure::step::{self};
use crate::output::files;
use crate::signals;

use super::common::*;

/// The settings of `loadgen throughput`'s flags (an agent resolves its
/// coordinator's the same way).
pub(crate) fn throughput_settings(args: &ThroughputArgs) -> Result<Settings> {
    let o = RunOverrides {
        time: args.time,
        op_profile: args.op_profile,
        ..RunOverrides::default()
    };
    Ok(Settings::resolve(&args.common, &o)?)
}

/// `loadgen throughput`: closed loop, the most the system can do; with `--agents`,
/// on every agent at once (their rates add).
pub fn throughput(args: ThroughputArgs, cmdline: String) -> Result<()> {
    let settings = throughput_settings(&args)?;
    if args.op_profile && !args.spread.agents.is_empty() {
        anyhow::bail!(SettingsError(
            "--op-profile reads this process's runtime, which does not serve the load with --agents: leave one of them out".into()
        ));
    }
    if let Some(out) = &args.output {
        files::check_writable(out)?;
    }
    let mut agents = super::coordinator::Agents::from_flags(&args.spread)?;
    let (sut, mut progress) = match agents {
        Some(_) => (load_sut(&settings)?, Progress::new(settings.quiet)),
        None => load_and_warm_up(&settings)?,
    };
    progress.stage("throughput", &format!("{:.0} s closed loop", settings.time));
    let summary = match &mut agents {
        Some(a) => {
            let s = a.probe(settings.time)?;
            a.close();
            s
        }
        None => {
            progress.track(sut.pool.live_handle(), 0);
            step::run_closed(
                &sut.pool,
                crate::base::limits::duration(settings.time),
                signals::flag(),
            )?
        }
    };
    cut_short(&mut progress, "throughput run")?;
    progress.finish();
    single_step_fault(&settings, &sut, &summary, "the throughput run")?;
    human_line(
        &format!("Throughput: {:.2} images/sec", summary.qps),
        args.json,
    );
    let backend = Arc::clone(&sut.backend);
    let profile = op_profile(sut, &settings, Some(summary.mean));
    if let Some(out) = &args.output {
        let file = single_file(
            backend.as_ref(),
            &settings,
            &cmdline,
            "throughput",
            results::step_json(&summary),
            profile.clone(),
        );
        files::write_json_atomic(out, &file)?;
    }
    finish_single(&summary, args.json, profile)
}
