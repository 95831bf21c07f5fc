//! Issue 11: legate's container image on the real Docker Engine. Each test starts containers
//! of the image `scripts/image` built (legate:latest) and the demo upstream image, with names
//! unique to the run, and removes them (and their networks) when it ends, pass or fail.
//!
//! Every legate container runs hardened, as the Kubernetes Deployment does (tests/manifests.rs
//! checks the pod spec against `docker::HARDENED`): read-only root filesystem with a tmpfs for the
//! runtime dir, every capability dropped, no-new-privileges, the image's non-root user.

#[path = "common/docker.rs"]
mod docker;

use std::time::Duration;

use docker::{
    ConfigDir, Container, HARDENED, Scope, backend_of, docker, docker_output, eventually, get,
    routes,
};

const READY: Duration = Duration::from_secs(60);

/// legate on `network` serving `config` (mounted read-only at /config), ports published on
/// loopback: 8080 (data) and 8877 (probes); plus any `extra` run flags and legate args.
fn legate(
    scope: &Scope,
    network: &str,
    config: &ConfigDir,
    extra: &[&str],
    args: &[&str],
) -> Container {
    let mount = config.mount();
    let image = docker::image();
    let mut all: Vec<&str> = vec![
        "--network",
        network,
        "-p",
        "127.0.0.1::8080",
        "-p",
        "127.0.0.1::8877",
        "-v",
        &mount,
    ];
    all.extend_from_slice(HARDENED);
    all.extend_from_slice(extra);
    all.push(&image);
    all.extend_from_slice(args);
    scope.run("legate", &all)
}

fn served_by(c: &Container, path: &str) -> Option<String> {
    match get(c.port(8080), path) {
        Ok((200, body)) => backend_of(&body),
        _ => None,
    }
}

#[test]
fn hardened_container_is_ready_and_routes_to_an_upstream_container() {
    let Some(scope) = docker::require() else {
        return;
    };
    let net = scope.network();
    scope.upstream(&net, "alpha");
    let config = ConfigDir::new(&[("routes.yaml", &routes(&[("a", "/a/", "alpha:9000")]))]);
    let c = legate(&scope, &net, &config, &["--health-interval", "1s"], &[]);
    c.wait_ready(READY);
    let (status, body) = get(c.port(8080), "/a/hello").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(backend_of(&body).as_deref(), Some("alpha"), "{body}");
    let (status, _) = get(c.port(8080), "/nowhere").unwrap();
    assert_eq!(status, 404);

    // legate is PID 1 of the container, non-root, with no capabilities
    let pid: i32 = c.inspect("{{.State.Pid}}").parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "legate");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap()
    };
    assert_eq!(field("Uid:"), ["65532"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65532"; 4], "{status}");
    assert_eq!(field("CapEff:"), ["0000000000000000"], "{status}");
    assert_eq!(field("CapPrm:"), ["0000000000000000"], "{status}");
    assert_eq!(field("NoNewPrivs:"), ["1"], "{status}");
    assert_eq!(c.inspect("{{.HostConfig.ReadonlyRootfs}}"), "true");
    // Envoy is legate's child
    let envoy = c.top().into_iter().find(|(_, _, cmd)| cmd == "envoy");
    let (envoy_pid, _, _) = envoy.expect("envoy runs in the container");
    let ppid = std::fs::read_to_string(format!("/proc/{envoy_pid}/stat")).unwrap();
    let ppid: i32 = ppid
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, pid, "envoy's parent is legate");

    // the image's HEALTHCHECK (`legate probe ready`, no shell) reports healthy
    eventually(READY, "docker health: healthy", || {
        (c.inspect("{{.State.Health.Status}}") == "healthy").then_some(())
    });
    let exec = docker_output(&["exec", &c.name, "legate", "probe", "live"]);
    assert!(exec.status.success(), "{exec:?}");
    let shell = docker_output(&["exec", &c.name, "sh", "-c", "true"]);
    assert!(!shell.status.success(), "the image has no shell");
}

