//! `loadgen throughput`: closed loop, the most the system can do.

use anyhow::Result;

use crate::config::cli::ThroughputArgs;
use crate::config::settings::RunOverrides;
use crate::measure::step::{self};
use crate::output::files;
use crate::signals;

use super::common::*;

/// `loadgen throughput`: closed loop, the most the system can do.
pub fn throughput(args: ThroughputArgs, cmdline: String) -> Result<()> {
    let o = RunOverrides {
        time: args.time,
        op_profile: args.op_profile,
        ..RunOverrides::default()
    };
    let settings = Settings::resolve(&args.common, &o)?;
    if let Some(out) = &args.output {
        files::check_writable(out)?;
    }
    let (sut, mut progress) = load_and_warm_up(&settings)?;
    progress.stage("throughput", &format!("{:.0} s closed loop", settings.time));
    progress.track(sut.pool.live_handle(), 0);
    let summary = step::run_closed(
        &sut.pool,
        crate::base::limits::duration(settings.time),
        signals::flag(),
    )?;
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
