//! Tests of the file source: parsing and origins, errors as data, ordering, the directory
//! layouts it must understand, and hot reload through a real `notify` watch.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::api::Origin;
use crate::readiness::Ready;
use crate::source::SourceState;

const WAIT: Duration = Duration::from_secs(15);

fn mapping(name: &str, prefix: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata:\n  name: {name}\n  \
         namespace: default\nspec:\n  prefix: {prefix}\n  service: {name}:80\n"
    )
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn load(dir: &Path) -> SourceState {
    load_dir(dir, &LoadOptions::default()).unwrap()
}

fn origin(file: &str, doc: usize) -> Origin {
    Origin::file(file, doc)
}

fn names(state: &SourceState) -> Vec<String> {
    state.objects.iter().map(|o| o.name().to_string()).collect()
}

fn origins(state: &SourceState) -> Vec<String> {
    state.objects.iter().map(|o| o.origin.to_string()).collect()
}

// ---- one-shot loading -------------------------------------------------------------------

#[test]
fn reads_multi_document_yaml_json_and_lists_with_origins() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "# leading comment\n---\n{}---\n---\n# only a comment\n---\n{}",
        mapping("a", "/a/"),
        mapping("b", "/b/")
    );
    write(dir.path(), "one.yaml", &yaml);
    let json = r#"{"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
                   "metadata": {"name": "h", "namespace": "default"}, "spec": {"hostname": "*"}}"#;
    write(dir.path(), "two.JSON", json);
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping", "metadata": {"name": "l1"}},
        {"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping", "metadata": {"name": "l2"}}
    ]}"#;
    write(dir.path(), "three.json", list);
    let yaml_list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: x/v1\n  kind: Y\n  metadata: {name: y}\n";
    write(dir.path(), "four.yml", yaml_list);

    let state = load(dir.path());
    assert_eq!(state.errors, vec![]);
    assert_eq!(state.generation, 1);
    assert_eq!(names(&state), ["y", "a", "b", "l1", "l2", "h"]);
    // Empty documents count (as YAML does) but yield nothing.
    let expected = [
        "four.yml#1",
        "one.yaml#1",
        "one.yaml#4",
        "three.json#1",
        "three.json#1",
        "two.JSON#1",
    ];
    assert_eq!(origins(&state), expected);
    assert_eq!(state.objects[5].kind(), "Host");
    assert_eq!(state.objects[1].value.to_value()["spec"]["prefix"], "/a/");
}

