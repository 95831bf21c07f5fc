//! A child spawned through `envoy::process::Launcher` starts with default signal dispositions
//! and an empty signal mask even when legate ignores or blocks signals
//! (docs/design.md#spawning-envoy).
//! Its own test binary: it changes this process's SIGQUIT disposition.

use std::time::Duration;

use legate::envoy::process::Launcher;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, pthread_sigmask, signal};

/// `SigBlk` and `SigIgn` of a status file, as bit masks.
fn masks(status: &str) -> (u64, u64) {
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in {status}"));
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    (field("SigBlk:"), field("SigIgn:"))
}

fn bit(sig: Signal) -> u64 {
    1 << (sig as i32 - 1)
}

#[tokio::test(flavor = "current_thread")]
async fn child_signal_mask_and_dispositions_are_clean() {
    // SAFETY: setting SIG_IGN installs no handler code; this binary runs only this test.
    unsafe { signal(Signal::SIGQUIT, SigHandler::SigIgn) }.unwrap();
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGUSR2);
    // The launcher thread is created from this thread and inherits its mask.
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let dump = |name: &str| {
        let path = dir.path().join(name);
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg("cat /proc/self/status > \"$1\"")
            .arg("sh")
            .arg(&path);
        (cmd, path)
    };

    // Control: a plain child inherits both (so the test below can fail).
    let (mut plain, plain_path) = dump("plain");
    let status = plain.status().await.unwrap();
    assert!(status.success());
    let (blk, ign) = masks(&std::fs::read_to_string(plain_path).unwrap());
    assert_ne!(
        ign & bit(Signal::SIGQUIT),
        0,
        "control child should inherit SIG_IGN"
    );

    let launcher = Launcher::new().unwrap();
    let (cmd, path) = dump("hardened");
    let child = launcher.spawn(cmd).await.unwrap();
    let exit = child.wait_timeout(Duration::from_secs(30)).await.unwrap();
    assert_eq!(exit.code, Some(0));
    let (hblk, hign) = masks(&std::fs::read_to_string(path).unwrap());
    assert_eq!(hign, 0, "hardened child ignores signals: {hign:#x}");
    assert_eq!(hblk, 0, "hardened child blocks signals: {hblk:#x}");
    // The control's mask depends on where tokio ran it; report it for context only.
    eprintln!("control child SigBlk={blk:#x} SigIgn={ign:#x}");
}
