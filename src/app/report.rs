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
    for (f, label) in args.files.iter().zip(labels(&args.files)) {
        let doc = read(f)?;
        compare::answers(&doc).map_err(|e| not_results(f, &e))?;
        sources.push(Source { label, doc });
    }
    files::write_atomic(&out, report::render(&sources).as_bytes(), REPORT_FIX)?;
    lines::note(&format!("loadgen: wrote {}", quote_path(&out)));
    Ok(())
}

/// Short names for legends: a file's name, or its folder's where the file is a
/// `results.json` (`out/resnet50-tf.cpu/results.json` → `resnet50-tf.cpu`); the paths
/// as given where those names would repeat.
fn labels(files: &[PathBuf]) -> Vec<String> {
    let short = |f: &PathBuf| -> Option<String> {
        let name = f.file_name()?.to_string_lossy().into_owned();
        if name == "results.json" {
            if let Some(dir) = f.parent().and_then(|p| p.file_name()) {
                return Some(dir.to_string_lossy().into_owned());
            }
        }
        Some(name)
    };
    let names: Vec<Option<String>> = files.iter().map(short).collect();
    let unique = names
        .iter()
        .enumerate()
        .all(|(i, n)| n.is_some() && !names[..i].contains(n));
    if unique {
        names.into_iter().flatten().collect()
    } else {
        files.iter().map(|f| f.display().to_string()).collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_unless_they_would_repeat() {
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["out/a.cpu/results.json", "out/b.cpu/results.json"],
                &["a.cpu", "b.cpu"],
            ),
            (&["x/old.json", "y/new.json"], &["old.json", "new.json"]),
            (&["results.json"], &["results.json"]),
            (&["x/r.json", "y/r.json"], &["x/r.json", "y/r.json"]),
        ];
        for (files, want) in cases {
            assert_eq!(labels(&p(files)), *want, "{files:?}");
        }
    }
}