#[test]
fn a_bad_document_is_an_error_and_everything_else_loads() {
    let dir = tempfile::tempdir().unwrap();
    let broken =
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: bad\nspec: [\n";
    let text = format!(
        "{}---\n{broken}---\n{}",
        mapping("a", "/a/"),
        mapping("c", "/c/")
    );
    write(dir.path(), "mixed.yaml", &text);
    write(dir.path(), "other.yaml", &mapping("d", "/d/"));

    let state = load(dir.path());
    assert_eq!(names(&state), ["a", "c", "d"]);
    assert_eq!(
        origins(&state),
        ["mixed.yaml#1", "mixed.yaml#3", "other.yaml#1"]
    );
    assert_eq!(state.errors.len(), 1, "{:?}", state.errors);
    let error = &state.errors[0];
    assert_eq!(error.origin, origin("mixed.yaml", 2));
    assert!(!error.warning);
    // The line number is the file's, not the document's (the broken flow mapping starts on
    // line 12 of the file).
    assert!(error.message.contains("line 1"), "{}", error.message);
    let line: usize = error
        .message
        .split("line ")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(line >= 12, "{}", error.message);
}

#[test]
fn documents_without_api_version_or_kind_or_not_mappings_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = "kind: Mapping\nmetadata: {name: noversion, namespace: ns}\n---\n\
                apiVersion: getambassador.io/v3alpha1\nmetadata: {name: nokind}\n---\n\
                - just\n- a list\n---\nplain string\n---\n\
                apiVersion: v1\nkind: X\nmetadata: [1]\n---\n\
                apiVersion: v1\nkind: List\nitems:\n- {kind: Y}\n- apiVersion: v1\n  kind: Z\n";
    write(dir.path(), "e.yaml", text);
    write(dir.path(), "bad.json", "{\"apiVersion\": \"v1\", ");

    let state = load(dir.path());
    assert_eq!(names(&state), [""]);
    assert_eq!(state.objects[0].kind(), "Z");
    let summary: Vec<(String, String, Option<&str>)> = state
        .errors
        .iter()
        .map(|e| (e.origin.to_string(), e.name.clone(), e.field.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("bad.json#1".to_string(), String::new(), None),
            ("e.yaml#1".into(), "ns/noversion".into(), Some("apiVersion")),
            ("e.yaml#2".into(), "default/nokind".into(), Some("kind")),
            ("e.yaml#3".into(), String::new(), None),
            ("e.yaml#4".into(), String::new(), None),
            ("e.yaml#5".into(), String::new(), Some("metadata")),
            ("e.yaml#6".into(), String::new(), Some("apiVersion")),
        ]
    );
    assert!(state.errors[3].message.contains("a list, not a mapping"));
    assert!(state.errors[6].message.starts_with("items[0]: "));
    assert_eq!(state.errors[2].kind, "");
    assert_eq!(state.errors[1].kind, "Mapping");
    // Display is one line naming file and document.
    assert!(
        state.errors[1]
            .to_string()
            .starts_with("e.yaml#1: Mapping ns/noversion: apiVersion: ")
    );
}

#[test]
fn missing_namespace_defaults_to_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\n---\n\
                apiVersion: v1\nkind: C\nmetadata: {name: c, namespace: other}\n";
    write(dir.path(), "ns.yaml", text);
    let options = LoadOptions {
        default_namespace: "edge".into(),
        env: None,
    };
    let state = load_dir(dir.path(), &options).unwrap();
    let namespaces: Vec<_> = state.objects.iter().map(|o| o.namespace()).collect();
    assert_eq!(namespaces, [Some("edge"), Some("edge"), Some("other")]);
    assert_eq!(load(dir.path()).objects[0].namespace(), Some("default"));
}

#[test]
fn environment_variables_are_substituted_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let text = "apiVersion: v1\nkind: Mapping\nmetadata: {name: m}\n\
                spec: {service: \"${UPSTREAM}:$PORT\", regex: \"^/a$\", other: $UNSET}\n";
    write(dir.path(), "env.yaml", text);
    let env = BTreeMap::from([
        ("UPSTREAM".to_string(), "backend".to_string()),
        ("PORT".to_string(), "9000".to_string()),
    ]);
    let options = LoadOptions {
        env: Some(env),
        ..LoadOptions::default()
    };
    let spec = &load_dir(dir.path(), &options).unwrap().objects[0]
        .value
        .to_value()["spec"];
    assert_eq!(spec["service"], "backend:9000");
    assert_eq!(spec["regex"], "^/a$");
    assert_eq!(spec["other"], "$UNSET");
    let plain = &load(dir.path()).objects[0].value.to_value()["spec"];
    assert_eq!(plain["service"], "${UPSTREAM}:$PORT");
}

#[test]
fn order_is_by_relative_path_then_document_and_other_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    for (rel, name) in [
        ("b.yaml", "b"),
        ("a/z.yaml", "az"),
        ("a.yaml", "a"),
        ("c/d/e.yml", "cde"),
    ] {
        write(dir.path(), rel, &mapping(name, "/"));
    }
    write(dir.path(), "README.md", "not config");
    write(dir.path(), "x.yaml.bak", &mapping("bak", "/"));
    write(dir.path(), ".hidden.yaml", &mapping("hidden", "/"));
    write(dir.path(), ".git/config.yaml", &mapping("git", "/"));
    std::os::unix::fs::symlink("/nonexistent/target.yaml", dir.path().join("dangling.yaml"))
        .unwrap();

    let first = load(dir.path());
    assert_eq!(names(&first), ["az", "a", "b", "cde"]);
    assert_eq!(first.errors, vec![]);
    assert_eq!(load(dir.path()), first);
}

