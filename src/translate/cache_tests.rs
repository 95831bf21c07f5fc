//! The translation cache changes nothing: after every step of random edit sequences
//! (Mappings added, changed and deleted, the Module, Services and EndpointSlices, TLSContexts
//! and Secrets, Hosts, the options), `translate_with` gives exactly what `translate` gives,
//! IR and errors; and a snapshot built reusing the previous one's resources
//! (`xds::resources::snapshot_reusing`) is the snapshot built afresh.

use serde_json::{Value, json};

use super::*;
use crate::api::{Origin, RawObject};
use crate::xds::Snapshot;
use crate::xds::resources::{snapshot, snapshot_reusing, to_json};

/// One object of the edited input, by a stable slot (its origin).
struct World {
    rng: fastrand::Rng,
    /// (slot, object); a slot's object keeps its `Arc` until it is edited, as a source keeps
    /// an unchanged object's value.
    objects: Vec<(usize, RawObject)>,
    options: Options,
    /// Where Mappings are added and edited.
    mapping_slots: std::ops::Range<usize>,
}

fn origin(slot: usize) -> Origin {
    Origin::file("world.yaml", slot)
}

const MAPPING_SLOTS: std::ops::Range<usize> = 100..130;

impl World {
    fn new(seed: u64) -> World {
        World::with_mappings(seed, 12, MAPPING_SLOTS)
    }

