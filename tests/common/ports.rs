//! TCP ports for listeners that a test asks *another* process to open (Envoy's data-plane
//! listeners, a backend on a chosen loopback address), allocated so that two tests can never
//! get the same port, even from different processes or different checkouts on one machine.
//!
//! Binding port 0 and closing the socket to "reserve" a port does not work: the kernel hands the
//! same port to the next `bind(0)` (e.g. legate's own admin listener in another test), and the
//! Envoy listener then fails with "Address already in use". So [`port`]:
//!
//! * only hands out ports *below* the kernel's ephemeral range
//!   (`/proc/sys/net/ipv4/ip_local_port_range`), which `bind(0)` and outgoing connections never
//!   use, so nothing that binds port 0 can take one;
//! * makes each port exclusive across processes with an `flock` on `<dir>/<port>.lock` (under
//!   [`LOCK_DIR`]) held for the lifetime of the test process (nextest runs every test in its own
//!   process; the kernel drops the lock when the process ends, however it ends);
//! * checks the port can be bound on `0.0.0.0` right now (nothing else on the machine uses it);
//! * starts its search at an offset derived from the pid and the clock, so concurrent test
//!   processes rarely contend for the same lock.
//!
//! Processes that listen themselves (legate's probe and admin, backends, the fake API server)
//! keep binding port 0 and report the port they got.

// Shared by several test binaries (and the unit tests in src/); each uses only part of it.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the per-port lock files live: one well-known directory per machine, so that every
/// test run (CI and a developer's, any checkout) shares one allocator.
pub const LOCK_DIR: &str = "/tmp/legate-test-ports";

/// The lowest port handed out: clear of the well-known and commonly used low ports.
pub const FLOOR: u16 = 10_000;

/// Locks held by this process; dropping a `File` would release its port.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A port no other test (in this or any other process) holds, outside the ephemeral range,
/// bindable on every interface now, and reserved for the rest of this process's life.
///
/// Panics when no port is left (it would take thousands of concurrent tests).
pub fn port() -> u16 {
    let range = allocatable(ephemeral_range());
    let dir = lock_dir();
    let len = u32::from(range.1 - range.0) + 1;
    let start = seed() % len;
    for i in 0..len {
        let candidate = range.0 + ((start + i) % len) as u16;
        let Some(lock) = try_lock(&dir, candidate) else {
            continue;
        };
        if TcpListener::bind(("0.0.0.0", candidate)).is_err() {
            // In use by something outside this allocator; the lock is dropped.
            continue;
        }
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
        return candidate;
    }
    panic!(
        "no free test port in {}..={} (locks under {})",
        range.0,
        range.1,
        dir.display()
    );
}

/// The kernel's ephemeral port range `(low, high)`; Linux's default when it cannot be read.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_range(&text))
        .unwrap_or((32_768, 60_999))
}

pub fn parse_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    let (low, high) = (parts.next()??, parts.next()??);
    (low <= high).then_some((low, high))
}

/// The range to allocate from: below the ephemeral range if there is room (there is with
/// Linux's default), else above it.
pub fn allocatable((low, high): (u16, u16)) -> (u16, u16) {
    if low > FLOOR + 1_000 {
        (FLOOR, low - 1)
    } else if high < u16::MAX - 1_000 {
        (high + 1, u16::MAX)
    } else {
        panic!("the ephemeral port range {low}-{high} leaves no room for test ports")
    }
}

fn lock_dir() -> PathBuf {
    let dir = PathBuf::from(LOCK_DIR);
    if std::fs::create_dir(&dir).is_ok() {
        // Shared by every user's test runs, like /tmp itself.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    dir
}

/// An exclusive, non-blocking lock on `<dir>/<port>.lock`; `None` when another process (or
/// another allocation in this one: each open is its own lock) holds it.
pub fn try_lock(dir: &Path, port: u16) -> Option<File> {
    let path = dir.join(format!("{port}.lock"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(&path)
        // A lock file created by another user: a read-only open can be locked too.
        .or_else(|_| File::open(&path))
        .unwrap_or_else(|e| panic!("cannot open the port lock {}: {e}", path.display()));
    file.try_lock().ok().map(|()| file)
}

/// Where this process starts its search: spreads concurrent test processes over the range.
fn seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    std::process::id().wrapping_mul(2_654_435_761) ^ nanos
}
