//! `legate translate` and `legate check`, run in-process through `legate::cmd` with in-memory
//! writers (the binary's `main` only parses flags and passes stdout/stderr).
//!
//! The Envoy form is judged by the real Envoy: the printed JSON itself is wrapped as a
//! bootstrap's static resources and must pass `envoy --mode validate` (see
//! [`static_bootstrap_json`] for the wrapping, the only changes made to the printed text).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use legate::cmd::check::check;
use legate::cmd::translate::translate;
use legate::cmd::{Format, Output};
use legate::source::{LoadOptions, load_dir};
use legate::translate::Options;
use serde_json::{Value, json};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn quickstart() -> PathBuf {
    repo("examples/quickstart")
}

fn run_translate(dir: &Path, output: Output, format: Format) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = translate(
        dir,
        output,
        format,
        &Options::default(),
        &LoadOptions::default(),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn run_check(dir: &Path) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = check(
        dir,
        &Options::default(),
        &LoadOptions::default(),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Both formats of one output, checked to be the same document.
fn printed(dir: &Path, output: Output) -> Value {
    let (code, json_text, err) = run_translate(dir, output, Format::Json);
    assert_eq!(code, 0, "{}: {err}", dir.display());
    let (code, yaml_text, _) = run_translate(dir, output, Format::Yaml);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&json_text).expect("the JSON output parses");
    let yaml: Value = serde_yaml::from_str(&yaml_text).expect("the YAML output parses");
    assert_eq!(json, yaml, "{}: YAML and JSON differ", dir.display());
    json
}

#[test]
fn translate_prints_the_ir() {
    let ir = printed(&quickstart(), Output::Ir);
    let state = load_dir(&quickstart(), &LoadOptions::default()).unwrap();
    let expected = legate::translate::translate(&state.objects, &Options::default()).ir;
    assert_eq!(ir, serde_json::to_value(&expected).unwrap());
    assert_eq!(ir["listeners"].as_array().map(Vec::len), Some(1));
    assert!(ir.to_string().contains("/demo/"), "{ir}");
}

#[test]
fn translate_prints_envoy_resources() {
    let envoy = printed(&quickstart(), Output::Envoy);
    let keys: Vec<&String> = envoy.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "clusters",
            "endpoints",
            "extension_configs",
            "listeners",
            "route_configurations",
            "secrets"
        ]
    );
    assert_eq!(envoy["listeners"].as_array().unwrap().len(), 1);
    let routes = envoy["route_configurations"].to_string();
    assert!(
        routes.contains("/demo/") && routes.contains("x-canary"),
        "{routes}"
    );
}

#[test]
fn translate_reports_errors_and_prints_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&quickstart(), dir.path());
    fs::write(
        dir.path().join("20-broken.yaml"),
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
         metadata: {name: broken, namespace: default}\nspec: {hostname: '*', prefix: /broken/}\n",
    )
    .unwrap();
    let (code, out, err) = run_translate(dir.path(), Output::Ir, Format::Json);
    assert_eq!(code, 0, "resource errors do not fail translate: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("20-broken.yaml#1: Mapping default/broken: spec.service"),
        "{err}"
    );
    assert!(out.contains("/demo/") && !out.contains("/broken/"), "{out}");
}

#[test]
fn translate_of_a_missing_dir_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    for output in [Output::Ir, Output::Envoy] {
        let (code, out, err) = run_translate(&missing, output, Format::Json);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.contains("does not exist") && err.contains("nope"),
            "{err}"
        );
    }
}

#[test]
fn check_passes_a_clean_dir() {
    let (code, out, err) = run_check(&quickstart());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("0 error(s)"), "{err}");
}

