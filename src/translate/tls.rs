//! TLS material: Secrets decoded into SDS secrets (only those referenced are emitted, under
//! stable `namespace/name`-derived names), TLSContexts checked once, and the downstream and
//! upstream TLS settings built from them (docs/design.md#tlscontext).

use std::collections::BTreeMap;

use crate::api::common::OneOrMany;
use crate::api::secret::SecretObject;
use crate::api::tls_context::TlsContextSpec;
use crate::ir::{DownstreamTls, Secret, SecretKind, Sensitive, TlsVersion, UpstreamTls};

use super::Errors;
use super::load::{Meta, Obj};
use super::service::base64_decode;

/// A decoded Secret.
#[derive(Debug, Clone)]
struct Pem {
    cert: String,
    key: Option<String>,
}

/// A TLSContext that passed its checks.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub meta: Meta,
    pub spec: TlsContextSpec,
    /// `(namespace, name)` of the certificate Secret.
    pub cert: Option<(String, String)>,
    ca: Option<(String, String)>,
    crl: Option<(String, String)>,
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
    alpn: Vec<String>,
}

impl Context {
    /// Origination needs a client certificate or a CA; otherwise `https://` says the same.
    pub fn origination_ready(&self) -> Result<(), String> {
        if self.cert.is_none() && self.ca.is_none() {
            Err(format!(
                "TLSContext {} has no certificate data (secret or ca_secret)",
                self.meta.id()
            ))
        } else {
            Ok(())
        }
    }

    pub fn hosts(&self) -> &[String] {
        self.spec.hosts.as_deref().unwrap_or_default()
    }
}

/// Secrets, contexts, and the SDS secrets referenced so far.
#[derive(Debug, Default)]
pub(crate) struct Store {
    secrets: BTreeMap<(String, String), Pem>,
    contexts: BTreeMap<String, Vec<Context>>,
    used: BTreeMap<String, Secret>,
    pub namespacing: bool,
}

pub(crate) fn tls_version(v: &str) -> Option<TlsVersion> {
    Some(match v {
        "v1.0" => TlsVersion::V1_0,
        "v1.1" => TlsVersion::V1_1,
        "v1.2" => TlsVersion::V1_2,
        "v1.3" => TlsVersion::V1_3,
        _ => return None,
    })
}

impl Store {
    /// Decodes every TLS Secret; a `kubernetes.io/tls` Secret that does not decode is reported.
    pub fn new(secrets: &[Obj<SecretObject>], errs: &mut Errors) -> Store {
        let mut store = Store {
            namespacing: true,
            ..Store::default()
        };
        for s in secrets {
            let ty = s.spec.type_.as_deref().unwrap_or("Opaque");
            if ty != "kubernetes.io/tls" && ty != "Opaque" {
                continue;
            }
            match decode(&s.spec) {
                Ok(Some(pem)) => {
                    store
                        .secrets
                        .insert((s.meta.namespace.clone(), s.meta.name.clone()), pem);
                }
                Ok(None) if ty == "Opaque" => {}
                Ok(None) => errs.push(s.meta.error("data", "tls.crt is missing")),
                Err((field, msg)) => errs.push(s.meta.error(&field, msg)),
            }
        }
        store
    }

    pub fn load_contexts(&mut self, contexts: &[Obj<TlsContextSpec>], errs: &mut Errors) {
        for c in contexts {
            match self.check(&c.meta, &c.spec, errs) {
                Ok(ctx) => self
                    .contexts
                    .entry(c.meta.name.clone())
                    .or_default()
                    .push(ctx),
                Err((field, msg)) => errs.push(c.meta.error(&field, msg)),
            }
        }
    }

    /// Checks a context (a TLSContext, or a Host's inline `tls`). A context without `secret`
    /// or `ca_secret` is valid as settings for a Host (which brings the certificate); using
    /// it for origination is reported there (see [`Context::origination_ready`]).
    pub fn check(
        &self,
        meta: &Meta,
        spec: &TlsContextSpec,
        errs: &mut Errors,
    ) -> Result<Context, (String, String)> {
        self.check_with(meta, spec, None, errs)
    }

