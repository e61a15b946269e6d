//! Writing output files: checked before measuring, written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Could not write an output file (exit code 2: the user chose the path).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {reason} (choose another --output)")]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
}

/// Checks before any measuring that `path` can be written: creates its folder and a
/// scratch file beside it.
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    let err = |reason: String| WriteError {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        return Err(err("it is a folder".into()));
    }
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
    let probe = dir.join(format!(".loadgen-write-test.{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes pretty JSON atomically: a temp file in the same folder, fsync, rename. A
/// crash leaves either the old file or the new one, never half of one.
pub fn write_json_atomic(path: &Path, value: &Value) -> Result<(), WriteError> {
    let err = |reason: String| WriteError {
        path: path.to_path_buf(),
        reason,
    };
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
    let name = path.file_name().map_or_else(
        || "results.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut text = serde_json::to_string_pretty(value).map_err(|e| err(e.to_string()))?;
    text.push('\n');
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e.to_string())
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::Value;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/results.json");
        write_json_atomic(&p, &json!({"a": 1})).unwrap();
        write_json_atomic(&p, &json!({"a": 2})).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["a"], 2);
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_output_is_refused_with_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_writable(dir.path()).unwrap_err().to_string();
        assert!(e.contains("it is a folder"), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = check_writable(&file.join("results.json"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot write"), "{e}");
    }
}
