//! The Module's HTTP connection manager options that arrive untyped
//! (docs/design.md#module-keys-honoured): address
//! rules (`ip_allow` / `ip_deny`), HTTP/1 and header handling, client-certificate forwarding
//! and header-name case. Each is checked here so an error names the exact key (and entry).

use std::net::IpAddr;

use serde_json::Value;

use crate::api::module::ModuleConfig;
use crate::ir::{
    ClientCertDetails, ForwardClientCert, HeaderKeyFormat, HeadersWithUnderscores, IpAction,
    IpPrincipal, IpRules, IpSource,
};

use super::super::policy::FieldError;

/// The checked options; defaults are Envoy's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HttpOptions {
    pub ip_rules: Option<IpRules>,
    pub allow_chunked_length: bool,
    pub headers_with_underscores: Option<HeadersWithUnderscores>,
    pub forward_client_cert: Option<ForwardClientCert>,
    pub set_current_client_cert: Option<ClientCertDetails>,
    /// Downstream and upstream (HTTP/1 clusters).
    pub header_key_format: Option<HeaderKeyFormat>,
}

fn err(field: impl Into<String>, msg: impl Into<String>) -> FieldError {
    (field.into(), msg.into())
}

pub(crate) fn read(c: &ModuleConfig) -> Result<HttpOptions, FieldError> {
    Ok(HttpOptions {
        ip_rules: ip_rules(c)?,
        allow_chunked_length: flag("allow_chunked_length", c.allow_chunked_length.as_ref())?,
        headers_with_underscores: one_of(
            "headers_with_underscores_action",
            c.headers_with_underscores_action.as_ref(),
            &[
                ("ALLOW", HeadersWithUnderscores::Allow),
                ("REJECT_REQUEST", HeadersWithUnderscores::RejectRequest),
                ("DROP_HEADER", HeadersWithUnderscores::DropHeader),
            ],
        )?,
        forward_client_cert: one_of(
            "forward_client_cert_details",
            c.forward_client_cert_details.as_ref(),
            &[
                ("SANITIZE", ForwardClientCert::Sanitize),
                ("FORWARD_ONLY", ForwardClientCert::ForwardOnly),
                ("APPEND_FORWARD", ForwardClientCert::AppendForward),
                ("SANITIZE_SET", ForwardClientCert::SanitizeSet),
                ("ALWAYS_FORWARD_ONLY", ForwardClientCert::AlwaysForwardOnly),
            ],
        )?,
        set_current_client_cert: client_cert_details(c.set_current_client_cert_details.as_ref())?,
        header_key_format: header_key_format(c)?,
    })
}

fn flag(key: &str, v: Option<&Value>) -> Result<bool, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(key, "must be true or false")),
    }
}

/// An enum written as Envoy spells it (upper case, as Emissary requires).
fn one_of<T: Copy>(
    key: &str,
    v: Option<&Value>,
    values: &[(&str, T)],
) -> Result<Option<T>, FieldError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let names = || {
        values
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let s = v
        .as_str()
        .ok_or_else(|| err(key, format!("must be one of {}", names())))?;
    values
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, t)| Some(*t))
        .ok_or_else(|| err(key, format!("{s:?} is not one of {}", names())))
}

const CERT_DETAILS: &str = "subject, cert, chain, dns, uri";

fn client_cert_details(v: Option<&Value>) -> Result<Option<ClientCertDetails>, FieldError> {
    const KEY: &str = "set_current_client_cert_details";
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let map = v.as_object().ok_or_else(|| {
        err(
            KEY,
            format!("must be a mapping of {CERT_DETAILS} to true or false"),
        )
    })?;
    let mut d = ClientCertDetails::default();
    for (k, v) in map {
        let slot = match k.as_str() {
            "subject" => &mut d.subject,
            "cert" => &mut d.cert,
            "chain" => &mut d.chain,
            "dns" => &mut d.dns,
            "uri" => &mut d.uri,
            _ => {
                return Err(err(
                    format!("{KEY}.{k}"),
                    format!("is not one of {CERT_DETAILS}"),
                ));
            }
        };
        *slot = v
            .as_bool()
            .ok_or_else(|| err(format!("{KEY}.{k}"), "must be true or false"))?;
    }
    Ok(Some(d))
}