#[test]
fn check_lists_each_error_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&quickstart(), dir.path());
    let mapping = |name: &str, spec: &str| {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
             metadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
        )
    };
    fs::write(
        dir.path().join("a-no-service.yaml"),
        mapping("no-service", "{hostname: '*', prefix: /a/}"),
    )
    .unwrap();
    fs::create_dir(dir.path().join("team")).unwrap();
    fs::write(
        dir.path().join("team/b-regex.yaml"),
        mapping(
            "bad-regex",
            "{hostname: '*', prefix: '/b/(', prefix_regex: true, service: b}",
        ),
    )
    .unwrap();
    // A good document, then a bad one, in the same file: only the second is reported.
    fs::write(
        dir.path().join("c-mixed.yaml"),
        mapping("fine", "{hostname: '*', prefix: /c/, service: c}")
            + &mapping(
                "bad-timeout",
                "{hostname: '*', prefix: /c2/, service: c, timeout_ms: soon}",
            ),
    )
    .unwrap();

    let (code, out, err) = run_check(dir.path());
    assert_eq!(code, 1, "{out}{err}");
    let errors: Vec<&str> = out.lines().filter(|l| !l.contains(": warning: ")).collect();
    assert_eq!(errors.len(), 3, "{out}");
    let expected = [
        "a-no-service.yaml#1: Mapping default/no-service: spec.service: ",
        "c-mixed.yaml#2: Mapping default/bad-timeout: spec.timeout_ms: ",
        "team/b-regex.yaml#1: Mapping default/bad-regex: spec.prefix: ",
    ];
    for (line, prefix) in errors.iter().zip(expected) {
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}"
        );
    }
    assert!(err.contains("3 error(s)"), "{err}");
}

#[test]
fn check_of_an_unusable_dir_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_check(&dir.path().join("nope"));
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("does not exist"), "{err}");
    let file = dir.path().join("file.yaml");
    fs::write(&file, "").unwrap();
    let (code, _, err) = run_check(&file);
    assert_eq!(code, 2);
    assert!(err.contains("not a directory"), "{err}");
}

// ---- The printed Envoy form against the real Envoy ----

const CERT: &str = include_str!("../src/xds/resources/testdata/server.pem");
const KEY: &str = include_str!("../src/xds/resources/testdata/server.key");
const CA: &str = include_str!("../src/xds/resources/testdata/ca.pem");

/// HTTPS termination with a real certificate (SNI chains, SDS secrets), TLS origination with a
/// client certificate and a CA, a DNS upstream, and a TCPMapping.
fn tls_dir(dir: &Path) {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let text = format!(
        r#"apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: https-8443, namespace: default}}
spec: {{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: shop, namespace: default}}
spec: {{hostname: shop.example.com, tlsSecret: {{name: shop-cert}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: shop-api, namespace: default}}
spec: {{hostname: shop.example.com, prefix: /api/, service: shop-api.shop:8080, timeout_ms: 3000}}
---
apiVersion: getambassador.io/v3alpha1
kind: TLSContext
metadata: {{name: upstream, namespace: default}}
spec: {{secret: shop-cert, ca_secret: upstream-ca, sni: backend.internal}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: mtls, namespace: default}}
spec: {{hostname: shop.example.com, prefix: /mtls/, service: 'https://10.0.0.7:8443', tls: upstream}}
---
apiVersion: getambassador.io/v3alpha1
kind: TCPMapping
metadata: {{name: db, namespace: default}}
spec: {{port: 5432, service: '10.0.0.8:5432'}}
---
apiVersion: v1
kind: Secret
metadata: {{name: shop-cert, namespace: default}}
type: kubernetes.io/tls
stringData: {{tls.crt: {cert}, tls.key: {key}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: upstream-ca, namespace: default}}
type: kubernetes.io/tls
stringData: {{tls.crt: {ca}}}
"#,
        cert = q(CERT),
        key = q(KEY),
        ca = q(CA),
    );
    fs::write(dir.join("tls.yaml"), text).unwrap();
}