/// A Kubernetes ConfigMap volume: real files in a timestamped hidden directory, `..data`
/// pointing at it, and visible symlinks through `..data`.
fn configmap(dir: &Path, version: &str, files: &[(&str, String)]) {
    let real = dir.join(version);
    fs::create_dir(&real).unwrap();
    for (name, text) in files {
        fs::write(real.join(name), text).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
}

#[test]
fn configmap_volumes_are_read_once_through_their_visible_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    configmap(
        dir.path(),
        "..2024_01_01",
        &[("m.yaml", mapping("m", "/m/"))],
    );
    let state = load(dir.path());
    assert_eq!(origins(&state), ["m.yaml#1"]);
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = load_dir(&missing, &LoadOptions::default()).unwrap_err();
    assert!(matches!(error, SourceError::Missing { .. }));
    assert!(error.to_string().contains("does not exist"), "{error}");
    write(dir.path(), "f.yaml", "");
    let error = load_dir(&dir.path().join("f.yaml"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(error, SourceError::NotADirectory { .. }));
    let ready = Ready::new();
    let source = FileSource::new(missing, Duration::from_millis(50), ready.guard("g"));
    assert!(matches!(source.spawn(), Err(SourceError::Missing { .. })));
}

/// Issue 10: a change costs what it touched. The objects of a re-read file that did not
/// change are the ones already held (the same `Arc`'d documents, so the next state shares them
/// with the last), and a rewrite whose objects are all unchanged (a comment added) is no change.
#[test]
fn a_re_read_file_keeps_its_unchanged_objects_and_a_comment_is_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let three = |second: &str| {
        [
            mapping("a", "/a/"),
            mapping("b", second),
            mapping("c", "/c/"),
        ]
        .join("---\n")
    };
    write(dir.path(), "a.yaml", &three("/b/"));
    write(dir.path(), "z.yaml", &mapping("z", "/z/"));
    let options = LoadOptions::default();
    let mut cache = scan::Cache::default();
    let refresh = |cache: &mut scan::Cache| {
        let forced = BTreeSet::from([PathBuf::from("a.yaml")]);
        cache.refresh(dir.path(), &forced, false, &options, Duration::ZERO)
    };
    assert!(refresh(&mut cache).changed);
    let before = cache.objects();
    assert_eq!(before.len(), 4);
    let shared = |now: &[crate::api::RawObject]| -> Vec<bool> {
        before
            .iter()
            .zip(now)
            .map(|(b, n)| Arc::ptr_eq(&b.value, &n.value))
            .collect()
    };

    write(
        dir.path(),
        "a.yaml",
        &format!("# a comment\n{}", three("/b/")),
    );
    assert!(!refresh(&mut cache).changed, "a comment is no change");
    assert_eq!(shared(&cache.objects()), [true; 4]);

    write(dir.path(), "a.yaml", &three("/b2/"));
    assert!(refresh(&mut cache).changed);
    let after = cache.objects();
    assert_eq!(shared(&after), [true, false, true, true]);
    assert_eq!(after[1].value.to_value()["spec"]["prefix"], "/b2/");

    // A document inserted before the others moves their origins: every one of them changed.
    write(
        dir.path(),
        "a.yaml",
        &format!("{}---\n{}", mapping("n", "/n/"), three("/b2/")),
    );
    assert!(refresh(&mut cache).changed);
    assert_eq!(cache.objects().len(), 5);
    assert_eq!(cache.objects()[4].origin, origin("z.yaml", 1));
}

