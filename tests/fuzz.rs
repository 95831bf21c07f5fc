//! A small deterministic mutation fuzzer of the input path: a file's bytes → the file source's
//! parser → translation → Envoy resources → their JSON (issue 9, item 8). No nightly toolchain
//! needed (cargo-fuzz needs one).
//!
//! Seeds: every golden case's input (`tests/golden/*/`), plus a deep nesting, an alias bomb,
//! binary garbage and a JSON document. Each mutant applies a few random edits (byte flips, YAML
//! tokens, deletions, repeated spans, splices of other seeds, nesting) chosen by a seeded
//! xorshift generator, so a run is reproducible from its seed.
//!
//! * `a_fixed_set_of_mutants_never_panics` runs in every test run (a few hundred mutants, a
//!   few seconds): no panic.
//! * `fuzz_for_a_while` is `#[ignore]`d: `scripts/fuzz SECONDS` runs it for that long and prints
//!   how many inputs ran, the panics (saved under `target/tmp/fuzz/`), and the inputs slowest
//!   per byte, to look for anything slower than linear. It fails on a panic.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use legate::source::{LoadOptions, parse_bytes};
use legate::translate::{Options, translate};
use legate::xds::resources;

/// Largest mutant: mutations that repeat spans stop growing an input here.
const MAX_LEN: usize = 256 * 1024;

/// YAML and JSON tokens the mutator inserts.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "- ",
    "? ",
    "&a ",
    "*a",
    "<<: *a\n",
    "'",
    "\"",
    "|\n",
    ">-\n",
    "\n",
    "\n  ",
    "---\n",
    "...\n",
    " # c\n",
    "!!binary ",
    "!!str ",
    "%YAML 1.2\n",
    "~",
    "null",
    "true",
    "-1",
    "1e999",
    "0x1F",
    "\\u0000",
    "${HOME}",
    "\t",
    "\u{feff}",
    "é",
    "\0",
    "kind: ",
    "Mapping",
    "Host",
    "Listener",
    "TLSContext",
    "Module",
    "TCPMapping",
    "spec:\n  ",
    "prefix: /",
    "service: ",
    "hostname: '*'",
    "port: 8080",
    "metadata:\n  name: x\n",
    "apiVersion: getambassador.io/v3alpha1\n",
    "weight: 200",
    "timeout_ms: -5",
    "regex_rewrite: {pattern: '(', substitution: x}",
    "headers: {a: b}",
    "cors: {origins: ['*']}",
    "ambassador_id: [x]",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

struct Seed {
    json: bool,
    bytes: Vec<u8>,
}

fn seeds() -> Vec<Seed> {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&golden)
        .expect("tests/golden")
        .flatten()
        .flat_map(|case| {
            std::fs::read_dir(case.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    let mut seeds: Vec<Seed> = paths
        .iter()
        .map(|p| Seed {
            json: false,
            bytes: std::fs::read(p).expect("golden input"),
        })
        .collect();
    assert!(
        seeds.len() > 50,
        "golden inputs not found under {}",
        golden.display()
    );
    let deep = format!(
        "kind: Mapping\nspec: {}{}\n",
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let p = if i == 0 {
            "a".to_string()
        } else {
            format!("a{}", i - 1)
        };
        bomb.push_str(&format!(
            "a{i}: &a{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    let garbage: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let json = br#"{"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
        "metadata": {"name": "j"}, "spec": {"prefix": "/j/", "service": "j:80", "hostname": "*"}}"#;
    seeds.push(Seed {
        json: false,
        bytes: deep.into_bytes(),
    });
    seeds.push(Seed {
        json: false,
        bytes: bomb.into_bytes(),
    });
    seeds.push(Seed {
        json: false,
        bytes: garbage,
    });
    seeds.push(Seed {
        json: true,
        bytes: json.to_vec(),
    });
    seeds
}

fn mutate(rng: &mut Rng, seeds: &[Seed], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => input[rng.below(len)] = rng.next() as u8,
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                input.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + 1 + rng.below(64)).min(len);
                input.drain(at..end);
            }
            4 => {
                // a span repeated: long lists, long scalars, many documents
                let end = (at + 1 + rng.below(200)).min(len);
                let span = input[at..end].to_vec();
                let times = 1 + rng.below(64);
                for _ in 0..times {
                    if input.len() + span.len() > MAX_LEN {
                        break;
                    }
                    input.splice(end..end, span.iter().copied());
                }
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())].bytes;
                let from = rng.below(other.len());
                let to = (from + rng.below(400)).min(other.len());
                input.splice(at..at, other[from..to].iter().copied());
            }
            6 => {
                // nesting around a span
                let end = (at + rng.below(40)).min(len);
                let depth = 1 + rng.below(300);
                let (open, close): (&[u8], &[u8]) = match rng.below(3) {
                    0 => (b"[", b"]"),
                    1 => (b"{a: ", b"}"),
                    _ => (b"- ", b""),
                };
                input.splice(end..end, close.repeat(depth));
                input.splice(at..at, open.repeat(depth));
            }
            _ => {
                // a document marker or line break, shifting the structure
                let token: &[u8] = if rng.below(2) == 0 {
                    b"\n---\n"
                } else {
                    b"\n "
                };
                input.splice(at..at, token.iter().copied());
            }
        }
        input.truncate(MAX_LEN);
    }
}