/// The printed resources as a static bootstrap, changing only what a bootstrap needs:
/// RDS references become the named route configuration inline (as `rds` → `route_config`),
/// EDS clusters get their printed assignment inline, SDS references lose their ADS config
/// source (so they name the static secrets), and the redacted private key is put back.
fn static_bootstrap_json(printed: &Value, key: &str) -> Value {
    let index = |list: &str, field: &str| -> BTreeMap<String, Value> {
        let items = printed[list].as_array().unwrap();
        items
            .iter()
            .map(|v| (v[field].as_str().unwrap().to_string(), v.clone()))
            .collect()
    };
    let routes = index("route_configurations", "name");
    let assignments = index("endpoints", "cluster_name");
    let extensions = index("extension_configs", "name");
    let mut listeners = printed["listeners"].clone();
    for chain in listeners.as_array_mut().unwrap().iter_mut().flat_map(|l| {
        l["filter_chains"]
            .as_array_mut()
            .map(|c| c.iter_mut())
            .into_iter()
            .flatten()
    }) {
        for filter in chain["filters"].as_array_mut().unwrap() {
            let config = filter["typed_config"].as_object_mut().unwrap();
            if let Some(rds) = config.remove("rds") {
                let name = rds["route_config_name"].as_str().unwrap();
                let route = routes
                    .get(name)
                    .unwrap_or_else(|| panic!("no route {name}"));
                config.insert("route_config".into(), route.clone());
            }
            // HTTP filters configured by ECDS get the printed extension config inline.
            for http_filter in config
                .get_mut("http_filters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let filter = http_filter.as_object_mut().unwrap();
                if filter.remove("config_discovery").is_some() {
                    let name = filter["name"].as_str().unwrap();
                    let extension = extensions
                        .get(name)
                        .unwrap_or_else(|| panic!("no extension config {name}"));
                    filter.insert("typed_config".into(), extension["typed_config"].clone());
                }
            }
        }
    }
    let mut clusters = printed["clusters"].clone();
    for c in clusters.as_array_mut().unwrap() {
        if c["type"] == "EDS" {
            let config = c.as_object_mut().unwrap().remove("eds_cluster_config");
            let service = config
                .and_then(|cfg| cfg["service_name"].as_str().map(String::from))
                .unwrap_or_else(|| c["name"].as_str().unwrap().to_string());
            let mut cla = assignments.get(&service).cloned().unwrap_or(json!({}));
            cla["cluster_name"] = c["name"].clone();
            c["type"] = json!("STATIC");
            c["load_assignment"] = cla;
        }
    }
    let mut secrets = printed["secrets"].clone();
    for s in secrets.as_array_mut().unwrap() {
        if let Some(pk) = s.pointer_mut("/tls_certificate/private_key/inline_string") {
            assert_eq!(pk, &json!(format!("<redacted {} bytes>", key.len())));
            *pk = json!(key);
        }
    }
    let mut bootstrap = json!({"static_resources": {
        "listeners": listeners, "clusters": clusters, "secrets": secrets}});
    strip_sds_config(&mut bootstrap);
    bootstrap
}

fn strip_sds_config(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("sds_config");
            m.values_mut().for_each(strip_sds_config);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_sds_config),
        _ => {}
    }
}

/// Kills the child if the test ends early, so no Envoy outlives its test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `envoy --mode validate` on a JSON bootstrap; returns whether it passed and its output.
fn envoy_validate(envoy: &Path, bootstrap: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bootstrap.json");
    fs::write(&config, serde_json::to_vec_pretty(bootstrap).unwrap()).unwrap();
    let log = dir.path().join("envoy.log");
    let child = Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warn",
            "-c",
        ])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(dir.path().join("envoy.err")).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "envoy --mode validate hangs");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = fs::read_to_string(&log).unwrap_or_default()
        + &fs::read_to_string(dir.path().join("envoy.err")).unwrap_or_default();
    (status.success(), output)
}

