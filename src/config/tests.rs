use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::cli::RunArgs;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().copied().collect()
}

fn file(ext: &str, body: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(&format!(".{ext}"))
        .tempfile()
        .unwrap();
    f.write_all(body.as_bytes()).unwrap();
    f
}

fn with_file(path: &std::path::Path) -> RunArgs {
    RunArgs {
        config: Some(path.to_path_buf()),
        ..RunArgs::default()
    }
}

fn error(args: &RunArgs, env: &Env) -> (String, String) {
    let err = load(args, env).expect_err("settings should be rejected");
    (
        err.path().to_string(),
        crate::error::Chain(&err).to_string(),
    )
}

#[test]
fn defaults_load_and_validate() {
    let cfg = load(&RunArgs::default(), &Env::default()).unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn file_then_env_then_flags_each_override_the_one_before() {
    let toml = file(
        "toml",
        "[drain]\nmin_ms = 100\ndelay_ms = 7\n[probe]\naddress = \"127.0.0.1:9001\"\n",
    );
    let env_layer = env(&[("LEGATE_DRAIN__MIN_MS", "200"), ("PATH", "/bin")]);
    let mut args = with_file(toml.path());

    let from_file = load(&args, &Env::default()).unwrap();
    assert_eq!(from_file.drain.min_ms, 100);
    assert_eq!(from_file.drain.delay_ms, 7);
    assert_eq!(from_file.probe.address, "127.0.0.1:9001".parse().unwrap());
    // untouched settings keep their defaults
    assert_eq!(
        from_file.drain.deadline_ms,
        DrainSettings::default().deadline_ms
    );

    let from_env = load(&args, &env_layer).unwrap();
    assert_eq!(from_env.drain.min_ms, 200);
    assert_eq!(
        from_env.drain.delay_ms, 7,
        "env overrides only what it sets"
    );

    args.drain_min_ms = Some(300);
    let from_flags = load(&args, &env_layer).unwrap();
    assert_eq!(from_flags.drain.min_ms, 300);
    assert_eq!(from_flags.probe.address, "127.0.0.1:9001".parse().unwrap());
}

#[test]
fn yaml_file_and_legate_config_variable() {
    let yaml = file(
        "yaml",
        "envoy:\n  restart:\n    budget: 9\nlog:\n  format: json\n",
    );
    let path = yaml.path().to_str().unwrap();
    let cfg = load(&RunArgs::default(), &env(&[("LEGATE_CONFIG", path)])).unwrap();
    assert_eq!(cfg.envoy.restart.budget, 9);
    assert_eq!(cfg.log.format, "json");

    // --config wins over $LEGATE_CONFIG
    let toml = file("toml", "[envoy.restart]\nbudget = 3\n");
    let cfg = load(&with_file(toml.path()), &env(&[("LEGATE_CONFIG", path)])).unwrap();
    assert_eq!(cfg.envoy.restart.budget, 3);
}

#[test]
fn environment_spells_nested_settings_with_double_underscores() {
    let cfg = load(
        &RunArgs::default(),
        &env(&[
            ("LEGATE_DRAIN__DEADLINE_MS", "30000"),
            ("LEGATE_PROBE__ADDRESS", "127.0.0.1:9100"),
            ("LEGATE_ENVOY__RESTART__WINDOW_MS", "1000"),
            ("LEGATE_ADMIN__ALLOW_NON_LOOPBACK", "true"),
            ("LEGATE_ENVOY__NODE_ID", "1234"),
            ("LEGATE_RUNTIME_DIR", "/run/legate"),
            ("LEGATE_ENVOY__CONCURRENCY", "2"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.drain.deadline_ms, 30_000);
    assert_eq!(cfg.probe.address, "127.0.0.1:9100".parse().unwrap());
    assert_eq!(cfg.envoy.restart.window_ms, 1000);
    assert!(cfg.admin.allow_non_loopback);
    assert_eq!(cfg.envoy.node_id, "1234");
    assert_eq!(cfg.runtime_dir, Some(PathBuf::from("/run/legate")));
    assert_eq!(cfg.envoy.concurrency, Some(2));
}

#[test]
fn emissary_and_shorthand_variables() {
    let cfg = load(
        &RunArgs::default(),
        &env(&[
            ("AMBASSADOR_ID", "edge"),
            ("AMBASSADOR_SINGLE_NAMESPACE", "true"),
            ("AMBASSADOR_NAMESPACE", "ingress"),
            ("LEGATE_ENVOY_BIN", "/opt/envoy"),
            ("LEGATE_SKIP_ENVOY_TESTS", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.source.ambassador_id, "edge");
    assert_eq!(cfg.source.namespace.as_deref(), Some("ingress"));
    assert!(cfg.source.single_namespace);
    assert_eq!(cfg.envoy.binary, Some(PathBuf::from("/opt/envoy")));

    // the legate spelling beats the Emissary one, and a flag beats both
    let both = env(&[
        ("AMBASSADOR_ID", "edge"),
        ("LEGATE_SOURCE__AMBASSADOR_ID", "inner"),
    ]);
    assert_eq!(
        load(&RunArgs::default(), &both)
            .unwrap()
            .source
            .ambassador_id,
        "inner"
    );
    let args = RunArgs {
        ambassador_id: Some("flag".into()),
        ..RunArgs::default()
    };
    assert_eq!(load(&args, &both).unwrap().source.ambassador_id, "flag");

    // a single namespace without AMBASSADOR_NAMESPACE is Emissary's `default` (unset here)
    let cfg = load(
        &RunArgs::default(),
        &env(&[("AMBASSADOR_SINGLE_NAMESPACE", "yes")]),
    )
    .unwrap();
    assert_eq!(
        cfg.source.namespace, None,
        "translation and watcher default to `default`"
    );
    assert!(cfg.source.single_namespace);
    let cfg = load(&RunArgs::default(), &env(&[("AMBASSADOR_NAMESPACE", "x")])).unwrap();
    assert_eq!(cfg.source.namespace.as_deref(), Some("x"));
    assert!(!cfg.source.single_namespace);
}

#[path = "../../tests/common/service_links.rs"]
mod service_links;
use service_links::SERVICE_LINKS;

#[test]
fn kubernetes_service_links_are_not_settings() {
    let cfg = load(&RunArgs::default(), &env(SERVICE_LINKS)).unwrap();
    assert_eq!(cfg, load(&RunArgs::default(), &Env::default()).unwrap());
    // and they do not hide a real setting next to them
    let mut with_setting = SERVICE_LINKS.to_vec();
    with_setting.push(("LEGATE_DRAIN__MIN_MS", "7"));
    let cfg = load(&RunArgs::default(), &env(&with_setting)).unwrap();
    assert_eq!(cfg.drain.min_ms, 7);
}

#[test]
fn service_link_shapes() {
    use super::load::is_service_link;
    for name in SERVICE_LINKS.iter().map(|(k, _)| *k) {
        assert!(
            is_service_link(name) || !name.starts_with("LEGATE_"),
            "{name}"
        );
    }
    for name in [
        "LEGATE_EDGE_V2_SERVICE_PORT_METRICS_HTTP",
        "LEGATE_EDGE_PORT_53_UDP_ADDR",
        "LEGATE_X_PORT_9000_SCTP",
    ] {
        assert!(is_service_link(name), "{name}");
    }
    for name in [
        "LEGATE_DRAIN__MIN_MS",
        "LEGATE_RUNTIME_DIR",
        "LEGATE_SERVICE",
        "LEGATE_SERVICE_HOSTS",
        "LEGATE_PORT_8080",
        "LEGATE_PORT_80A_TCP",
        "LEGATE_PORT_8080_TCP_HOST",
        "LEGATE_PROBE__PORT",
    ] {
        assert!(!is_service_link(name), "{name}");
    }
}

#[test]
fn other_unknown_legate_variables_still_fail() {
    let mut vars = SERVICE_LINKS.to_vec();
    vars.push(("LEGATE_PROBE_ADDRESS", "0.0.0.0:1"));
    let (path, msg) = error(&RunArgs::default(), &env(&vars));
    assert_eq!(path, "probe_address");
    assert!(msg.contains("double underscore"), "{msg}");
}

#[test]
fn unknown_keys_are_named_with_their_origin() {
    let (path, msg) = error(&RunArgs::default(), &env(&[("LEGATE_DRAIN__FOO", "1")]));
    assert_eq!(path, "drain.foo");
    assert!(
        msg.contains("unknown setting") && msg.contains("$LEGATE_DRAIN__FOO"),
        "{msg}"
    );

    let (path, msg) = error(&RunArgs::default(), &env(&[("LEGATE_DRAIN_MIN_MS", "1")]));
    assert_eq!(path, "drain_min_ms");
    assert!(msg.contains("double underscore"), "{msg}");

    let yaml = file("yml", "source:\n  ambassador_idd: x\n");
    let (path, msg) = error(&with_file(yaml.path()), &Env::default());
    assert_eq!(path, "source.ambassador_idd");
    assert!(msg.contains(&yaml.path().display().to_string()), "{msg}");

    let toml = file("toml", "[nope]\na = 1\n");
    assert_eq!(error(&with_file(toml.path()), &Env::default()).0, "nope");
}

#[test]
fn unparsable_values_name_the_setting_and_value() {
    let cases = [
        ("LEGATE_DRAIN__MIN_MS", "abc", "drain.min_ms"),
        ("LEGATE_DRAIN__DEADLINE_MS", "-5", "drain.deadline_ms"),
        ("LEGATE_PROBE__ADDRESS", "localhost", "probe.address"),
        ("LEGATE_ADMIN__ADDRESS", "127.0.0.1", "admin.address"),
        (
            "LEGATE_ADMIN__ALLOW_NON_LOOPBACK",
            "maybe",
            "admin.allow_non_loopback",
        ),
        (
            "LEGATE_ENVOY__RESTART__BUDGET",
            "many",
            "envoy.restart.budget",
        ),
    ];
    for (var, value, setting) in cases {
        let (path, msg) = error(&RunArgs::default(), &env(&[(var, value)]));
        assert_eq!(path, setting, "{msg}");
        assert!(msg.contains(value) && msg.contains(var), "{msg}");
    }
    let toml = file("toml", "[drain]\nmin_ms = \"soon\"\n");
    let (path, msg) = error(&with_file(toml.path()), &Env::default());
    assert_eq!(path, "drain.min_ms");
    assert!(msg.contains("soon"), "{msg}");
}

#[test]
fn settings_file_problems() {
    let bad = file("toml", "[drain\n");
    let (path, msg) = error(&with_file(bad.path()), &Env::default());
    assert_eq!(path, "config");
    assert!(msg.contains(&bad.path().display().to_string()), "{msg}");

    let missing = with_file(std::path::Path::new("/nonexistent/legate.toml"));
    assert!(error(&missing, &Env::default()).1.contains("not found"));

    let json = file("json", "{}");
    let (path, msg) = error(&with_file(json.path()), &Env::default());
    assert_eq!(path, "config");
    assert!(msg.contains(".toml"), "{msg}");
}

/// Every validation rule: a mutation that breaks it and the setting the error must name.
#[test]
fn every_rule_names_its_setting() {
    type Break = fn(&mut Config);
    let cases: &[(Break, &str, &str)] = &[
        (
            |c| c.drain.min_ms = c.drain.deadline_ms + 1,
            "drain.min_ms",
            "25001",
        ),
        (
            |c| c.drain.delay_ms = c.drain.deadline_ms,
            "drain.delay_ms",
            "25000",
        ),
        (
            |c| {
                c.drain.deadline_ms = 0;
                c.drain.min_ms = 0
            },
            "drain.deadline_ms",
            "0",
        ),
        (|c| c.drain.poll_ms = 0, "drain.poll_ms", "0"),
        (
            |c| c.drain.stop_timeout_ms = 0,
            "drain.stop_timeout_ms",
            "0",
        ),
        (
            |c| {
                c.envoy.restart.budget = 0;
                c.envoy.restart.window_ms = 0
            },
            "envoy.restart.budget",
            "0",
        ),
        (
            |c| c.envoy.restart.initial_backoff_ms = 0,
            "envoy.restart.initial_backoff_ms",
            "0",
        ),
        (
            |c| c.envoy.restart.initial_backoff_ms = 20_000,
            "envoy.restart.initial_backoff_ms",
            "20000",
        ),
        (
            |c| c.envoy.drain_strategy = "slow".into(),
            "envoy.drain_strategy",
            "slow",
        ),
        (
            |c| c.envoy.log_level = "loud".into(),
            "envoy.log_level",
            "loud",
        ),
        (|c| c.envoy.concurrency = Some(0), "envoy.concurrency", "0"),
        (
            |c| c.envoy.health_interval_ms = 0,
            "envoy.health_interval_ms",
            "0",
        ),
        (
            |c| c.envoy.unresponsive_timeout_ms = 500,
            "envoy.unresponsive_timeout_ms",
            "500",
        ),
        (|c| c.envoy.node_id = String::new(), "envoy.node_id", "\"\""),
        (
            |c| c.envoy.node_cluster = String::new(),
            "envoy.node_cluster",
            "\"\"",
        ),
        (
            |c| c.envoy.admin = "0.0.0.0:9901".into(),
            "envoy.admin",
            "0.0.0.0:9901",
        ),
        (
            |c| c.xds.address = "10.0.0.1:18000".into(),
            "xds.address",
            "10.0.0.1:18000",
        ),
        (
            |c| c.xds.address = "localhost:18000".into(),
            "xds.address",
            "localhost:18000",
        ),
        (
            |c| c.xds.max_message_bytes = 1024,
            "xds.max_message_bytes",
            "1024",
        ),
        (
            |c| c.admin.address = "0.0.0.0:8878".parse().unwrap(),
            "admin.address",
            "0.0.0.0:8878",
        ),
        (
            |c| c.probe.address = "0.0.0.0:8878".parse().unwrap(),
            "probe.address",
            "0.0.0.0:8878",
        ),
        (|c| c.source.debounce_ms = 0, "source.debounce_ms", "0"),
        (
            |c| c.source.debounce_ms = 10_001,
            "source.debounce_ms",
            "10001",
        ),
        (
            |c| c.source.ambassador_id = String::new(),
            "source.ambassador_id",
            "\"\"",
        ),
        (
            |c| c.source.namespace = Some(String::new()),
            "source.namespace",
            "\"\"",
        ),
        (|c| c.log.format = "xml".into(), "log.format", "xml"),
        (|c| c.log.level = "legate=[".into(), "log.level", "legate=["),
    ];
    for (breaks, setting, value) in cases {
        let mut cfg = Config::default();
        breaks(&mut cfg);
        let err = validate::validate(&cfg).expect_err(setting);
        assert_eq!(err.path(), *setting, "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("invalid setting {setting}: ")),
            "{msg}"
        );
        assert!(msg.contains(&format!("got {value}")), "{msg}");
    }
}

#[test]
fn allowed_variants_pass_validation() {
    let mut cfg = Config::default();
    cfg.admin.address = "0.0.0.0:8878".parse().unwrap();
    cfg.admin.allow_non_loopback = true;
    cfg.xds.address = "127.0.0.1:0".into();
    cfg.envoy.admin = "[::1]:9901".into();
    cfg.envoy.drain_strategy = "gradual".into();
    cfg.envoy.restart.budget = 0; // no restarts at all, within the default window
    cfg.log.format = "json".into();
    cfg.log.level = "info,legate=debug".into();
    cfg.probe.address = "0.0.0.0:0".parse().unwrap();
    cfg.admin.address = "127.0.0.1:0".parse().unwrap(); // both port 0: no clash
    validate::validate(&cfg).unwrap();
}

#[test]
fn flags_override_the_file_for_every_run_flag() {
    let toml = file(
        "toml",
        "[source]\nambassador_id = \"file\"\n[log]\nformat = \"json\"\n",
    );
    let args = RunArgs {
        config: Some(toml.path().to_path_buf()),
        config_dir: Some("/cfg".into()),
        envoy_binary: Some("/bin/envoy".into()),
        probe_address: Some("127.0.0.1:1".parse().unwrap()),
        admin_address: Some("0.0.0.0:2".parse().unwrap()),
        admin_allow_non_loopback: true,
        xds_address: Some("127.0.0.1:3".into()),
        envoy_admin: Some("127.0.0.1:4".into()),
        concurrency: Some(3),
        drain_strategy: Some("gradual".into()),
        envoy_log_level: Some("debug".into()),
        runtime_dir: Some("/run".into()),
        drain_delay_ms: Some(1),
        drain_min_ms: Some(2),
        drain_deadline_ms: Some(3),
        log_format: Some("text".into()),
        log_level: Some("debug".into()),
        ambassador_id: Some("flag".into()),
        namespace: Some("ns".into()),
        kubeconfig: Some("/kube/config".into()),
    };
    let c = load(&args, &Env::default()).unwrap();
    assert_eq!(c.source.kubeconfig, Some(PathBuf::from("/kube/config")));
    assert!(c.source.single_namespace);
    assert_eq!(c.source.config_dir, Some(PathBuf::from("/cfg")));
    assert_eq!(c.envoy.binary, Some(PathBuf::from("/bin/envoy")));
    assert_eq!(c.probe.address.port(), 1);
    assert_eq!(c.admin.address.port(), 2);
    assert!(c.admin.allow_non_loopback);
    assert_eq!(
        (c.xds.address.as_str(), c.envoy.admin.as_str()),
        ("127.0.0.1:3", "127.0.0.1:4")
    );
    assert_eq!(c.envoy.concurrency, Some(3));
    assert_eq!(
        (c.envoy.drain_strategy.as_str(), c.envoy.log_level.as_str()),
        ("gradual", "debug")
    );
    assert_eq!(c.runtime_dir, Some(PathBuf::from("/run")));
    assert_eq!(
        (c.drain.delay_ms, c.drain.min_ms, c.drain.deadline_ms),
        (1, 2, 3)
    );
    assert_eq!(
        (c.log.format.as_str(), c.log.level.as_str()),
        ("text", "debug")
    );
    assert_eq!(c.source.ambassador_id, "flag");
    assert_eq!(c.source.namespace.as_deref(), Some("ns"));
}
