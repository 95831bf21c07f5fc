//! The directory walk and the per-file cache, so a change to one file among hundreds re-reads
//! only that file.
//!
//! A file is re-read when its stamp (device, inode, size, mtime) changed, when a watch event
//! named it, or when it was "racy" at its last read (modified so recently that a second write
//! within the filesystem's timestamp granularity would leave the stamp unchanged, as in git's
//! racy-clean rule). A re-read whose content hash is unchanged is not parsed again.
//!
//! A re-read file keeps the objects it held before where they are unchanged (the same `Arc`'d
//! document, so the next state shares them and comparing it with the last one is a pointer
//! comparison per object), and a file whose objects and errors are all unchanged (a comment
//! edited, a file touched) is no change at all: the work of a change is proportional to the
//! files it touched, not to the directory (issue 10).
//!
//! Hidden entries (names starting with `.`) are skipped: editors' lock and swap files, `.git`,
//! and the `..data` / `..2024_…` entries of a Kubernetes ConfigMap volume, whose visible
//! symlinks (`file.yaml -> ..data/file.yaml`) are followed instead, so each file is read once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use super::LoadOptions;
use super::parse::{Parsed, parse_file};
use crate::api::{Origin, RawObject, ResourceError};

/// Files larger than this are reported, not read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Directory symlinks can form cycles; the walk also remembers visited directories.
const MAX_DEPTH: usize = 32;
/// A file modified less than this before it was read may change again without changing its
/// stamp (coarse timestamps), so it is re-read (and hashed) by the next refresh.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: Option<SystemTime>,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    hash: Option<[u8; 20]>,
    racy: bool,
    parsed: Parsed,
}

/// The result of one refresh.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Whether objects or errors may differ from the previous refresh.
    pub changed: bool,
    /// Files that failed to parse and look like they are still being written.
    pub unsettled: Vec<PathBuf>,
    /// (device, inode) of the directory, if it could be read.
    pub dir_identity: Option<(u64, u64)>,
}

/// Every file's last reading, by path relative to the directory.
#[derive(Debug, Default)]
pub(super) struct Cache {
    entries: BTreeMap<PathBuf, Entry>,
    /// Set while the directory itself cannot be read; the last files are kept meanwhile.
    dir_error: Option<ResourceError>,
    /// Subdirectories that could not be read.
    walk_errors: Vec<ResourceError>,
}

impl Cache {
    /// Brings the cache up to date with `dir`. `forced` files (named by watch events) and, with
    /// `reread_all`, every file are re-read even if their stamp is unchanged. A file with errors
    /// is unsettled if it changed while being read or is younger than `settle`.
    pub fn refresh(
        &mut self,
        dir: &Path,
        forced: &BTreeSet<PathBuf>,
        reread_all: bool,
        options: &LoadOptions,
        settle: Duration,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let walk = match walk(dir) {
            Ok(walk) => walk,
            Err(e) => {
                let error = dir_error(dir, &e);
                outcome.changed = self.dir_error.as_ref() != Some(&error);
                self.dir_error = Some(error);
                return outcome;
            }
        };
        outcome.dir_identity = Some(walk.identity);
        outcome.changed = self.dir_error.take().is_some();
        let before = self.entries.len();
        self.entries.retain(|rel, _| walk.files.contains_key(rel));
        outcome.changed |= self.entries.len() != before;
        let due: Vec<Due> = walk
            .files
            .into_iter()
            .filter_map(|(rel, found)| {
                let cached = self.entries.get(&rel);
                let stale = cached.is_none_or(|c| c.racy || c.stamp != found.stamp);
                if !(stale || reread_all || forced.contains(&rel)) {
                    return None;
                }
                let known = cached.and_then(|c| {
                    let errors = !c.parsed.errors.is_empty();
                    c.hash.map(|hash| Known { hash, errors })
                });
                Some(Due { rel, found, known })
            })
            .collect();
        for (rel, read) in read_all(due, options, settle) {
            let Some((entry, unsettled)) = read else {
                // Deleted since the walk.
                outcome.changed |= self.entries.remove(&rel).is_some();
                continue;
            };
            if unsettled {
                outcome.unsettled.push(rel.clone());
            }
            match self.entries.get_mut(&rel) {
                Some(c) if c.hash.is_some() && c.hash == entry.hash => {
                    (c.stamp, c.racy) = (entry.stamp, entry.racy);
                }
                Some(c) => {
                    outcome.changed |= c.parsed.update(entry.parsed);
                    (c.stamp, c.racy, c.hash) = (entry.stamp, entry.racy, entry.hash);
                }
                None => {
                    outcome.changed = true;
                    self.entries.insert(rel, entry);
                }
            }
        }
        if self.walk_errors != walk.errors {
            outcome.changed = true;
            self.walk_errors = walk.errors;
        }
        outcome
    }

    /// Every object, files in path order, documents in order.
    pub fn objects(&self) -> Vec<RawObject> {
        let files = self.entries.values();
        files
            .flat_map(|e| e.parsed.objects.iter().cloned())
            .collect()
    }

    /// Objects and errors, without copying (for a one-shot load).
    pub fn into_parts(self) -> (Vec<RawObject>, Vec<ResourceError>) {
        let errors = self.errors();
        let mut objects = Vec::new();
        for entry in self.entries.into_values() {
            objects.extend(entry.parsed.objects);
        }
        (objects, errors)
    }

    /// Every error: the directory's, unreadable subdirectories', then each file's.
    pub fn errors(&self) -> Vec<ResourceError> {
        let files = self.entries.values().flat_map(|e| e.parsed.errors.iter());
        let dirs = self.dir_error.iter().chain(&self.walk_errors);
        dirs.chain(files).cloned().collect()
    }
}

