//! `loadgen accuracy`: the accuracy pass alone.

use anyhow::Result;

use crate::config::settings::{RunOverrides, Settings, SettingsError};
use crate::output::lines;

use super::common::*;

/// The fix suggested for an unusable `--dump` folder.
const DUMP_FIX: &str = "choose another --dump folder";

/// `loadgen accuracy`: the accuracy pass alone.
pub fn accuracy(args: crate::config::cli::AccuracyArgs) -> Result<()> {
    let settings = Settings::resolve(&args.common, &RunOverrides::default())?;
    if !settings.backend.classifies() {
        anyhow::bail!(SettingsError(format!(
            "the accuracy pass needs a model: the {} backend has none (use onnxruntime, tf or kserve)",
            settings.backend.name()
        )));
    }
    if settings.dataset_path.is_none() {
        anyhow::bail!(SettingsError(
            "the accuracy pass needs labelled images: give --dataset-path (an ImageNet-layout folder with val_map.txt)".into()
        ));
    }
    if let Some(dir) = &args.dump {
        // Before the pass, not after it: a bad folder must not cost a whole pass.
        crate::output::files::check_folder(dir, super::accuracy_pass::DUMP_FILES, DUMP_FIX)?;
    }
    let sut = load_sut(&settings)?;
    crate::output::progress::stage_line("accuracy", &format!("{} items", sut.dataset.len()));
    let run = accuracy_pass(&sut, &settings, args.dump.is_some())?
        .ok_or_else(|| SettingsError("the dataset has no labels".into()))?;
    if crate::signals::interrupted() {
        return Err(crate::error::Cancelled(
            "the accuracy pass was cut short, so no accuracy is reported".into(),
        )
        .into());
    }
    if let Some(dir) = &args.dump {
        super::accuracy_pass::dump(dir, &sut.dataset, &run, sut.backend.model().num_classes)?;
    }
    // With --json, stdout is the JSON document alone and the line goes to stderr, as
    // for `fixed` and `throughput`.
    if args.json {
        lines::note(&lines::accuracy_line(&run.report));
        println!("{}", serde_json::to_string(&run.report)?);
    } else {
        println!("{}", lines::accuracy_line(&run.report));
    }
    Ok(())
}
