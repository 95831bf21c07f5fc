//! Tells a hung Envoy from a busy one (issue 10).
//!
//! Envoy serves its admin API on its main thread, the thread that also applies xDS. While it
//! creates tens of thousands of clusters its admin stays silent for seconds to minutes, and
//! killing it then only starts the same work again: a crash loop. So a silent admin alone never
//! gets Envoy killed; it must also have stopped making progress:
//!
//! * **progress** is CPU time of Envoy's main thread (`/proc/<pid>/task/<pid>/stat`, `utime +
//!   stime`) still advancing between samples. The main thread, not the whole process: worker
//!   threads serving traffic would hide a deadlocked main thread. A stopped process (SIGSTOP),
//!   a deadlock or a thread blocked for good shows no progress: after `unresponsive` without
//!   progress and without an admin answer, Envoy is **hung**.
//! * Envoy **has work** while a push is outstanding (sent, neither ACKed nor NACKed) or its
//!   server state is not yet LIVE (starting, PRE_INITIALIZING, INITIALIZING). A main thread
//!   that keeps burning CPU with a silent admin and no such work (a livelock) is hung once the
//!   admin has been silent for `busy_limit`; with work it is left alone for as long as it
//!   makes progress.
//! * When the CPU time cannot be read (no procfs), outstanding work counts as busy up to
//!   `busy_limit`, and no work means hung after `unresponsive`: the behaviour before issue 10.
//! * Silence is evidence only once an admin call has actually failed (timed out, refused)
//!   since the last answer: if legate itself was starved of CPU and did not ask, an idle Envoy
//!   (no CPU progress either) is not hung.
//!
//! [`Watchdog`] is the pure decision, fed samples by the supervisor every health interval, so
//! it is tested with made-up samples; `tests/envoy_supervisor.rs` and `tests/scale.rs` check
//! it against the real Envoy.

use std::time::Duration;

use tokio::time::Instant;

use crate::envoy::State;

/// One look at Envoy, taken every health interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// CPU time of Envoy's main thread in clock ticks (`None`: unreadable).
    pub cpu_ticks: Option<u64>,
    /// A push is outstanding (un-ACKed).
    pub push_outstanding: bool,
    /// The last state seen (from admin, or `Starting` before the first answer).
    pub state: State,
}

/// What to do about Envoy after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The admin answered within `unresponsive`.
    Answering,
    /// The admin is silent but Envoy makes progress on work: leave it alone.
    Busy,
    /// Kill and restart it; the reason is logged and shown in the restart metric's log line.
    Hung(&'static str),
}

/// The hang decision for one Envoy process; create a new one per process.
#[derive(Debug)]
pub struct Watchdog {
    unresponsive: Duration,
    busy_limit: Duration,
    last_answer: Instant,
    last_progress: Instant,
    last_ticks: Option<u64>,
    /// An admin call failed since the last answer.
    failed: bool,
}

impl Watchdog {
    /// `now` is when the process started: it gets `unresponsive` to answer first.
    pub fn new(unresponsive: Duration, busy_limit: Duration, now: Instant) -> Watchdog {
        Watchdog {
            unresponsive,
            busy_limit: busy_limit.max(unresponsive),
            last_answer: now,
            last_progress: now,
            last_ticks: None,
            failed: false,
        }
    }

    /// The admin answered at `now`.
    pub fn answered(&mut self, now: Instant) {
        self.last_answer = now;
        self.failed = false;
    }

    /// An admin call failed (timed out, refused, broken).
    pub fn call_failed(&mut self) {
        self.failed = true;
    }

    /// Since when the admin has been silent.
    pub fn silent_since(&self) -> Instant {
        self.last_answer
    }

    /// Takes a sample at `now` and decides.
    pub fn check(&mut self, now: Instant, sample: Sample) -> Verdict {
        if let Some(ticks) = sample.cpu_ticks {
            if self.last_ticks.is_some_and(|last| ticks > last) {
                self.last_progress = now;
            }
            self.last_ticks = Some(ticks);
        }
        let silent = now.saturating_duration_since(self.last_answer);
        if silent < self.unresponsive || !self.failed {
            return Verdict::Answering;
        }
        let has_work = sample.push_outstanding
            || matches!(
                sample.state,
                State::Starting | State::PreInitializing | State::Initializing
            );
        match sample.cpu_ticks {
            Some(_) => {
                let stalled = now.saturating_duration_since(self.last_progress);
                if stalled >= self.unresponsive {
                    Verdict::Hung("admin silent and no cpu progress")
                } else if !has_work && silent >= self.busy_limit {
                    Verdict::Hung("admin silent, cpu spinning with no work outstanding")
                } else {
                    Verdict::Busy
                }
            }
            None if has_work && silent < self.busy_limit => Verdict::Busy,
            None => Verdict::Hung("admin silent"),
        }
    }
}

/// CPU time (`utime + stime`, clock ticks) of the main thread of `pid`, from procfs.
pub fn main_thread_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat"))
        .or_else(|_| std::fs::read_to_string(format!("/proc/{pid}/stat")))
        .ok()?;
    parse_ticks(&stat)
}

