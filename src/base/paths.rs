//! Where the project's own files live when the user did not say: the `.venv` made by
//! `scripts/setup.sh` (runtime libraries) and the `models/` folder.

use std::path::{Path, PathBuf};

/// Folders that may hold the project's `.venv`, best first: `$LOADGEN_VENV`, `./.venv`,
/// then `.venv` beside each ancestor of the running executable (so
/// `target/release/loadgen` finds the checkout's `.venv` from any working directory).
pub fn venv_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(v) = std::env::var_os("LOADGEN_VENV") {
        out.push(PathBuf::from(v));
    }
    if let Ok(cwd) = std::env::current_dir() {
        out.push(cwd.join(".venv"));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let cand = dir.join(".venv");
            if !out.contains(&cand) {
                out.push(cand);
            }
        }
    }
    out
}

/// `site-packages` folders inside a venv (`lib/python3.*/site-packages`).
pub fn site_packages(venv: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
        for e in entries.flatten() {
            let sp = e.path().join("site-packages");
            if e.file_name().to_string_lossy().starts_with("python") && sp.is_dir() {
                out.push(sp);
            }
        }
    }
    out.sort();
    out
}

/// The project root: the nearest ancestor of the executable (then of the working
/// directory) that holds `scenarios/cloud.toml`.
pub fn project_root() -> Option<PathBuf> {
    let from_exe = std::env::current_exe().ok().and_then(|e| {
        e.ancestors()
            .skip(1)
            .find(|d| d.join("scenarios/cloud.toml").is_file())
            .map(Path::to_path_buf)
    });
    from_exe.or_else(|| {
        std::env::current_dir().ok().and_then(|c| {
            c.ancestors()
                .find(|d| d.join("scenarios/cloud.toml").is_file())
                .map(Path::to_path_buf)
        })
    })
}
