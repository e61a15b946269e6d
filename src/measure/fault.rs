//! When the system under test itself is broken rather than slow: a step whose queries
//! failed beyond [`ERROR_FRACTION`], or a server that answered nothing at all, twice in
//! a row. Such a step says nothing about latency, and the search must not descend
//! through it (a dead server would otherwise read as "this model cannot meet its
//! target at any rate"): the run ends, naming what was seen. A pure decision over the
//! steps' counts, tested by a table.

use crate::measure::step::StepSummary;

/// The share of a step's queries that may fail before the step is spoiled by errors
/// and the run ends. Up to it, each failed query counts as a late one (an answer the
/// user never got is not an answer within the target); beyond it, the errors alone
/// would fail the step, which would then measure the errors, not the latency.
pub const ERROR_FRACTION: f64 = 0.01;

/// Fewer failed queries than this never spoil a step: one reset connection in a
/// step of fifty queries is a late answer, not a broken server.
pub const MIN_SPOILING_ERRORS: u64 = 3;

/// Whether `errors` failed queries of `issued` spoil a step.
pub fn errors_spoil(errors: u64, issued: u64) -> bool {
    errors >= MIN_SPOILING_ERRORS && errors as f64 > ERROR_FRACTION * issued as f64
}

/// What broke.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// More than [`ERROR_FRACTION`] of the step's queries failed.
    Errors {
        errors: u64,
        issued: u64,
        first: String,
    },
    /// Neither this step nor the one before got a single answer, not even an error.
    Silent { issued: u64, before: u64 },
}

/// A step that sent queries and got nothing back: no answer, no error.
pub fn silent(s: &StepSummary) -> bool {
    s.issued > 0 && s.count == 0 && s.errors == 0
}

/// The fault step `s` shows, given how many queries the step before it sent into
/// silence (`silent_before`, 0 when it got answers). One silent step is not yet a
/// fault: a step that fails at once on its first late queries may stop before the
/// slowest server's first answer; a second one in a row is.
pub fn of(s: &StepSummary, silent_before: u64) -> Option<Fault> {
    if errors_spoil(s.errors, s.issued) {
        return Some(Fault::Errors {
            errors: s.errors,
            issued: s.issued,
            first: s.error.clone().unwrap_or_default(),
        });
    }
    (silent(s) && silent_before > 0).then_some(Fault::Silent {
        issued: s.issued,
        before: silent_before,
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
                "{who} failed {errors} of the {issued} queries of step {step} (first error: {first}): it is down or failing, so loadgen measured nothing more"
            ),
            Fault::Silent { issued, before } => format!(
                "{who} answered none of the {issued} queries of step {step}, nor any of the {before} of the step before: it stopped answering, so loadgen measured nothing more"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(issued: u64, count: u64, errors: u64) -> StepSummary {
        StepSummary {
            issued,
            count,
            errors,
            abandoned: issued - count - errors,
            error: (errors > 0).then(|| "connection refused".into()),
            ..StepSummary::default()
        }
    }

    #[test]
    fn errors_beyond_the_fraction_and_silence_twice_are_faults() {
        // (issued, answered, errors, silent before, fault?)
        let cases: &[(u64, u64, u64, u64, Option<&str>)] = &[
            (1000, 1000, 0, 0, None),
            (1000, 990, 10, 0, None), // 1 %: counted as late, not a fault
            (1000, 989, 11, 0, Some("failed 11 of the 1000")),
            (1000, 0, 1000, 0, Some("failed 1000")), // a dead server: refused
            (1000, 100, 900, 0, Some("failed 900")), // answers one in ten
            (50, 48, 2, 0, None),                    // two errors never spoil
            (50, 47, 3, 0, Some("failed 3 of the 50")),
            (40, 0, 0, 0, None), // silent once: not yet
            (40, 0, 0, 25, Some("none of the 40 queries")),
            (40, 1, 0, 25, None), // one answer: alive (slow)
            (0, 0, 0, 25, None),  // sent nothing
        ];
        for &(issued, count, errors, before, want) in cases {
            let got = of(&step(issued, count, errors), before);
            match (want, got) {
                (None, None) => {}
                (Some(word), Some(f)) => {
                    let text = f.describe("the server at http://x:1", "linear/0.5/10");
                    assert!(text.contains(word), "{text} lacks {word}");
                    assert!(text.starts_with("the server at http://x:1 "), "{text}");
                }
                (w, g) => panic!("{issued}/{count}/{errors}/{before}: wanted {w:?}, got {g:?}"),
            }
        }
    }
}
