//! The coordinator–agent protocol: one JSON object per line over TCP, each line at
//! most [`MAX_LINE`] bytes. JSON lines, not gRPC: a step's report is a few tens of
//! kilobytes once per step, and a protocol a user can read with `nc` is worth more
//! here than speed.
//!
//! A session: `Hello` (token, protocol version) → `Welcome` or `Refused`; `Ping` ×
//! k → `Pong` (the clock offset); `Setup` (the run's own command line) → `Ready`; then
//! any number of `Probe` / `Step` → `Report`, each carrying the id it answers; `Bye`.
//! Every request that fails on the agent is answered `Failed` with one sentence.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// Bumped whenever a message changes meaning.
pub const PROTOCOL: u32 = 1;

/// The longest line either side reads (a report holds two to four sparse
/// histograms: a few thousand buckets each, well under this).
pub const MAX_LINE: u64 = 8 << 20;

/// Coordinator → agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Hello {
        token: String,
        protocol: u32,
    },
    Ping,
    /// The coordinator's command line as the agent should resolve it (its own
    /// subcommand's arguments, without `--agents` and the token).
    Setup {
        args: Vec<String>,
    },
    /// A closed-loop capacity probe, started at `start_wall_ns` of the agent's clock.
    Probe {
        id: u64,
        seconds: f64,
        start_wall_ns: u64,
    },
    Step {
        id: u64,
        step: ShareSpec,
    },
    Bye,
}

/// Agent → coordinator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Welcome { version: String, host: String },
    Refused { reason: String },
    Pong { wall_ns: u64 },
    Ready { backend: String, workers: usize },
    Report { id: u64, counts: Box<ShareCounts> },
    Failed { id: Option<u64>, message: String },
}

/// One agent's share of a step (see [`crate::agents::split`]); times in ns.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShareSpec {
    pub distribution: String,
    /// This agent's rate: the step's divided by the agents.
    pub qps: f64,
    pub planned: u64,
    pub time_cap_ns: u64,
    pub target_ns: Option<u64>,
    pub also_count_ns: Vec<u64>,
    pub seed: u64,
    pub confidence: f64,
    /// The step's start on the agent's wall clock (ns since the Unix epoch), this
    /// agent's phase included.
    pub start_wall_ns: u64,
}

/// One agent's counts of its share, unsummarised: exact counts and whole
/// histograms, as sparse `(value, count)` buckets.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ShareCounts {
    pub issued: u64,
    pub completed: u64,
    pub errors: u64,
    /// Served queries above each threshold (the target first, then `also_count`).
    pub late: Vec<u64>,
    pub thresholds: Vec<u64>,
    /// Queries abandoned while in service, and those never handed out, by threshold.
    pub censored_late: Vec<u64>,
    pub queue_censored_late: Vec<u64>,
    pub corrected: Vec<(u64, u64)>,
    pub uncorrected: Vec<(u64, u64)>,
    pub censored: Vec<(u64, u64)>,
    pub queue_censored: Vec<(u64, u64)>,
    pub lateness: Vec<(u64, u64)>,
    pub stalls: Vec<(u64, u64)>,
    pub service: (u64, f64, f64),
    pub last_completion_ns: u64,
    pub first_error: Option<String>,
    pub stalled: u64,
    /// `planned`, `time_cap`, … as `measure::step::StopReason::name`.
    pub stop: String,
    pub drain_timeout: bool,
    pub interrupted: bool,
    /// Episodes of late queries `(start_ns, last_ns, size)`, ns since the share's
    /// start.
    pub episodes: Vec<(u64, u64, u64)>,
    /// The closed loop's seconds (probes only).
    pub runtime: f64,
    /// How late the share started against the agreed instant (ns; 0 when on time).
    pub started_late_ns: u64,
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the connection closed")]
    Closed,
    #[error("no answer within the time allowed")]
    TimedOut,
    #[error("a line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("a message that is not the protocol's ({0})")]
    Malformed(String),
    #[error("{0}")]
    Io(std::io::Error),
}

/// Writes one message as one line.
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), WireError> {
    let mut line = serde_json::to_vec(msg).map_err(|e| WireError::Malformed(e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line).map_err(WireError::Io)?;
    w.flush().map_err(WireError::Io)
}

/// Reads one message (a line of at most [`MAX_LINE`] bytes). The read time-out is
/// the socket's own (`set_read_timeout`).
pub fn receive<T: for<'de> Deserialize<'de>>(r: &mut impl BufRead) -> Result<T, WireError> {
    let mut line = Vec::new();
    let n = std::io::Read::take(&mut *r, MAX_LINE + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => WireError::TimedOut,
            _ => WireError::Io(e),
        })?;
    if n == 0 {
        return Err(WireError::Closed);
    }
    if line.last() != Some(&b'\n') {
        return Err(if n as u64 > MAX_LINE {
            WireError::TooLong
        } else {
            WireError::Closed
        });
    }
    serde_json::from_slice(&line).map_err(|e| {
        let text = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        WireError::Malformed(format!("{e}; it began {text:?}"))
    })
}

/// Tokens compared in time independent of where they differ.
pub fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_as_one_line() {
        let msg = Request::Hello {
            token: "t".into(),
            protocol: PROTOCOL,
        };
        let mut buf = Vec::new();
        send(&mut buf, &msg).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Request = receive(&mut &buf[..]).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn lines_that_are_not_messages_are_named() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "closed"),
            (b"{\"type\":\"hello\"", "closed"),
            (b"GET / HTTP/1.1\n", "not the protocol"),
            (b"{\"type\":\"nope\"}\n", "not the protocol"),
        ];
        for (bytes, words) in cases {
            let e = receive::<Request>(&mut &bytes[..]).unwrap_err();
            assert!(e.to_string().contains(words), "{bytes:?}: {e}");
        }
        let long = vec![b'x'; MAX_LINE as usize + 10];
        let e = receive::<Request>(&mut &long[..]).unwrap_err();
        assert!(matches!(e, WireError::TooLong), "{e}");
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_matches("secret", "secret"));
        assert!(token_matches("", ""));
        for other in ["secreT", "secret ", "secre", ""] {
            assert!(!token_matches(other, "secret"), "{other}");
        }
    }
}
