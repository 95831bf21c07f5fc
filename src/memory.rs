//! The allocator, and handing freed heap back to the operating system.
//!
//! legate allocates in bursts: a translation at scale builds and frees hundreds of megabytes
//! (the objects' plans, the IR, the encoded resources of the old and new snapshot), made of
//! tens of millions of small blocks. The process allocates with jemalloc ([`ALLOCATOR`])
//! rather than glibc's malloc: the same translation takes 15–30 % less CPU time, most where objects
//! are larger (labelled Mappings), and freeing a 50,000-Mapping state takes a third of the
//! time; the resident size is the same (BENCHMARKS.md, "jemalloc as the allocator").
//!
//! Freed memory goes back to the operating system in two ways: [`release`], which the pipeline
//! calls after each publication once the state it replaced has been dropped, returns it at
//! once; and jemalloc's background thread returns whatever is left within about a second
//! ([`CONF`]). Without either, the resident size would stay at the peak of the largest
//! translation although the live data is a fraction of it (BENCHMARKS.md, "legate's own
//! memory").

/// The global allocator of every binary built from this crate (legate, its tests, benches and
/// examples: what is measured is what ships): jemalloc, through `tikv-jemallocator`, its
/// symbols prefixed (C code in the process, if any, keeps the system allocator).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (before `main`):
/// - `background_thread:true`: a thread of jemalloc's returns freed pages in the background,
///   so nothing on the request or translation path does;
/// - `dirty_decay_ms:1000`, `muzzy_decay_ms:0`: freed pages are returned within about a
///   second, not jemalloc's default ten (the steady resident size is what a Deployment's memory
///   limit has to cover);
/// - `narenas:2`: two arenas, not four per core (as glibc's two arenas before): legate's
///   allocations come from a few threads at a time (the translation's two planning threads,
///   the ADS streams), and every arena keeps its own free memory.
///
/// `_RJEM_MALLOC_CONF` in the environment is read after this and overrides it (the variable's
/// name has the symbols' prefix).
pub const CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:2\0";

/// The compile-time options jemalloc looks up by this name (`malloc_conf`, prefixed): a
/// pointer to a NUL-terminated string, which `Option<&u8>` is laid out as.
#[used]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&u8> = Some(&CONF[0]);

/// jemalloc's `MALLCTL_ARENAS_ALL`: the index that names every arena in an `arena.<i>.…` key.
const ARENAS_ALL: u32 = 4096;

/// Returns the freed memory of every arena to the operating system now. Takes a few
/// milliseconds on a heap of hundreds of megabytes; call it off the latency path.
pub fn release() {
    let key = format!("arena.{ARENAS_ALL}.purge\0");
    // SAFETY: `mallctl` with a NUL-terminated key and no old or new value (null pointers,
    // length 0) only runs the named action; `arena.<i>.purge` takes the arenas' locks itself
    // and may be called from any thread at any time.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            key.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(rc, "jemalloc: purging the arenas failed");
    }
}

/// An option jemalloc is running with (`opt.<name>`), for tests and diagnostics.
pub fn option<T: Copy + Default>(name: &str) -> Option<T> {
    let key = format!("opt.{name}\0");
    let mut value = T::default();
    let mut len = std::mem::size_of::<T>();
    // SAFETY: `value` is a `T` of `len` bytes that `mallctl` writes at most `len` bytes of (it
    // fails instead when the option's size differs); no new value is written.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            key.as_ptr().cast(),
            (&raw mut value).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0 && len == std::mem::size_of::<T>()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jemalloc_runs_with_the_options_of_conf() {
        // The exported `malloc_conf` was found: these differ from jemalloc's defaults
        // (10,000 ms, 10,000 ms, four arenas per core, no background thread).
        assert_eq!(option::<isize>("dirty_decay_ms"), Some(1000));
        assert_eq!(option::<isize>("muzzy_decay_ms"), Some(0));
        assert_eq!(option::<u32>("narenas"), Some(2));
        assert_eq!(option::<bool>("background_thread"), Some(true));
        assert_eq!(option::<isize>("no_such_option"), None);
    }

    #[test]
    fn release_returns_freed_memory_at_once() {
        // 64 MiB allocated, touched and freed: jemalloc keeps the pages (dirty) until its
        // background thread returns them over about a second; `release` returns them now.
        let before = resident();
        let blocks: Vec<Vec<u8>> = (0..256).map(|_| vec![1u8; 256 * 1024]).collect();
        let grown = resident();
        drop(blocks);
        let freed = resident();
        release();
        let released = resident();
        assert!(
            grown > before + 48 * MIB,
            "{before} → {grown}: the blocks were not touched"
        );
        assert!(
            freed > before + 32 * MIB,
            "{before} → {freed}: returned without release"
        );
        assert!(
            released < before + 16 * MIB,
            "{before} → {released} after release"
        );
    }

    const MIB: u64 = 1024 * 1024;

    /// This process's resident size in bytes (Linux).
    fn resident() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("resident pages");
        pages * 4096
    }
}
