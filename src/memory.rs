//! Handing freed heap back to the operating system.
//!
//! A translation at scale allocates and frees hundreds of megabytes in a burst (the objects'
//! plans, the IR, the encoded resources of the old and new snapshot). glibc's allocator keeps
//! freed memory in its arenas, so without help the process's resident size stays at the peak of
//! the largest translation forever, although the live data is a fraction of it (BENCHMARKS.md,
//! "legate's own memory"). [`release`] asks the allocator to return what it can; the pipeline
//! calls it after each publication, once the state it replaced has been dropped.

/// How many malloc arenas the process may use: two, not glibc's default of eight per core.
/// Each thread that allocates gets an arena of its own up to the limit, and every arena keeps
/// its own free memory; legate's allocations come in bursts from a few threads (the
/// translation, the ADS streams), so more arenas only hold more freed memory
/// (BENCHMARKS.md, "legate's own memory"). `MALLOC_ARENA_MAX` in the environment still wins.
const ARENAS: i32 = 2;

/// Limits the allocator's arenas ([`ARENAS`]). Call once, first thing in `main`, before any
/// thread starts; a no-op where the allocator is not glibc's.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets an allocator parameter; called before other threads
        // exist, it races with nothing.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Returns freed heap memory to the operating system, where the allocator supports it
/// (glibc's `malloc_trim`); a no-op elsewhere. Takes a few milliseconds at most on a heap of
/// hundreds of megabytes; call it off the latency path.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free lists; it takes the arena locks
    // itself and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