/// `proper_case` is Envoy's `proper_case_words`. `header_case_overrides` (a list of header
/// names forced to the given case) needs the `custom` rules of Emissary's patched Envoy, which
/// stock Envoy 1.40 lacks: it is checked, and reported as ignored by `warn_config`.
fn header_key_format(c: &ModuleConfig) -> Result<Option<HeaderKeyFormat>, FieldError> {
    const OVERRIDES: &str = "header_case_overrides";
    let proper = flag("proper_case", c.proper_case.as_ref())?;
    let overrides = match c.header_case_overrides.as_ref().filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err(format!("{OVERRIDES}[{i}]"), "must be a header name"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(err(OVERRIDES, "must be a list of header names")),
    };
    if proper && !overrides.is_empty() {
        return Err(err(
            OVERRIDES,
            "only one of proper_case and header_case_overrides may be set",
        ));
    }
    Ok(proper.then_some(HeaderKeyFormat::ProperCaseWords))
}

const PRINCIPAL: &str = "must be a list of {peer: CIDR} or {remote: CIDR}";

fn ip_rules(c: &ModuleConfig) -> Result<Option<IpRules>, FieldError> {
    let allow = c.ip_allow.as_ref().filter(|v| !v.is_null());
    let deny = c.ip_deny.as_ref().filter(|v| !v.is_null());
    let (key, action, list) = match (allow, deny) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(err("ip_deny", "ip_allow and ip_deny may not both be set"));
        }
        (Some(v), None) => ("ip_allow", IpAction::Allow, v),
        (None, Some(v)) => ("ip_deny", IpAction::Deny, v),
    };
    let items = list.as_array().ok_or_else(|| err(key, PRINCIPAL))?;
    if items.is_empty() {
        return Err(err(key, format!("is empty; it {PRINCIPAL}")));
    }
    let mut principals = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let map = item.as_object().filter(|m| !m.is_empty()).ok_or_else(|| {
            err(
                format!("{key}[{i}]"),
                "must be {peer: CIDR} or {remote: CIDR}",
            )
        })?;
        for (kind, range) in map {
            let field = format!("{key}[{i}].{kind}");
            let source = match kind.as_str() {
                "peer" => IpSource::Peer,
                "remote" => IpSource::Remote,
                _ => return Err(err(field, "is not peer or remote")),
            };
            let text = range
                .as_str()
                .ok_or_else(|| err(&field, "must be a CIDR range string"))?;
            let (address, prefix_len) = cidr(text).map_err(|m| err(&field, m))?;
            principals.push(IpPrincipal {
                source,
                address,
                prefix_len,
            });
        }
    }
    Ok(Some(IpRules { action, principals }))
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a lone address (a /32 or /128).
fn cidr(text: &str) -> Result<(String, u32), String> {
    let bad = || format!("{text:?} is not a CIDR range (like 10.0.0.0/8 or 2001:db8::/32)");
    let (address, len) = match text.trim().split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text.trim(), None),
    };
    let ip: IpAddr = address.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(bad)?,
    };
    Ok((ip.to_string(), prefix_len))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(v: Value) -> ModuleConfig {
        serde_json::from_value(v).unwrap()
    }

    fn error(v: Value) -> FieldError {
        read(&config(v)).unwrap_err()
    }

    #[test]
    fn defaults_are_envoys() {
        assert_eq!(read(&config(json!({}))).unwrap(), HttpOptions::default());
    }

    #[test]
    fn ip_rules_read_peer_and_remote_ranges() {
        let o = read(&config(json!({"ip_deny": [
            {"peer": "127.0.0.1/32"}, {"remote": "2001:db8::/32"}, {"peer": "10.1.2.3"}
        ]})))
        .unwrap();
        let p = |source, address: &str, prefix_len| IpPrincipal {
            source,
            address: address.into(),
            prefix_len,
        };
        assert_eq!(
            o.ip_rules,
            Some(IpRules {
                action: IpAction::Deny,
                principals: vec![
                    p(IpSource::Peer, "127.0.0.1", 32),
                    p(IpSource::Remote, "2001:db8::", 32),
                    p(IpSource::Peer, "10.1.2.3", 32),
                ],
            })
        );
        let allow = read(&config(json!({"ip_allow": [{"remote": "::1"}]}))).unwrap();
        assert_eq!(allow.ip_rules.unwrap().principals[0].prefix_len, 128);
    }

    #[test]
    fn bad_ip_rules_name_the_entry() {
        let e = error(json!({"ip_allow": [{"peer": "10.0.0.0/8"}, {"peer": "10.0.0.0/33"}]}));
        assert_eq!(e.0, "ip_allow[1].peer");
        assert!(
            e.1.contains("\"10.0.0.0/33\" is not a CIDR range"),
            "{}",
            e.1
        );
        assert_eq!(
            error(json!({"ip_deny": [{"peer": "nope"}]})).0,
            "ip_deny[0].peer"
        );
        assert_eq!(
            error(json!({"ip_deny": [{"host": "::1"}]})).0,
            "ip_deny[0].host"
        );
        assert_eq!(error(json!({"ip_deny": ["::1"]})).0, "ip_deny[0]");
        assert_eq!(error(json!({"ip_deny": []})).0, "ip_deny");
        assert_eq!(error(json!({"ip_deny": "::1"})).0, "ip_deny");
        let both = error(json!({"ip_allow": [{"peer": "::1"}], "ip_deny": [{"peer": "::1"}]}));
        assert_eq!(both.0, "ip_deny");
    }

    #[test]
    fn header_and_certificate_options() {
        let o = read(&config(json!({
            "allow_chunked_length": true,
            "headers_with_underscores_action": "REJECT_REQUEST",
            "forward_client_cert_details": "SANITIZE_SET",
            "set_current_client_cert_details": {"subject": true, "uri": true, "dns": false},
            "proper_case": true,
        })))
        .unwrap();
        assert!(o.allow_chunked_length);
        assert_eq!(
            o.headers_with_underscores,
            Some(HeadersWithUnderscores::RejectRequest)
        );
        assert_eq!(o.forward_client_cert, Some(ForwardClientCert::SanitizeSet));
        assert_eq!(
            o.set_current_client_cert,
            Some(ClientCertDetails {
                subject: true,
                uri: true,
                ..ClientCertDetails::default()
            })
        );
        assert_eq!(o.header_key_format, Some(HeaderKeyFormat::ProperCaseWords));
    }

    #[test]
    fn bad_header_and_certificate_options_name_the_key() {
        let e = error(json!({"forward_client_cert_details": "sanitize"}));
        assert_eq!(e.0, "forward_client_cert_details");
        assert!(e.1.contains("SANITIZE, FORWARD_ONLY"), "{}", e.1);
        let e = error(json!({"headers_with_underscores_action": 1}));
        assert_eq!(e.0, "headers_with_underscores_action");
        let e = error(json!({"set_current_client_cert_details": {"issuer": true}}));
        assert_eq!(e.0, "set_current_client_cert_details.issuer");
        let e = error(json!({"set_current_client_cert_details": {"cert": "yes"}}));
        assert_eq!(e.0, "set_current_client_cert_details.cert");
        assert_eq!(
            error(json!({"allow_chunked_length": "true"})).0,
            "allow_chunked_length"
        );
        let e = error(json!({"proper_case": true, "header_case_overrides": ["X-Id"]}));
        assert_eq!(e.0, "header_case_overrides");
        assert_eq!(
            error(json!({"header_case_overrides": [1]})).0,
            "header_case_overrides[0]"
        );
    }

    #[test]
    fn header_case_overrides_alone_set_no_format() {
        let o = read(&config(json!({"header_case_overrides": ["X-Id"]}))).unwrap();
        assert_eq!(o.header_key_format, None);
    }
}