#[test]
fn a_change_to_a_file_on_the_host_is_served() {
    let Some(scope) = docker::require() else {
        return;
    };
    let net = scope.network();
    scope.upstream(&net, "alpha");
    scope.upstream(&net, "beta");
    let config = ConfigDir::new(&[("routes.yaml", &routes(&[("a", "/x/", "alpha:9000")]))]);
    let c = legate(&scope, &net, &config, &[], &[]);
    c.wait_ready(READY);
    assert_eq!(served_by(&c, "/x/1").as_deref(), Some("alpha"));
    config.write("routes.yaml", &routes(&[("a", "/x/", "beta:9000")]));
    eventually(READY, "/x/ served by beta", || {
        (served_by(&c, "/x/2").as_deref() == Some("beta")).then_some(())
    });
    config.write("more.yaml", &docker::mapping("b", "/y/", "alpha:9000"));
    eventually(READY, "/y/ served by alpha", || {
        (served_by(&c, "/y/1").as_deref() == Some("alpha")).then_some(())
    });
}

#[test]
fn docker_stop_drains_an_in_flight_request_and_exits_0() {
    let Some(scope) = docker::require() else {
        return;
    };
    let net = scope.network();
    let upstream = scope.upstream(&net, "alpha");
    let config = ConfigDir::new(&[("routes.yaml", &routes(&[("a", "/a/", "alpha:9000")]))]);
    let c = legate(&scope, &net, &config, &[], &[]);
    c.wait_ready(READY);
    let data = c.port(8080);
    let probe = c.port(8877);

    // a slow request in flight (3 s at the upstream), then `docker stop`
    let slow = std::thread::spawn(move || get(data, "/a/slow?delay_ms=3000"));
    eventually(READY, "the slow request reached the upstream", || {
        upstream.logs().contains("delaying").then_some(())
    });
    let name = c.name.clone();
    let stop = std::thread::spawn(move || docker_output(&["stop", "-t", "40", &name]));
    // readiness goes 503 while the drain runs (drain.min_ms keeps it up 5 s)
    let not_ready = eventually(
        Duration::from_secs(30),
        "/ready 503 during the drain",
        || match get(probe, "/ready") {
            Ok((503, body)) => Some(body),
            Ok(_) => None,
            Err(_) => Some(String::new()),
        },
    );
    assert!(
        not_ready.contains("draining"),
        "the drain is named: {not_ready:?}"
    );
    let (status, body) = slow
        .join()
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(status, 200, "{body}");
    assert_eq!(backend_of(&body).as_deref(), Some("alpha"));
    let stopped = stop.join().unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0", "logs:\n{}", c.logs());
    assert_eq!(c.inspect("{{.State.OOMKilled}}"), "false");
}

#[test]
fn envoy_killed_inside_the_container_is_restarted_by_legate() {
    let Some(scope) = docker::require() else {
        return;
    };
    let net = scope.network();
    scope.upstream(&net, "alpha");
    let config = ConfigDir::new(&[("routes.yaml", &routes(&[("a", "/a/", "alpha:9000")]))]);
    let c = legate(&scope, &net, &config, &[], &[]);
    c.wait_ready(READY);
    let envoy_pid = |c: &Container| {
        c.top()
            .into_iter()
            .find(|(_, state, cmd)| cmd == "envoy" && !state.starts_with('Z'))
            .map(|(pid, _, _)| pid)
    };
    let first = envoy_pid(&c).expect("envoy runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let second = eventually(READY, "a new envoy", || {
        envoy_pid(&c).filter(|p| *p != first)
    });
    assert_ne!(first, second);
    c.wait_ready(READY);
    eventually(READY, "traffic served again", || {
        (served_by(&c, "/a/again").as_deref() == Some("alpha")).then_some(())
    });
    assert_eq!(c.inspect("{{.State.Running}}"), "true");
    assert_eq!(c.inspect("{{.RestartCount}}"), "0");
    assert!(c.logs().contains("restart"), "legate logs the restart");
}

