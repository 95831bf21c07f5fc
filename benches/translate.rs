//! In-process translation benchmark (issue 3): 1 Listener, 1 Host and N Mappings, the shape
//! of `shared/bench/gen-mappings.py`, written as the same YAML text into a tempdir and read by
//! the real file source. Measured: resources → IR → Envoy resources (`translate` +
//! `xds::resources::snapshot`), for N = 5,000 (target ≤ 30 ms) and N = 50,000 (scaling check).
//! Reading the directory and rendering Envoy JSON are measured separately, for the record.
//!
//! `cargo bench --bench translate` (add `-- translate_snapshot/5000` to run one).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use legate::api::RawObject;
use legate::source::{LoadOptions, load_dir};
use legate::translate::{Options, translate};
use legate::xds::resources::{snapshot, to_json};

/// Writes what `gen-mappings.py N DIR` writes: `00-base.yaml`, then 100 Mappings a file.
fn write_mappings(n: usize, dir: &Path) {
    let base = r#"---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: listener-8080, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: wildcard, namespace: default}
spec: {hostname: "*", requestPolicy: {insecure: {action: Route}}}
"#;
    std::fs::write(dir.join("00-base.yaml"), base).unwrap();
    for chunk in (0..n).step_by(100) {
        let mut text = String::new();
        for i in chunk..n.min(chunk + 100) {
            let mut extra = String::new();
            if i % 3 == 0 {
                extra += "\n  rewrite: /";
            }
            if i % 5 == 0 {
                write!(extra, "\n  headers: {{x-tenant: t{i}}}").unwrap();
            }
            if i % 7 == 0 {
                extra += "\n  timeout_ms: 5000";
            }
            if i % 11 == 0 {
                extra += "\n  retry_policy: {retry_on: 5xx, num_retries: 2}";
            }
            let ns = i % 10;
            write!(
                text,
                "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
                 metadata: {{name: m-{i}, namespace: ns{ns}}}\nspec:\n  hostname: \"*\"\n  \
                 prefix: /svc-{i}/\n  service: svc-{i}.ns{ns}:80{extra}\n"
            )
            .unwrap();
        }
        std::fs::write(dir.join(format!("mappings-{chunk:06}.yaml")), text).unwrap();
    }
}

/// The objects of a generated directory, checked to translate cleanly into N routes.
fn objects(n: usize) -> (tempfile::TempDir, Vec<RawObject>) {
    let dir = tempfile::tempdir().unwrap();
    write_mappings(n, dir.path());
    let state = load_dir(dir.path(), &LoadOptions::default()).unwrap();
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert_eq!(state.objects.len(), n + 2);
    let t = translate(&state.objects, &Options::default());
    assert_eq!(t.failures().count(), 0, "{:?}", t.errors);
    let routes: usize = t.ir.route_tables[0]
        .virtual_hosts
        .iter()
        .map(|v| v.routes.len())
        .sum();
    assert!(routes >= n, "{routes} routes for {n} Mappings");
    (dir, state.objects)
}

fn translate_and_snapshot(objects: &[RawObject], options: &Options) -> usize {
    let t = translate(objects, options);
    let s = snapshot(&t.ir, 1, "bench").unwrap();
    s.types.values().map(|t| t.resources.len()).sum()
}

fn benches(c: &mut Criterion) {
    let options = Options::default();
    for (n, samples, time) in [(5_000, 30, 10), (50_000, 10, 40)] {
        let (dir, objs) = objects(n);
        let mut g = c.benchmark_group("translate_snapshot");
        g.sample_size(samples)
            .measurement_time(Duration::from_secs(time));
        g.bench_with_input(BenchmarkId::from_parameter(n), &objs, |b, objs| {
            b.iter(|| translate_and_snapshot(black_box(objs), &options))
        });
        g.finish();

        if n == 5_000 {
            let mut g = c.benchmark_group("stages");
            g.sample_size(20).measurement_time(Duration::from_secs(10));
            g.bench_function("load_dir/5000", |b| {
                b.iter(|| load_dir(black_box(dir.path()), &LoadOptions::default()).unwrap())
            });
            g.bench_function("translate/5000", |b| {
                b.iter(|| translate(black_box(&objs), &options))
            });
            let ir = translate(&objs, &options).ir;
            g.bench_function("snapshot/5000", |b| {
                b.iter(|| snapshot(black_box(&ir), 1, "bench").unwrap())
            });
            let snap = snapshot(&ir, 1, "bench").unwrap();
            g.bench_function("to_json/5000", |b| {
                b.iter(|| to_json(black_box(&snap)).unwrap())
            });
            g.finish();
        }
    }
}

criterion_group!(translation, benches);
criterion_main!(translation);
