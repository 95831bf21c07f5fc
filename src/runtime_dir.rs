//! legate's runtime directory (the Envoy bootstrap and the unix sockets of the ADS server and
//! Envoy's admin): created so that nobody else can have prepared it.
//!
//! * Default: a new directory `$TMPDIR/legate-<random>` made with `mkdir(2)` mode 0700, which
//!   fails rather than follow a symlink or adopt a directory that already exists (a name taken
//!   by anyone is skipped for another random one). It is removed when legate exits.
//! * Configured (`runtime_dir`): if the path does not exist, it is created the same way (its
//!   parents as needed); if it exists, it is used only if it is a real directory (not a
//!   symlink), owned by legate's user, and not writable by group or others (e.g. 0700 or
//!   0755: nobody else can plant or replace anything in it; the sockets themselves are 0600).
//!   A world-writable mount such as a tmpfs or an emptyDir (often mode 0777 or 1777,
//!   owned by root) is refused as is: point `runtime_dir` at a subdirectory of it, which legate
//!   then creates. A configured directory is left in place on exit.
//!
//! Why (issue 9, item 5): the old default `$TMPDIR/legate-<pid>` was predictable, and
//! `create_dir_all` + `chmod 0700` followed a symlink planted there and adopted a directory
//! someone else had made, handing them legate's sockets.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Attempts at a free random name before giving up.
const ATTEMPTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeDirError {
    #[error("cannot create the runtime dir {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot inspect the runtime dir {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing runtime dir {}: {reason}; set runtime_dir to a path that does not exist yet \
         (legate creates it, mode 0700) or to a directory of legate's user that only it can \
         write to",
        path.display()
    )]
    Unsafe { path: PathBuf, reason: String },
}

/// The runtime directory in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    pub path: PathBuf,
    /// Whether legate made it up (the default) and removes it on exit.
    pub remove_on_exit: bool,
}

/// Creates (or checks) the runtime directory: `configured`, else a new one under `tmp`.
pub fn prepare(configured: Option<&Path>, tmp: &Path) -> Result<RuntimeDir, RuntimeDirError> {
    match configured {
        None => create_random(tmp).map(|path| RuntimeDir {
            path,
            remove_on_exit: true,
        }),
        Some(path) => {
            let fresh = match std::fs::symlink_metadata(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(source) => {
                    return Err(RuntimeDirError::Inspect {
                        path: path.into(),
                        source,
                    });
                }
                Ok(_) => false,
            };
            if fresh {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|source| RuntimeDirError::Create {
                        path: path.into(),
                        source,
                    })?;
                }
                mkdir_private(path).map_err(|source| RuntimeDirError::Create {
                    path: path.into(),
                    source,
                })?;
            }
            check(path)?;
            Ok(RuntimeDir {
                path: path.to_path_buf(),
                remove_on_exit: false,
            })
        }
    }
}

fn create_random(tmp: &Path) -> Result<PathBuf, RuntimeDirError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let name: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(12)
            .collect();
        let path = tmp.join(format!("legate-{name}"));
        match mkdir_private(&path) {
            Ok(()) => {
                check(&path)?;
                return Ok(path);
            }
            // taken (by anything, a symlink included): another name
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(source) => return Err(RuntimeDirError::Create { path, source }),
        }
    }
    Err(RuntimeDirError::Create {
        path: tmp.join("legate-*"),
        source: last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
    })
}

/// `mkdir(2)` with mode 0700: fails with `AlreadyExists` on any existing entry, a symlink
/// (dangling or not) included, and never follows it.
fn mkdir_private(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

/// The directory must be a directory itself (not a symlink to one), owned by this user, and
/// writable by nobody else.
fn check(path: &Path) -> Result<(), RuntimeDirError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| RuntimeDirError::Inspect {
        path: path.into(),
        source,
    })?;
    let unsafe_because = |reason: String| {
        Err(RuntimeDirError::Unsafe {
            path: path.into(),
            reason,
        })
    };
    if meta.file_type().is_symlink() {
        return unsafe_because("it is a symlink".into());
    }
    if !meta.is_dir() {
        return unsafe_because("it is not a directory".into());
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return unsafe_because(format!(
            "it is owned by uid {}, not legate's uid {uid}",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return unsafe_because(format!(
            "its mode {mode:04o} lets group or others write to it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn the_default_is_new_random_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let a = prepare(None, tmp.path()).unwrap();
        let b = prepare(None, tmp.path()).unwrap();
        assert_ne!(a.path, b.path);
        assert!(a.remove_on_exit);
        assert_eq!(mode(&a.path), 0o700);
        let name = a.path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("legate-") && name.len() == "legate-".len() + 12,
            "{name}"
        );
        assert_ne!(name, format!("legate-{}", std::process::id()));
    }

    /// A symlink planted at the configured path (here to a directory the attacker controls,
    /// mode 0777) is refused, and nothing is created or changed through it.
    #[test]
    fn a_planted_symlink_is_refused() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("attacker");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
        let planted = tmp.path().join("run");
        symlink(&target, &planted).unwrap();
        let err = prepare(Some(&planted), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("it is a symlink"), "{err}");
        assert_eq!(mode(&target), 0o777, "the target was not chmod'ed");
        // a dangling symlink is refused too (mkdir does not follow it)
        let dangling = tmp.path().join("dangling");
        symlink(tmp.path().join("nowhere"), &dangling).unwrap();
        let err = prepare(Some(&dangling), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("it is a symlink"), "{err}");
        assert!(!tmp.path().join("nowhere").exists());
    }

    #[test]
    fn an_existing_directory_must_be_private_and_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = prepare(Some(&open), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("mode 1777"), "{err}");
        assert_eq!(mode(&open), 0o1777, "not adopted by chmod");
        let group = tmp.path().join("group");
        std::fs::create_dir(&group).unwrap();
        std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = prepare(Some(&group), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("mode 0770"), "{err}");
        // an owned directory only legate can write to is used as is, and kept
        for mode in [0o700, 0o755] {
            let private = tmp.path().join(format!("private-{mode:o}"));
            std::fs::create_dir(&private).unwrap();
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode)).unwrap();
            let dir = prepare(Some(&private), tmp.path()).unwrap();
            assert!(!dir.remove_on_exit);
            assert_eq!(self::mode(&private), mode, "its mode is left alone");
        }
        // the safe pattern for a world-writable mount: a subdirectory legate creates
        let sub = open.join("legate");
        let dir = prepare(Some(&sub), tmp.path()).unwrap();
        assert_eq!(mode(&dir.path), 0o700);
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = prepare(Some(&file), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    /// Owned by someone else (tests run as root: chown to another uid).
    #[test]
    fn a_directory_of_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let err = prepare(Some(&theirs), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }
}