/// `utime + stime` from a `stat` line: fields 14 and 15, counted after the `(comm)` field,
/// which may itself contain spaces and parentheses.
fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);
    const LIMIT: Duration = Duration::from_secs(60);

    fn sample(ticks: Option<u64>, push: bool, state: State) -> Sample {
        Sample {
            cpu_ticks: ticks,
            push_outstanding: push,
            state,
        }
    }

    /// Feeds one sample a second; `ticks(i)` is the CPU time at second `i`. Returns the verdict
    /// of each second.
    fn run(
        secs: u64,
        answers: impl Fn(u64) -> bool,
        ticks: impl Fn(u64) -> Option<u64>,
        push: bool,
        state: State,
    ) -> Vec<Verdict> {
        let t0 = Instant::now();
        let mut w = Watchdog::new(T, LIMIT, t0);
        (1..=secs)
            .map(|i| {
                let now = t0 + Duration::from_secs(i);
                if answers(i) {
                    w.answered(now);
                } else {
                    w.call_failed();
                }
                w.check(now, sample(ticks(i), push, state))
            })
            .collect()
    }

    fn first_hung(v: &[Verdict]) -> Option<usize> {
        v.iter()
            .position(|v| matches!(v, Verdict::Hung(_)))
            .map(|i| i + 1)
    }

    #[test]
    fn answering_envoy_is_fine_whatever_its_cpu() {
        let v = run(30, |_| true, |_| Some(5), false, State::Live);
        assert!(v.iter().all(|v| *v == Verdict::Answering), "{v:?}");
    }

    #[test]
    fn stopped_envoy_is_hung_after_the_timeout_even_with_work() {
        // SIGSTOP at second 3: no answer, CPU frozen; a push outstanding does not save it.
        for (push, state) in [
            (true, State::Live),
            (false, State::PreInitializing),
            (false, State::Live),
        ] {
            let v = run(30, |i| i < 3, |i| Some(100 + 7 * i.min(3)), push, state);
            assert_eq!(first_hung(&v), Some(13), "{push} {state:?}: {v:?}");
        }
    }

    #[test]
    fn busy_main_thread_applying_a_push_is_never_killed() {
        // Admin silent for 5 minutes while the main thread burns CPU on a large CDS push.
        let v = run(300, |i| i < 2, |i| Some(100 * i), true, State::Live);
        assert_eq!(first_hung(&v), None, "{v:?}");
        assert_eq!(v[20], Verdict::Busy);
        // The same while still INITIALIZING, with the push already ACKed.
        let v = run(
            300,
            |i| i < 2,
            |i| Some(100 * i),
            false,
            State::Initializing,
        );
        assert_eq!(first_hung(&v), None);
    }

    #[test]
    fn busy_then_stuck_is_hung_a_timeout_after_progress_stops() {
        // Progress until second 40, then a deadlock.
        let v = run(80, |i| i < 2, |i| Some(100 * i.min(40)), true, State::Live);
        assert_eq!(first_hung(&v), Some(50), "{v:?}");
    }

    #[test]
    fn short_pauses_in_progress_are_not_a_hang() {
        // CPU advances every 5th second only (a starved thread on a loaded machine).
        let v = run(120, |_| false, |i| Some(i / 5), true, State::Live);
        assert_eq!(first_hung(&v), None, "{v:?}");
    }

    #[test]
    fn spinning_with_no_work_is_hung_at_the_busy_limit() {
        let v = run(100, |i| i < 2, |i| Some(100 * i), false, State::Live);
        assert_eq!(first_hung(&v), Some(61), "{v:?}");
    }

    #[test]
    fn without_cpu_readings_work_buys_time_up_to_the_busy_limit() {
        let v = run(100, |i| i < 2, |_| None, true, State::Live);
        assert_eq!(first_hung(&v), Some(61), "{v:?}");
        let v = run(100, |i| i < 2, |_| None, false, State::Live);
        assert_eq!(first_hung(&v), Some(11), "{v:?}");
    }

    #[test]
    fn a_late_answer_resets_the_clock() {
        // Silent and stalled 1..=8, answers at 9, stalled again: hung 10 s after the answer.
        let v = run(40, |i| i == 9, |_| Some(1), false, State::Live);
        assert_eq!(first_hung(&v), Some(19), "{v:?}");
    }

    #[test]
    fn silence_without_a_failed_call_is_not_a_hang() {
        // legate starved of CPU: it did not poll, so it has no evidence against Envoy.
        let t0 = Instant::now();
        let mut w = Watchdog::new(T, LIMIT, t0);
        let idle = sample(Some(7), false, State::Live);
        assert_eq!(
            w.check(t0 + Duration::from_secs(30), idle),
            Verdict::Answering
        );
        w.call_failed();
        assert!(matches!(
            w.check(t0 + Duration::from_secs(31), idle),
            Verdict::Hung(_)
        ));
    }

    #[test]
    fn parses_stat_lines() {
        let line = "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    123 45 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_ticks(line), Some(168));
        assert_eq!(parse_ticks("garbage"), None);
        let me = std::process::id();
        assert!(main_thread_ticks(me).is_some());
    }
}
