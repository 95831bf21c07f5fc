//! A small HTTP/1.1 echo upstream for the container quickstart (`image/compose.yaml`) and the
//! image tests. Standard library only: `scripts/image` compiles it with `rustc` alone (no
//! crate graph to build), and it runs on legate's own minimal image base.
//!
//!     upstream [--name NAME] [--listen ADDR]   (default: $HOSTNAME, 0.0.0.0:9000)
//!     upstream orphan [SECS]                   (for the reaping test, see below)
//!
//! Every request gets `200` with a JSON echo: `{"backend", "method", "path", "headers"}`.
//! A `delay_ms=N` anywhere in the path delays the answer N ms (a slow in-flight request).
//! Keep-alive is honoured. SIGTERM exits 0 at once (it is PID 1 of its container).
//!
//! `upstream orphan SECS` starts a child that outlives it (`upstream sleep SECS`, default 1) and
//! exits without waiting for it: the child is re-parented to the container's PID 1, which must
//! reap it when it exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

// The two libc functions needed, declared here to keep the standard library the only dependency.
unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn _exit(status: i32) -> !;
}
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

extern "C" fn exit_now(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("orphan") => orphan(args.get(1).map_or("1", String::as_str)),
        Some("sleep") => {
            let secs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            std::thread::sleep(Duration::from_secs(secs));
        }
        _ => serve(&args),
    }
}

fn orphan(secs: &str) {
    let exe = std::env::current_exe().expect("own executable");
    let child = std::process::Command::new(exe)
        .args(["sleep", secs])
        .spawn()
        .expect("spawn the orphan");
    println!("{}", child.id());
    // exit without waiting: the child becomes an orphan
    std::process::exit(0);
}

fn serve(args: &[String]) {
    // SAFETY: installs a handler that only calls _exit.
    unsafe {
        signal(SIGTERM, exit_now as *const () as usize);
        signal(SIGINT, exit_now as *const () as usize);
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let name = flag("--name")
        .or_else(|| std::env::var("UPSTREAM_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "upstream".into());
    let listen = flag("--listen").unwrap_or_else(|| "0.0.0.0:9000".into());
    let listener = TcpListener::bind(&listen).unwrap_or_else(|e| {
        eprintln!("upstream: cannot listen on {listen}: {e}");
        std::process::exit(1)
    });
    eprintln!("upstream {name}: listening on {listen}");
    for stream in listener.incoming().flatten() {
        let name = name.clone();
        std::thread::spawn(move || {
            let _ = connection(stream, &name);
        });
    }
}

fn connection(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut headers = Vec::new();
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
                headers.push(format!("{}: {}", json(&k), json(&v)));
            }
        }
        std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
        if let Some(ms) = delay(&path) {
            eprintln!("upstream {name}: delaying {method} {path} by {ms} ms");
            std::thread::sleep(Duration::from_millis(ms));
        }
        let body = format!(
            "{{\n  \"backend\": {},\n  \"method\": {},\n  \"path\": {},\n  \"headers\": {{\n    {}\n  }}\n}}\n",
            json(name),
            json(&method),
            json(&path),
            headers.join(",\n    ")
        );
        write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-backend: {name}\r\n{}\r\n{}",
            body.len(),
            if close { "connection: close\r\n" } else { "" },
            if method == "HEAD" { "" } else { &body },
        )?;
        if close {
            return Ok(());
        }
    }
}

/// `s` as a JSON string literal.
fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn delay(path: &str) -> Option<u64> {
    let at = path.find("delay_ms=")? + "delay_ms=".len();
    let digits: String = path[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