/// A file re-read with the content it had (racy, so re-read by the next refresh, or named by a
/// watch event) is hashed, not parsed again: at start every file of a freshly written
/// directory is racy, and the first change paid for parsing them all a second time
/// (BENCHMARKS.md, issue 10). A changed file is parsed; a known-broken file with unchanged
/// content stays as it was, errors included.
#[test]
fn an_unchanged_re_read_parses_nothing() {
    use std::sync::atomic::Ordering;
    let parses = || scan::PARSES.load(Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    write(dir.path(), "b.yaml", &mapping("b", "/b/"));
    write(dir.path(), "bad.yaml", "kind: [");
    let options = LoadOptions::default();
    let mut cache = scan::Cache::default();
    let refresh = |cache: &mut scan::Cache, forced: &[&str]| {
        let forced = forced.iter().map(PathBuf::from).collect::<BTreeSet<_>>();
        cache.refresh(dir.path(), &forced, false, &options, Duration::ZERO)
    };
    let start = parses();
    assert!(refresh(&mut cache, &[]).changed);
    assert_eq!(parses() - start, 3, "the first refresh parses every file");
    let (objects, errors) = (cache.objects(), cache.errors());
    assert_eq!((objects.len(), errors.len()), (2, 1));

    // Just written, so racy: all three are read again, and none is parsed.
    let start = parses();
    assert!(!refresh(&mut cache, &["a.yaml"]).changed);
    assert_eq!(parses() - start, 0, "unchanged content is not parsed again");
    assert_eq!(cache.errors(), errors);
    let kept = cache.objects();
    assert!(
        objects
            .iter()
            .zip(&kept)
            .all(|(o, k)| Arc::ptr_eq(&o.value, &k.value))
    );

    write(dir.path(), "b.yaml", &mapping("b", "/b2/"));
    let start = parses();
    assert!(refresh(&mut cache, &["b.yaml"]).changed);
    assert_eq!(parses() - start, 1, "only the changed file is parsed");
    assert_eq!(
        cache.objects()[1].value.to_value()["spec"]["prefix"],
        "/b2/"
    );
}

// ---- watching -------------------------------------------------------------------------------

struct Watched {
    _ready: Ready,
    rx: Subscription,
    progress: tokio::sync::watch::Receiver<Progress>,
}

fn watch(dir: &Path, debounce_ms: u64) -> (Watched, Ready) {
    watch_with(dir, Timing::new(Duration::from_millis(debounce_ms)))
}

fn watch_with(dir: &Path, timing: Timing) -> (Watched, Ready) {
    let ready = Ready::new();
    let guard = ready.guard(crate::source::guard_name("file"));
    let mut source = FileSource::new(dir, timing.debounce, guard);
    source.timing = timing;
    let progress = source.progress.subscribe();
    let rx = source.spawn().unwrap();
    (
        Watched {
            _ready: ready.clone(),
            rx,
            progress,
        },
        ready,
    )
}

/// Timing for the mid-write tests: a broken file counts as possibly mid-write for a minute and
/// is re-read up to 1,000 times, so the mid-write rule holds however slowly the test's writer
/// (on a loaded machine) completes the file. The rule itself is what is tested, not its
/// default windows.
fn patient(debounce_ms: u64) -> Timing {
    let mut timing = Timing::new(Duration::from_millis(debounce_ms));
    timing.settle = Duration::from_secs(60);
    timing.retries = 1_000;
    timing
}

impl Watched {
    async fn until(
        &mut self,
        what: &str,
        pred: impl FnMut(&SourceState) -> bool,
    ) -> Arc<SourceState> {
        let mut pred = pred;
        let found = tokio::time::timeout(WAIT, self.rx.wait_for(|s| pred(s))).await;
        let found = found.map(|r| r.map(|s| s.clone()));
        match found {
            Ok(Ok(state)) => state,
            _ => panic!(
                "timed out waiting for {what}; last state {:#?}",
                self.rx.borrow()
            ),
        }
    }

    fn generation(&self) -> u64 {
        self.rx.borrow().generation
    }

    /// Waits until the watch loop's progress satisfies `pred`.
    async fn until_progress(&mut self, what: &str, pred: impl FnMut(&Progress) -> bool) {
        let mut pred = pred;
        let found = tokio::time::timeout(WAIT, self.progress.wait_for(|p| pred(p)))
            .await
            .is_ok_and(|r| r.is_ok());
        if !found {
            panic!(
                "timed out waiting for {what}; progress {:#?}",
                self.progress.borrow()
            );
        }
    }

    /// Waits until the start-up rescan (asked for once the watch is set up) has been done, so
    /// that every later publication is the test's.
    async fn until_started(&mut self) {
        self.until_progress("the start-up rescan", |p| p.scans >= 2)
            .await;
    }

    /// Waits until some scan found `file` unsettled (read while possibly mid-write).
    async fn until_unsettled(&mut self, file: &str) {
        let what = format!("{file} found unsettled");
        self.until_progress(&what, |p| p.unsettled.iter().any(|f| f == Path::new(file)))
            .await;
    }
}

#[tokio::test]
async fn first_load_releases_the_readiness_guard() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let (mut w, ready) = watch(dir.path(), 50);
    let state = w.until("first load", |s| s.is_synced()).await;
    assert_eq!(names(&state), ["a"]);
    tokio::time::timeout(WAIT, async {
        while !ready.is_ready() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn creating_modifying_and_deleting_files_is_published() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let (mut w, _ready) = watch(dir.path(), 50);
    w.until("first load", |s| names(s) == ["a"]).await;

    write(dir.path(), "sub/b.yaml", &mapping("b", "/b/"));
    w.until("b created", |s| names(s) == ["a", "b"]).await;

    write(dir.path(), "a.yaml", &mapping("a", "/changed/"));
    let state = w
        .until("a modified", |s| {
            s.objects[0].value.to_value()["spec"]["prefix"] == "/changed/"
        })
        .await;
    assert_eq!(names(&state), ["a", "b"]);

    write(
        dir.path(),
        "a.yaml",
        "apiVersion: v1\nkind: Mapping\nmetadata: {name: a\n",
    );
    let state = w.until("a broken", |s| !s.errors.is_empty()).await;
    assert_eq!(names(&state), ["b"]);
    assert_eq!(state.errors[0].origin, origin("a.yaml", 1));

    fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let state = w.until("a deleted", |s| s.errors.is_empty()).await;
    assert_eq!(names(&state), ["b"]);

    fs::remove_dir_all(dir.path().join("sub")).unwrap();
    w.until("sub deleted", |s| s.objects.is_empty()).await;
}

#[tokio::test]
async fn a_burst_of_writes_is_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _ready) = watch(dir.path(), 200);
    let start = w.until("first load", |s| s.is_synced()).await.generation;
    for i in 0..100 {
        write(
            dir.path(),
            &format!("m{i:03}.yaml"),
            &mapping(&format!("m{i}"), "/"),
        );
    }
    let state = w.until("all 100", |s| s.objects.len() == 100).await;
    assert_eq!(state.errors, vec![]);
    let publications = state.generation - start;
    assert!(
        publications <= 5,
        "{publications} publications for one burst"
    );
}

