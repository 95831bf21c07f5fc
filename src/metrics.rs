//! Prometheus metrics, rendered by the admin `/metrics` endpoint.
//!
//! A handful of fixed metrics does not justify a metrics crate: counters and gauges are atomics,
//! labelled families a small map, and the push-latency histogram has fixed buckets.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Every metric legate exports. Shared as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Snapshots published (each a reconfiguration).
    pub reconfigurations: Counter,
    /// Time from publishing a snapshot to Envoy ACKing every type of it.
    pub push_latency: Histogram,
    /// NACKs received, by type (`cds`, `lds`, ...).
    pub nacks: Family,
    /// Envoy restarts, by reason (`exited`, `signal`, `unresponsive`).
    pub envoy_restarts: Family,
    /// 1 while Envoy's admin reports LIVE.
    pub envoy_live: Gauge,
    /// Envoy's state: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING, -1 down.
    pub envoy_state: Gauge,
    /// Connected ADS streams.
    pub xds_streams: Gauge,
    /// Resources left out because they are invalid.
    pub config_errors: Gauge,
    /// Resident memory and cumulative CPU of the supervisor and of Envoy (sysinfo).
    pub process_rss_bytes: Family,
    pub process_cpu_seconds: Family,
}

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A family with one label; values are set or incremented per label value.
#[derive(Debug, Default)]
pub struct Family(Mutex<BTreeMap<String, f64>>);

impl Family {
    pub fn inc(&self, label: &str) {
        *self.lock().entry(label.to_string()).or_default() += 1.0;
    }
    pub fn set(&self, label: &str, v: f64) {
        self.lock().insert(label.to_string(), v);
    }
    pub fn get(&self, label: &str) -> f64 {
        self.lock().get(label).copied().unwrap_or_default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, f64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Latency histogram in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            bounds: LATENCY_BOUNDS,
            counts: LATENCY_BOUNDS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if secs <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Metrics {
    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut scalar = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        scalar(
            "legate_reconfigurations_total",
            "counter",
            "Snapshots published.",
            self.reconfigurations.get().to_string(),
        );
        scalar(
            "legate_envoy_live",
            "gauge",
            "1 while Envoy reports LIVE.",
            self.envoy_live.get().to_string(),
        );
        scalar(
            "legate_envoy_state",
            "gauge",
            "Envoy server state: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING, -1 down.",
            self.envoy_state.get().to_string(),
        );
        scalar(
            "legate_xds_streams",
            "gauge",
            "Connected ADS streams.",
            self.xds_streams.get().to_string(),
        );
        scalar(
            "legate_config_errors",
            "gauge",
            "Resources left out because they are invalid.",
            self.config_errors.get().to_string(),
        );
        family(
            &mut out,
            "legate_xds_nacks_total",
            "counter",
            "NACKs received from Envoy.",
            "type",
            &self.nacks,
        );
        family(
            &mut out,
            "legate_envoy_restarts_total",
            "counter",
            "Envoy restarts.",
            "reason",
            &self.envoy_restarts,
        );
        family(
            &mut out,
            "legate_process_resident_memory_bytes",
            "gauge",
            "Resident memory.",
            "process",
            &self.process_rss_bytes,
        );
        family(
            &mut out,
            "legate_process_cpu_seconds_total",
            "counter",
            "CPU time used.",
            "process",
            &self.process_cpu_seconds,
        );
        let h = &self.push_latency;
        let name = "legate_push_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Snapshot publication to Envoy ACK of every type.\n# TYPE {name} histogram"
        );
        for (b, c) in h.bounds.iter().zip(&h.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
        let _ = writeln!(
            out,
            "{name}_sum {}",
            h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", h.count());
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, label: &str, f: &Family) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (k, v) in f.lock().iter() {
        let k = k.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.reconfigurations.inc();
        m.nacks.inc("cds");
        m.push_latency.observe(std::time::Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("legate_reconfigurations_total 1\n"));
        assert!(text.contains("legate_xds_nacks_total{type=\"cds\"} 1\n"));
        assert!(text.contains("legate_push_latency_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("legate_push_latency_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("legate_push_latency_seconds_count 1\n"));
    }
}
