//! The reaper under an orphan storm: every orphan is reaped while an owned child's exit status
//! still reaches its owner (docs/design.md#reaping). Its own test binary, because the reaper
//! reaps every unowned child of the process.

use std::time::Duration;

use legate::reaper::{self, Reaper};
use tokio::process::Command;

/// Zombie children of this process, from /proc.
fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses and may contain spaces).
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me.to_string() {
            out.push(pid);
        }
    }
    out
}

fn spawn(cmd: &mut Command) -> (tokio::process::Child, reaper::Owned) {
    reaper::spawn_owned(|| {
        let child = cmd.kill_on_drop(true).spawn()?;
        let pid = child.id().unwrap();
        Ok((child, pid))
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_storm_is_reaped_and_owned_status_survives() {
    let reaper = Reaper::spawn().unwrap();
    for round in 0..20 {
        // A shell that backgrounds 40 short-lived subshells and exits at once: they become
        // orphans re-parented to this process (subreaper) and exit while the owned child runs.
        let (mut storm, storm_owned) = spawn(
            Command::new("sh")
                .arg("-c")
                .arg("for i in $(seq 40); do (sleep 0.0$((i % 10)); exit 3) & done; exit 0"),
        );
        let code = 10 + round;
        let (mut child, owned) = spawn(
            Command::new("sh")
                .arg("-c")
                .arg(format!("sleep 0.0{}; exit {code}", round % 10)),
        );
        assert!(reaper::is_owned(owned.pid()));
        let storm_status = storm.wait().await.expect("storm shell status");
        drop(storm_owned);
        assert!(storm_status.success());
        let status = child.wait().await.expect("owned child status delivered");
        drop(owned);
        assert_eq!(status.code(), Some(code), "round {round}");
    }
    // Every orphan ends up reaped: no zombie child is left.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let zombies = zombie_children();
        if zombies.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} zombies left",
            zombies.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reaper.reaped() > 0, "the storms produced orphans");
}

#[tokio::test]
async fn output_runs_an_owned_command() {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("echo hi; exit 4");
    let out = reaper::output(cmd).await.unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, b"hi\n");
}
