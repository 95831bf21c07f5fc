//! The process's CPU time, shared by `benches/translate.rs` (criterion's `ProcessCpu`) and
//! `examples/paired_ratio.rs` (included with `#[path]`).

use std::time::Duration;

/// CPU time of the whole process (every thread) so far.
pub fn process_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
