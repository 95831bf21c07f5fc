//! The allocator, and handing freed heap back to the operating system.
//!
//! legate allocates in bursts: a translation at scale builds and frees hundreds of megabytes
//! (the objects' plans, the IR, the encoded resources of the old and new snapshot), made of
//! tens of millions of small blocks. The process allocates with jemalloc ([`ALLOCATOR`])
//! rather than glibc's malloc: translating 5,000 Mappings takes 20–35 % less CPU time (more
//! where objects are larger, as labelled Mappings), freeing a 50,000-Mapping state takes a third
//! of the time, a change among 50,000 services was served 6–19 % sooner in alternated runs, and
//! the resident size is the same (BENCHMARKS.md, "jemalloc as the allocator").
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

/// The `mallctl` key that purges every arena (`arena.<MALLCTL_ARENAS_ALL>.purge`, 4096 naming
/// all of them).
const PURGE_ALL: &std::ffi::CStr = c"arena.4096.purge";

/// Returns the freed memory of every arena to the operating system now. Takes a few
/// milliseconds on a heap of hundreds of megabytes; call it off the latency path.
pub fn release() {
    // SAFETY: `mallctl` with a NUL-terminated key and no old or new value (null pointers,
    // length 0) only runs the named action; `arena.<i>.purge` takes the arenas' locks itself
    // and may be called from any thread at any time.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of one of jemalloc's options, of the C type the option has (`unsigned`,
    /// `ssize_t`, `bool`): the only types [`option`] reads.
    trait OptionValue: Copy {}
    impl OptionValue for u32 {}
    impl OptionValue for isize {}
    impl OptionValue for bool {}

    /// An option jemalloc is running with (`opt.<name>`); `None` when there is no such option
    /// or its type is not `T`.
    fn option<T: OptionValue>(name: &str) -> Option<T> {
        let key = format!("opt.{name}\0");
        let mut value = std::mem::MaybeUninit::<T>::uninit();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `value` has room for `len` bytes, and `mallctl` writes at most `len` bytes
        // to it; no new value is written. It is read only when the call succeeded with exactly
        // `T`'s size, and then holds a value of the option's C type, which `OptionValue`
        // limits to `T`'s (a C `bool` is 0 or 1).
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                key.as_ptr().cast(),
                value.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 || len != std::mem::size_of::<T>() {
            return None;
        }
        // SAFETY: written in full by the successful call above.
        Some(unsafe { value.assume_init() })
    }

    #[test]
    fn jemalloc_runs_with_the_options_of_conf() {
        // The exported `malloc_conf` was found: these differ from jemalloc's defaults (10,000
        // ms, four arenas per core, no background thread). (`muzzy_decay_ms:0` is also
        // jemalloc 5.3's default: stated in `CONF` so that it does not depend on the version,
        // not checked here.)
        assert_eq!(option::<isize>("dirty_decay_ms"), Some(1000));
        assert_eq!(option::<u32>("narenas"), Some(2));
        assert_eq!(option::<bool>("background_thread"), Some(true));
        assert_eq!(option::<isize>("no_such_option"), None);
        // The wrong type: refused, nothing read.
        assert_eq!(option::<bool>("narenas"), None);
    }

    #[test]
    fn release_returns_freed_memory_at_once() {
        // 64 MiB allocated, touched and freed: jemalloc keeps the pages (dirty) until its
        // background thread returns them over about a second; `release` returns them now.
        // (Each test runs in a process of its own under `cargo nextest`; what earlier
        // allocations left dirty is returned first.)
        release();
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
        // SAFETY: `sysconf` only reads a system setting.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages * u64::try_from(page).expect("a page size")
    }
}
