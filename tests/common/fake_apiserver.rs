//! A fake Kubernetes API server for tests: real HTTP list/watch on a loopback port, driven by
//! the real kube client (or by `legate` started as a process, through [`FakeApiServer::
//! write_kubeconfig`]).
//!
//! It serves `GET` lists, single objects and watches for the resources legate reads
//! (`/api/v1/...`, `/apis/discovery.k8s.io/v1/...`, `/apis/getambassador.io/v3alpha1/...`,
//! cluster-wide and namespaced) with `labelSelector` (`k=v`, `k!=v`, `k`, `!k`, `k in (..)`,
//! `k notin (..)`) and `fieldSelector` (`a.b=v`, `a.b!=v`) honoured. Lists carry
//! `metadata.resourceVersion` (built-in kinds' items omit `apiVersion`/`kind`, as the real API
//! does); watches stream newline-delimited ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events from
//! `resourceVersion`, replaying the history since then, and answer an ERROR 410 for a version
//! older than the compacted history. An object that starts or stops matching a selector is
//! sent as ADDED/DELETED, as the real API does. Lists honour `limit` and `continue` (kube-runtime
//! lists in pages of 500): each page ends with a continue token naming the list's
//! resourceVersion and the last key, and `remainingItemCount`; every page carries the first
//! page's resourceVersion. Later pages are read from the current objects after that key (a real
//! server reads a snapshot; the watch from the list's version replays whatever changed in
//! between, so a client converges either way). A token whose version is older than the
//! compacted history is answered 410 Gone (`Expired`), as etcd compaction makes the real API
//! do.
//!
//! Scriptable faults: drop every open watch mid-stream, expire the history (410 Gone to open
//! watches and to stale resumes), delay a list, 403 a resource, 404 a CRD (and install it
//! later), go down (refuse every request) and come back. Every request is recorded.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

#[path = "fake_apiserver/selector.rs"]
mod selector;

use selector::Filter;

type Body = BoxBody<Bytes, std::io::Error>;

/// One resource type the server knows.
#[derive(Debug, Clone)]
struct ResourceType {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    installed: bool,
    forbidden: bool,
    list_delay: Duration,
    /// Lists wait while this is true.
    lists_held: watch::Sender<bool>,
}

impl ResourceType {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.into()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn custom(&self) -> bool {
        self.group == "getambassador.io"
    }
}