    /// `initial` Mappings, edits among `slots`.
    fn with_mappings(seed: u64, initial: usize, slots: std::ops::Range<usize>) -> World {
        let mut w = World {
            rng: fastrand::Rng::with_seed(seed),
            objects: Vec::new(),
            options: Options::default(),
            mapping_slots: slots.clone(),
        };
        w.set(
            1,
            Some(
                json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Listener",
                "metadata": {"name": "l", "namespace": "default"},
                "spec": {"port": 8080, "protocol": "HTTP", "securityModel": "INSECURE",
                         "hostBinding": {"namespace": {"from": "ALL"}}}}),
            ),
        );
        w.set(
            2,
            Some(
                json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
                "metadata": {"name": "any", "namespace": "default"},
                "spec": {"hostname": "*", "requestPolicy": {"insecure": {"action": "Route"}}}}),
            ),
        );
        for slot in slots.start..slots.start + initial {
            let m = w.mapping(slot);
            w.set(slot, Some(m));
        }
        for slot in 10..13 {
            let s = w.service(slot);
            w.set(slot, Some(s));
        }
        w
    }

    fn set(&mut self, slot: usize, value: Option<Value>) {
        self.objects.retain(|(s, _)| *s != slot);
        if let Some(v) = value {
            self.objects.push((slot, RawObject::new(origin(slot), v)));
            self.objects.sort_by_key(|(s, _)| *s);
        }
    }

    fn pick<'a, T>(&mut self, of: &'a [T]) -> &'a T {
        &of[self.rng.usize(..of.len())]
    }

    fn mapping(&mut self, slot: usize) -> Value {
        let prefix = *self.pick(&[
            "/a/",
            "/b/",
            "/a/",
            "/c/",
            "^/re/.*",
            "[bad",
            "no-slash",
            "/.well-known/acme-challenge/",
        ]);
        let service = *self.pick(&[
            "svc-0",
            "svc-1:8080",
            "svc-2.other",
            "missing",
            "10.0.0.1:80",
            "https://svc-0",
            "bad:port:x",
        ]);
        let mut spec = json!({"hostname": self.pick(&["*", "*", "a.example.com"]), "prefix": prefix,
            "service": service});
        let extra: &[(&str, Value)] = &[
            ("prefix_regex", json!(true)),
            ("resolver", json!("kubernetes-endpoint")),
            ("resolver", json!("endpoint")),
            ("tls", json!("ctx")),
            ("tls", json!(true)),
            ("weight", json!(30)),
            ("weight", json!(150)),
            ("timeout_ms", json!(1500)),
            ("headers", json!({"x-a": "1"})),
            ("priority", json!("high")),
            ("circuit_breakers", json!([{"max_connections": 5}])),
            (
                "load_balancer",
                json!({"policy": "ring_hash", "header": "x-id"}),
            ),
            (
                "labels",
                json!({"ambassador": [{"r": [{"remote_address": {}}]}]}),
            ),
            ("bogus_field", json!(1)),
        ];
        for _ in 0..self.rng.usize(0..3) {
            let (k, v) = self.pick(extra).clone();
            spec[k] = v;
        }
        let names = ["m0", "m1", "m2", "m3", "m4", "m5"];
        // A few Mappings share a name (a duplicate is an error on the later one).
        let name = if self.rng.u8(..10) == 0 {
            self.pick(&names).to_string()
        } else {
            format!("m-{slot}")
        };
        let namespace = *self.pick(&["default", "default", "other"]);
        json!({"apiVersion": self.pick(&["getambassador.io/v3alpha1", "getambassador.io/v3alpha1",
                                         "getambassador.io/v2"]),
            "kind": "Mapping", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
    }

    fn service(&mut self, slot: usize) -> Value {
        let ports = if self.rng.bool() {
            json!([{"name": "http", "port": 80, "protocol": "TCP"},
                   {"name": "alt", "port": 8080, "protocol": "TCP"}])
        } else {
            json!([{"name": "http", "port": 80, "protocol": "TCP"}])
        };
        let ty = *self.pick(&["ClusterIP", "ClusterIP", "ExternalName"]);
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{}", slot - 10), "namespace": "default"},
            "spec": {"type": ty, "ports": ports}})
    }

    fn slice(&mut self, slot: usize) -> Value {
        let ip = format!("10.1.0.{}", self.rng.u8(1..200));
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("svc-{}-x", slot - 20), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": format!("svc-{}", slot - 20)}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9000, "protocol": "TCP"},
                      {"name": "alt", "port": 9001, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": self.rng.u8(..4) != 0}}]})
    }

    /// One random edit.
    fn edit(&mut self) {
        match self.rng.u8(..20) {
            // Mappings: the common case.
            0..=7 => {
                let slot = self.rng.usize(self.mapping_slots.clone());
                let m = self.mapping(slot);
                self.set(slot, Some(m));
            }
            8 | 9 => {
                let slot = self.rng.usize(self.mapping_slots.clone());
                self.set(slot, None);
            }
            10 => {
                let module = match self.rng.u8(..4) {
                    0 => None,
                    1 => Some(json!({"resolver": "endpoint"})),
                    2 => Some(json!({"cluster_idle_timeout_ms": 30000,
                                     "circuit_breakers": [{"max_connections": 9}]})),
                    _ => Some(json!({"load_balancer": {"policy": "least_request"}})),
                };
                let value = module.map(|config| {
                    json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Module",
                        "metadata": {"name": "ambassador", "namespace": "default"},
                        "spec": {"config": config}})
                });
                self.set(3, value);
            }
            11 | 12 => {
                let slot = self.rng.usize(10..13);
                let s = if self.rng.u8(..4) == 0 {
                    None
                } else {
                    Some(self.service(slot))
                };
                self.set(slot, s);
            }
            13 | 14 => {
                let slot = self.rng.usize(20..23);
                let s = if self.rng.u8(..4) == 0 {
                    None
                } else {
                    Some(self.slice(slot))
                };
                self.set(slot, s);
            }
            15 => {
                let ctx = self.rng.bool().then(|| {
                    json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "TLSContext",
                        "metadata": {"name": "ctx", "namespace": "default"},
                        "spec": {"secret": "client", "sni": self.pick(&["a.internal", "b.internal"])}})
                });
                self.set(4, ctx);
            }
            16 => {
                let secret = self.rng.bool().then(|| {
                    json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "client", "namespace": "default"},
                        "type": "kubernetes.io/tls",
                        "stringData": {"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
                                       "tls.key": "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n"}})
                });
                self.set(5, secret);
            }
            17 => {
                let host = self.rng.bool().then(|| {
                    json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
                        "metadata": {"name": "named", "namespace": "default"},
                        "spec": {"hostname": "a.example.com",
                                 "requestPolicy": {"insecure": {"action": "Route"}}}})
                });
                self.set(6, host);
            }
            18 => {
                self.options.endpoint_routing = !self.options.endpoint_routing;
            }
            // Every object re-read: equal values in new `Arc`s (as a re-list would give).
            _ => {
                for (_, o) in &mut self.objects {
                    *o = RawObject::new(o.origin.clone(), o.value.to_value());
                }
            }
        }
    }

    fn raw(&self) -> Vec<RawObject> {
        self.objects.iter().map(|(_, o)| o.clone()).collect()
    }
}

