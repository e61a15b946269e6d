//! The coordinator's side of `loadgen run --agents`: reaching the agents (token,
//! clock, setup), then running each probe and step on all of them at one agreed
//! instant and merging their exact counts into one step, which is judged by the same
//! rule as a step of one process (see `crate::agents`).
//!
//! An agent that cannot take part is refused before anything is measured (exit 2);
//! one lost during the run (it disconnects, stops answering, fails its share or sends
//! counts that do not add up) ends the run with exit 1 and a sentence naming it. The
//! step is not retried on the agents left: fewer agents are another client, whose
//! ceiling the search would have to find again. A report that answers an earlier
//! request (late, or sent twice) is ignored.

use std::io::BufReader;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::agents::clock::{self, Offset, Ping};
use crate::agents::merge;
use crate::agents::protocol::{self, Reply, Request, ShareCounts, ShareSpec, WireError, PROTOCOL};
use crate::agents::split;
use crate::base::text::quote;
use crate::error::{AgentLost, AgentRefused};
use crate::measure::stats::WorkerStats;
use crate::measure::step::{self, RunOn, StepSpec, StepSummary};
use crate::signals;

/// How long an agent may take to answer a hello or a ping.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// How long an agent may take to load the system under test and warm it up.
const SETUP_WITHIN: Duration = Duration::from_secs(600);

/// Time between sending a step and its start: every agent must have it by then.
const LEAD: Duration = Duration::from_millis(300);

/// Beyond a step's own longest run (time cap, drain, settling), how long an agent
/// may take to report before it counts as lost.
const REPORT_MARGIN: Duration = Duration::from_secs(30);

/// One agent, connected.
struct Agent {
    addr: String,
    host: String,
    version: String,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    offset: Offset,
    backend: String,
    workers: usize,
    /// Its figures per step, for results.json.
    steps: Vec<Value>,
}

/// Every agent of the run.
pub(crate) struct Agents {
    agents: Vec<Agent>,
    next_id: u64,
}

/// The token both sides share: `--token`, else `LOADGEN_TOKEN`.
pub(crate) fn token(flag: Option<&str>) -> Result<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("LOADGEN_TOKEN").ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AgentRefused(
                "--agents needs the agents' token: give --token or set LOADGEN_TOKEN".into(),
            )
            .into()
        })
}

fn refused(addr: &str, why: impl std::fmt::Display) -> anyhow::Error {
    AgentRefused(format!("agent {}: {why}", quote(addr))).into()
}

/// Connects to `addr`, trying again until `deadline` (an agent started with its
/// coordinator may not listen yet).
fn reach(addr: &str, deadline: Instant) -> Result<TcpStream> {
    let mut last = String::new();
    loop {
        let resolved = addr.to_socket_addrs().map(|a| a.collect::<Vec<_>>());
        match resolved {
            Ok(list) if !list.is_empty() => {
                for sa in list {
                    match TcpStream::connect_timeout(&sa, Duration::from_secs(2)) {
                        Ok(s) => return Ok(s),
                        Err(e) => last = e.to_string(),
                    }
                }
            }
            Ok(_) => last = "the name has no address".into(),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline || signals::interrupted() {
            return Err(refused(addr, format!("not reachable ({last})")));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Reads one reply within `within`, waking to look for a signal.
fn answer(a: &mut Agent, within: Duration) -> Result<Reply, WireError> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WireError::TimedOut);
        }
        let _ = a
            .stream
            .set_read_timeout(Some(left.min(Duration::from_millis(250))));
        match protocol::receive::<Reply>(&mut a.reader) {
            Err(WireError::TimedOut) if !signals::interrupted() => continue,
            other => return other,
        }
    }
}

