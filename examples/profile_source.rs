//! Profiling aid (issue 10): the file source's change path at scale. Watches DIR as `legate run`
//! does (75 ms debounce), then rewrites one file of its own, `zz-profile.yaml` (one Mapping, to
//! a temporary name then renamed into place, as `scripts/bench-scale` writes its live Mapping),
//! RUNS times, printing for each the time from the rename to the new state published, and the
//! median. The file is removed at the end.
//!
//! `cargo run --release --example profile_source -- DIR [RUNS]`

use std::time::{Duration, Instant};

use legate::readiness::Ready;
use legate::source::{FileSource, guard_name};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: profile_source DIR [RUNS]"));
    let runs: usize = args
        .next()
        .map_or(5, |r| r.parse().expect("RUNS is a number"));
    let ready = Ready::new();
    let path = dir.join("zz-profile.yaml");
    let tmp = dir.join("zz-profile.yaml.tmp");
    let write = |k: usize| {
        let text = format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: profile, namespace: default}}\nspec: {{prefix: /profile-{k}/, service: profile}}\n"
        );
        std::fs::write(&tmp, text).expect("writes the file");
        std::fs::rename(&tmp, &path).expect("renames the file");
    };
    write(0);
    let t = Instant::now();
    let source = FileSource::new(
        &dir,
        Duration::from_millis(75),
        ready.guard(guard_name("file")),
    );
    let mut rx = source.spawn().expect("the directory is watched");
    rx.wait_for(|s| s.is_synced())
        .await
        .expect("the source runs");
    let objects = rx.borrow().objects.len();
    eprintln!("first load: {:?} ({objects} objects)", t.elapsed());
    let mut times = Vec::new();
    for k in 1..=runs {
        // Past the debounce window: a lone change, as one edit is.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let generation = rx.borrow().generation;
        let t = Instant::now();
        write(k);
        rx.wait_for(|s| s.generation > generation)
            .await
            .expect("the source runs");
        let took = t.elapsed();
        eprintln!("change {k}: written -> published {took:?}");
        times.push(took);
    }
    std::fs::remove_file(&path).expect("removes the file");
    times.sort();
    if let Some(median) = times.get(times.len() / 2) {
        eprintln!("median of {runs}: {median:?}");
    }
}
