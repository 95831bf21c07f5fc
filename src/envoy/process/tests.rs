use super::*;

#[test]
fn cgroup_v2_cpu_max() {
    assert_eq!(parse_cpu_max("max 100000\n"), None);
    assert_eq!(parse_cpu_max("100000 100000\n"), Some(1));
    assert_eq!(parse_cpu_max("150000 100000"), Some(1));
    assert_eq!(parse_cpu_max("50000 100000"), Some(1));
    assert_eq!(parse_cpu_max("400000 100000"), Some(4));
    assert_eq!(parse_cpu_max("200000"), Some(2));
    assert_eq!(parse_cpu_max("garbage"), None);
    assert_eq!(parse_cpu_max("100 0"), None);
}

#[test]
fn cgroup_v1_cfs() {
    assert_eq!(parse_cfs("-1\n", "100000\n"), None);
    assert_eq!(parse_cfs("250000\n", "100000\n"), Some(2));
    assert_eq!(parse_cfs("20000", "100000"), Some(1));
}

#[test]
fn cgroup_files_are_found_for_v2_and_v1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(cpu_limit_under(root, ""), None);

    // v2, own cgroup below the mount root.
    std::fs::create_dir_all(root.join("kubepods/pod1")).unwrap();
    std::fs::write(root.join("kubepods/pod1/cpu.max"), "300000 100000\n").unwrap();
    assert_eq!(cpu_limit_under(root, "0::/kubepods/pod1\n"), Some(3));

    // v1, no quota in the own cgroup.
    let v1 = tempfile::tempdir().unwrap();
    let cpu = v1.path().join("cpu,cpuacct/docker/abc");
    std::fs::create_dir_all(&cpu).unwrap();
    std::fs::write(cpu.join("cpu.cfs_quota_us"), "-1\n").unwrap();
    std::fs::write(cpu.join("cpu.cfs_period_us"), "100000\n").unwrap();
    let own = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n";
    assert_eq!(cpu_limit_under(v1.path(), own), None);
    std::fs::write(cpu.join("cpu.cfs_quota_us"), "150000\n").unwrap();
    assert_eq!(cpu_limit_under(v1.path(), own), Some(1));
}

fn flags(concurrency: Option<u32>) -> Flags {
    Flags {
        bootstrap: "/run/legate/envoy.yaml".into(),
        drain_strategy: "immediate".into(),
        drain_time_s: drain_time_s(25_000),
        log_level: "warning".into(),
        concurrency,
        admin_address_path: None,
    }
}

fn args(f: &Flags) -> Vec<String> {
    f.args()
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
}

#[test]
fn concurrency_flag_only_with_a_quota() {
    let without = args(&flags(None));
    assert!(!without.iter().any(|a| a == "--concurrency"), "{without:?}");
    let with = args(&flags(Some(2)));
    let i = with.iter().position(|a| a == "--concurrency").unwrap();
    assert_eq!(with[i + 1], "2");
    assert_eq!(concurrency(Some(3)), Some(3));
}

#[test]
fn command_line_has_the_lifecycle_flags() {
    let a = args(&flags(None));
    for expected in [
        "--disable-hot-restart",
        "--drain-strategy",
        "immediate",
        "--drain-time-s",
        "30",
        "-c",
        "/run/legate/envoy.yaml",
        "-l",
        "warning",
        "--ignore-unknown-dynamic-fields",
    ] {
        assert!(a.iter().any(|x| x == expected), "{expected} missing: {a:?}");
    }
    assert_eq!(drain_time_s(25_001), 31);
}

#[test]
fn log_lines_are_split() {
    let ours = parse_line("[warning][main][source/server/server.cc:1028] caught ENVOY_SIGTERM\n");
    assert_eq!(
        ours,
        LogLine {
            level: Some("warning"),
            logger: Some("main"),
            source: Some("source/server/server.cc:1028"),
            message: "caught ENVOY_SIGTERM",
        }
    );
    let default = parse_line(
        "[2026-11-29 10:56:12.533][13245][info][config] [source/server/x.cc:138] loading 1 cluster(s)",
    );
    assert_eq!(default.level, Some("info"));
    assert_eq!(default.logger, Some("config"));
    assert_eq!(default.source, Some("source/server/x.cc:138"));
    assert_eq!(default.message, "loading 1 cluster(s)");
    let plain = parse_line("configuration 'b.yaml' OK");
    assert_eq!(plain.level, None);
    assert_eq!(plain.message, "configuration 'b.yaml' OK");
    let no_source = parse_line("[error][upstream] [brackets] in message");
    assert_eq!(no_source.source, None);
    assert_eq!(no_source.message, "[brackets] in message");
}

#[test]
fn exit_info_display_and_shell_code() {
    let killed = ExitInfo {
        code: None,
        signal: Some(9),
    };
    assert_eq!(killed.to_string(), "killed by SIGKILL");
    assert_eq!(killed.shell_code(), 137);
    let exited = ExitInfo {
        code: Some(1),
        signal: None,
    };
    assert_eq!(exited.to_string(), "exit code 1");
    assert_eq!(exited.shell_code(), 1);
}

#[tokio::test]
async fn launched_child_is_reaped_with_its_status() {
    let launcher = Launcher::new().unwrap();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg("echo from-child; exit 5");
    let p = launcher.spawn(cmd).await.unwrap();
    let exit = p.wait_timeout(Duration::from_secs(30)).await.unwrap();
    assert_eq!(exit.code, Some(5));
    assert!(!crate::reaper::is_owned(p.pid()));
}

#[tokio::test]
async fn dropping_the_launcher_kills_its_children() {
    let launcher = Launcher::new().unwrap();
    let mut cmd = tokio::process::Command::new("sleep");
    cmd.arg("60");
    let p = launcher.spawn(cmd).await.unwrap();
    assert_eq!(p.exited(), None);
    // The launcher thread exits, so PR_SET_PDEATHSIG delivers SIGKILL to the child.
    drop(launcher);
    let exit = p.wait_timeout(Duration::from_secs(30)).await.unwrap();
    assert_eq!(exit.signal, Some(libc::SIGKILL));
}
