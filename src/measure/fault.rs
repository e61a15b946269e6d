//! When the system under test itself is broken rather than slow: a step whose queries
//! failed beyond [`crate::measure::step::ERROR_FRACTION`], or a server that, after a step, held its requests
//! without answering any of them for seconds. Such a step says nothing about latency, and the search must not descend
//! through it (a dead server would otherwise read as "this model cannot meet its
//! target at any rate"): the run ends, naming what was seen. A pure decision over the
//! steps' counts, tested by a table.

use crate::measure::step::{errors_spoil, StepSummary};

/// What broke.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// More than [`crate::measure::step::ERROR_FRACTION`] of the step's queries failed.
    Errors {
        errors: u64,
        issued: u64,
        first: String,
    },
    /// After the step, the server held this many requests without answering any of
    /// them for [`crate::measure::pool::settle_idle`].
    Stalled { held: u64, idle_s: f64 },
}

/// The fault step `s` shows, if any. A step that failed at once on its first late
/// queries may end before a slow server's first answer; the wait after it tells a
/// slow server (it ends a request now and then) from one that stopped answering.
pub fn of(s: &StepSummary) -> Option<Fault> {
    if errors_spoil(s.errors, s.issued) {
        return Some(Fault::Errors {
            errors: s.errors,
            issued: s.issued,
            first: s.error.clone().unwrap_or_default(),
        });
    }
    let idle = crate::measure::pool::settle_idle(
        s.target_latency
            .map_or(std::time::Duration::ZERO, crate::base::limits::duration),
    );
    (s.stalled > 0).then_some(Fault::Stalled {
        held: s.stalled,
        idle_s: idle.as_secs_f64(),
    })
}

impl Fault {
    /// The fault in words, after "`who` ": e.g. "the server at http://… failed 312 of
    /// 320 queries of step linear/0.5/10 (first: connection refused)".
    pub fn describe(&self, who: &str, step: &str) -> String {
        match self {
            Fault::Errors {
                errors,
                issued,
                first,
            } => format!(
                "{who} failed {errors} of the {issued} queries of {step} (first error: {first}): it is down or failing, so loadgen measured nothing more"
            ),
            Fault::Stalled { held, idle_s } => format!(
                "{who} held {held} requests after {step} without answering any of them for {idle_s} s: it stopped answering, so loadgen measured nothing more"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(issued: u64, count: u64, errors: u64, stalled: u64) -> StepSummary {
        StepSummary {
            issued,
            count,
            errors,
            abandoned: issued - count - errors,
            stalled,
            target_latency: Some(0.5),
            error: (errors > 0).then(|| "connection refused".into()),
            ..StepSummary::default()
        }
    }

    #[test]
    fn errors_beyond_the_fraction_and_a_stalled_server_are_faults() {
        // (issued, answered, errors, held without an answer after the step, fault?)
        let cases: &[(u64, u64, u64, u64, Option<&str>)] = &[
            (1000, 1000, 0, 0, None),
            (1000, 990, 10, 0, None), // 1 %: counted as late, not a fault
            (1000, 989, 11, 0, Some("failed 11 of the 1000")),
            (1000, 0, 1000, 0, Some("failed 1000")), // a dead server: refused
            (1000, 100, 900, 0, Some("failed 900")), // answers one in ten
            (50, 48, 2, 0, None),                    // two errors never spoil
            (50, 47, 3, 0, Some("failed 3 of the 50")),
            (40, 0, 0, 0, None), // nothing answered in the step, but later: slow
            (
                40,
                0,
                0,
                25,
                Some("held 25 requests after step x without answering any of them for 5 s"),
            ),
            (40, 30, 0, 10, Some("held 10")), // fell silent mid-step
            (0, 0, 0, 0, None),
        ];
        for &(issued, count, errors, stalled, want) in cases {
            let got = of(&step(issued, count, errors, stalled));
            match (want, got) {
                (None, None) => {}
                (Some(word), Some(f)) => {
                    let text = f.describe("the server at http://x:1", "step x");
                    assert!(text.contains(word), "{text} lacks {word}");
                    assert!(text.starts_with("the server at http://x:1 "), "{text}");
                }
                (w, g) => panic!("{issued}/{count}/{errors}/{stalled}: wanted {w:?}, got {g:?}"),
            }
        }
    }
}
