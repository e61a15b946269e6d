//! `loadgen compare A.json B.json`: reads two results.json and prints the comparison
//! of [`crate::output::compare`]; the rule lives there, the files and the exit code
//! here.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::base::text::quote_path;
use crate::config::cli::CompareArgs;
use crate::config::settings::SettingsError;
use crate::output::compare::{self, Verdict};

/// At least one target was shown slower and `--fail-on-regression` asked for exit 1.
#[derive(Debug, thiserror::Error)]
#[error("B is slower than A at {0} target(s)")]
pub struct Regression(pub usize);

/// `loadgen compare`: the table (or `--json`) on stdout.
pub fn compare(args: CompareArgs) -> Result<()> {
    let a = compare::answers(&read(&args.a)?).map_err(|e| not_results(&args.a, &e))?;
    let b = compare::answers(&read(&args.b)?).map_err(|e| not_results(&args.b, &e))?;
    let rows = compare::rows(&a, &b);
    if args.json {
        println!("{}", compare::rows_json(&rows));
    } else {
        print!("{}", compare::table(&rows));
    }
    let slower = rows.iter().filter(|r| r.verdict == Verdict::Slower).count();
    if args.fail_on_regression && slower > 0 {
        return Err(Regression(slower).into());
    }
    Ok(())
}

pub(crate) fn not_results(path: &Path, why: &str) -> SettingsError {
    SettingsError(format!(
        "{} is not a loadgen results.json: {why}",
        quote_path(path)
    ))
}

/// The JSON document at `path`; anything but a readable regular file of JSON is bad
/// input (exit 2). A FIFO or device is refused before opening: reading it could block.
pub(crate) fn read(path: &Path) -> Result<Value, SettingsError> {
    let q = quote_path(path);
    let m = std::fs::metadata(path)
        .map_err(|e| SettingsError(format!("cannot read results file {q}: {e}")))?;
    if m.is_dir() {
        return Err(SettingsError(format!(
            "results file {q} is a folder; name a results.json"
        )));
    }
    if !m.is_file() {
        return Err(SettingsError(format!(
            "results file {q} is not a regular file; name a results.json"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError(format!("cannot read results file {q}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        SettingsError(format!(
            "{q} is not a loadgen results.json: it is not JSON ({e})"
        ))
    })
}
