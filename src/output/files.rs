//! Writing output files: checked before measuring, written atomically, and only ever
//! as regular files. An existing path that is a device, FIFO, socket or folder is
//! refused (never replaced: run as root, a rename over `/dev/null` would replace the
//! device); a symlink is followed and its target written, the link itself is kept.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Could not write an output file (exit code 2: the user chose the path).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write {}: {reason} ({fix})",
    crate::base::text::quote_path(path)
)]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
    /// What to do about it, e.g. "choose another --output".
    pub fix: &'static str,
}

/// The fix suggested for `--output`.
pub const OUTPUT_FIX: &str = "choose another --output";

/// What kind of thing a non-regular file is, in words.
fn kind_of(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "it is a folder"
    } else if ft.is_fifo() {
        "it is a FIFO (named pipe), not a regular file"
    } else if ft.is_socket() {
        "it is a socket, not a regular file"
    } else if ft.is_block_device() || ft.is_char_device() {
        "it is a device, not a regular file"
    } else {
        "it is not a regular file"
    }
}

/// Follows `path` through symlinks (at most 40, like the kernel) to the name a rename
/// must replace. A dangling link gives its (absent) target, which is then created.
pub fn resolve_links(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&p) {
                Ok(target) if target.is_absolute() => p = target,
                Ok(target) => p = parent_dir(&p).join(target),
                Err(_) => return p,
            },
            _ => return p,
        }
    }
    p
}

/// Checks that the folder `dir` exists or can be made: the nearest existing ancestor
/// must be a folder (else "Not a directory"/"File exists" would be the only words).
fn make_folder(dir: &Path) -> Result<(), String> {
    for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match fs::metadata(a) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(format!(
                    "{} is a file, not a folder, so nothing can be written under it",
                    crate::base::text::quote_path(a)
                ))
            }
            Err(_) => continue,
        }
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create its folder ({e})"))
}

/// Checks before any measuring that the output file `path` can be written as a regular
/// file: it is absent or a regular file (through symlinks), its folder exists or is
/// made, and a scratch file can be created there. Returns the path a write will replace.
pub fn check_file(path: &Path, fix: &'static str) -> Result<PathBuf, WriteError> {
    let err = |reason: String| WriteError {
        path: path.to_path_buf(),
        reason,
        fix,
    };
    if path.as_os_str().is_empty() {
        return Err(err("the path is empty".into()));
    }
    // `metadata` follows links the way the kernel does, `/proc/self/fd/1` included.
    if let Ok(m) = fs::metadata(path) {
        if !m.is_file() {
            return Err(err(kind_of(m.file_type()).into()));
        }
    }
    let real = resolve_links(path);
    if let Ok(m) = fs::symlink_metadata(&real) {
        if !m.is_file() {
            return Err(err(kind_of(m.file_type()).into()));
        }
    }
    let dir = parent_dir(&real);
    make_folder(&dir).map_err(err)?;
    let probe = dir.join(format!(".loadgen-write-test.{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| err(e.to_string()))?;
    let _ = fs::remove_file(&probe);
    Ok(real)
}

/// [`check_file`] for `--output`.
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    check_file(path, OUTPUT_FIX).map(|_| ())
}

/// Checks before any work that `dir` is (or can be made) a writable folder and that
/// each of `files` in it is absent or a regular file.
pub fn check_folder(dir: &Path, files: &[&str], fix: &'static str) -> Result<(), WriteError> {
    let err = |path: &Path, reason: String| WriteError {
        path: path.to_path_buf(),
        reason,
        fix,
    };
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            let kind = if m.is_file() {
                "it is a file, not a folder"
            } else {
                kind_of(m.file_type())
            };
            return Err(err(dir, kind.into()));
        }
        _ => {}
    }
    make_folder(dir).map_err(|r| err(dir, r))?;
    for f in files {
        let p = dir.join(f);
        if let Ok(m) = fs::metadata(&p) {
            if !m.is_file() {
                return Err(err(&p, kind_of(m.file_type()).into()));
            }
        }
    }
    let probe = dir.join(format!(".loadgen-write-test.{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| err(dir, e.to_string()))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes pretty JSON atomically: a temp file in the same folder, fsync, rename. A
/// crash (or a second signal) leaves either the old file or the new one, never half of
/// one. The rename goes onto the symlink's target, and only onto a regular file.
pub fn write_json_atomic(path: &Path, value: &Value) -> Result<(), WriteError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| WriteError {
        path: path.to_path_buf(),
        reason: e.to_string(),
        fix: OUTPUT_FIX,
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes(), OUTPUT_FIX)
}

/// Writes `bytes` to `path` atomically (see [`write_json_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8], fix: &'static str) -> Result<(), WriteError> {
    let _writing = crate::signals::writing();
    let real = check_file(path, fix)?;
    let err = |reason: String| WriteError {
        path: path.to_path_buf(),
        reason,
        fix,
    };
    let dir = parent_dir(&real);
    let name = real.file_name().map_or_else(
        || "results.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &real)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
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
