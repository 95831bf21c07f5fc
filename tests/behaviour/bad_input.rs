//! The bad-input corpus through the real Envoy: every `tests/golden/bad-*` case is put in the
//! config directory next to a good Mapping; the good Mappings are served by Envoy while admin
//! `/errors` lists exactly the golden errors, and Envoy never rejects (NACKs) what legate sent.
//! And a previously good file turned bad leaves everything else served, under steady traffic.

use std::path::Path;
use std::time::Duration;

use crate::backend::Backend;
use crate::harness::{CHANGE, Legate, free_port, local, yaml};
use crate::http::{self, Load};
use crate::{routed, seen};

/// The golden cases use Listener port 8080 (and 9000 for a TCPMapping that is valid); they
/// become free ports, in inputs and expected messages alike. The good Mapping `ok`
/// (`service: ok`) points at a real backend.
fn adapt(text: &str, http_port: u16, tcp_port: u16) -> String {
    text.replace("8080", &http_port.to_string())
        .replace("9000", &tcp_port.to_string())
}

/// Where the file source's wording differs from the golden harness's: the real source vets a
/// document's shape (a mapping, with `kind`) before the translation sees it, so those
/// documents never reach the translation's own checks. (golden, file source) message pairs.
const SOURCE_WORDING: &[(&str, &str)] = &[
    (
        ": not a Kubernetes object (expected a mapping)",
        ": document is a string, not a mapping",
    ),
    (
        ": not a Kubernetes object: apiVersion and kind are required",
        ": kind: kind is missing or not a string",
    ),
];

fn golden(case: &str) -> (String, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    let input = std::fs::read_to_string(dir.join("input.yaml")).unwrap();
    let errors = std::fs::read_to_string(dir.join("errors.txt")).unwrap();
    (input, errors.lines().map(str::to_string).collect())
}

fn bad_cases() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bad-"))
        .collect();
    cases.sort();
    cases
}

