//! In-process translation benchmark (issue 3): 1 Listener, 1 Host and N Mappings, the shape
//! of the generator in `scripts/bench`,
//! written as the same YAML text into a tempdir and read by
//! the real file source. Measured: resources → IR → Envoy resources (`translate` +
//! `xds::resources::snapshot`), for N = 5,000 (target ≤ 30 ms) and N = 50,000 (scaling check).
//! Reading the directory and rendering Envoy JSON (as a tree, `to_json`, and streamed,
//! `write_json`, which `legate translate --output envoy` uses) are measured separately, for
//! the record.
//! The end-to-end measure runs twice: wall clock (`translate_snapshot/N`) and process CPU time
//! (`translate_snapshot_cpu/N`), which other processes on a shared machine do not inflate.
//!
//! `cargo bench --bench translate` (add `-- translate_snapshot/5000` to run one).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

#[path = "common/cpu.rs"]
mod cpu;

use cpu::process_cpu_now;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use legate::api::RawObject;
use legate::source::{LoadOptions, load_dir};
use legate::translate::{Options, translate};
use legate::xds::resources::{snapshot, to_json, write_json};

/// Writes what `gen-mappings.py N DIR` writes: `00-base.yaml`, then 100 Mappings a file.
fn write_mappings(n: usize, dir: &Path) {
    write_mappings_with(n, dir, false)
}

/// An AuthService and a RateLimitService, added to the base with `services`
/// (issue 7's translation figure).
const SERVICES: &str = r#"---
apiVersion: getambassador.io/v3alpha1
kind: AuthService
metadata: {name: auth, namespace: default}
spec: {auth_service: "auth.default:3000", proto: grpc, timeout_ms: 500}
---
apiVersion: getambassador.io/v3alpha1
kind: RateLimitService
metadata: {name: rls, namespace: default}
spec: {service: "rls.default:8081"}
"#;

/// As [`write_mappings`]; with `services`, also an AuthService and a RateLimitService, and
/// every Mapping has two rate-limit label groups (remote address; a header and a constant).
fn write_mappings_with(n: usize, dir: &Path, services: bool) {
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
    let base = match services {
        true => format!("{base}{SERVICES}"),
        false => base.to_string(),
    };
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
            if services {
                write!(
                    extra,
                    "\n  labels: {{ambassador: [{{per-ip: [{{remote_address: {{key: remote_address}}}}]}}, \
                     {{tenant: [{{request_headers: {{key: tenant, header_name: x-tenant}}}}, \
                     {{generic_key: {{value: m-{i}}}}}]}}]}}"
                )
                .unwrap();
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

/// The objects of a generated directory (generated once per size, shared by both clocks),
/// checked to translate cleanly into at least N routes.
fn objects(n: usize) -> &'static [RawObject] {
    objects_with(n, false)
}

/// [`objects`], with or without the services and labels of [`write_mappings_with`].
fn objects_with(n: usize, services: bool) -> &'static [RawObject] {
    type Cache = BTreeMap<(usize, bool), &'static [RawObject]>;
    static CACHE: Mutex<Cache> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap();
    cache.entry((n, services)).or_insert_with(|| {
        let dir = tempfile::tempdir().unwrap();
        write_mappings_with(n, dir.path(), services);
        let state = load_dir(dir.path(), &LoadOptions::default()).unwrap();
        assert!(state.errors.is_empty(), "{:?}", state.errors);
        assert_eq!(state.objects.len(), n + 2 + 2 * usize::from(services));
        let t = translate(&state.objects, &Options::default());
        assert_eq!(t.failures().count(), 0, "{:?}", t.errors);
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        if services {
            let limited = t.ir.route_tables[0]
                .virtual_hosts
                .iter()
                .flat_map(|v| &v.routes)
                .filter(|r| r.rate_limits.len() == 2)
                .count();
            assert!(limited >= n, "{limited} routes with both label groups");
        }
        let routes: usize = t.ir.route_tables[0]
            .virtual_hosts
            .iter()
            .map(|v| v.routes.len())
            .sum();
        assert!(routes >= n, "{routes} routes for {n} Mappings");
        Vec::leak(state.objects)
    })
}

fn translate_and_snapshot(objects: &[RawObject], options: &Options) -> usize {
    let t = translate(objects, options);
    let s = snapshot(&t.ir, 1, "bench").unwrap();
    s.types.values().map(|t| t.resources.len()).sum()
}

/// resources → IR → Envoy resources, for 5,000 and 50,000 Mappings.
fn end_to_end<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let options = Options::default();
    for (n, samples, secs) in [(5_000, 30, 10), (50_000, 10, 40)] {
        let objs = objects(n);
        let mut g = c.benchmark_group(group);
        g.sample_size(samples)
            .measurement_time(Duration::from_secs(secs));
        g.bench_with_input(BenchmarkId::from_parameter(n), objs, |b, objs| {
            b.iter(|| translate_and_snapshot(black_box(objs), &options))
        });
        g.finish();
    }
}

/// 5,000 Mappings with labels, an AuthService and a RateLimitService, against the same 5,000
/// without (issue 7: at most 1.2×). `cargo bench --bench translate -- services/`.
fn services<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let options = Options::default();
    let mut g = c.benchmark_group(group);
    g.sample_size(30).measurement_time(Duration::from_secs(10));
    for (name, with) in [("without/5000", false), ("with/5000", true)] {
        let objs = objects_with(5_000, with);
        g.bench_with_input(name, objs, |b, objs| {
            b.iter(|| translate_and_snapshot(black_box(objs), &options))
        });
    }
    g.finish();
}

fn wall(c: &mut Criterion) {
    end_to_end(c, "translate_snapshot");
    services(c, "services");
    // The stages, for the record (5,000 Mappings).
    let options = Options::default();
    let dir = tempfile::tempdir().unwrap();
    write_mappings(5_000, dir.path());
    let objs = objects(5_000);
    let mut g = c.benchmark_group("stages");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("load_dir/5000", |b| {
        b.iter(|| load_dir(black_box(dir.path()), &LoadOptions::default()).unwrap())
    });
    g.bench_function("translate/5000", |b| {
        b.iter(|| translate(black_box(objs), &options))
    });
    let ir = translate(objs, &options).ir;
    g.bench_function("snapshot/5000", |b| {
        b.iter(|| snapshot(black_box(&ir), 1, "bench").unwrap())
    });
    let snap = snapshot(&ir, 1, "bench").unwrap();
    g.bench_function("to_json/5000", |b| {
        b.iter(|| to_json(black_box(&snap)).unwrap())
    });
    g.bench_function("write_json/5000", |b| {
        b.iter(|| write_json(black_box(&snap), &mut std::io::sink()).unwrap())
    });
    g.finish();
}

fn cpu(c: &mut Criterion<ProcessCpu>) {
    end_to_end(c, "translate_snapshot_cpu");
    services(c, "services_cpu");
}

/// CPU time of the whole process (every thread) instead of wall time: on a shared machine the
/// wall clock also counts time other processes held the CPU.
struct ProcessCpu;

impl Measurement for ProcessCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        process_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        process_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Nanoseconds shown in the unit that suits the typical value, with a "cpu" suffix.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e-3, "µs cpu")
        } else if typical < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v = 1e9 / *v);
        "per cpu s"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu_clock;
    config = Criterion::default().with_measurement(ProcessCpu);
    targets = cpu
}
criterion_main!(wall_clock, cpu_clock);
