//! Paired benchmark for a translation-time ratio on a noisy machine (issue 7: 5,000 Mappings
//! with labels and an AuthService against the same 5,000 without, at most 1.2×).
//!
//! `cargo run --release --example paired_ratio -- BASE_DIR OTHER_DIR [PAIRS]`
//!
//! Reads both directories once, then runs translate + snapshot + drop of each, alternating
//! (ABBA within each pair so neither always runs first), and times each by the process's CPU
//! time (every thread), as `benches/translate.rs` `services_cpu/` does. A criterion group runs
//! one input for seconds, then the other, so a busy period of the machine lands on one side
//! only; here both sides of a pair run within a fraction of a second of each other, and the
//! median of the per-pair ratios is reported with the median of each side.
//!
//! The inputs of issue 7: `scripts/gen-mappings 5000 DIR` and
//! `scripts/gen-mappings 5000 DIR --services`.

use std::time::Duration;

#[path = "../benches/common/cpu.rs"]
mod cpu;

use cpu::process_cpu_now;

use legate::api::RawObject;
use legate::source::{LoadOptions, load_dir};
use legate::translate::{Options, translate};
use legate::xds::resources::snapshot;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: paired_ratio BASE_DIR OTHER_DIR [PAIRS]";
    let base = read(&args.next().expect(usage));
    let other = read(&args.next().expect(usage));
    let pairs: usize = args
        .next()
        .map_or(30, |p| p.parse().expect("PAIRS is a number"));
    let options = Options::default();
    // Warm-up: first runs grow the heap and fault pages in.
    for _ in 0..3 {
        run(&base, &options);
        run(&other, &options);
    }
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (x, y) = if i % 2 == 0 {
            let x = run(&base, &options);
            (x, run(&other, &options))
        } else {
            let y = run(&other, &options);
            (run(&base, &options), y)
        };
        a.push(x.as_secs_f64() * 1e3);
        b.push(y.as_secs_f64() * 1e3);
        ratios.push(y.as_secs_f64() / x.as_secs_f64());
    }
    println!(
        "pairs {pairs}: base median {:.1} ms cpu, other median {:.1} ms cpu, ratio median {:.3} (quartiles {:.3}..{:.3})",
        quantile(&a, 0.5),
        quantile(&b, 0.5),
        quantile(&ratios, 0.5),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
    );
}

fn read(dir: &str) -> Vec<RawObject> {
    let state = load_dir(dir.as_ref(), &LoadOptions::default()).expect("directory loads");
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    state.objects
}

/// CPU time of translate + snapshot + dropping both.
fn run(objects: &[RawObject], options: &Options) -> Duration {
    let start = process_cpu_now();
    let t = translate(objects, options);
    let s = snapshot(&t.ir, 1, "paired").expect("snapshot builds");
    assert!(t.failures().next().is_none(), "{:?}", t.errors);
    drop((t, s));
    process_cpu_now().saturating_sub(start)
}

/// The `q` quantile of `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
