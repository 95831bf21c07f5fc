//! Profiling aid (issue 3): reads a directory once, then runs `translate` + `snapshot`
//! (optionally `to_json`) a given number of times, printing each stage's time. Meant for
//! `perf record` / `valgrind --tool=callgrind`, whose numbers a criterion loop would blur.
//!
//! `cargo run --release --example profile_translate -- DIR [RUNS] [json]`

use std::time::Instant;

use legate::source::{LoadOptions, load_dir};
use legate::translate::{Options, translate};
use legate::xds::resources::{snapshot, to_json};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: profile_translate DIR [RUNS] [json]");
    let runs: usize = args
        .next()
        .map_or(1, |r| r.parse().expect("RUNS is a number"));
    let json = args.next().as_deref() == Some("json");
    let t = Instant::now();
    let state = load_dir(dir.as_ref(), &LoadOptions::default()).expect("directory loads");
    eprintln!(
        "load_dir: {:?} ({} objects), peak RSS {}",
        t.elapsed(),
        state.objects.len(),
        peak_rss()
    );
    let options = Options::default();
    for _ in 0..runs {
        let t = Instant::now();
        let tr = translate(&state.objects, &options);
        let t1 = t.elapsed();
        let snap = snapshot(&tr.ir, 1, "profile").expect("snapshot builds");
        let t2 = t.elapsed();
        eprintln!("after translate + snapshot: peak RSS {}", peak_rss());
        if json {
            let value = to_json(&snap).expect("json renders");
            drop(value);
            eprintln!("after to_json: peak RSS {}", peak_rss());
        }
        let t3 = t.elapsed();
        drop((tr, snap));
        let t4 = t.elapsed();
        eprintln!(
            "translate {t1:?}, snapshot {:?}, json {:?}, drop {:?}",
            t2 - t1,
            t3 - t2,
            t4 - t3
        );
    }
}

/// `VmHWM` of this process (Linux), or `?`.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}