/// Waits until Envoy has acknowledged everything legate sent (or rejected something), and
/// returns how many responses it rejected since it connected.
async fn settled_nacks(lg: &Legate) -> u64 {
    http::eventually(CHANGE, "envoy to ack every type", || async {
        let reply = http::get(lg.admin, "/xds").await.ok()?;
        let clients = reply.json();
        let clients = clients.as_array()?;
        if clients.is_empty() {
            return None;
        }
        let mut nacks = 0;
        let mut settled = true;
        for c in clients {
            for t in c["types"].as_object()?.values() {
                settled &= t["sent_version"] == t["acked_version"];
                nacks += t["nack_count"].as_u64().unwrap_or(0);
            }
        }
        // A rejection never settles (Envoy keeps its previous version): report it at once.
        (settled || nacks > 0).then_some(nacks)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_case_reports_its_errors_while_good_mappings_are_served() {
    let ok = Backend::start("ok").await;
    let good = Backend::start("good").await;
    let (port, tcp_port) = (free_port(), free_port());
    let first = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "ok",
            &format!(
                "hostname: '*', prefix: /ok/, service: '127.0.0.1:{}'",
                ok.port()
            ),
        ),
    ]);
    let Some(lg) = Legate::start(&[("case.yaml", &first)]).await else {
        return;
    };
    routed(port, "GET", "/ok/ready", &[]).await;

    let cases = bad_cases();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    for (i, case) in cases.iter().enumerate() {
        let (input, errors) = golden(case);
        let input = adapt(&input, port, tcp_port).replace(
            "service: ok}",
            &format!("service: '127.0.0.1:{}'}}", ok.port()),
        );
        let expected: Vec<String> = errors
            .iter()
            .map(|e| {
                let e = adapt(e, port, tcp_port).replace("input.yaml#", "case.yaml#");
                SOURCE_WORDING
                    .iter()
                    .fold(e, |e, (golden, source)| e.replace(golden, source))
            })
            .collect();
        // A good Mapping of its own per case, in another file: its route appearing proves that
        // Envoy took the configuration that contains this case's bad input.
        let prefix = format!("/good-{i}/");
        lg.write(
            "good.yaml",
            &yaml::mapping(
                "good",
                &format!(
                    "hostname: '*', prefix: {prefix}, service: '127.0.0.1:{}'",
                    good.port()
                ),
            ),
        );
        lg.write("case.yaml", &input);

        lg.wait_errors(&expected).await;
        // A misconfigured AuthService fails closed (docs/compatibility.md): every route answers
        // 500 naming it, the good Mappings included. Any other bad input leaves them served.
        let fails_closed = expected
            .iter()
            .any(|e| e.contains(": AuthService ") && !e.contains(": warning: "));
        let r = routed(port, "GET", &format!("{prefix}x"), &[]).await;
        if fails_closed {
            assert_fails_closed(&r, case);
        } else {
            assert_eq!(
                seen(&r, "good")["path"],
                "/x",
                "{case}: the good Mapping is served"
            );
        }
        let r = routed(port, "GET", "/ok/y", &[]).await;
        if fails_closed {
            assert_fails_closed(&r, case);
        } else {
            assert_eq!(
                seen(&r, "ok")["path"],
                "/y",
                "{case}: the case's good Mapping is served"
            );
        }
        assert_eq!(
            settled_nacks(&lg).await,
            0,
            "{case}: Envoy rejected a configuration"
        );
        eprintln!(
            "bad input: {case}: {} errors reported, good Mappings served",
            expected.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_file_turned_bad_leaves_the_rest_served() {
    let keep = Backend::start("keep").await;
    let flip = Backend::start("flip").await;
    let port = free_port();
    let flip_file = |second: &str| {
        yaml::docs(&[
            yaml::mapping(
                "flip-1",
                &format!(
                    "hostname: '*', prefix: /flip1/, service: '127.0.0.1:{}'",
                    flip.port()
                ),
            ),
            yaml::mapping(
                "flip-2",
                &format!(
                    "hostname: '*', prefix: /flip2/, service: '127.0.0.1:{}'{second}",
                    flip.port()
                ),
            ),
        ])
    };
    let Some(lg) = Legate::start(&[
        ("base.yaml", &yaml::base(port)),
        (
            "keep.yaml",
            &yaml::mapping(
                "keep",
                &format!(
                    "hostname: '*', prefix: /keep/, service: '127.0.0.1:{}'",
                    keep.port()
                ),
            ),
        ),
        ("flip.yaml", &flip_file("")),
    ])
    .await
    else {
        return;
    };
    routed(port, "GET", "/keep/x", &[]).await;
    routed(port, "GET", "/flip2/x", &[]).await;
    let load = Load::start(local(port), "/keep/x", 2, Duration::from_millis(10));
    load.until_answered(10).await;

    // One Mapping of the file turns bad: it alone is left out.
    lg.write("flip.yaml", &flip_file(", regex_headers: {x-id: '[z-a]'}"));
    lg.wait_errors(&["flip.yaml#2: Mapping default/flip-2: spec.regex_headers.x-id: regex \"[z-a]\" does not compile: error: invalid character class range, the start must be <= the end".to_string()]).await;
    http::eventually(CHANGE, "the bad Mapping to be left out (404)", || async {
        let r = http::get(local(port), "/flip2/x").await.ok()?;
        (r.status == 404).then_some(())
    })
    .await;
    let r = routed(port, "GET", "/flip1/x", &[]).await;
    assert_eq!(seen(&r, "flip")["path"], "/x");
    assert_eq!(settled_nacks(&lg).await, 0);

    // The whole file stops parsing: its error is listed, every other file is still served.
    lg.write(
        "flip.yaml",
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nspec: {prefix: [unclosed\n",
    );
    let errors = http::eventually(CHANGE, "the parse error", || async {
        let errors = lg.errors().await;
        let parse_error = errors.len() == 1
            && errors[0].starts_with("flip.yaml#")
            && !errors[0].contains("Mapping default/flip-2");
        parse_error.then_some(errors)
    })
    .await;
    eprintln!("bad input: unparsable file reported as {errors:?}");
    let r = routed(port, "GET", "/keep/x", &[]).await;
    assert_eq!(seen(&r, "keep")["path"], "/x");
    assert_eq!(settled_nacks(&lg).await, 0);
    // The broken file's objects are gone with it (as in Emissary: no stale half of a file).
    http::eventually(CHANGE, "the unparsable file's Mappings to go", || async {
        let r = http::get(local(port), "/flip1/x").await.ok()?;
        (r.status == 404).then_some(())
    })
    .await;

    // Fixed again: everything is back.
    lg.write("flip.yaml", &flip_file(""));
    lg.wait_errors(&[]).await;
    let r = routed(port, "GET", "/flip2/x", &[]).await;
    assert_eq!(seen(&r, "flip")["path"], "/x");

    load.until_answered(10).await;
    let report = load.finish().await;
    report.assert_clean("the untouched path", 20);
}

/// The answer of a route while the AuthService is misconfigured: 500 from Envoy itself, naming
/// the AuthService; no backend saw the request.
#[track_caller]
fn assert_fails_closed(r: &http::Reply, case: &str) {
    assert_eq!(r.status, 500, "{case}: fails closed; got {}", r.body);
    assert_eq!(r.backend(), None, "{case}: no backend is asked");
    assert!(
        r.body.contains("AuthService") && r.body.contains("misconfigured"),
        "{case}: the answer names the AuthService: {}",
        r.body
    );
}
