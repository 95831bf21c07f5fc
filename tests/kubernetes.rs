//! The Kubernetes source against the fake API server, through the real kube client.

#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use legate::api::Origin;
use legate::config::SourceSettings;
use legate::readiness::Ready;
use legate::source::SourceState;
use legate::source::kubernetes::{
    Environment, KubernetesSource, Statuses, Timing, WatchStatus, detect,
};
use serde_json::{Value, json};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

fn fast_timing(debounce_ms: u64) -> Timing {
    Timing {
        debounce: Duration::from_millis(debounce_ms),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        crd_retry: Duration::from_millis(200),
        recovered_after: Duration::from_millis(500),
    }
}

struct Running {
    ready: Ready,
    state: watch::Receiver<Arc<SourceState>>,
    status: watch::Receiver<Statuses>,
}

fn start(server: &FakeApiServer, settings: &SourceSettings) -> Running {
    start_with(server.client(), settings, fast_timing(30))
}

fn start_with(client: kube::Client, settings: &SourceSettings, timing: Timing) -> Running {
    let ready = Ready::new();
    let source = KubernetesSource::new(client, settings, ready.guard("kubernetes synced"))
        .with_timing(timing);
    let status = source.status();
    let state = source.spawn();
    Running {
        ready,
        state,
        status,
    }
}

impl Running {
    /// Waits until the published state satisfies `pred`.
    async fn until(&mut self, what: &str, pred: impl Fn(&SourceState) -> bool) -> Arc<SourceState> {
        let wait = async {
            loop {
                {
                    let state = self.state.borrow_and_update().clone();
                    if state.generation > 0 && pred(&state) {
                        return state;
                    }
                }
                self.state.changed().await.expect("source alive");
            }
        };
        match tokio::time::timeout(WAIT, wait).await {
            Ok(state) => state,
            Err(_) => panic!(
                "timed out waiting for {what}; last state: {:#?}",
                keys(&self.state.borrow())
            ),
        }
    }

    async fn until_status(&mut self, what: &str, pred: impl Fn(&Statuses) -> bool) {
        let wait = self.status.wait_for(|s| pred(s));
        if tokio::time::timeout(WAIT, wait).await.is_err() {
            panic!("timed out waiting for {what}: {:#?}", self.status.borrow());
        }
    }

    fn generation(&self) -> u64 {
        self.state.borrow().generation
    }
}

/// `(kind, namespace, name)` of every published object; panics on duplicates.
fn keys(state: &SourceState) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for o in &state.objects {
        let key = (
            o.kind().to_string(),
            o.namespace().unwrap_or_default().to_string(),
            o.name().to_string(),
        );
        assert!(set.insert(key.clone()), "duplicate object {key:?}");
    }
    set
}

fn key(kind: &str, ns: &str, name: &str) -> (String, String, String) {
    (kind.into(), ns.into(), name.into())
}

fn has(state: &SourceState, kind: &str, ns: &str, name: &str) -> bool {
    keys(state).contains(&key(kind, ns, name))
}

fn find(state: &SourceState, kind: &str, ns: &str, name: &str) -> Option<Value> {
    state
        .objects
        .iter()
        .find(|o| o.kind() == kind && o.namespace() == Some(ns) && o.name() == name)
        .map(|o| o.value.to_value())
}

fn amb(kind: &str, ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "getambassador.io/v3alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    })
}

fn mapping(ns: &str, name: &str, prefix: &str) -> Value {
    amb(
        "Mapping",
        ns,
        name,
        json!({"prefix": prefix, "service": "backend:80"}),
    )
}

fn service(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
}

fn slice(ns: &str, name: &str, ips: &[&str]) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": ns,
                        "labels": {"kubernetes.io/service-name": "backend"}},
           "addressType": "IPv4", "endpoints": endpoints, "ports": [{"port": 8080}]})
}

fn secret(ns: &str, name: &str, ty: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
           "type": ty, "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}})
}

