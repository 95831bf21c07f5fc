//! The built binary: bad settings exit 2 naming the setting, a missing Envoy exits 5 saying how
//! to install it, a port that cannot be bound exits 1 before Envoy starts; good settings serve
//! probes and SIGTERM exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_legate");

/// Runs legate expecting it to stop on its own; a legate that starts serving instead is killed
/// after 30 s and fails the test.
fn legate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("LEGATE_CONFIG")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().unwrap()));
    waited
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("legate {args:?} kept running instead of rejecting its settings")
        })
}

fn assert_rejected(out: &Output, setting: &str, value: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.starts_with(&format!("legate: invalid setting {setting}: ")),
        "stderr: {stderr}"
    );
    assert!(stderr.contains(value), "stderr: {stderr}");
}

#[test]
fn unparsable_environment_value_exits_2() {
    let out = legate(&[], &[("LEGATE_DRAIN__MIN_MS", "abc")]);
    assert_rejected(&out, "drain.min_ms", "abc");
    assert!(String::from_utf8_lossy(&out.stderr).contains("LEGATE_DRAIN__MIN_MS"));
}

#[test]
fn contradictory_flags_exit_2() {
    let out = legate(
        &["--drain-min-ms", "9000", "--drain-deadline-ms", "1000"],
        &[],
    );
    assert_rejected(&out, "drain.min_ms", "9000");
    let out = legate(&["run", "--admin-address", "0.0.0.0:0"], &[]);
    assert_rejected(&out, "admin.address", "0.0.0.0:0");
}

#[test]
fn bad_settings_file_exits_2() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(b"[drain]\ndelay_ms = 30000\n").unwrap();
    let path = file.path().to_str().unwrap();
    let out = legate(&[], &[("LEGATE_CONFIG", path)]);
    assert_rejected(&out, "drain.delay_ms", "30000");
    // a flag fixes the file's value: the next problem reported is another one
    let fixed = ["--config", path, "--drain-deadline-ms", "40000"];
    let out = legate(
        &[&fixed[..], &["--admin-address", "0.0.0.0:1"]].concat(),
        &[],
    );
    assert_rejected(&out, "admin.address", "0.0.0.0:1");
}

#[test]
fn bad_rust_log_exits_2() {
    let out = legate(&[], &[("RUST_LOG", "legate=[")]);
    assert_rejected(&out, "RUST_LOG", "legate=[");
}

#[test]
fn unusable_flag_is_a_usage_error() {
    let out = legate(&["--drain-min-ms", "soon"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--drain-min-ms"));
}

/// Kills the child when the test ends, pass or fail.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.into(),
    )
}

/// The start-up error line (`legate: ...`), after any log lines.
fn start_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find(|l| l.starts_with("legate: "))
        .unwrap_or_else(|| panic!("no `legate: ` line in stderr: {stderr}"))
        .to_string()
}

const LOOPBACK_PORTS: [&str; 4] = [
    "--probe-address",
    "127.0.0.1:0",
    "--admin-address",
    "127.0.0.1:0",
];