    /// [`Store::check`], with the certificate given (a Host's inline `tls` uses `tlsSecret`).
    pub fn check_with(
        &self,
        meta: &Meta,
        spec: &TlsContextSpec,
        given_cert: Option<(String, String)>,
        errs: &mut Errors,
    ) -> Result<Context, (String, String)> {
        let e = |f: &str, m: String| (format!("spec.{f}"), m);
        if spec.cert_chain_file.is_some()
            || spec.private_key_file.is_some()
            || spec.cacert_chain_file.is_some()
        {
            return Err(e(
                "cert_chain_file",
                "certificate files are not supported; use secret (a kubernetes.io/tls Secret)"
                    .into(),
            ));
        }
        let namespacing = spec.secret_namespacing.unwrap_or(self.namespacing);
        let resolve = |field: &str, name: &Option<String>, need_key: bool| match name {
            None => Ok(None),
            Some(n) => {
                let key = self.secret_key(n, &meta.namespace, namespacing);
                match self.secrets.get(&key) {
                    None => Err(e(field, format!("Secret {}/{} not found", key.0, key.1))),
                    Some(p) if need_key && p.key.is_none() => Err(e(
                        field,
                        format!("Secret {}/{} has no tls.key", key.0, key.1),
                    )),
                    Some(_) => Ok(Some(key)),
                }
            }
        };
        let cert = match given_cert {
            Some(c) => Some(c),
            None => resolve("secret", &spec.secret, true)?,
        };
        let ca = resolve("ca_secret", &spec.ca_secret, false)?;
        let crl = resolve("crl_secret", &spec.crl_secret, false)?;
        let version = |f: &str, v: &Option<String>| match v.as_deref() {
            None => Ok(None),
            Some(s) => tls_version(s)
                .map(Some)
                .ok_or_else(|| e(f, format!("{s:?} is not one of v1.0, v1.1, v1.2, v1.3"))),
        };
        let min = version("min_tls_version", &spec.min_tls_version)?;
        let max = version("max_tls_version", &spec.max_tls_version)?;
        if spec.redirect_cleartext_from.is_some() {
            errs.push(meta.warning(
                "spec.redirect_cleartext_from",
                "has no effect; use a Host requestPolicy",
            ));
        }
        Ok(Context {
            meta: meta.clone(),
            spec: spec.clone(),
            cert,
            ca,
            crl,
            min,
            max,
            alpn: spec
                .alpn_protocols
                .as_ref()
                .map(OneOrMany::split_commas)
                .unwrap_or_default(),
        })
    }

    /// `name` or `name.namespace` (while namespacing is on) → `(namespace, name)`.
    fn secret_key(&self, name: &str, default_ns: &str, namespacing: bool) -> (String, String) {
        match name.split_once('.') {
            Some((n, ns))
                if namespacing && !self.secrets.contains_key(&(default_ns.into(), name.into())) =>
            {
                (ns.to_string(), n.to_string())
            }
            _ => (default_ns.to_string(), name.to_string()),
        }
    }

    /// A context by name, preferring the given namespace.
    pub fn context(&self, name: &str, namespace: &str) -> Option<&Context> {
        let all = self.contexts.get(name)?;
        all.iter()
            .find(|c| c.meta.namespace == namespace)
            .or_else(|| all.first())
    }

    pub fn contexts(&self) -> impl Iterator<Item = &Context> {
        self.contexts.values().flatten()
    }

    pub fn has_secret(&self, namespace: &str, name: &str) -> bool {
        self.secrets
            .contains_key(&(namespace.to_string(), name.to_string()))
    }

    /// Whether the Secret can serve as a certificate (has a key).
    pub fn has_certificate(&self, namespace: &str, name: &str) -> bool {
        self.secrets
            .get(&(namespace.to_string(), name.to_string()))
            .is_some_and(|p| p.key.is_some())
    }

    /// The SDS name of a certificate Secret (`secret/<ns>/<name>`).
    pub fn certificate_name((ns, name): &(String, String)) -> String {
        format!("secret/{ns}/{name}")
    }

    /// The SDS name of a context's validation (`ca/<ns>/<name>[+crl/<ns>/<name>]`).
    fn validation_name(ctx: &Context) -> Option<String> {
        let (ns, name) = ctx.ca.as_ref()?;
        let mut sds = format!("ca/{ns}/{name}");
        if let Some((cns, cn)) = &ctx.crl {
            sds.push_str(&format!("+crl/{cns}/{cn}"));
        }
        Some(sds)
    }

