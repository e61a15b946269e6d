//! `loadgen report RESULTS.json [MORE.json …] [-o FILE]`: reads the files, checks each
//! is a results.json, and writes the page [`crate::output::report`] renders. Also the
//! report a run writes beside its results.json ([`write_beside`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::app::compare::{not_results, read};
use crate::base::text::quote_path;
use crate::config::cli::{ReportArgs, REPORT_MAX_FILES};
use crate::config::settings::SettingsError;
use crate::output::files::{self, WriteError};
use crate::output::report::{self, Source};
use crate::output::{compare, lines};

/// The fix a report that cannot be written suggests.
const REPORT_FIX: &str = "choose another file with -o";

/// `loadgen report`: the page, and its path on stderr.
pub fn report(args: ReportArgs) -> Result<()> {
    if args.files.len() > REPORT_MAX_FILES {
        return Err(SettingsError(format!(
            "loadgen report overlays at most {REPORT_MAX_FILES} results files; got {}",
            args.files.len()
        ))
        .into());
    }
    let out = match (&args.output, args.files.as_slice()) {
        (Some(o), _) => o.clone(),
        (None, [one]) => report::path_beside(one),
        (None, _) => PathBuf::from("report.html"),
    };
    // Refused before reading anything: never a report over a folder, FIFO or device.
    files::check_file(&out, REPORT_FIX)?;
    let mut sources = Vec::new();
    for f in &args.files {
        let doc = read(f)?;
        compare::answers(&doc).map_err(|e| not_results(f, &e))?;
        sources.push(Source {
            label: f.display().to_string(),
            doc,
        });
    }
    files::write_atomic(&out, report::render(&sources).as_bytes(), REPORT_FIX)?;
    lines::note(&format!("loadgen: wrote {}", quote_path(&out)));
    Ok(())
}

/// Writes a run's report beside its results.json (see [`report::path_beside`]).
pub fn write_beside(results: &Path, doc: &Value) -> Result<(), WriteError> {
    let label = results.file_name().map_or_else(
        || results.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let page = report::render(&[Source {
        label,
        doc: doc.clone(),
    }]);
    files::write_atomic(
        &report::path_beside(results),
        page.as_bytes(),
        files::OUTPUT_FIX,
    )
}