#[test]
fn missing_config_dir_exits_2() {
    let out = legate(
        &[
            &["run", "--config-dir", "/nonexistent/legate-config"],
            &LOOPBACK_PORTS[..],
        ]
        .concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = start_error(&out);
    assert!(
        line.starts_with("legate: invalid setting source.config_dir: "),
        "{line}"
    );
    assert!(line.contains("/nonexistent/legate-config"), "{line}");
    assert!(line.contains("does not exist"), "{line}");
}

#[test]
fn no_config_source_exits_2() {
    let out = legate(&[&["run"], &LOOPBACK_PORTS[..]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = start_error(&out);
    assert!(
        line.starts_with("legate: invalid setting source.config_dir: "),
        "{line}"
    );
    assert!(line.contains("--config-dir"), "{line}");
}

#[test]
fn missing_envoy_binary_exits_5_with_install_instructions() {
    let out = run_with_envoy("/nonexistent/envoy");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let line = start_error(&out);
    assert!(line.contains("/nonexistent/envoy"), "{line}");
    assert!(line.contains("scripts/install-envoy"), "{line}");
    assert!(line.contains("--envoy-binary"), "{line}");
}

/// The real cause of a failure reaches both the exit message (`legate: ...`, last) and an
/// ERROR log line (issue 9, item 3: the cause chain is printed at the edge).
fn assert_cause(out: &Output, cause: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = start_error(out);
    assert!(line.contains(cause), "exit message lacks {cause:?}: {line}");
    assert!(
        stderr
            .lines()
            .any(|l| !l.starts_with("legate: ") && l.contains("ERROR") && l.contains(cause)),
        "no ERROR log line with {cause:?}: {stderr}"
    );
}

/// `legate run` with an empty config dir, loopback ports and its own runtime dir, stopping on
/// its own (a failure is expected).
fn run_with_envoy(envoy: &str) -> Output {
    let config = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--config-dir",
        config.path().to_str().unwrap(),
        "--runtime-dir",
        runtime.path().to_str().unwrap(),
        "--envoy-binary",
        envoy,
    ];
    legate(&[&args[..], &LOOPBACK_PORTS[..]].concat(), &[])
}

#[test]
fn an_envoy_binary_without_execute_permission_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy");
    std::fs::write(&path, "not a program\n").unwrap();
    let out = run_with_envoy(path.to_str().unwrap());
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_cause(&out, "is not executable (mode 0644)");
}

#[test]
fn an_envoy_binary_that_cannot_be_executed_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy");
    std::fs::write(&path, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_with_envoy(path.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_cause(&out, "Exec format error");
}

/// The real Envoy rejects a bootstrap: its own words reach the log and the exit message. A
/// wrapper adds a field Envoy does not know to the bootstrap legate wrote, then runs the real
/// Envoy on it.
#[test]
fn an_invalid_bootstrap_shows_envoys_reason() {
    use std::os::unix::fs::PermissionsExt;
    let Some(envoy) = legate::envoy::locate::for_tests() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("envoy");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprev=\nfor a; do [ \"$prev\" = -c ] && echo 'legate_test_unknown_field: 1' >> \"$a\"; prev=$a; done\nexec {} \"$@\"\n",
            envoy.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_with_envoy(wrapper.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_cause(&out, "envoy rejects the bootstrap");
    assert_cause(&out, "legate_test_unknown_field");
}

#[test]
fn taken_admin_port_exits_1_without_starting_envoy() {
    let Some(envoy) = legate::envoy::locate::for_tests() else {
        return;
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let config = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--config-dir",
        config.path().to_str().unwrap(),
        "--runtime-dir",
        runtime.path().to_str().unwrap(),
        "--envoy-binary",
        envoy.to_str().unwrap(),
        "--probe-address",
        "127.0.0.1:0",
        "--admin-address",
        &taken,
    ];
    let out = legate(&args, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = start_error(&out);
    assert!(line.contains("admin listener"), "{line}");
    assert_cause(&out, "Address already in use");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("envoy started"), "{stderr}");
    // not even the bootstrap was written: the supervisor never ran
    assert!(!runtime.path().join("envoy.yaml").exists(), "{stderr}");
}

#[test]
fn run_serves_probes_and_exits_0_on_sigterm() {
    let Some(envoy) = legate::envoy::locate::for_tests() else {
        return;
    };
    let runtime = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let mut child = Reap(
        Command::new(BIN)
            .args([
                "--probe-address",
                "127.0.0.1:0",
                "--admin-address",
                "127.0.0.1:0",
            ])
            .args([
                "--drain-min-ms",
                "0",
                "--drain-delay-ms",
                "0",
                "--log-format",
                "json",
            ])
            .arg("--runtime-dir")
            .arg(runtime.path())
            .arg("--config-dir")
            .arg(config.path())
            .arg("--envoy-binary")
            .arg(envoy)
            .env_remove("LEGATE_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // the bound addresses come from the `legate started` log line; the rest of stderr is
    // drained on a thread so legate never blocks writing it
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap())
        .find(|l| l["message"] == "legate started")
        .expect("a `legate started` log line");
    std::thread::spawn(move || lines.for_each(drop));
    let probe: SocketAddr = started["probe"].as_str().unwrap().parse().unwrap();
    let (status, body) = get(probe, "/live");
    assert_eq!((status, body.as_str()), (200, "alive\n"));

    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "legate did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// `translate` and `check` read `run`'s settings through the same function (issue 9, item 7):
/// with endpoint routing on, the printed IR is exactly the endpoint-routing golden IR, and the
/// built-in probe routes target the configured probe port.
#[test]
fn translate_and_check_print_what_run_would_serve() {
    let case = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/eds-endpoint-routing"
    );
    let ir = |env: &[(&str, &str)], args: &[&str]| -> serde_json::Value {
        let out = legate(&[&["translate", case][..], args].concat(), env);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{case}/ir.json")).unwrap()).unwrap();
    let routed = ir(&[("LEGATE_SOURCE__ENDPOINT_ROUTING", "true")], &[]);
    assert_eq!(routed, golden);
    assert_ne!(ir(&[], &[]), golden, "endpoint routing changes the IR");

    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(b"[probe]\naddress = \"127.0.0.1:9911\"\n")
        .unwrap();
    let path = file.path().to_str().unwrap();
    let text = ir(&[], &["--config", path]).to_string();
    assert!(text.contains("cluster_127_0_0_1_9911_default"), "{text}");
    assert!(!text.contains("8877"), "{text}");
    // `check` reads the same settings: an invalid one is refused as `run` refuses it
    let out = legate(&["check", case], &[("LEGATE_PROBE__ADDRESS", "nonsense")]);
    assert_rejected(&out, "probe.address", "nonsense");
}

/// A symlink planted where the runtime dir is configured is refused (exit 1, the reason in the
/// log and the exit message), and nothing is written through it.
#[test]
fn a_planted_runtime_dir_symlink_is_refused() {
    let config = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("attacker");
    std::fs::create_dir(&target).unwrap();
    let planted = tmp.path().join("run");
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    let args = [
        "run",
        "--config-dir",
        config.path().to_str().unwrap(),
        "--runtime-dir",
        planted.to_str().unwrap(),
        "--envoy-binary",
        "/nonexistent/envoy",
    ];
    let out = legate(&[&args[..], &LOOPBACK_PORTS[..]].concat(), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_cause(&out, "it is a symlink");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}
