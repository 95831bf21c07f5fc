//! `legate probe ready|live`: asks a running legate's probe listener and exits 0 when it
//! answers 200, 1 otherwise. Made for the image's `HEALTHCHECK` and Kubernetes exec probes,
//! where there is no shell or curl: one HTTP/1.1 request over a plain TCP connection.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::cli::{ProbeArgs, ProbeKind};
use crate::config::{self, Env};
use crate::exit;

/// The outcome of one probe: the status line's code and the body (trimmed), or why there is
/// none.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("not an HTTP answer from {addr}: {head:?}")]
    Malformed { addr: SocketAddr, head: String },
}

/// The address to ask: `--address`, else `probe.address` from the settings (file and
/// environment, as `legate run` reads them). An unspecified IP (`0.0.0.0`, `::`) means the
/// listener is on every interface: ask loopback.
pub fn target(args: &ProbeArgs, env: &Env) -> Result<SocketAddr, config::ConfigError> {
    let addr = match args.address {
        Some(addr) => addr,
        None => {
            let run = crate::cli::RunArgs {
                config: args.config.clone(),
                ..Default::default()
            };
            config::load(&run, env)?.probe.address
        }
    };
    Ok(match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    })
}

/// One `GET` of `path` on `addr`, within `timeout` for each step.
pub fn ask(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Answer, ProbeError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let io = |source| ProbeError::Io { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: legate-probe\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    // The probe server's answers are a few bytes; cap what we read all the same.
    let mut raw = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut raw).map_err(io)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| ProbeError::Malformed {
            addr,
            head: head.lines().next().unwrap_or_default().to_string(),
        })?;
    Ok(Answer {
        status,
        body: body.trim().to_string(),
    })
}

/// `legate probe`: prints one line and returns the exit code (0 healthy, 1 anything else).
pub fn run(args: &ProbeArgs, env: &Env) -> u8 {
    let addr = match target(args, env) {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("legate probe: {error}");
            return exit::FATAL;
        }
    };
    let path = match args.kind {
        ProbeKind::Ready => "/ready",
        ProbeKind::Live => "/live",
    };
    match ask(addr, path, Duration::from_millis(args.timeout_ms)) {
        Ok(answer) if answer.status == 200 => {
            println!("{path} on {addr}: 200 {}", answer.body);
            exit::CLEAN
        }
        Ok(answer) => {
            println!(
                "{path} on {addr}: {} {}",
                answer.status,
                answer.body.replace('\n', "; ")
            );
            exit::FATAL
        }
        Err(error) => {
            println!("{path}: {error}");
            exit::FATAL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(address: Option<&str>) -> ProbeArgs {
        ProbeArgs {
            kind: ProbeKind::Ready,
            address: address.map(|a| a.parse().unwrap()),
            config: None,
            timeout_ms: 1000,
        }
    }

    #[test]
    fn the_target_comes_from_the_flag_then_the_settings() {
        let env = Env::default();
        assert_eq!(
            target(&args(None), &env).unwrap(),
            "127.0.0.1:8877".parse().unwrap()
        );
        let env: Env = [("LEGATE_PROBE__ADDRESS", "10.1.2.3:9000")]
            .into_iter()
            .collect();
        assert_eq!(
            target(&args(None), &env).unwrap(),
            "10.1.2.3:9000".parse().unwrap()
        );
        assert_eq!(
            target(&args(Some("[::]:1")), &env).unwrap(),
            "[::1]:1".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn asks_the_probe_server() {
        let ready = crate::readiness::Ready::new();
        let guard = ready.guard("snapshot published");
        let server = crate::probe::Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            ready.clone(),
            crate::probe::Heartbeat::default(),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let _task = server.spawn();
        let get = move |path: &'static str| {
            tokio::task::spawn_blocking(move || ask(addr, path, Duration::from_secs(5)).unwrap())
        };
        let answer = get("/ready").await.unwrap();
        assert_eq!(answer.status, 503);
        assert!(answer.body.contains("snapshot published"), "{answer:?}");
        guard.release();
        assert_eq!(get("/ready").await.unwrap().status, 200);
        assert_eq!(get("/live").await.unwrap().status, 200);
    }

    #[test]
    fn nothing_listening_is_an_error() {
        // port 1 on loopback: nothing listens there
        let err = ask(
            "127.0.0.1:1".parse().unwrap(),
            "/ready",
            Duration::from_secs(1),
        );
        assert!(matches!(err, Err(ProbeError::Connect { .. })), "{err:?}");
    }
}
