//! `loadgen latency`: one query at a time, back to back ([`crate::measure::sync`]),
//! on any backend. One worker: `--threads` other than 1 is refused, since a second
//! worker would put two queries in flight.

use anyhow::Result;

use crate::config::cli::LatencyArgs;
use crate::config::settings::{RunOverrides, Settings, SettingsError};
use crate::measure::sync;
use crate::output::{files, latency};
use crate::signals;

use super::common::*;

/// `loadgen latency`: the line (or `--json`), and `--output` where asked.
pub fn latency(args: LatencyArgs, cmdline: String) -> Result<()> {
    if let Some(n) = args.common.threads.filter(|&n| n != 1) {
        return Err(SettingsError(format!(
            "latency runs one query at a time: --threads must be 1 (or left out), got {n}"
        ))
        .into());
    }
    let o = RunOverrides {
        time: args.time,
        op_profile: args.op_profile,
        ..RunOverrides::default()
    };
    let mut settings = Settings::resolve(&args.common, &o)?;
    settings.threads = 1;
    if let Some(out) = &args.output {
        files::check_writable(out)?;
    }
    let (sut, mut progress) = load_and_warm_up(&settings)?;
    let what = match args.queries {
        Some(n) => format!("{n} queries or {:.0} s, one at a time", settings.time),
        None => format!("{:.0} s, one query at a time", settings.time),
    };
    progress.stage("latency", &what);
    let samples = args
        .queries
        .map(|q| q.saturating_mul(settings.batch_size as u64));
    progress.track(sut.pool.live_handle(), samples.unwrap_or(0));
    // A query is one batch of --batch_size samples; the pool counts samples.
    let l = sync::run_sync(
        &sut.pool,
        crate::base::limits::duration(settings.time),
        args.queries
            .map(|q| q.saturating_mul(settings.batch_size as u64)),
        settings.confidence,
        signals::flag(),
    )?;
    cut_short(&mut progress, "latency run")?;
    progress.finish();
    if l.errors > 0 {
        anyhow::bail!(
            "{} of {} queries failed; the first: {}",
            l.errors,
            l.count + l.errors,
            l.first_error.as_deref().unwrap_or("-")
        );
    }
    human_line(&latency::line(&l), args.json);
    let backend = Arc::clone(&sut.backend);
    let profile = op_profile(sut, &settings, Some(l.mean));
    let mut doc = latency::to_json(&l);
    if let Some(out) = &args.output {
        let file = single_file(
            backend.as_ref(),
            &settings,
            &cmdline,
            "latency",
            doc.clone(),
            profile.clone(),
        );
        files::write_json_atomic(out, &file)?;
    }
    if args.json {
        if let Some(p) = profile {
            doc["op_profile"] = p;
        }
        println!("{doc}");
    }
    Ok(())
}
