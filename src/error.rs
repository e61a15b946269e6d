//! Exit codes (docs/CONTRACT.md §3, §9): 0 done, 1 the run itself failed, 2 bad usage or input,
//! 130 / 143 / 129 interrupted by SIGINT / SIGTERM / SIGHUP. Errors are typed inside the library; `main` only asks this module.

use crate::backend::BackendError;
use crate::config::settings::SettingsError;
use crate::output::files::WriteError;

/// The run was interrupted by a signal after writing what it had.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: results measured so far were written to {0}")]
pub struct Interrupted(pub String);

/// A subcommand was interrupted before it had a figure to report; the text says what
/// was left out.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {0}")]
pub struct Cancelled(pub String);

/// The system under test is broken, not slow: its queries failed beyond the share a
/// step tolerates, or it stopped answering (see [`crate::measure::fault`]). The run
/// ends with exit 1 and this sentence, its finished targets kept in results.json.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServerFault(pub String);

/// An agent cannot take part in the run (unreachable, a wrong token, its clock, its
/// settings): one sentence naming it, exit 2 before anything is measured.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentRefused(pub String);

/// An agent was lost during the run (it disappeared, stopped answering or sent
/// counts that do not add up): exit 1, the finished targets kept in results.json.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentLost(pub String);

/// A child process (a tuning candidate's) already said what went wrong on stderr and
/// ended with this exit code; `main` passes the code on and adds nothing.
#[derive(Debug, thiserror::Error)]
#[error("a child process ended with exit code {0}")]
pub struct Reported(pub i32);

/// The exit code for an error that reached `main`.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(Reported(code)) = cause.downcast_ref::<Reported>() {
            return *code;
        }
        if cause.is::<SettingsError>() || cause.is::<WriteError>() || cause.is::<AgentRefused>() {
            return 2;
        }
        if cause.is::<Interrupted>() || cause.is::<Cancelled>() {
            return crate::signals::exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::data::dataset::DatasetError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<BackendError>() {
            return e.exit_code();
        }
    }
    1
}