impl Agents {
    /// The agents of `--agents`, reached and set up with this process's own
    /// arguments; `None` without the flag.
    pub(crate) fn from_flags(f: &crate::config::cli::AgentsFlags) -> Result<Option<Agents>> {
        if f.agents.is_empty() {
            return Ok(None);
        }
        let token = token(f.token.as_deref())?;
        let own: Vec<String> = std::env::args().skip(1).collect();
        let wait = crate::base::limits::duration(f.agents_wait);
        let a = Agents::connect(&f.agents, &token, wait, &own)?;
        crate::output::lines::note(&match a.len() {
            1 => "loadgen: 1 agent ready; each step's load runs on it".to_string(),
            n => format!("loadgen: {n} agents ready; each step's load is split over them"),
        });
        Ok(Some(a))
    }

    /// Reaches every agent of `addrs` within `wait`, checks the token and the
    /// protocol, measures each clock and has each load the system under test from
    /// `args` (this run's own arguments, from the subcommand on).
    pub(crate) fn connect(
        addrs: &[String],
        token: &str,
        wait: Duration,
        args: &[String],
    ) -> Result<Agents> {
        let deadline = Instant::now() + wait;
        let mut agents = Vec::new();
        for addr in addrs {
            if agents.iter().any(|a: &Agent| &a.addr == addr) {
                return Err(refused(addr, "named twice in --agents"));
            }
            let stream = reach(addr, deadline)?;
            let _ = stream.set_nodelay(true);
            let reader = BufReader::new(stream.try_clone()?);
            let mut a = Agent {
                addr: addr.clone(),
                host: String::new(),
                version: String::new(),
                stream,
                reader,
                offset: Offset {
                    offset_ns: 0,
                    uncertainty_ns: 0,
                },
                backend: String::new(),
                workers: 0,
                steps: Vec::new(),
            };
            a.hello(token)?;
            a.clock()?;
            agents.push(a);
        }
        // Every agent loads at once: an in-process runtime takes a while.
        for a in &mut agents {
            a.send(&Request::Setup {
                args: args.to_vec(),
            })
            .map_err(|e| refused(&a.addr, format!("the connection failed ({e})")))?;
        }
        for a in &mut agents {
            match answer(a, SETUP_WITHIN) {
                Ok(Reply::Ready { backend, workers }) => {
                    (a.backend, a.workers) = (backend, workers)
                }
                Ok(Reply::Failed { message, .. }) => {
                    return Err(refused(
                        &a.addr,
                        format!("cannot load the system under test: {message}"),
                    ))
                }
                Ok(other) => {
                    return Err(refused(&a.addr, format!("answered setup with {other:?}")))
                }
                Err(e) => return Err(refused(&a.addr, format!("no answer to setup: {e}"))),
            }
        }
        Ok(Agents { agents, next_id: 1 })
    }

    /// The agents' count.
    pub(crate) fn len(&self) -> usize {
        self.agents.len()
    }

    /// The closed-loop capacity probe on every agent at once: their rates add.
    pub(crate) fn probe(&mut self, seconds: f64) -> Result<StepSummary> {
        let id = self.take_id();
        let start = clock::wall_ns() + self.lead_ns();
        for a in &mut self.agents {
            let start_wall_ns = clock::on_agent(start, &a.offset);
            a.send(&Request::Probe {
                id,
                seconds,
                start_wall_ns,
            })
            .map_err(|e| lost(&a.addr, "the probe", &e.to_string()))?;
        }
        let within =
            Duration::from_secs_f64(seconds) + 2 * LEAD + REPORT_MARGIN + Duration::from_secs(30);
        let reports = self.collect(id, within, "the capacity probe")?;
        let mut stats = WorkerStats::default();
        let (mut qps, mut runtime) = (0.0, 0.0f64);
        for (a, c) in self.agents.iter().zip(&reports) {
            let s = merge::stats_of(c)
                .map_err(|e| lost(&a.addr, "the capacity probe", &e.to_string()))?;
            if c.runtime > 0.0 {
                qps += s.completed as f64 / c.runtime;
            }
            runtime = runtime.max(c.runtime);
            stats.merge(&s);
        }
        let mut summary = step::closed_summary(&stats, runtime, signals::flag());
        summary.qps = qps;
        Ok(summary)
    }

