//! Small parsers: `service` strings, durations, base64, Envoy-safe names
//! (`service`: docs/design.md#service-parsing-and-endpoints).

/// A parsed `[scheme://]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
    /// `Some(true)` for `https://`, `Some(false)` for `http://`, `None` without a scheme.
    pub https: Option<bool>,
    /// Host as written (IPv6 without brackets).
    pub host: String,
    pub port: Option<u16>,
    /// Set when a path, query or fragment was present (it is ignored).
    pub ignored_suffix: Option<String>,
}

impl Service {
    pub fn parse(input: &str) -> Result<Service, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("is empty".into());
        }
        let (https, rest) = match s.split_once("://") {
            Some(("https", r)) => (Some(true), r),
            Some(("http", r)) => (Some(false), r),
            Some((scheme, _)) => return Err(format!("unsupported scheme {scheme:?}")),
            None => (None, s),
        };
        let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, suffix) = rest.split_at(cut);
        let ignored_suffix = (!suffix.is_empty() && suffix != "/").then(|| suffix.to_string());
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{input:?}: unterminated IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("junk after IPv6 address")?),
            };
            (h.to_string(), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{input:?} has no host"));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if !host.chars().all(valid) {
            return Err(format!("{input:?}: invalid host {host:?}"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("{input:?}: invalid port {p:?}")),
            },
        };
        Ok(Service {
            https,
            host,
            port,
            ignored_suffix,
        })
    }

    /// Appends `.<namespace>` to a bare name: not for dotted names, IPs, `localhost`.
    pub fn qualify(&mut self, namespace: &str) {
        if !self.host.contains('.') && !self.host.contains(':') && self.host != "localhost" {
            self.host = format!("{}.{namespace}", self.host);
        }
    }

    /// `host[:port]` as written, IPv6 in brackets.
    pub fn authority(&self) -> String {
        self.written("")
    }

    /// The service as it takes part in the cluster name: scheme (if written) and authority.
    pub fn display(&self) -> String {
        match self.https {
            Some(true) => self.written("https://"),
            Some(false) => self.written("http://"),
            None => self.authority(),
        }
    }

    /// `scheme` then the authority, built in one buffer (this runs for every Mapping).
    fn written(&self, scheme: &str) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(scheme.len() + self.host.len() + 8);
        out.push_str(scheme);
        if self.host.contains(':') {
            out.push('[');
            out.push_str(&self.host);
            out.push(']');
        } else {
            out.push_str(&self.host);
        }
        if let Some(p) = self.port {
            let _ = write!(out, ":{p}");
        }
        out
    }

    /// The port to connect to: explicit, or 443 with TLS, else 80.
    pub fn port_or_default(&self, tls: bool) -> u16 {
        self.port.unwrap_or(if tls { 443 } else { 80 })
    }
}

/// Every character outside `[0-9A-Za-z_]` becomes `_` (Emissary's cluster-name rule).
pub(crate) fn sanitize(s: &str) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        out.push(if keep(c) { c } else { '_' });
    }
    out
}

/// [`sanitize`], reusing `s`'s buffer when it is ASCII (one byte per character, so each byte
/// is replaced in place); the cluster names of every Mapping go through it.
pub(crate) fn sanitize_owned(s: String) -> String {
    if !s.is_ascii() {
        return sanitize(&s);
    }
    let mut bytes = s.into_bytes();
    for b in &mut bytes {
        if !(b.is_ascii_alphanumeric() || *b == b'_') {
            *b = b'_';
        }
    }
    // Still ASCII: every byte is one of the kept ones or `_`.
    String::from_utf8(bytes).unwrap_or_default()
}

/// Parses `0.5s`, `500ms`, `1m30s`, `2h`, `250us` (or a bare number of seconds) into
/// milliseconds, rounding sub-millisecond parts up.
pub(crate) fn duration_ms(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let bad = || format!("{input:?} is not a duration (like 0.5s, 500ms or 1m)");
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0)
            .then(|| (secs * 1000.0).ceil() as u64)
            .ok_or_else(bad);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, after) = rest.split_at(num_end);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let factor = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            _ => return Err(bad()),
        };
        total += value * factor;
        rest = next;
    }
    Ok(total.ceil() as u64)
}

/// Standard base64 (padding optional, whitespace ignored), as in Secret `data`.
pub(crate) fn base64_decode(input: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in input.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(format!("invalid base64 character {:?}", c as char)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_owned_is_sanitize() {
        for s in [
            "",
            "cluster_127_1_0_2_80_ns0",
            "cluster_svc.ns:8080_otls_ctx-name",
            "héllo wörld/é",
            "日本:80",
            "a\u{0}b~c",
        ] {
            assert_eq!(sanitize_owned(s.to_string()), sanitize(s), "{s:?}");
        }
    }

    #[test]
    fn services_parse() {
        let s = Service::parse("https://legacy.apps:8443").unwrap();
        assert_eq!(
            (s.https, s.host.as_str(), s.port),
            (Some(true), "legacy.apps", Some(8443))
        );
        let s = Service::parse("[::1]:9000").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", Some(9000)));
        assert_eq!(s.authority(), "[::1]:9000");
        let s = Service::parse("echo/path?q").unwrap();
        assert_eq!(s.ignored_suffix.as_deref(), Some("/path?q"));
        assert!(Service::parse("ftp://x").is_err());
        assert!(Service::parse("x:99999").is_err());
        assert!(Service::parse("x:abc").is_err());
        assert!(Service::parse(":80").is_err());
        assert!(Service::parse("a b").is_err());
    }

    #[test]
    fn qualification_skips_dotted_and_localhost() {
        let mut s = Service::parse("users:8080").unwrap();
        s.qualify("apps");
        assert_eq!(s.display(), "users.apps:8080");
        for raw in ["a.b", "localhost", "10.0.0.1", "[::1]"] {
            let mut s = Service::parse(raw).unwrap();
            let before = s.clone();
            s.qualify("apps");
            assert_eq!(s, before);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms("0.5s"), Ok(500));
        assert_eq!(duration_ms("500ms"), Ok(500));
        assert_eq!(duration_ms("1m30s"), Ok(90_000));
        assert_eq!(duration_ms("2"), Ok(2000));
        assert!(duration_ms("fast").is_err());
        assert!(duration_ms("5 parsecs").is_err());
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8").unwrap(), b"hello");
        assert!(base64_decode("a*b").is_err());
    }
}