/// Checks that the snapshot of `ir` built reusing `previous` is the one built afresh
/// (versions, names, and contents as Envoy reads them), and returns it.
fn same_snapshot(ir: &Ir, previous: Option<&Snapshot>, context: &str) -> Option<Snapshot> {
    let fresh = snapshot(ir, 2, "boot").ok()?;
    let reused = snapshot_reusing(ir, 2, "boot", previous).expect("the fresh one built");
    assert_eq!(reused.versions(), fresh.versions(), "{context}");
    for (kind, t) in &fresh.types {
        let r = &reused.types[kind];
        let names = |t: &crate::xds::TypeSnapshot| {
            t.resources
                .values()
                .map(|r| (r.name.clone(), r.version.clone(), r.linger))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(r), names(t), "{context}: {kind:?}");
        for (name, fresh) in &t.resources {
            // A route table's pieces (its routes' hashes and places) match the fresh ones.
            assert_eq!(r.resources[name].pieces, fresh.pieces, "{context}: {name}");
        }
    }
    assert_eq!(
        to_json(&reused).expect("renders"),
        to_json(&fresh).expect("renders"),
        "{context}: the reused snapshot differs"
    );
    Some(reused)
}

#[test]
fn cache_equivalence() {
    let mut reused = 0;
    for seed in 0..10 {
        let mut world = World::new(seed);
        let mut cache = Cache::new();
        let mut previous = None;
        for step in 0..30 {
            let objects = world.raw();
            let cached = translate_with(&objects, &world.options, &mut cache);
            let fresh = translate(&objects, &world.options);
            assert_eq!(
                cached, fresh,
                "seed {seed}, step {step}: the cached translation differs"
            );
            let context = format!("seed {seed}, step {step}");
            previous = same_snapshot(&cached.ir, previous.as_ref(), &context).or(previous);
            reused += cache.reused();
            for _ in 0..world.rng.usize(1..4) {
                world.edit();
            }
        }
    }
    // The sequences did exercise reuse (a cache that never hit would pass the equality alone).
    assert!(reused > 1000, "only {reused} plans reused");
}

/// Enough Mappings to be planned on two threads (`mapping::PARALLEL_MIN`).
#[test]
fn cache_equivalence_in_parallel() {
    let mut world = World::with_mappings(99, 700, 100..900);
    let mut cache = Cache::new();
    let mut reused = 0;
    let mut previous = None;
    for step in 0..8 {
        let objects = world.raw();
        let cached = translate_with(&objects, &world.options, &mut cache);
        assert_eq!(
            cached,
            translate(&objects, &world.options),
            "step {step}: the cached translation differs"
        );
        previous =
            same_snapshot(&cached.ir, previous.as_ref(), &format!("step {step}")).or(previous);
        reused += cache.reused();
        for _ in 0..8 {
            world.edit();
        }
    }
    assert!(reused > 1000, "only {reused} plans reused");
}

#[test]
fn a_changed_mapping_is_planned_again_and_the_rest_reused() {
    let mut world = World::new(7);
    let mut cache = Cache::new();
    let objects = world.raw();
    translate_with(&objects, &world.options, &mut cache);
    assert_eq!(cache.reused(), 0);
    let planned = cache.len();
    assert!(planned >= 10, "{planned} entries");
    let slot = MAPPING_SLOTS.start;
    let changed = json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
        "metadata": {"name": "changed", "namespace": "default"},
        "spec": {"hostname": "*", "prefix": "/changed/", "service": "svc-0"}});
    world.set(slot, Some(changed));
    let objects = world.raw();
    let t = translate_with(&objects, &world.options, &mut cache);
    assert_eq!(t, translate(&objects, &world.options));
    assert_eq!(cache.reused(), planned - 1);
    assert_eq!(cache.len(), planned);
    // The Module changed: nothing reused.
    world.set(
        3,
        Some(
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Module",
            "metadata": {"name": "ambassador", "namespace": "default"},
            "spec": {"config": {"cluster_idle_timeout_ms": 1000}}}),
        ),
    );
    let objects = world.raw();
    let t = translate_with(&objects, &world.options, &mut cache);
    assert_eq!(t, translate(&objects, &world.options));
    assert_eq!(cache.reused(), 0);
}