    /// One step split over the agents, judged on their merged counts. `spec` is the
    /// step as one process would run it; shares do not run on past their planned
    /// queries, so the merged step's cap is its plan.
    pub(crate) fn step(&mut self, spec: &StepSpec, name: &str) -> Result<StepSummary> {
        let mut whole = spec.clone();
        whole.cap = whole.planned;
        whole.run_on = RunOn::NearBoundary;
        let shares = split::split(
            whole.distribution,
            whole.offered_qps,
            whole.planned,
            whole.seed,
            self.agents.len(),
        );
        let id = self.take_id();
        let start = clock::wall_ns() + self.lead_ns();
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        for (a, s) in self.agents.iter_mut().zip(&shares) {
            let share = ShareSpec {
                distribution: whole.distribution.as_str().into(),
                qps: s.qps,
                planned: s.planned,
                time_cap_ns: ns(whole.time_cap),
                target_ns: whole.target.map(ns),
                also_count_ns: whole.also_count.iter().map(|&d| ns(d)).collect(),
                seed: s.seed,
                confidence: whole.confidence,
                start_wall_ns: clock::on_agent(start + ns(s.phase), &a.offset),
            };
            a.send(&Request::Step { id, step: share })
                .map_err(|e| lost(&a.addr, &format!("step {name}"), &e.to_string()))?;
        }
        let settle = whole
            .target
            .map_or(Duration::from_secs(5), crate::measure::pool::settle_idle);
        let within =
            whole.time_cap + step::drain_timeout(&whole) + settle + 2 * LEAD + REPORT_MARGIN;
        let reports = self.collect(id, within, &format!("step {name}"))?;
        let merged = merge::merge(&whole, &reports).map_err(|e| {
            let who = (self.agents.iter().zip(&reports))
                .find(|(_, c)| merge::merge(&whole, std::slice::from_ref(c)).is_err())
                .map_or("an agent".to_string(), |(a, _)| a.addr.clone());
            lost(&who, &format!("step {name}"), &e.to_string())
        })?;
        for (a, c) in self.agents.iter_mut().zip(&reports) {
            a.steps.push(json!({
                "name": name,
                "issued": c.issued,
                "count": c.completed,
                "errors": c.errors,
                "late": c.late.first().copied().unwrap_or(0)
                    + c.censored_late.first().copied().unwrap_or(0)
                    + c.queue_censored_late.first().copied().unwrap_or(0)
                    + c.errors,
                "started_late_s": c.started_late_ns as f64 / 1e9,
            }));
        }
        Ok(step::summarize_open(&whole, merged))
    }

    /// Each agent's reply to request `id`, in the agents' order.
    fn collect(&mut self, id: u64, within: Duration, what: &str) -> Result<Vec<ShareCounts>> {
        let deadline = Instant::now() + within;
        let mut out = Vec::with_capacity(self.agents.len());
        for a in &mut self.agents {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match answer(a, left) {
                    Ok(Reply::Report { id: got, counts }) if got == id => {
                        out.push(*counts);
                        break;
                    }
                    // An answer to an earlier request (late, or sent twice): not this one.
                    Ok(Reply::Report { .. }) => continue,
                    Ok(Reply::Failed { id: Some(got), .. }) if got != id => continue,
                    Ok(Reply::Failed { message, .. }) => return Err(lost(&a.addr, what, &message)),
                    Ok(other) => {
                        return Err(lost(&a.addr, what, &format!("it answered {other:?}")))
                    }
                    Err(_) if signals::interrupted() => {
                        return Err(
                            crate::error::Cancelled("the coordinator was stopped".into()).into(),
                        )
                    }
                    Err(WireError::TimedOut) => {
                        return Err(lost(
                            &a.addr,
                            what,
                            &format!(
                                "it stopped answering (no report within {:.0} s)",
                                within.as_secs_f64()
                            ),
                        ))
                    }
                    Err(WireError::Closed) | Err(WireError::Io(_)) => {
                        return Err(lost(&a.addr, what, "it disconnected"))
                    }
                    Err(e) => return Err(lost(&a.addr, what, &e.to_string())),
                }
            }
        }
        Ok(out)
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// How far ahead a request's start lies: every agent must have it by then.
    fn lead_ns(&self) -> u64 {
        let rtt = self
            .agents
            .iter()
            .map(|a| 2 * a.offset.uncertainty_ns)
            .max()
            .unwrap_or(0);
        u64::try_from(LEAD.as_nanos()).unwrap_or(u64::MAX) + 4 * rtt
    }