fn known_types() -> Vec<ResourceType> {
    let t = |group, version, kind, plural| ResourceType {
        group,
        version,
        kind,
        plural,
        installed: true,
        forbidden: false,
        list_delay: Duration::ZERO,
        lists_held: watch::Sender::new(false),
    };
    let amb = "getambassador.io";
    vec![
        t("", "v1", "Service", "services"),
        t("", "v1", "Secret", "secrets"),
        t("", "v1", "ConfigMap", "configmaps"),
        t("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        t(amb, "v3alpha1", "Mapping", "mappings"),
        t(amb, "v3alpha1", "Host", "hosts"),
        t(amb, "v3alpha1", "Listener", "listeners"),
        t(amb, "v3alpha1", "TLSContext", "tlscontexts"),
        t(amb, "v3alpha1", "Module", "modules"),
        t(amb, "v3alpha1", "TCPMapping", "tcpmappings"),
        // AuthService and RateLimitService
        t(amb, "v3alpha1", "AuthService", "authservices"),
        t(amb, "v3alpha1", "RateLimitService", "ratelimitservices"),
        // LogService / TracingService.
        t(amb, "v3alpha1", "LogService", "logservices"),
        t(amb, "v3alpha1", "TracingService", "tracingservices"),
    ]
}

/// A change, kept in the history for resumed watches.
#[derive(Debug)]
struct Change {
    rv: u64,
    plural: &'static str,
    /// Before and after; `after` is `None` for a deletion (then `before` carries the deletion
    /// resourceVersion).
    before: Option<Value>,
    after: Option<Value>,
}

#[derive(Debug, Clone)]
enum Broadcast {
    Change(Arc<Change>),
    /// History compacted: open watches get ERROR 410 and end.
    Gone,
    Bookmark,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub watch: bool,
    /// The resource's plural, if the path named one.
    pub plural: Option<String>,
}

struct Store {
    types: Vec<ResourceType>,
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(&'static str, String, String), Value>,
    rv: u64,
    history: Vec<Arc<Change>>,
    /// Resuming from a version older than this is 410 Gone.
    oldest: u64,
    requests: Vec<RequestRecord>,
    down: bool,
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Broadcast>,
    /// Bumped to cut every open watch (and, when down, every connection).
    cut: watch::Sender<u64>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake API server; stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl FakeApiServer {
    /// Listens on 127.0.0.1, port 0; every resource type installed, no objects.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                types: known_types(),
                objects: BTreeMap::new(),
                rv: 1000,
                history: Vec::new(),
                oldest: 0,
                requests: Vec::new(),
                down: false,
            }),
            events: broadcast::channel(1 << 16).0,
            cut: watch::Sender::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(accept(listener, shared.clone(), shutdown_rx));
        FakeApiServer {
            shared,
            addr,
            shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server (the real one, over HTTP).
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("url"));
        kube::Client::try_from(config).expect("kube client")
    }

    /// Writes a kubeconfig pointing at this server, for `legate --kubeconfig` or `KUBECONFIG`.
    pub fn write_kubeconfig(&self, path: &Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             users:\n- name: fake\n  user:\n    token: fake-token\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    /// Creates or replaces an object (found by `apiVersion`/`kind`); returns its new
    /// resourceVersion.
    pub fn apply(&self, object: Value) -> u64 {
        self.apply_all(vec![object])
    }

    /// Applies many objects at once (one resourceVersion each); returns the last one.
    pub fn apply_all(&self, objects: Vec<Value>) -> u64 {
        let mut store = self.shared.store();
        for object in objects {
            let change = store.apply(object);
            let _ = self.shared.events.send(Broadcast::Change(change));
        }
        store.rv
    }

    /// Deletes an object; false if there was none.
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) -> bool {
        let mut store = self.shared.store();
        match store.delete(plural, namespace, name) {
            Some(change) => {
                let _ = self.shared.events.send(Broadcast::Change(change));
                true
            }
            None => false,
        }
    }

    /// Current objects of a resource type.
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        let store = self.shared.store();
        store
            .objects
            .iter()
            .filter(|((p, _, _), _)| *p == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    /// Installs or removes a CRD (or any type): a removed type answers 404 and loses its
    /// objects; its open watches are cut.
    pub fn set_installed(&self, plural: &str, installed: bool) {
        let mut store = self.shared.store();
        store.ty_mut(plural).installed = installed;
        if !installed {
            store.objects.retain(|(p, _, _), _| *p != plural);
            drop(store);
            self.drop_watches();
        }
    }

    /// Makes every request for the type answer 403 (RBAC), or lifts it.
    pub fn set_forbidden(&self, plural: &str, forbidden: bool) {
        self.shared.store().ty_mut(plural).forbidden = forbidden;
    }

    /// Delays every list of the type by `delay`.
    pub fn set_list_delay(&self, plural: &str, delay: Duration) {
        self.shared.store().ty_mut(plural).list_delay = delay;
    }

    /// Holds every list of the type until `hold_lists(plural, false)`: a slow initial list
    /// whose end the test decides.
    pub fn hold_lists(&self, plural: &str, held: bool) {
        self.shared
            .store()
            .ty_mut(plural)
            .lists_held
            .send_replace(held);
    }

    /// Cuts every open watch mid-stream (the connection is aborted, not ended cleanly).
    pub fn drop_watches(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Forgets the history: open watches get an ERROR 410 event, and resuming from any version
    /// seen so far is 410 Gone, so clients must relist.
    pub fn expire_history(&self) {
        let mut store = self.shared.store();
        store.oldest = store.rv + 1;
        store.history.clear();
        let _ = self.shared.events.send(Broadcast::Gone);
    }

    /// Sends a BOOKMARK to every open watch that asked for them.
    pub fn bookmark(&self) {
        let _ = self.shared.events.send(Broadcast::Bookmark);
    }

    /// Down: every connection is refused (closed at once) and open watches are cut. Up again
    /// with `false`; the objects and history are kept.
    pub fn set_down(&self, down: bool) {
        self.shared.store().down = down;
        if down {
            self.drop_watches();
        }
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.store().requests.clone()
    }

    /// Number of list (`watch == false`) or watch requests for a resource type.
    pub fn count(&self, plural: &str, watch: bool) -> usize {
        self.shared
            .store()
            .requests
            .iter()
            .filter(|r| r.plural.as_deref() == Some(plural) && r.watch == watch)
            .count()
    }
}

impl Store {
    fn ty(&self, plural: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.plural == plural)
    }

    fn ty_mut(&mut self, plural: &str) -> &mut ResourceType {
        self.types
            .iter_mut()
            .find(|t| t.plural == plural)
            .unwrap_or_else(|| panic!("fake apiserver: unknown resource {plural}"))
    }

    fn apply(&mut self, mut object: Value) -> Arc<Change> {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let ty = self
            .types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .unwrap_or_else(|| panic!("fake apiserver: unknown kind {api_version} {kind}"))
            .clone();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("object has metadata.name")
            .to_string();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        self.rv += 1;
        let rv = self.rv;
        let key = (ty.plural, namespace.clone(), name.clone());
        let before = self.objects.get(&key).cloned();
        let uid = before
            .as_ref()
            .and_then(|b| b["metadata"]["uid"].as_str().map(String::from))
            .unwrap_or_else(|| format!("uid-{rv}"));
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(namespace);
        meta["resourceVersion"] = json!(rv.to_string());
        meta["uid"] = json!(uid);
        meta["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        self.objects.insert(key, object.clone());
        self.record(rv, ty.plural, before, Some(object))
    }

    fn delete(&mut self, plural: &str, namespace: &str, name: &str) -> Option<Arc<Change>> {
        let plural = self.ty(plural)?.plural;
        let mut before = self
            .objects
            .remove(&(plural, namespace.to_string(), name.to_string()))?;
        self.rv += 1;
        let rv = self.rv;
        before["metadata"]["resourceVersion"] = json!(rv.to_string());
        Some(self.record(rv, plural, Some(before), None))
    }

    fn record(
        &mut self,
        rv: u64,
        plural: &'static str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Arc<Change> {
        let change = Arc::new(Change {
            rv,
            plural,
            before,
            after,
        });
        self.history.push(change.clone());
        change
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        if shared.store().down {
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        let mut cut = shared.cut.subscribe();
        tokio::spawn(async move {
            let for_service = shared.clone();
            let service = hyper::service::service_fn(move |req| {
                let shared = for_service.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Going down closes every connection, idle or not.
            let down = async {
                while cut.changed().await.is_ok() {
                    if shared.store().down {
                        return;
                    }
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
                () = down => {}
            }
        });
    }
}

/// What a path names.
struct Target {
    plural: String,
    group: String,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        _ => return None,
    };
    Some(Target {
        plural: plural.into(),
        group: group.into(),
        version: version.into(),
        namespace: namespace.map(String::from),
        name: name.map(String::from),
    })
}

fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    json_response(code, &body)
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut response = Response::new(Full::new(bytes).map_err(|e| match e {}).boxed());
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    response
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let watch = matches!(query.get("watch").map(String::as_str), Some("1" | "true"));
    let target = parse_path(&path);
    shared.store().requests.push(RequestRecord {
        method: req.method().to_string(),
        path: path.clone(),
        query: query.clone(),
        watch,
        plural: target.as_ref().map(|t| t.plural.clone()),
    });
    if shared.store().down {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "down".into(),
        );
    }
    if req.method() != hyper::Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "read only".into(),
        );
    }
    let Some(target) = target else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
        );
    };
    let ty = {
        let store = shared.store();
        store
            .types
            .iter()
            .find(|t| {
                t.plural == target.plural && t.group == target.group && t.version == target.version
            })
            .cloned()
    };
    let Some(ty) = ty.filter(|t| t.installed) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
        );
    };
    if ty.forbidden {
        let verb = if watch {
            "watch"
        } else if target.name.is_some() {
            "get"
        } else {
            "list"
        };
        let scope = match &target.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".into(),
        };
        let group = if ty.group.is_empty() {
            String::new()
        } else {
            format!(" in API group \"{}\"", ty.group)
        };
        let message = format!(
            "{} is forbidden: User \"system:serviceaccount:default:legate\" cannot {verb} resource \"{}\"{group} {scope}",
            ty.plural, ty.plural
        );
        return status(StatusCode::FORBIDDEN, "Forbidden", message);
    }
    let filter = match Filter::new(&target, &query) {
        Ok(filter) => filter,
        Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", message),
    };
    if watch {
        return start_watch(&shared, &ty, filter, &query);
    }
    if !ty.list_delay.is_zero() {
        tokio::time::sleep(ty.list_delay).await;
    }
    let _ = ty.lists_held.subscribe().wait_for(|held| !held).await;
    let store = shared.store();
    if let Some(name) = &target.name {
        let ns = target.namespace.clone().unwrap_or_default();
        return match store.objects.get(&(ty.plural, ns, name.clone())) {
            Some(object) => json_response(StatusCode::OK, object),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} \"{name}\" not found", ty.plural),
            ),
        };
    }
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        None => (store.rv, None),
        Some(token) => match parse_continue(token) {
            None => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "invalid continue token".into(),
                );
            }
            Some((rv, _)) if rv < store.oldest => {
                return status(
                    StatusCode::GONE,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list \
                     result. You can start a new list without the continue parameter."
                        .into(),
                );
            }
            Some((rv, key)) => (rv, Some(key)),
        },
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut matching = store
        .objects
        .iter()
        .filter(|((p, ns, name), v)| {
            *p == ty.plural
                && after
                    .as_ref()
                    .is_none_or(|(a_ns, a_name)| (ns, name) > (a_ns, a_name))
                && filter.matches(v)
        })
        .peekable();
    let mut items = Vec::new();
    let mut last = None;
    for ((_, ns, name), v) in matching.by_ref() {
        items.push(list_item(&ty, v));
        last = Some((ns.clone(), name.clone()));
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
    }
    let remaining = matching.count();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0
        && let Some((ns, name)) = last
    {
        metadata["continue"] = json!(continue_token(list_rv, &ns, &name));
        metadata["remainingItemCount"] = json!(remaining);
    }
    let body = json!({
        "kind": format!("{}List", ty.kind),
        "apiVersion": ty.api_version(),
        "metadata": metadata,
        "items": items,
    });
    json_response(StatusCode::OK, &body)
}

