//! Paired benchmark for a translation-time ratio on a noisy machine (issue 7: 5,000 Mappings
//! with labels and an AuthService against the same 5,000 without, at most 1.2×).
//!
//! `cargo run --release --example paired_ratio -- BASE_DIR OTHER_DIR [PAIRS]`
//!
//! Reads both directories once, then runs translate + snapshot + drop of each, alternating
//! (ABBA within each pair so neither always runs first), and times each by the process's CPU
//! time (every thread), as `benches/translate.rs` `services_cpu/` does, and by the elapsed time
//! (a second line of output, the same statistics). A criterion group runs
//! one input for seconds, then the other, so a busy period of the machine lands on one side
//! only; here both sides of a pair run within a fraction of a second of each other, and the
//! median of the per-pair ratios is reported with the median of each side.
//!
//! The inputs of issue 7: `scripts/gen-mappings 5000 DIR` and
//! `scripts/gen-mappings 5000 DIR --services`.

use std::time::{Duration, Instant};

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
    let (mut wa, mut wb, mut wall_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (x, y) = if i % 2 == 0 {
            let x = run(&base, &options);
            (x, run(&other, &options))
        } else {
            let y = run(&other, &options);
            (run(&base, &options), y)
        };
        a.push(x.cpu.as_secs_f64() * 1e3);
        b.push(y.cpu.as_secs_f64() * 1e3);
        ratios.push(y.cpu.as_secs_f64() / x.cpu.as_secs_f64());
        wa.push(x.wall.as_secs_f64() * 1e3);
        wb.push(y.wall.as_secs_f64() * 1e3);
        wall_ratios.push(y.wall.as_secs_f64() / x.wall.as_secs_f64());
    }
    for (what, a, b, ratios) in [("cpu", &a, &b, &ratios), ("wall", &wa, &wb, &wall_ratios)] {
        println!(
            "pairs {pairs}: base median {:.1} ms {what}, other median {:.1} ms {what}, ratio median {:.3} (quartiles {:.3}..{:.3})",
            quantile(a, 0.5),
            quantile(b, 0.5),
            quantile(ratios, 0.5),
            quantile(ratios, 0.25),
            quantile(ratios, 0.75),
        );
    }
}

/// One run's cost: the process's CPU time (every thread) and the elapsed time.
struct Cost {
    cpu: Duration,
    wall: Duration,
}

fn read(dir: &str) -> Vec<RawObject> {
    let state = load_dir(dir.as_ref(), &LoadOptions::default()).expect("directory loads");
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    state.objects
}

/// CPU and elapsed time of translate + snapshot + dropping both.
fn run(objects: &[RawObject], options: &Options) -> Cost {
    let start = process_cpu_now();
    let started = Instant::now();
    let t = translate(objects, options);
    let s = snapshot(&t.ir, 1, "paired").expect("snapshot builds");
    assert!(t.failures().next().is_none(), "{:?}", t.errors);
    drop((t, s));
    Cost {
        cpu: process_cpu_now().saturating_sub(start),
        wall: started.elapsed(),
    }
}

/// The `q` quantile of `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