/// One object of every watched kind, plus an Opaque Secret that must not be read.
fn one_of_each(ns: &str) -> Vec<Value> {
    vec![
        mapping(ns, "m1", "/a/"),
        amb("Host", ns, "h1", json!({"hostname": "example.com"})),
        amb(
            "Listener",
            ns,
            "l1",
            json!({"port": 8080, "protocol": "HTTP"}),
        ),
        amb("TLSContext", ns, "t1", json!({"hosts": ["example.com"]})),
        amb("Module", ns, "ambassador", json!({"config": {}})),
        amb(
            "TCPMapping",
            ns,
            "tcp1",
            json!({"port": 9000, "service": "db:5432"}),
        ),
        // AuthService and RateLimitService
        amb(
            "AuthService",
            ns,
            "auth",
            json!({"auth_service": "auth:3000"}),
        ),
        amb(
            "RateLimitService",
            ns,
            "rls",
            json!({"service": "rls:8081"}),
        ),
        // LogService / TracingService.
        amb(
            "LogService",
            ns,
            "als",
            json!({"service": "als:9001", "driver": "http"}),
        ),
        amb(
            "TracingService",
            ns,
            "tracing",
            json!({"service": "zipkin:9411", "driver": "zipkin"}),
        ),
        service(ns, "backend"),
        slice(ns, "backend-abc", &["10.1.0.1"]),
        secret(ns, "tls-cert", "kubernetes.io/tls"),
        secret(ns, "opaque", "Opaque"),
    ]
}

const KINDS: [&str; 13] = [
    "Mapping",
    "Host",
    "Listener",
    "TLSContext",
    "Module",
    "TCPMapping",
    "AuthService",
    "RateLimitService",
    "LogService",
    "TracingService",
    "Service",
    "EndpointSlice",
    "Secret",
];

#[tokio::test]
async fn initial_list_publishes_every_kind_with_origins() {
    let server = FakeApiServer::start().await;
    server.apply_all(one_of_each("apps"));
    let mut source = start(&server, &SourceSettings::default());
    let names = [
        "m1",
        "h1",
        "l1",
        "t1",
        "ambassador",
        "tcp1",
        "auth",
        "rls",
        "als",
        "tracing",
        "backend",
        "backend-abc",
        "tls-cert",
    ];
    let state = source
        .until("every kind", |s| s.objects.len() >= KINDS.len())
        .await;
    let expected: BTreeSet<_> = KINDS
        .iter()
        .zip(names)
        .map(|(k, n)| key(k, "apps", n))
        .collect();
    assert_eq!(keys(&state), expected);
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    for object in &state.objects {
        assert_eq!(
            object.origin,
            Origin::Kubernetes {
                namespace: "apps".into(),
                name: object.name().into()
            }
        );
        assert!(!object.api_version().is_empty(), "{object:?}");
    }
    // The fake API omits apiVersion/kind from built-in list items; the source sets them.
    let svc = find(&state, "Service", "apps", "backend").unwrap();
    assert_eq!(svc["apiVersion"], "v1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    let slice = find(&state, "EndpointSlice", "apps", "backend-abc").unwrap();
    assert_eq!(slice["apiVersion"], "discovery.k8s.io/v1");
    assert_eq!(
        find(&state, "Secret", "apps", "tls-cert").unwrap()["type"],
        "kubernetes.io/tls"
    );
    assert!(source.ready.is_ready(), "{:?}", source.ready.pending());
    let status = source.status.borrow().clone();
    assert!(
        status.values().all(|s| *s == WatchStatus::Synced),
        "{status:?}"
    );
    // Secrets were asked for with the TLS field selector.
    let secret_lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.plural.as_deref() == Some("secrets"))
        .collect();
    assert!(!secret_lists.is_empty());
    assert!(secret_lists.iter().all(
        |r| r.query.get("fieldSelector").map(String::as_str) == Some("type=kubernetes.io/tls")
    ));
}

#[tokio::test]
async fn apply_modify_and_delete_each_kind() {
    let server = FakeApiServer::start().await;
    let mut source = start(&server, &SourceSettings::default());
    source
        .until("the empty initial sync", |s| s.objects.is_empty())
        .await;
    for mut object in one_of_each("apps")
        .into_iter()
        .filter(|o| o["type"] != "Opaque")
    {
        let kind = object["kind"].as_str().unwrap().to_string();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        server.apply(object.clone());
        source
            .until(&format!("{kind} added"), |s| has(s, &kind, "apps", &name))
            .await;

        // A field the source keeps: Kubernetes' own kinds keep only what legate reads.
        let changed = match kind.as_str() {
            "Service" => "/spec/externalName",
            "EndpointSlice" => "/addressType",
            "Secret" => "/data/changed",
            _ => "/metadata/annotations/changed",
        };
        set(&mut object, changed, json!("eWVz"));
        server.apply(object);
        let state = source
            .until(&format!("{kind} modified"), |s| {
                find(s, &kind, "apps", &name)
                    .is_some_and(|v| v.pointer(changed) == Some(&json!("eWVz")))
            })
            .await;
        assert_eq!(keys(&state).len(), 1, "only the {kind} is there");

        let plural = server_plural(&kind);
        assert!(server.delete(plural, "apps", &name));
        source
            .until(&format!("{kind} deleted"), |s| s.objects.is_empty())
            .await;
    }
}