#[tokio::test]
async fn a_lone_change_is_served_without_waiting_for_the_debounce_window() {
    let dir = tempfile::tempdir().unwrap();
    // A debounce window far longer than the test waits: only the lone-change path can pass.
    let (mut w, _ready) = watch(dir.path(), 3_600_000);
    w.until("first load", |s| s.is_synced()).await;
    // Written beside the watched directory and renamed in, so no scan can catch the file
    // half-written: that is the mid-write path, whose retry waits a debounce window.
    let staged = tempfile::NamedTempFile::new_in(dir.path().parent().unwrap()).unwrap();
    fs::write(staged.path(), mapping("a", "/a/")).unwrap();
    staged.persist(dir.path().join("a.yaml")).unwrap();
    let state = w.until("a published", |s| names(s) == ["a"]).await;
    assert_eq!(state.errors, vec![]);
}

#[tokio::test]
async fn a_thousand_writes_over_a_second_are_few_publications() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _ready) = watch(dir.path(), 75);
    let start = w.until("first load", |s| s.is_synced()).await.generation;
    // Separate watch events over about a second (longer on a loaded machine), never a pause
    // as long as the debounce window.
    let began = std::time::Instant::now();
    for i in 0..1000 {
        write(
            dir.path(),
            &format!("m{i:04}.yaml"),
            &mapping(&format!("m{i}"), "/"),
        );
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let state = w.until("all 1000", |s| s.objects.len() == 1000).await;
    let took = began.elapsed();
    assert_eq!(state.errors, vec![]);
    let publications = state.generation - start;
    // The first change at once, then at most one per started max_delay (10 windows) of the
    // burst (so rounded up), then its end. Without coalescing it would be hundreds.
    let bound = 3 + (took.as_millis() / 750) as u64;
    eprintln!("1,000 files over {took:?}: {publications} publications (bound {bound})");
    assert!(
        publications <= bound,
        "{publications} publications for one burst over {took:?}"
    );
}