#[test]
fn an_orphan_inside_the_container_is_reaped() {
    let Some(scope) = docker::require() else {
        return;
    };
    let net = scope.network();
    let config = ConfigDir::new(&[("routes.yaml", &routes(&[]))]);
    let helper = format!("{}:/helper:ro", docker::upstream_binary().display());
    let c = legate(&scope, &net, &config, &["-v", &helper], &[]);
    c.wait_ready(READY);
    // `upstream orphan 5` starts `upstream sleep 5` and exits at once: the sleeper is
    // re-parented to PID 1 (legate), and must be reaped when it exits.
    let legate_pid: i32 = c.inspect("{{.State.Pid}}").parse().unwrap();
    let out = docker(&["exec", &c.name, "/helper", "orphan", "5"]);
    assert!(out.trim().parse::<u32>().is_ok(), "{out}");
    // legate's children, seen from the host: (pid, state, command)
    let children = || -> Vec<(i32, char, String)> {
        let mut found = Vec::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{legate_pid}/task")) else {
            return found;
        };
        for task in tasks.flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for pid in list
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let comm = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')'));
                if let Some((comm, rest)) = comm {
                    let state = rest.trim_start().chars().next().unwrap_or('?');
                    found.push((pid, state, comm.to_string()));
                }
            }
        }
        found
    };
    let orphan = eventually(
        Duration::from_secs(5),
        "the orphan re-parented to legate",
        || children().into_iter().find(|(_, _, comm)| comm == "helper"),
    );
    eventually(
        Duration::from_secs(30),
        "the orphan gone, no zombie left",
        || {
            let now = children();
            let gone = !now.iter().any(|(pid, _, _)| *pid == orphan.0);
            let zombies = now.iter().any(|(_, state, _)| *state == 'Z');
            (gone && !zombies).then_some(())
        },
    );
    let zombies: Vec<_> = c
        .top()
        .into_iter()
        .filter(|(_, s, _)| s.starts_with('Z'))
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}");
    assert_eq!(c.inspect("{{.State.Running}}"), "true");
}

#[test]
fn no_configuration_at_all_exits_2_saying_what_is_missing() {
    let Some(scope) = docker::require() else {
        return;
    };
    let mut args: Vec<&str> = HARDENED.to_vec();
    let image = docker::image();
    args.push(&image);
    let out = scope.run_to_exit("noconfig", &args, READY);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no configuration source"), "{stderr}");
    assert!(stderr.contains("/config"), "{stderr}");
}

#[test]
fn the_shipped_binary_allocates_with_jemalloc_as_configured() {
    // The image's binary is built with its own profile (LTO, stripped): the allocator and the
    // options `src/memory.rs` exports must survive that. jemalloc prints its options at exit
    // when asked to through its environment variable (prefixed as its symbols are).
    let Some(scope) = docker::require() else {
        return;
    };
    let mut args: Vec<&str> = HARDENED.to_vec();
    let image = docker::image();
    args.extend([
        "-e",
        "_RJEM_MALLOC_CONF=stats_print:true",
        &image,
        "--version",
    ]);
    let out = scope.run_to_exit("allocator", &args, READY);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("legate "), "{stdout}");
    // Whole lines: `opt.narenas: 2` must not match 20, nor `…: 1000` the default 10000.
    // (`muzzy_decay_ms:0` is also jemalloc 5.3's default: not a proof, not checked.)
    let lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim)
        .collect();
    for option in [
        "opt.narenas: 2",
        "opt.background_thread: true (background_thread: true)",
        "opt.dirty_decay_ms: 1000 (arenas.dirty_decay_ms: 1000)",
    ] {
        assert!(
            lines.contains(&option),
            "{option:?} not a line of jemalloc's statistics:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn an_unreadable_config_mount_exits_2_naming_it() {
    let Some(scope) = docker::require() else {
        return;
    };
    let config = ConfigDir::new(&[("routes.yaml", &routes(&[]))]);
    docker::set_mode(config.path(), 0o700); // root's, so not the image user's
    let mount = config.mount();
    let mut args: Vec<&str> = HARDENED.to_vec();
    let image = docker::image();
    args.extend(["-v", &mount, &image]);
    let out = scope.run_to_exit("unreadable", &args, READY);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/config"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("permission denied"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_yaml_file_is_reported_and_the_rest_is_served() {
    let Some(scope) = docker::require() else {
        return;
    };
    let net = scope.network();
    scope.upstream(&net, "alpha");
    let config = ConfigDir::new(&[
        ("routes.yaml", &routes(&[("a", "/a/", "alpha:9000")])),
        (
            "broken.yaml",
            "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: broken\nspec: [\n",
        ),
    ]);
    // the admin listener is loopback-only by default; published here to read /errors
    let c = legate(
        &scope,
        &net,
        &config,
        &["-p", "127.0.0.1::8878"],
        &[
            "--admin-address",
            "0.0.0.0:8878",
            "--admin-allow-non-loopback",
        ],
    );
    c.wait_ready(READY);
    assert_eq!(served_by(&c, "/a/ok").as_deref(), Some("alpha"));
    let (status, errors) = get(c.port(8878), "/errors").unwrap();
    assert_eq!(status, 200);
    assert!(errors.contains("broken.yaml"), "{errors}");
    assert!(c.logs().contains("broken.yaml"), "the error is logged too");
}