/// `<rv>.<hex of namespace/name>`: opaque to clients, as the real API's tokens are.
fn continue_token(rv: u64, ns: &str, name: &str) -> String {
    let key: String = format!("{ns}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{rv}.{key}")
}

fn parse_continue(token: &str) -> Option<(u64, (String, String))> {
    let (rv, hex) = token.split_once('.')?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let key = String::from_utf8(bytes).ok()?;
    let (ns, name) = key.split_once('/')?;
    Some((rv.parse().ok()?, (ns.to_string(), name.to_string())))
}

/// Built-in kinds' list items carry no `apiVersion`/`kind`, as with the real API server.
fn list_item(ty: &ResourceType, object: &Value) -> Value {
    let mut item = object.clone();
    if !ty.custom()
        && let Some(map) = item.as_object_mut()
    {
        map.remove("apiVersion");
        map.remove("kind");
    }
    item
}

fn start_watch(
    shared: &Arc<Shared>,
    ty: &ResourceType,
    filter: Filter,
    query: &BTreeMap<String, String>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(256);
    let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let store = shared.store();
    let mut initial = Vec::new();
    let gone = from != 0 && from < store.oldest;
    if gone {
        initial.push(gone_event(from, store.oldest));
    } else if from == 0 {
        // No version: the current objects as ADDED, then changes.
        for ((p, _, _), v) in &store.objects {
            if *p == ty.plural && filter.matches(v) {
                initial.push(event("ADDED", v));
            }
        }
    } else {
        for change in store
            .history
            .iter()
            .filter(|c| c.rv > from && c.plural == ty.plural)
        {
            initial.extend(filter.event_for(change));
        }
    }
    let events = shared.events.subscribe();
    let mut cut = shared.cut.subscribe();
    cut.mark_unchanged();
    let last_rv = store.rv.max(from);
    drop(store);
    let ty = ty.clone();
    tokio::spawn(async move {
        let mut w = Watcher {
            tx,
            ty,
            filter,
            bookmarks,
            last_rv,
        };
        for e in initial {
            if !w.send(e).await {
                return;
            }
        }
        if gone {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        w.stream(events, cut, deadline).await;
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = Response::new(BodyExt::boxed(body));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    response
}

struct Watcher {
    tx: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    ty: ResourceType,
    filter: Filter,
    bookmarks: bool,
    /// The newest global resourceVersion this watch has seen, for bookmarks.
    last_rv: u64,
}

impl Watcher {
    async fn send(&self, event: Value) -> bool {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        self.tx
            .send(Ok(Frame::data(Bytes::from(line))))
            .await
            .is_ok()
    }

    async fn stream(
        &mut self,
        mut events: broadcast::Receiver<Broadcast>,
        mut cut: watch::Receiver<u64>,
        deadline: Option<tokio::time::Instant>,
    ) {
        let far = tokio::time::Instant::now() + Duration::from_secs(24 * 3600);
        let timeout = tokio::time::sleep_until(deadline.unwrap_or(far));
        tokio::pin!(timeout);
        loop {
            let next = tokio::select! {
                next = events.recv() => next,
                _ = cut.changed() => {
                    // Abort the connection mid-stream.
                    let _ = self.tx.send(Err(std::io::Error::other("connection cut"))).await;
                    return;
                }
                () = &mut timeout => return,
            };
            let ok = match next {
                Ok(Broadcast::Change(change)) => {
                    self.last_rv = self.last_rv.max(change.rv);
                    match (change.plural == self.ty.plural)
                        .then(|| self.filter.event_for(&change))
                        .flatten()
                    {
                        Some(e) => self.send(e).await,
                        None => true,
                    }
                }
                Ok(Broadcast::Gone) => {
                    let _ = self.send(gone_event(self.last_rv, self.last_rv + 1)).await;
                    return;
                }
                Ok(Broadcast::Bookmark) if self.bookmarks => {
                    let bookmark = json!({
                        "type": "BOOKMARK",
                        "object": {
                            "kind": self.ty.kind, "apiVersion": self.ty.api_version(),
                            "metadata": {"resourceVersion": self.last_rv.to_string()},
                        },
                    });
                    let mut line = serde_json::to_vec(&bookmark).unwrap_or_default();
                    line.push(b'\n');
                    self.tx
                        .send(Ok(Frame::data(Bytes::from(line))))
                        .await
                        .is_ok()
                }
                Ok(Broadcast::Bookmark) => true,
                Err(_) => {
                    // Lagged or closed: end; the client resumes from its last version.
                    let _ = self
                        .tx
                        .send(Err(std::io::Error::other("watch lagged")))
                        .await;
                    return;
                }
            };
            if !ok {
                return;
            }
        }
    }
}

fn event(kind: &str, object: &Value) -> Value {
    json!({"type": kind, "object": object})
}

fn gone_event(from: u64, oldest: u64) -> Value {
    json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {from} ({oldest})"),
        "reason": "Expired", "code": 410,
    }})
}
