//! Profiling aid (issue 3): reads a directory once, then runs `translate` + `snapshot`
//! (optionally `to_json`) a given number of times, printing each stage's time. Meant for
//! `perf record` / `valgrind --tool=callgrind`, whose numbers a criterion loop would blur.
//!
//! `cargo run --release --example profile_translate -- DIR [RUNS] [json|change|cache|reuse|served]`
//!
//! `change`: one Mapping's prefix changed before each run after the first (the change path
//! of `legate run`), translated afresh; `cache`: the same, translated with a
//! `translate::Cache` kept between runs; `reuse`: the same, and each snapshot built reusing
//! the previous one's unchanged resources (`snapshot_reusing`), as `legate run` does with
//! `source.translation_cache`; `served`: what `legate run` does by default, the snapshot
//! reusing the previous one's resources, the translation without a cache.
//!
//! With `ENDPOINT_ROUTING=1` in the environment, translated with `endpoint_routing` (Services
//! and EndpointSlices in DIR served by EDS), as `legate run` in a cluster by default.

use std::time::Instant;

use legate::api::RawObject;
use legate::source::{LoadOptions, load_dir};
use legate::translate::{Cache, Leftovers, Options, translate_deferring};
use legate::xds::resources::{snapshot_reusing, to_json};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: profile_translate DIR [RUNS] [json]");
    let runs: usize = args
        .next()
        .map_or(1, |r| r.parse().expect("RUNS is a number"));
    let mode = args.next();
    let json = mode.as_deref() == Some("json");
    let change = matches!(
        mode.as_deref(),
        Some("change" | "cache" | "reuse" | "served")
    );
    let cached = matches!(mode.as_deref(), Some("cache" | "reuse"));
    let reuse = matches!(mode.as_deref(), Some("reuse" | "served"));
    let mut previous = None;
    let mut cache = Cache::new();
    let t = Instant::now();
    let mut state = load_dir(dir.as_ref(), &LoadOptions::default()).expect("directory loads");
    eprintln!(
        "load_dir: {:?} ({} objects), peak RSS {}",
        t.elapsed(),
        state.objects.len(),
        peak_rss()
    );
    // `ENDPOINT_ROUTING=1`: Services named by Mappings are served by EDS from their
    // EndpointSlices (`source.endpoint_routing`), the Kubernetes shape of issue 10.
    let options = Options {
        endpoint_routing: std::env::var_os("ENDPOINT_ROUTING").is_some_and(|v| v == "1"),
        ..Options::default()
    };
    for run in 0..runs {
        if change && run > 0 {
            change_one(&mut state.objects, run);
        }
        let t = Instant::now();
        // As `legate run`: what the translation no longer needs is freed after the snapshot.
        let mut leftovers = Leftovers::new();
        let tr = translate_deferring(
            &state.objects,
            &options,
            cached.then_some(&mut cache),
            &mut leftovers,
        );
        let t1 = t.elapsed();
        let before = if reuse { previous.take() } else { None };
        let snap =
            snapshot_reusing(&tr.ir, 1, "profile", before.as_ref()).expect("snapshot builds");
        let t2 = t.elapsed();
        eprintln!("after translate + snapshot: peak RSS {}", peak_rss());
        if json {
            let value = to_json(&snap).expect("json renders");
            drop(value);
            eprintln!("after to_json: peak RSS {}", peak_rss());
        }
        let t3 = t.elapsed();
        drop((tr, before, leftovers));
        previous = Some(snap);
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

/// Gives the first Mapping a new prefix (a new value, as a source publishes a changed object).
fn change_one(objects: &mut [RawObject], run: usize) {
    let Some(o) = objects.iter_mut().find(|o| o.kind() == "Mapping") else {
        return;
    };
    let mut value = o.value.to_value();
    if let Some(spec) = value.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.insert("prefix".into(), format!("/changed-{run}/").into());
    }
    *o = RawObject::new(o.origin.clone(), value);
}