/// Sets the field at JSON `pointer` in `object`, creating the objects on the way.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    for part in pointer.trim_start_matches('/').split('/') {
        if !at.is_object() {
            *at = json!({});
        }
        at = at
            .as_object_mut()
            .expect("an object")
            .entry(part)
            .or_insert(Value::Null);
    }
    *at = value;
}

fn server_plural(kind: &str) -> &'static str {
    match kind {
        "Mapping" => "mappings",
        "Host" => "hosts",
        "Listener" => "listeners",
        "TLSContext" => "tlscontexts",
        "Module" => "modules",
        "TCPMapping" => "tcpmappings",
        "AuthService" => "authservices",
        "RateLimitService" => "ratelimitservices",
        "LogService" => "logservices",
        "TracingService" => "tracingservices",
        "Service" => "services",
        "EndpointSlice" => "endpointslices",
        "Secret" => "secrets",
        other => panic!("unknown kind {other}"),
    }
}

/// Every mapping on the server, as published keys.
fn server_mappings(server: &FakeApiServer) -> BTreeSet<(String, String, String)> {
    server
        .objects("mappings")
        .iter()
        .map(|o| {
            key(
                "Mapping",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect()
}

fn published_mappings(state: &SourceState) -> BTreeSet<(String, String, String)> {
    keys(state)
        .into_iter()
        .filter(|k| k.0 == "Mapping")
        .collect()
}

#[tokio::test]
async fn gone_410_relists_without_losing_or_duplicating() {
    let server = FakeApiServer::start().await;
    for i in 0..20 {
        server.apply(mapping("apps", &format!("m{i}"), "/x/"));
    }
    let mut source = start(&server, &SourceSettings::default());
    source
        .until("20 mappings", |s| published_mappings(s).len() == 20)
        .await;
    let lists_before = server.count("mappings", false);

    // Changes, then the history expires (open watches get ERROR 410), then more changes.
    server.delete("mappings", "apps", "m0");
    server.apply(mapping("apps", "m1", "/changed/"));
    server.expire_history();
    server.apply(mapping("apps", "new-a", "/a/"));
    server.delete("mappings", "apps", "m2");
    server.apply(mapping("apps", "new-b", "/b/"));

    let want = server_mappings(&server);
    let state = source
        .until("the relisted state", |s| published_mappings(s) == want)
        .await;
    assert_eq!(
        find(&state, "Mapping", "apps", "m1").unwrap()["spec"]["prefix"],
        "/changed/"
    );
    assert!(
        server.count("mappings", false) > lists_before,
        "410 must cause a relist"
    );
    // Later changes still flow.
    server.apply(mapping("apps", "after", "/after/"));
    source
        .until("a change after the relist", |s| {
            has(s, "Mapping", "apps", "after")
        })
        .await;
}

#[tokio::test]
async fn dropped_watch_resumes_without_losing_changes() {
    let server = FakeApiServer::start().await;
    server.apply(mapping("apps", "keep", "/keep/"));
    server.apply(mapping("apps", "gone", "/gone/"));
    let mut source = start(&server, &SourceSettings::default());
    source
        .until("initial", |s| published_mappings(s).len() == 2)
        .await;
    server.bookmark();

    // Cut every watch mid-stream and change things before the client is back.
    server.drop_watches();
    server.apply(mapping("apps", "during-gap", "/gap/"));
    server.delete("mappings", "apps", "gone");
    server.apply(mapping("apps", "keep", "/kept-changed/"));
    let want = server_mappings(&server);
    let state = source
        .until("the gap's changes", |s| published_mappings(s) == want)
        .await;
    assert_eq!(
        find(&state, "Mapping", "apps", "keep").unwrap()["spec"]["prefix"],
        "/kept-changed/"
    );
    // Resumed from the last resourceVersion: a watch with a version, no second list.
    assert_eq!(server.count("mappings", false), 1, "resume must not relist");
    assert!(server.count("mappings", true) >= 2);
}

#[tokio::test]
async fn losing_the_api_server_keeps_the_last_state_then_catches_up() {
    let server = FakeApiServer::start().await;
    server.apply(mapping("apps", "m1", "/one/"));
    server.apply(service("apps", "backend"));
    let mut source = start(&server, &SourceSettings::default());
    let before = source.until("initial", |s| s.objects.len() == 2).await;

    server.set_down(true);
    server.apply(mapping("apps", "m2", "/two/"));
    server.delete("services", "apps", "backend");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let during = source.state.borrow().clone();
    assert_eq!(
        during.generation, before.generation,
        "nothing published while down"
    );
    assert_eq!(keys(&during), keys(&before));
    assert!(
        source.ready.is_ready(),
        "losing the API server does not unready"
    );
    let failing = source
        .status
        .borrow()
        .values()
        .any(|s| matches!(s, WatchStatus::Failing(_)));
    assert!(failing, "{:?}", source.status.borrow());

    server.set_down(false);
    let state = source
        .until("caught up", |s| {
            has(s, "Mapping", "apps", "m2") && !has(s, "Service", "apps", "backend")
        })
        .await;
    assert_eq!(keys(&state).len(), 2);
}

/// Captures log lines of tests on a current-thread runtime (the source's tasks run there too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn count(&self, needle: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains(needle)).count()
    }
}

#[tokio::test]
async fn missing_crd_is_reported_once_skipped_and_picked_up_when_installed() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let server = FakeApiServer::start().await;
    server.set_installed("tcpmappings", false);
    server.apply(mapping("apps", "m1", "/a/"));
    let mut source = start(&server, &SourceSettings::default());
    let state = source
        .until("the others", |s| has(s, "Mapping", "apps", "m1"))
        .await;
    assert!(source.ready.is_ready(), "a missing CRD counts as synced");
    assert_eq!(state.errors.len(), 1, "{:?}", state.errors);
    let error = &state.errors[0];
    assert!(error.warning);
    assert_eq!(error.kind, "TCPMapping");
    assert!(
        error.message.contains("tcpmappings.getambassador.io"),
        "{error}"
    );
    assert_eq!(
        source.status.borrow()["tcpmappings.getambassador.io"],
        WatchStatus::Missing
    );

    // It keeps being looked for, but is reported once.
    let retried = async {
        while server.count("tcpmappings", false) < 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, retried).await.expect("retried");
    assert_eq!(logs.count("custom resource definition not installed"), 1);

    // The others keep working meanwhile.
    server.apply(mapping("apps", "m2", "/b/"));
    source
        .until("a mapping while the CRD is missing", |s| {
            has(s, "Mapping", "apps", "m2")
        })
        .await;

    server.set_installed("tcpmappings", true);
    server.apply(amb(
        "TCPMapping",
        "apps",
        "tcp1",
        json!({"port": 9000, "service": "db:5432"}),
    ));
    let state = source
        .until("the installed CRD's objects", |s| {
            has(s, "TCPMapping", "apps", "tcp1")
        })
        .await;
    assert!(state.errors.is_empty(), "{:?}", state.errors);
}

