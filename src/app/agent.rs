//! `loadgen agent`: serves load for a coordinator (`loadgen run --agents`). It takes
//! one coordinator at a time; each session loads the system under test from the
//! coordinator's own flags (`Setup`), then runs each step's share at the instant it
//! is sent and answers with the share's exact counts (see `crate::agents`).

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use crate::agents::clock::wall_ns;
use crate::agents::merge;
use crate::agents::protocol::{self, Reply, Request, ShareCounts, ShareSpec, WireError, PROTOCOL};
use crate::config::cli::{AgentArgs, Cli, Command};
use crate::config::settings::SettingsError;
use crate::measure::schedule::Distribution;
use crate::measure::step::{self, RunOn, Share, StepSpec};

use super::common::*;

/// How long a coordinator may take to say who it is.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

/// A session with nothing to do for this long is over (a coordinator that died
/// without closing its connection).
const IDLE: Duration = Duration::from_secs(900);

/// `loadgen agent`.
pub fn agent(args: AgentArgs) -> Result<()> {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("LOADGEN_TOKEN").ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            SettingsError(
                "loadgen agent needs a token that its coordinator presents: give --token or set LOADGEN_TOKEN"
                    .into(),
            )
        })?;
    let listener = TcpListener::bind(&args.listen).map_err(|e| {
        SettingsError(format!(
            "cannot listen on {} ({e}): give --listen HOST:PORT with a free port",
            crate::base::text::quote(&args.listen)
        ))
    })?;
    listener.set_nonblocking(true)?;
    eprintln!("loadgen agent: listening on {}", listener.local_addr()?);
    let busy = Arc::new(Mutex::new(()));
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut sessions = Vec::new();
    loop {
        if signals::interrupted()
            || args
                .sessions
                .is_some_and(|n| served.load(Ordering::SeqCst) >= n)
        {
            break;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                let (busy, token, served) = (Arc::clone(&busy), token.clone(), Arc::clone(&served));
                sessions.push(std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    if let Some(counted) = session(stream, &peer.to_string(), &token, &busy) {
                        eprintln!("loadgen agent: {peer}: {counted}");
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).context("accepting a coordinator"),
        }
        sessions.retain(|h| !h.is_finished());
    }
    if signals::interrupted() {
        // A session's step stops on the same signal; one waiting for its coordinator's
        // next request ends with the process.
        return Err(crate::error::Cancelled("the agent was stopped".into()).into());
    }
    for h in sessions {
        let _ = h.join();
    }
    Ok(())
}

/// One coordinator's session. `Some(how it ended)` for a session that was served
/// (the token was right), `None` for one refused; refusals are logged here.
fn session(stream: TcpStream, peer: &str, token: &str, busy: &Mutex<()>) -> Option<String> {
    let refuse = |mut w: &TcpStream, why: &str| {
        let _ = protocol::send(&mut w, &Reply::Refused { reason: why.into() });
        eprintln!("loadgen agent: refused {peer}: {why}");
    };
    let _ = stream.set_read_timeout(Some(HELLO_WITHIN));
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    match protocol::receive::<Request>(&mut reader) {
        Ok(Request::Hello {
            token: t,
            protocol: p,
        }) => {
            if !protocol::token_matches(&t, token) {
                refuse(&stream, "wrong token");
                return None;
            }
            if p != PROTOCOL {
                refuse(&stream, &format!("protocol {p}, this agent speaks {PROTOCOL} (same loadgen version on both sides)"));
                return None;
            }
        }
        Ok(_) => {
            refuse(&stream, "it did not begin with hello");
            return None;
        }
        // A connection that closes unsaid is a port check (a readiness probe): not
        // worth a line every few seconds.
        Err(WireError::Closed) => return None,
        Err(e) => {
            refuse(&stream, &format!("no hello: {e}"));
            return None;
        }
    }
    let Ok(_guard) = busy.try_lock() else {
        refuse(&stream, "this agent is serving another coordinator");
        return None;
    };
    let mut w = &stream;
    let welcome = Reply::Welcome {
        version: env!("CARGO_PKG_VERSION").into(),
        host: hostname(),
    };
    if protocol::send(&mut w, &welcome).is_err() {
        return Some("the coordinator left".into());
    }
    eprintln!("loadgen agent: serving {peer}");
    let _ = stream.set_read_timeout(Some(IDLE));
    let mut sut: Option<Sut> = None;
    loop {
        let req = match protocol::receive::<Request>(&mut reader) {
            Ok(r) => r,
            Err(WireError::Closed) => return Some("the coordinator closed the session".into()),
            Err(e) => return Some(format!("the session ended: {e}")),
        };
        let reply = match req {
            Request::Ping => Reply::Pong { wall_ns: wall_ns() },
            Request::Hello { .. } => Reply::Failed {
                id: None,
                message: "hello twice".into(),
            },
            Request::Setup { args } => match setup(&args) {
                Ok(s) => {
                    let reply = Reply::Ready {
                        backend: s.backend.name().into(),
                        workers: s.pool.threads(),
                    };
                    sut = Some(s);
                    reply
                }
                Err(e) => Reply::Failed {
                    id: None,
                    message: format!("{e:#}"),
                },
            },
            Request::Probe {
                id,
                seconds,
                start_wall_ns,
            } => report(id, sut.as_ref(), |s| probe(s, seconds, start_wall_ns)),
            Request::Step { id, step } => report(id, sut.as_ref(), |s| run_share(s, &step)),
            Request::Bye => return Some("the coordinator said goodbye".into()),
        };
        if protocol::send(&mut w, &reply).is_err() {
            return Some("the coordinator left".into());
        }
    }
}

