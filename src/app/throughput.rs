//! `loadgen throughput`: closed loop, the most the system can do.

use anyhow::Result;

use crate::config::cli::ThroughputArgs;
use crate::config::settings::RunOverrides;
use crate::measure::step::{self};
use crate::signals;

use super::common::*;

/// `loadgen throughput`: closed loop, the most the system can do.
pub fn throughput(args: ThroughputArgs) -> Result<()> {
    let o = RunOverrides {
        time: args.time,
        ..RunOverrides::default()
    };
    let (settings, sut, mut progress) = prepare(&args.common, &o)?;
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
    finish_single(&summary, args.json)
}