#[tokio::test]
async fn rbac_refusal_names_verb_and_resource_and_keeps_readiness_pending() {
    let server = FakeApiServer::start().await;
    server.set_forbidden("secrets", true);
    server.apply(mapping("apps", "m1", "/a/"));
    let mut source = start(&server, &SourceSettings::default());
    source
        .until_status("the 403", |s| {
            s["secrets"]
                == WatchStatus::Forbidden("forbidden: cannot list secrets in all namespaces".into())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(source.generation(), 0, "nothing published without secrets");
    assert_eq!(source.ready.pending(), vec!["kubernetes synced"]);

    server.set_forbidden("secrets", false);
    source
        .until("synced once allowed", |s| has(s, "Mapping", "apps", "m1"))
        .await;
    assert!(source.ready.is_ready());
}

#[tokio::test]
async fn rbac_refusal_in_one_namespace_names_it() {
    let server = FakeApiServer::start().await;
    server.set_forbidden("mappings", true);
    let settings = SourceSettings {
        single_namespace: true,
        namespace: Some("edge".into()),
        ..SourceSettings::default()
    };
    let mut source = start(&server, &settings);
    source
        .until_status("the 403", |s| {
            s["mappings.getambassador.io"]
                == WatchStatus::Forbidden(
                    "forbidden: cannot list mappings.getambassador.io in namespace \"edge\"".into(),
                )
        })
        .await;
    assert!(!source.ready.is_ready());
}

#[tokio::test]
async fn slow_initial_list_publishes_nothing_until_complete() {
    let server = FakeApiServer::start().await;
    server.hold_lists("endpointslices", true);
    server.apply(mapping("apps", "m1", "/a/"));
    server.apply(slice("apps", "backend-1", &["10.0.0.1"]));
    let mut source = start(&server, &SourceSettings::default());
    // Every other watch has listed and is watching; the EndpointSlice list is still held.
    let others = async {
        while server.count("mappings", true) == 0 || server.count("secrets", true) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, others)
        .await
        .expect("other watches started");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(source.generation(), 0, "published from a half-synced state");
    assert_eq!(source.ready.pending(), vec!["kubernetes synced"]);

    server.hold_lists("endpointslices", false);
    let state = source
        .until("the full state", |s| s.objects.len() == 2)
        .await;
    assert_eq!(state.generation, 1, "one publication for the initial sync");
    assert!(has(&state, "EndpointSlice", "apps", "backend-1"));
    assert!(source.ready.is_ready());
}

#[tokio::test]
async fn a_burst_of_1000_objects_is_coalesced() {
    let server = FakeApiServer::start().await;
    let settings = SourceSettings::default();
    let timing = Timing {
        debounce: Duration::from_millis(settings.debounce_ms),
        ..fast_timing(settings.debounce_ms)
    };
    let mut source = start_with(server.client(), &settings, timing);
    source
        .until("the empty initial sync", |s| s.objects.is_empty())
        .await;
    let start_generation = source.generation();

    let burst: Vec<Value> = (0..1000)
        .map(|i| {
            mapping(
                &format!("ns{}", i % 7),
                &format!("m{i}"),
                &format!("/p{i}/"),
            )
        })
        .collect();
    server.apply_all(burst);
    let state = source
        .until("all 1000", |s| published_mappings(s).len() == 1000)
        .await;
    let publications = state.generation - start_generation;
    eprintln!("burst publications: {publications}");
    assert!(
        publications <= 10,
        "{publications} publications for one burst"
    );
    assert_eq!(published_mappings(&state), server_mappings(&server));
}

/// A change with none before it in the debounce window is published at once: with a window of
/// a minute (three times the test's wait), only that path can publish it in time. The burst
/// side of the same rule is `publish.rs`'s `a_lone_change_is_published_at_once_and_a_burst_once_quiet`
/// (virtual time) and `a_burst_of_1000_objects_is_coalesced` above.
#[tokio::test]
async fn a_lone_change_is_published_without_waiting_for_the_debounce_window() {
    let server = FakeApiServer::start().await;
    server.apply(mapping("default", "a", "/a/"));
    let mut source = start_with(
        server.client(),
        &SourceSettings::default(),
        fast_timing(60_000),
    );
    let synced = source
        .until("the initial sync", |s| has(s, "Mapping", "default", "a"))
        .await;
    assert_eq!(synced.generation, 1);

    server.apply(mapping("default", "b", "/b/"));
    let state = source
        .until("the lone change", |s| has(s, "Mapping", "default", "b"))
        .await;
    assert_eq!(state.generation, 2);
    assert_eq!(published_mappings(&state), server_mappings(&server));
}

#[tokio::test]
async fn single_namespace_scope_watches_only_that_namespace() {
    let server = FakeApiServer::start().await;
    server.apply_all(one_of_each("edge"));
    server.apply_all(one_of_each("other"));
    let settings = SourceSettings {
        single_namespace: true,
        namespace: Some("edge".into()),
        ..SourceSettings::default()
    };
    let mut source = start(&server, &settings);
    let state = source
        .until("edge", |s| s.objects.len() >= KINDS.len())
        .await;
    assert!(
        keys(&state).iter().all(|(_, ns, _)| ns == "edge"),
        "{:?}",
        keys(&state)
    );
    assert_eq!(keys(&state).len(), KINDS.len());
    for r in server.requests().iter().filter(|r| r.plural.is_some()) {
        assert!(r.path.contains("/namespaces/edge/"), "{}", r.path);
    }
    server.apply(mapping("other", "late", "/late/"));
    server.apply(mapping("edge", "marker", "/m/"));
    let state = source
        .until("the marker", |s| has(s, "Mapping", "edge", "marker"))
        .await;
    assert!(!has(&state, "Mapping", "other", "late"));
}

#[tokio::test]
async fn label_selector_filters_ambassador_resources_only() {
    let server = FakeApiServer::start().await;
    let mut labelled = mapping("apps", "mine", "/mine/");
    labelled["metadata"]["labels"] = json!({"team": "edge"});
    server.apply(labelled.clone());
    server.apply(mapping("apps", "theirs", "/theirs/"));
    server.apply(service("apps", "backend"));
    let settings = SourceSettings {
        label_selector: Some("team=edge".into()),
        ..SourceSettings::default()
    };
    let mut source = start(&server, &settings);
    let state = source
        .until("initial", |s| has(s, "Mapping", "apps", "mine"))
        .await;
    assert_eq!(
        keys(&state),
        [
            key("Mapping", "apps", "mine"),
            key("Service", "apps", "backend")
        ]
        .into()
    );

    // Losing the label removes it; gaining one adds it.
    labelled["metadata"]["labels"] = json!({"team": "other"});
    server.apply(labelled);
    let mut theirs = mapping("apps", "theirs", "/theirs/");
    theirs["metadata"]["labels"] = json!({"team": "edge"});
    server.apply(theirs);
    source
        .until("relabelled", |s| {
            has(s, "Mapping", "apps", "theirs") && !has(s, "Mapping", "apps", "mine")
        })
        .await;
}

#[tokio::test]
async fn a_kubeconfig_file_selects_the_fake_server() {
    let server = FakeApiServer::start().await;
    server.apply(mapping("apps", "m1", "/a/"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path);
    let settings = SourceSettings {
        kubeconfig: Some(path),
        ..SourceSettings::default()
    };
    let client = detect(&settings, &Environment::empty())
        .await
        .unwrap()
        .expect("a kubeconfig selects kubernetes");
    let mut source = start_with(client, &settings, fast_timing(30));
    source
        .until("the mapping", |s| has(s, "Mapping", "apps", "m1"))
        .await;
    let authorized = server.requests().len();
    assert!(authorized > 0);
}

/// The fake API server pages lists as the real one does: `limit` items a page, a continue
/// token while more remain, the first page's resourceVersion on every page; a continue token
/// older than the compacted history is 410 Gone.
#[tokio::test]
async fn lists_are_paged_and_an_expired_continue_is_410() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, ListParams};

    let server = FakeApiServer::start().await;
    server.apply_all((0..5).map(|i| service("apps", &format!("s{i}"))).collect());
    let api: Api<Service> = Api::all(server.client());
    let mut names = vec![];
    let mut token: Option<String> = None;
    let mut versions = BTreeSet::new();
    let mut pages = 0;
    loop {
        let mut params = ListParams::default().limit(2);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await.expect("a page");
        pages += 1;
        assert!(page.items.len() <= 2);
        versions.insert(page.metadata.resource_version.clone());
        names.extend(page.items.iter().filter_map(|s| s.metadata.name.clone()));
        if pages == 1 {
            // A change between pages does not move the list's version.
            server.apply(service("apps", "s9"));
        }
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4", "s9"]);
    assert_eq!(versions.len(), 1, "{versions:?}");

    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("a first page");
    let stale = first.metadata.continue_.expect("a continue token");
    server.expire_history();
    let err = api
        .list(&ListParams::default().limit(2).continue_token(&stale))
        .await
        .expect_err("an expired continue token");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 410, "{status:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

/// kube-runtime lists in pages of 500: 1,200 Mappings arrive through three pages, all of them.
#[tokio::test]
async fn initial_lists_are_read_page_by_page() {
    let server = FakeApiServer::start().await;
    server.apply_all(
        (0..1200)
            .map(|i| mapping(&format!("ns{}", i % 7), &format!("m{i}"), "/p/"))
            .collect(),
    );
    let mut source = start(&server, &SourceSettings::default());
    let state = source
        .until("all 1200", |s| published_mappings(s).len() == 1200)
        .await;
    assert_eq!(published_mappings(&state), server_mappings(&server));
    let pages: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.plural.as_deref() == Some("mappings") && !r.watch)
        .collect();
    assert!(
        pages
            .iter()
            .all(|r| r.query.get("limit").map(String::as_str) == Some("500")),
        "{pages:?}"
    );
    assert!(
        pages
            .iter()
            .filter(|r| r.query.contains_key("continue"))
            .count()
            >= 2,
        "{pages:?}"
    );
}
