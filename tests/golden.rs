//! Golden tests of the translation: each `tests/golden/<case>/` holds input YAML, the expected
//! IR (`ir.json`) and the expected problems (`errors.txt`, one `ResourceError` per line).
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expectations (review the diff!).
//! An optional `options.json` sets `ambassador_id`, `ambassador_namespace`,
//! `default_listeners`, `endpoint_routing`.

use std::fs;
use std::path::{Path, PathBuf};

use legate::api::doc::Document;
use legate::api::{Origin, RawObject};
use legate::translate::{Cache, Leftovers, Options, translate, translate_deferring};

/// A minimal multi-document YAML loader (the real file source replaces it).
fn load_dir(dir: &Path) -> Vec<RawObject> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let rel = PathBuf::from(f.file_name().unwrap());
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: document {}: {e}", f.display(), i + 1));
            if value.is_null() {
                continue;
            }
            out.push(RawObject {
                origin: Origin::file(&rel, i + 1),
                value: std::sync::Arc::new(
                    Document::from_value(&serde_json::to_value(value).unwrap()).unwrap(),
                ),
            });
        }
    }
    out
}

use serde::Deserialize;

fn options(dir: &Path) -> Options {
    let mut o = Options::default();
    if let Ok(text) = fs::read_to_string(dir.join("options.json")) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Some(id) = v["ambassador_id"].as_str() {
            o.ambassador_id = id.into();
        }
        if let Some(ns) = v["ambassador_namespace"].as_str() {
            o.ambassador_namespace = ns.into();
        }
        if let Some(d) = v["default_listeners"].as_bool() {
            o.default_listeners = d;
        }
        if let Some(e) = v["endpoint_routing"].as_bool() {
            o.endpoint_routing = e;
        }
    }
    o
}

fn check(path: &Path, actual: &str, update: bool, failures: &mut Vec<String>) {
    let expected = fs::read_to_string(path);
    if expected.as_deref().ok() == Some(actual) {
        return;
    }
    let expected = expected.unwrap_or_default();
    if expected == actual && !update {
        return;
    }
    if update {
        fs::write(path, actual).unwrap();
    } else {
        failures.push(format!(
            "{} differs (UPDATE_GOLDEN=1 to rewrite)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
}

/// Every case directory under `tests/golden`, sorted.
fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn golden_cases() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let cases = case_dirs();
    assert!(
        cases.len() >= 30,
        "expected at least 30 golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let objects = load_dir(case);
        assert!(!objects.is_empty(), "{}: no input", case.display());
        let t = translate(&objects, &options(case));
        assert_eq!(t.ir.validate(), Ok(()), "{}: invalid IR", case.display());
        let again = translate(&objects, &options(case));
        assert_eq!(
            t,
            again,
            "{}: translation is not deterministic",
            case.display()
        );
        let mut reversed = objects.clone();
        reversed.reverse();
        assert_eq!(
            translate(&reversed, &options(case)),
            t,
            "{}: output depends on input order",
            case.display()
        );
        let ir = serde_json::to_string_pretty(&t.ir).unwrap() + "\n";
        let errors: String = t.errors.iter().map(|e| format!("{e}\n")).collect();
        check(&case.join("ir.json"), &ir, update, &mut failures);
        check(&case.join("errors.txt"), &errors, update, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `legate run` translates with `translate_deferring` (docs/design.md#deferred-freeing), with
/// the translation cache when `source.translation_cache` is on. `translate` goes through the
/// same deferral (it frees the leftovers at once), so the golden expectations pin the output of
/// both; this adds the cached path: two rounds with one cache (the second reuses every plan,
/// cloned before its cluster moved into the IR) give exactly `translate`'s result.
#[test]
fn deferring_gives_the_same_translation() {
    for case in &case_dirs() {
        let objects = load_dir(case);
        let options = options(case);
        let expected = translate(&objects, &options);
        let mut leftovers = Leftovers::new();
        let deferred = translate_deferring(&objects, &options, None, &mut leftovers);
        assert_eq!(
            deferred,
            expected,
            "{}: deferring changed the result",
            case.display()
        );
        let mut cache = Cache::new();
        for round in 0..2 {
            let mut leftovers = Leftovers::new();
            let cached = translate_deferring(&objects, &options, Some(&mut cache), &mut leftovers);
            assert_eq!(
                cached,
                expected,
                "{}: deferring with the cache (round {round}) changed the result",
                case.display()
            );
        }
        assert!(
            cache.reused() > 0 || cache.is_empty(),
            "{}: the second round planned again",
            case.display()
        );
    }
}

/// The bad-input corpus: every `bad-*` case reports at least one error that left a resource
/// out, and still translates the rest (a Listener and at least one non-built-in route).
#[test]
fn bad_inputs_report_and_keep_the_rest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut bad: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bad-"))
        })
        .collect();
    bad.sort();
    assert!(
        bad.len() >= 20,
        "expected at least 20 bad-input cases, found {}",
        bad.len()
    );
    for case in bad {
        let t = translate(&load_dir(&case), &options(&case));
        assert!(
            t.failures().next().is_some(),
            "{}: no error reported",
            case.display()
        );
        let user_routes =
            t.ir.route_tables
                .iter()
                .flat_map(|rt| &rt.virtual_hosts)
                .flat_map(|v| &v.routes)
                .filter(|r| {
                    r.name
                        .as_deref()
                        .is_some_and(|n| !n.starts_with("builtin/"))
                })
                .count();
        let tcp_chains =
            t.ir.listeners
                .iter()
                .flat_map(|l| &l.filter_chains)
                .filter(|c| matches!(c.action, legate::ir::ChainAction::Tcp(_)))
                .count();
        assert!(
            user_routes + tcp_chains > 0,
            "{}: the valid rest of the config was not translated",
            case.display()
        );
    }
}