#[tokio::test]
async fn a_file_caught_mid_write_is_retried_not_published() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let (mut w, _ready) = watch_with(dir.path(), patient(50));
    w.until("first load", |s| s.is_synced()).await;
    w.until_started().await;
    let start = w.generation();

    // Half a document whose flow mapping is not closed yet, read by the source (which must
    // hold it back), then completed.
    let full = "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
                metadata: {name: b, namespace: default}\nspec: {prefix: /b/, service: b}\n";
    let half = &full[..full.find("namespace").unwrap()];
    write(dir.path(), "b.yaml", half);
    w.until_unsettled("b.yaml").await;
    write(dir.path(), "b.yaml", full);

    let state = w.until("b complete", |s| names(s) == ["a", "b"]).await;
    assert_eq!(state.errors, vec![]);
    // Exactly one publication: the complete file. A published error would have been another.
    assert_eq!(state.generation, start + 1);
    // ... and none after it: the next publication is the next change.
    write(dir.path(), "c.yaml", &mapping("c", "/c/"));
    let state = w.until("c", |s| names(s) == ["a", "b", "c"]).await;
    assert_eq!(state.generation, start + 2);
}

#[tokio::test]
async fn a_file_truncated_then_rewritten_never_loses_its_objects() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    write(dir.path(), "b.yaml", &mapping("b", "/b/"));
    let (mut w, _ready) = watch_with(dir.path(), patient(50));
    w.until("first load", |s| names(s) == ["a", "b"]).await;
    w.until_started().await;
    let start = w.generation();

    // What a writer that truncates, then writes, looks like when it is slow: the source
    // reads the empty file before the rest comes.
    fs::File::create(dir.path().join("a.yaml")).unwrap();
    w.until_unsettled("a.yaml").await;
    write(dir.path(), "a.yaml", &mapping("a", "/new/"));

    let state = w
        .until("the new a", |s| {
            s.objects[0].value.to_value()["spec"]["prefix"] == "/new/"
        })
        .await;
    assert_eq!(names(&state), ["a", "b"]);
    assert_eq!(
        state.generation,
        start + 1,
        "a state without a was published"
    );
}

#[tokio::test]
async fn a_file_that_stays_broken_is_reported_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _ready) = watch(dir.path(), 50);
    w.until("first load", |s| s.is_synced()).await;
    write(dir.path(), "bad.yaml", "kind: [\n");
    let state = w.until("the error", |s| !s.errors.is_empty()).await;
    assert_eq!(state.errors[0].origin, origin("bad.yaml", 1));
}