/// A file's path and its reading: the entry and whether it is unsettled, `None` if it is gone.
type FileRead = (PathBuf, Option<(Entry, bool)>);

/// A file to read, with what the cache knows of its last content.
struct Due {
    rel: PathBuf,
    found: Found,
    known: Option<Known>,
}

/// The content hash of a file's last reading, and whether that reading had errors.
#[derive(Clone, Copy)]
struct Known {
    hash: [u8; 20],
    errors: bool,
}

/// How many files have been parsed (tests check that an unchanged re-read parses nothing).
#[cfg(test)]
pub(super) static PARSES: AtomicUsize = AtomicUsize::new(0);

/// Reads and parses `files`, on every core when there are several (the first load of a large
/// directory). Results are in the order given.
fn read_all(files: Vec<Due>, options: &LoadOptions, settle: Duration) -> Vec<FileRead> {
    let one = |due: &Due| (due.rel.clone(), read(due, options, settle));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(files.len() / 2);
    if threads < 2 {
        return files.iter().map(one).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(file) = files.get(i) else {
                return done;
            };
            done.push((i, one(file)));
        }
    };
    let mut results: Vec<(usize, FileRead)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        let joined = workers.into_iter().map(|w| w.join());
        // A panic while parsing is a bug; it propagates like it would without threads.
        joined
            .flat_map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Reads and parses one file. Returns the entry and whether it is unsettled, or `None` if the
/// file is gone. Content whose hash is the cached one is not parsed again: the entry comes back
/// without objects, and the caller keeps the cached ones.
fn read(due: &Due, options: &LoadOptions, settle: Duration) -> Option<(Entry, bool)> {
    let (rel, found) = (due.rel.as_path(), &due.found);
    let read_at = SystemTime::now();
    let age = found
        .stamp
        .mtime
        .and_then(|m| read_at.duration_since(m).ok())
        .unwrap_or_default();
    let mut entry = Entry {
        stamp: found.stamp,
        hash: None,
        racy: age < RACY_WINDOW,
        parsed: Parsed::default(),
    };
    if found.stamp.size > MAX_FILE_BYTES {
        let message = format!("file is larger than {MAX_FILE_BYTES} bytes; not read");
        entry.parsed.file_error(rel, message);
        return Some((entry, false));
    }
    let bytes = match fs::read(&found.path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            let message = format!("cannot read file: {e}");
            entry.parsed.file_error(rel, message);
            return Some((entry, age < settle));
        }
    };
    let after = fs::metadata(&found.path).map(|m| Stamp::of(&m)).ok();
    let hash = sha1_smol::Sha1::from(&bytes).digest().bytes();
    entry.hash = Some(hash);
    let errors = match due.known {
        Some(known) if known.hash == hash => known.errors,
        _ => {
            #[cfg(test)]
            PARSES.fetch_add(1, Ordering::Relaxed);
            entry.parsed = parse_file(rel, &bytes, options);
            !entry.parsed.errors.is_empty()
        }
    };
    // An empty file may be one just truncated or created by a writer that is not done yet.
    let suspect = errors || bytes.is_empty();
    let moving = after != Some(found.stamp) || age < settle;
    let unsettled = suspect && moving;
    Some((entry, unsettled))
}

/// A file found by the walk.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    stamp: Stamp,
}

#[derive(Debug)]
struct Walk {
    identity: (u64, u64),
    files: BTreeMap<PathBuf, Found>,
    /// Subdirectories that could not be read.
    errors: Vec<ResourceError>,
}

/// Lists the configuration files under `dir`. Fails only if `dir` itself cannot be read.
fn walk(dir: &Path) -> io::Result<Walk> {
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    let mut walk = Walk {
        identity: (meta.dev(), meta.ino()),
        files: BTreeMap::new(),
        errors: Vec::new(),
    };
    let mut visited = HashSet::from([walk.identity]);
    let entries = fs::read_dir(dir)?;
    visit(dir, Path::new(""), entries, &mut visited, &mut walk, 0);
    Ok(walk)
}

fn visit(
    root: &Path,
    rel: &Path,
    entries: fs::ReadDir,
    visited: &mut HashSet<(u64, u64)>,
    walk: &mut Walk,
    depth: usize,
) {
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let rel = rel.join(&name);
        let path = root.join(&rel);
        // `fs::metadata` follows symlinks; a dangling one (an editor's lock file, a file
        // deleted meanwhile) is simply not there.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < MAX_DEPTH && visited.insert((meta.dev(), meta.ino())) {
                match fs::read_dir(&path) {
                    Ok(entries) => visit(root, &rel, entries, visited, walk, depth + 1),
                    Err(e) => walk.errors.push(dir_error(&rel, &e)),
                }
            }
        } else if meta.is_file() && is_config(&rel) {
            let stamp = Stamp::of(&meta);
            walk.files.insert(rel, Found { path, stamp });
        }
    }
}

/// `*.yaml`, `*.yml` and `*.json`, case-insensitively. (Emissary reads only `*.yaml`; the other
/// two cost nothing and are what people name their files.)
pub(super) fn is_config(rel: &Path) -> bool {
    let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or_default();
    ["yaml", "yml", "json"]
        .iter()
        .any(|e| ext.eq_ignore_ascii_case(e))
}

fn dir_error(dir: &Path, error: &io::Error) -> ResourceError {
    ResourceError {
        origin: Origin::file(dir, 0),
        kind: String::new(),
        name: String::new(),
        field: None,
        message: format!("cannot read directory: {error}"),
        warning: false,
    }
}