    /// Every agent's figures for results.json (`agents`).
    pub(crate) fn record(&self) -> Value {
        Value::Array(
            self.agents
                .iter()
                .map(|a| {
                    json!({
                        "address": a.addr,
                        "host": a.host,
                        "version": a.version,
                        "backend": a.backend,
                        "workers": a.workers,
                        "clock_offset_s": a.offset.offset_ns as f64 / 1e9,
                        "clock_uncertainty_s": a.offset.uncertainty_ns as f64 / 1e9,
                        "steps": a.steps,
                    })
                })
                .collect(),
        )
    }

    /// Says goodbye to every agent (best effort: the run is over either way).
    pub(crate) fn close(&mut self) {
        for a in &mut self.agents {
            let _ = a.send(&Request::Bye);
        }
    }
}

fn lost(addr: &str, what: &str, why: &str) -> anyhow::Error {
    AgentLost(format!(
        "agent {} was lost during {what}: {why}",
        quote(addr)
    ))
    .into()
}

impl Agent {
    fn send(&mut self, r: &Request) -> Result<(), WireError> {
        protocol::send(&mut self.stream, r)
    }

    fn hello(&mut self, token: &str) -> Result<()> {
        let hello = Request::Hello {
            token: token.into(),
            protocol: PROTOCOL,
        };
        self.send(&hello)
            .map_err(|e| refused(&self.addr, format!("the connection failed ({e})")))?;
        match answer(self, ANSWER_WITHIN) {
            Ok(Reply::Welcome { version, host }) => {
                (self.version, self.host) = (version, host);
                Ok(())
            }
            Ok(Reply::Refused { reason }) => Err(refused(
                &self.addr,
                format!("it refused this coordinator: {reason}"),
            )),
            Ok(other) => Err(refused(
                &self.addr,
                format!("answered hello with {other:?}"),
            )),
            Err(e) => Err(refused(
                &self.addr,
                format!("it does not answer as a loadgen agent ({e})"),
            )),
        }
    }

    /// Measures the agent's clock against this one (see [`clock`]).
    fn clock(&mut self) -> Result<()> {
        let mut pings = Vec::with_capacity(clock::PINGS);
        for _ in 0..clock::PINGS {
            let sent = clock::wall_ns();
            self.send(&Request::Ping)
                .map_err(|e| refused(&self.addr, format!("the connection failed ({e})")))?;
            match answer(self, ANSWER_WITHIN) {
                Ok(Reply::Pong { wall_ns }) => pings.push(Ping {
                    sent,
                    agent: wall_ns,
                    back: clock::wall_ns(),
                }),
                Ok(other) => {
                    return Err(refused(
                        &self.addr,
                        format!("answered a ping with {other:?}"),
                    ))
                }
                Err(e) => return Err(refused(&self.addr, format!("no answer to a ping ({e})"))),
            }
        }
        let o = clock::estimate(&pings)
            .ok_or_else(|| refused(&self.addr, "its clock could not be read"))?;
        if let Some(why) = clock::refusal(&o) {
            return Err(refused(&self.addr, why));
        }
        self.offset = o;
        Ok(())
    }
}