/// Runs one input through the whole path. `Err` holds the panic message.
fn run_one(bytes: &[u8], json: bool) -> Result<(), String> {
    let rel = Path::new(if json { "f.json" } else { "f.yaml" });
    catch_unwind(AssertUnwindSafe(|| {
        let (objects, _errors) = parse_bytes(rel, bytes, &LoadOptions::default());
        let translation = translate(&objects, &Options::default());
        if let Ok(snapshot) = resources::snapshot(&translation.ir, 1, "fuzz") {
            let _ = resources::write_json(&snapshot, &mut io::sink());
        }
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

/// What a run found.
#[derive(Default)]
struct Report {
    inputs: usize,
    bytes: usize,
    panics: Vec<(String, PathBuf)>,
    /// (nanoseconds per byte, nanoseconds, input, json), the slowest per byte among inputs
    /// of at least 4 KiB (smaller ones are dominated by fixed costs).
    slowest: Vec<(f64, u128, Vec<u8>, bool)>,
}

fn fuzz(seed: u64, until: impl Fn(usize) -> bool) -> Report {
    std::panic::set_hook(Box::new(|_| {}));
    let seeds = seeds();
    let mut rng = Rng(seed | 1);
    let mut report = Report::default();
    let crashes = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    while !until(report.inputs) {
        let seed = &seeds[rng.below(seeds.len())];
        let mut input = seed.bytes.clone();
        mutate(&mut rng, &seeds, &mut input);
        let json = seed.json ^ (rng.below(16) == 0);
        let started = Instant::now();
        let outcome = run_one(&input, json);
        let took = started.elapsed().as_nanos();
        report.inputs += 1;
        report.bytes += input.len();
        if let Err(message) = outcome {
            let _ = std::fs::create_dir_all(&crashes);
            let path = crashes.join(format!(
                "crash-{}.{}",
                report.panics.len(),
                if json { "json" } else { "yaml" }
            ));
            let _ = std::fs::write(&path, &input);
            report.panics.push((message, path));
        }
        if input.len() >= 4096 {
            let per_byte = took as f64 / input.len() as f64;
            report.slowest.push((per_byte, took, input, json));
            report.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
            report.slowest.truncate(5);
        }
    }
    let _ = std::panic::take_hook();
    for (i, (_, _, input, json)) in report.slowest.iter().enumerate() {
        let _ = std::fs::create_dir_all(&crashes);
        let ext = if *json { "json" } else { "yaml" };
        let _ = std::fs::write(crashes.join(format!("slow-{i}.{ext}")), input);
    }
    report
}

fn print(report: &Report, took: Duration) {
    println!(
        "fuzz: {} inputs, {:.1} MiB in {:.0} s, {} panic(s)",
        report.inputs,
        report.bytes as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        report.panics.len()
    );
    for (message, path) in &report.panics {
        println!("fuzz: panic: {message} ({})", path.display());
    }
    for (i, (per_byte, ns, input, _)) in report.slowest.iter().enumerate() {
        println!(
            "fuzz: slow-{i}: {per_byte:.0} ns/byte, {} bytes, {:.1} ms",
            input.len(),
            *ns as f64 / 1e6
        );
    }
}

#[test]
fn a_fixed_set_of_mutants_never_panics() {
    let started = Instant::now();
    let report = fuzz(0x5eed, |n| n >= 2000);
    print(&report, started.elapsed());
    assert_eq!(report.inputs, 2000);
    assert!(report.panics.is_empty(), "{:?}", report.panics);
}

/// `scripts/fuzz SECONDS`: `FUZZ_SECONDS` (default 60) of mutants from seed `FUZZ_SEED`
/// (default: the time).
#[test]
#[ignore = "long-running; scripts/fuzz SECONDS"]
fn fuzz_for_a_while() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("fuzz: seed {seed}, {seconds} s");
    let started = Instant::now();
    let deadline = Duration::from_secs(seconds);
    let report = fuzz(seed, |_| started.elapsed() >= deadline);
    print(&report, started.elapsed());
    assert!(report.panics.is_empty(), "{:?}", report.panics);
}