#[tokio::test]
async fn an_unchanged_rewrite_is_not_republished() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let (mut w, _ready) = watch(dir.path(), 50);
    w.until("first load", |s| s.is_synced()).await;
    w.until_started().await;
    let before = w.generation();

    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    write(dir.path(), "notes.txt", "not config");
    w.until_progress("a.yaml re-read after its rewrite", |p| {
        p.forced.iter().any(|f| f == Path::new("a.yaml"))
    })
    .await;
    assert_eq!(w.generation(), before);

    // A real change after that is the next publication (so the rewrite published nothing,
    // however late), and the watch was alive.
    write(dir.path(), "a.yaml", &mapping("a", "/x/"));
    let state = w
        .until("the change", |s| {
            s.objects[0].value.to_value()["spec"]["prefix"] == "/x/"
        })
        .await;
    assert_eq!(state.generation, before + 1);
}

#[tokio::test]
async fn a_configmap_swap_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    configmap(
        dir.path(),
        "..2024_01_01",
        &[("m.yaml", mapping("m", "/one/"))],
    );
    let (mut w, _ready) = watch(dir.path(), 50);
    w.until("first load", |s| names(s) == ["m"]).await;

    // The kubelet's update: a new timestamped directory, `..data` swapped atomically, the old
    // directory removed. The visible symlink itself never changes.
    configmap(
        dir.path(),
        "..2024_01_02",
        &[("m.yaml", mapping("m", "/two/"))],
    );
    fs::remove_dir_all(dir.path().join("..2024_01_01")).unwrap();
    let state = w
        .until("the swap", |s| {
            s.objects
                .first()
                .is_some_and(|o| o.value.to_value()["spec"]["prefix"] == "/two/")
        })
        .await;
    assert_eq!(origins(&state), ["m.yaml#1"]);
    assert_eq!(state.errors, vec![]);
}

#[tokio::test]
async fn a_replaced_directory_is_followed_and_a_missing_one_keeps_the_last_objects() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2, link) = (
        root.path().join("v1"),
        root.path().join("v2"),
        root.path().join("current"),
    );
    write(&v1, "a.yaml", &mapping("a", "/"));
    write(&v2, "b.yaml", &mapping("b", "/"));
    std::os::unix::fs::symlink(&v1, &link).unwrap();
    let (mut w, _ready) = watch(&link, 50);
    w.until("first load", |s| names(s) == ["a"]).await;

    // `current` swapped atomically to another directory.
    let tmp = root.path().join("current.tmp");
    std::os::unix::fs::symlink(&v2, &tmp).unwrap();
    fs::rename(&tmp, &link).unwrap();
    w.until("the new directory", |s| names(s) == ["b"]).await;
    // ... and the new one is watched.
    write(&v2, "c.yaml", &mapping("c", "/"));
    w.until("a file in the new directory", |s| names(s) == ["b", "c"])
        .await;

    fs::remove_file(&link).unwrap();
    let state = w
        .until("the directory error", |s| !s.errors.is_empty())
        .await;
    assert_eq!(names(&state), ["b", "c"], "the last objects are kept");
    assert!(state.errors[0].message.contains("cannot read directory"));

    std::os::unix::fs::symlink(&v1, &link).unwrap();
    let state = w.until("the directory back", |s| s.errors.is_empty()).await;
    assert_eq!(names(&state), ["a"]);
}

#[test]
fn the_quickstart_example_loads_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let state = load(&dir);
    assert_eq!(state.errors, vec![]);
    let kinds: Vec<(&str, &str)> = state.objects.iter().map(|o| (o.kind(), o.name())).collect();
    assert_eq!(
        kinds,
        [
            ("Listener", "http-8080"),
            ("Host", "any"),
            ("Mapping", "demo"),
            ("Mapping", "demo-canary")
        ]
    );
    assert!(
        state
            .objects
            .iter()
            .all(|o| o.api_version() == "getambassador.io/v3alpha1")
    );
}