/// The quickstart, a TLS directory with real certificates, and every golden input whose
/// certificates are real (the golden corpus uses placeholder PEM, which Envoy rightly refuses):
/// the printed Envoy form, wrapped, passes Envoy's own validation.
#[test]
fn printed_envoy_resources_pass_envoy_validate() {
    let Some(envoy) = legate::envoy::locate::for_tests() else {
        return;
    };
    let tls = tempfile::tempdir().unwrap();
    tls_dir(tls.path());
    let mut dirs = vec![quickstart(), tls.path().to_path_buf()];
    let mut golden: Vec<PathBuf> = fs::read_dir(repo("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| {
            !fs::read_to_string(d.join("input.yaml"))
                .unwrap()
                .contains("fake")
        })
        .collect();
    golden.sort();
    assert!(golden.len() >= 40, "{golden:?}");
    dirs.extend(golden);

    let mut failures = Vec::new();
    for dir in &dirs {
        let printed = printed(dir, Output::Envoy);
        let bootstrap = static_bootstrap_json(&printed, KEY);
        let (ok, output) = envoy_validate(&envoy, &bootstrap);
        if !ok || uses_deprecated(&output) {
            failures.push(format!("{}:\n{output}", dir.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "Envoy rejected it or reported something deprecated:\n{}",
        failures.join("\n")
    );

    // The TLS directory really exercised TLS: a certificate secret, a validation context and a
    // listener chain for the host's SNI.
    let printed = printed(tls.path(), Output::Envoy);
    assert_eq!(printed["secrets"].as_array().unwrap().len(), 2, "{printed}");
    assert!(
        printed["listeners"]
            .to_string()
            .contains("shop.example.com")
    );
}

/// Whether Envoy reported a deprecated option or enum value ("Using deprecated option …",
/// "Using deprecated value … for enum …"). legate runs Envoy with
/// `--ignore-unknown-dynamic-fields`, which skips Envoy's own check of unknown and deprecated
/// fields on every xDS update (src/envoy/process.rs), so this check (with `--mode validate`
/// rejecting unknown fields in static config) is where they are caught.
fn uses_deprecated(envoy_output: &str) -> bool {
    envoy_output.contains("eprecated")
}

/// `envoy --mode validate` on the quickstart's printed form after `edit`: whether it passed and
/// Envoy's output (`None` when Envoy tests are explicitly skipped).
fn validate_quickstart_with(edit: impl FnOnce(&mut Value)) -> Option<(bool, String)> {
    let envoy = legate::envoy::locate::for_tests()?;
    let mut printed = printed(&quickstart(), Output::Envoy);
    let route = &printed["route_configurations"][0]["virtual_hosts"][0]["routes"][0];
    assert!(route["route"].is_object(), "a forwarding route: {printed}");
    edit(&mut printed);
    Some(envoy_validate(
        &envoy,
        &static_bootstrap_json(&printed, KEY),
    ))
}

/// A deprecated option in the printed form is caught by [`uses_deprecated`], although
/// Envoy's validation passes.
#[test]
fn envoy_validate_reports_a_deprecated_option() {
    let Some((ok, output)) = validate_quickstart_with(|printed| {
        printed["route_configurations"][0]["virtual_hosts"][0]["routes"][0]["route"]["max_grpc_timeout"] =
            json!("1s");
    }) else {
        return;
    };
    assert!(ok, "Envoy rejected a deprecated option outright:\n{output}");
    assert!(
        uses_deprecated(&output),
        "the deprecated option went unreported:\n{output}"
    );
}

/// The wrapping above is not a rubber stamp: a broken printed value fails validation.
#[test]
fn envoy_validate_rejects_a_broken_printed_form() {
    let Some((ok, output)) = validate_quickstart_with(|printed| {
        printed["route_configurations"][0]["virtual_hosts"][0]["routes"][0]["match"] =
            json!({"safe_regex": {"regex": "("}});
    }) else {
        return;
    };
    assert!(!ok, "Envoy accepted an invalid regex:\n{output}");
    assert!(
        output.contains("missing )"),
        "rejected for another reason:\n{output}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}