    /// Makes the SDS secret `sds` (a name built by this store) part of the output.
    pub fn register(&mut self, sds: &str) {
        if self.used.contains_key(sds) {
            return;
        }
        let pem = |path: &str| -> Option<&Pem> {
            let (ns, name) = path.split_once('/')?;
            self.secrets.get(&(ns.to_string(), name.to_string()))
        };
        let kind = if let Some(path) = sds.strip_prefix("secret/") {
            pem(path).map(|p| SecretKind::TlsCertificate {
                certificate_chain: p.cert.clone(),
                private_key: Sensitive::new(p.key.clone().unwrap_or_default()),
            })
        } else if let Some(rest) = sds.strip_prefix("ca/") {
            let (ca, crl) = match rest.split_once("+crl/") {
                Some((ca, crl)) => (ca, Some(crl)),
                None => (rest, None),
            };
            pem(ca).map(|p| SecretKind::Validation {
                trusted_ca: p.cert.clone(),
                crl: crl.and_then(pem).map(|c| c.cert.clone()),
            })
        } else {
            None
        };
        if let Some(kind) = kind {
            self.used.insert(
                sds.to_string(),
                Secret {
                    name: sds.to_string(),
                    kind,
                },
            );
        }
    }

    /// Termination settings from a context, serving `cert`.
    pub fn downstream(ctx: &Context, cert: &(String, String)) -> DownstreamTls {
        let mut tls = DownstreamTls::new(Self::certificate_name(cert));
        tls.validation = Self::validation_name(ctx);
        tls.require_client_certificate = ctx.spec.cert_required.unwrap_or(false);
        tls.alpn_protocols = ctx.alpn.clone();
        tls.min_version = ctx.min;
        tls.max_version = ctx.max;
        tls.cipher_suites = ctx.spec.cipher_suites.clone().unwrap_or_default();
        tls.ecdh_curves = ctx.spec.ecdh_curves.clone().unwrap_or_default();
        tls
    }

    /// A Mapping's or TCPMapping's `tls: <name>`: the named context's origination settings,
    /// and the context name for the cluster identity when the service carries no scheme
    /// (`https` is the service's scheme: `Some(true)` https, `Some(false)` http, `None` none).
    pub fn origination(
        &self,
        name: &str,
        namespace: &str,
        https: Option<bool>,
    ) -> Result<(UpstreamTls, Option<String>), String> {
        let ctx = self
            .context(name, namespace)
            .ok_or_else(|| format!("TLSContext {name} not found (or invalid)"))?;
        ctx.origination_ready()?;
        Ok((
            Self::upstream(ctx),
            https.is_none().then(|| name.to_string()),
        ))
    }

    /// Origination settings: client certificate, CA, SNI, ALPN and versions from the context.
    pub fn upstream(ctx: &Context) -> UpstreamTls {
        let mut tls = UpstreamTls::plain();
        tls.certificate = ctx.cert.as_ref().map(Self::certificate_name);
        tls.validation = Self::validation_name(ctx);
        tls.sni = ctx.spec.sni.clone();
        tls.alpn_protocols = ctx.alpn.clone();
        tls.min_version = ctx.min;
        tls.max_version = ctx.max;
        tls.cipher_suites = ctx.spec.cipher_suites.clone().unwrap_or_default();
        tls.ecdh_curves = ctx.spec.ecdh_curves.clone().unwrap_or_default();
        tls
    }

    /// The SDS secrets referenced by the IR, sorted by name.
    pub fn into_used(self) -> Vec<Secret> {
        self.used.into_values().collect()
    }
}

/// `tls.crt` / `tls.key` from `stringData` or base64 `data`; `None` without `tls.crt`.
fn decode(s: &SecretObject) -> Result<Option<Pem>, (String, String)> {
    let get = |key: &str| -> Result<Option<String>, (String, String)> {
        if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
            return Ok(Some(v.clone()));
        }
        let Some(b64) = s.data.as_ref().and_then(|d| d.get(key)) else {
            return Ok(None);
        };
        let field = format!("data.{key}");
        let bytes = base64_decode(b64).map_err(|m| (field.clone(), m))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| (field, "is not UTF-8 PEM".to_string()))
    };
    let Some(cert) = get("tls.crt")? else {
        return Ok(None);
    };
    if !cert.contains("-----BEGIN ") {
        return Err(("data.tls.crt".into(), "is not PEM".into()));
    }
    let key = get("tls.key")?;
    if let Some(k) = &key
        && !k.contains("-----BEGIN ")
    {
        return Err(("data.tls.key".into(), "is not PEM".into()));
    }
    Ok(Some(Pem { cert, key }))
}