/// The answer to request `id`: what `run` measured on the system under test, or why
/// it could not.
fn report(id: u64, sut: Option<&Sut>, run: impl FnOnce(&Sut) -> Result<ShareCounts>) -> Reply {
    let Some(sut) = sut else {
        return Reply::Failed {
            id: Some(id),
            message: "no setup before the first step".into(),
        };
    };
    match run(sut) {
        Ok(counts) => Reply::Report {
            id,
            counts: Box::new(counts),
        },
        Err(e) => Reply::Failed {
            id: Some(id),
            message: format!("{e:#}"),
        },
    }
}

/// Loads the system under test from the coordinator's flags, as `loadgen run` would
/// (without tuning), and warms it up.
fn setup(args: &[String]) -> Result<Sut> {
    let argv = std::iter::once("loadgen".to_string()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        SettingsError(format!(
            "the coordinator's flags do not parse here: {}",
            crate::config::cli::usage_sentence(&e)
        ))
    })?;
    let mut settings = match cli.command {
        Command::Run(run) => super::run::run_settings(&run)?,
        Command::Fixed(fixed) => super::fixed::fixed_settings(&fixed)?.0,
        Command::Throughput(t) => super::throughput::throughput_settings(&t)?,
        _ => anyhow::bail!(SettingsError(
            "agents serve `loadgen run`, `fixed` and `throughput` only".into()
        )),
    };
    settings.quiet = true;
    let sut = load_sut(&settings)?;
    let mut progress = Progress::new(true);
    warm_up(&sut, &settings, &mut progress)?;
    Ok(sut)
}

/// The instant `start_wall_ns` of this machine's wall clock, and how late it is
/// already (ns; a start in the past begins at once).
fn instant_of(start_wall_ns: u64) -> (Instant, u64) {
    let now = wall_ns();
    if start_wall_ns >= now {
        (
            Instant::now() + Duration::from_nanos(start_wall_ns - now),
            0,
        )
    } else {
        (Instant::now(), now - start_wall_ns)
    }
}

/// A closed-loop probe of `seconds`, started at the agreed instant.
fn probe(sut: &Sut, seconds: f64, start_wall_ns: u64) -> Result<ShareCounts> {
    let (start, late) = instant_of(start_wall_ns);
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let (stats, runtime) =
        step::run_closed_counts(&sut.pool, limits::duration(seconds), signals::flag())?;
    let mut c = merge::stats_to_wire(&stats);
    c.runtime = runtime;
    c.issued = stats.completed + stats.errors;
    c.started_late_ns = late;
    c.interrupted = signals::interrupted();
    Ok(c)
}

/// This agent's share of a step.
fn run_share(sut: &Sut, s: &ShareSpec) -> Result<ShareCounts> {
    let distribution = Distribution::parse(&s.distribution).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown distribution {}",
            crate::base::text::quote(&s.distribution)
        )
    })?;
    if !(s.qps.is_finite() && s.qps > 0.0 && s.confidence > 0.0 && s.confidence < 1.0) {
        anyhow::bail!(
            "a step this agent cannot run: rate {} qps, confidence {}",
            s.qps,
            s.confidence
        );
    }
    let (start, late) = instant_of(s.start_wall_ns);
    let spec = StepSpec {
        distribution,
        offered_qps: s.qps,
        planned: s.planned,
        cap: s.planned,
        time_cap: Duration::from_nanos(s.time_cap_ns),
        target: s.target_ns.map(Duration::from_nanos),
        also_count: s
            .also_count_ns
            .iter()
            .map(|&t| Duration::from_nanos(t))
            .collect(),
        seed: s.seed,
        confidence: s.confidence,
        burst: 1.0,
        service_ref: None,
        run_on: RunOn::NearBoundary,
        share: Some(Share { start }),
    };
    let counts = step::run_open_counts(&sut.pool, &spec, signals::flag())?;
    Ok(merge::to_wire(&counts, late))
}

/// This machine's name, for the coordinator's results.json.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
