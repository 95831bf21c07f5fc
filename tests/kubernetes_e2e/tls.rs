//! Certificates made at test time with `openssl` (a CA and leaves it signs), and a small TLS
//! client on rustls (already in the tree through kube) that reports the certificate the server
//! presented.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, SupportedProtocolVersion};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA.
pub struct Ca {
    dir: PathBuf,
    pub pem: String,
}

/// A leaf certificate and its key, PEM, plus the certificate's DER to compare with what a
/// server presents.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=legate-test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let pem = std::fs::read_to_string(dir.join("ca.pem")).expect("ca.pem");
        Ca {
            dir: dir.to_path_buf(),
            pem,
        }
    }

    /// A server certificate for `dns`, with its own CN and serial.
    pub fn leaf(&self, file: &str, cn: &str, serial: u32, dns: &str) -> Leaf {
        let ext = format!(
            "subjectAltName=DNS:{dns}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        );
        std::fs::write(self.dir.join(format!("{file}.ext")), ext).expect("ext file");
        let (key, csr, pem, extf) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.pem"),
            format!("{file}.ext"),
        );
        let subject = format!("/CN={cn}");
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        );
        let serial = serial.to_string();
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &extf,
            ],
        );
        let cert = std::fs::read_to_string(self.dir.join(&pem)).expect("leaf pem");
        let key = std::fs::read_to_string(self.dir.join(&key)).expect("leaf key");
        let der = CertificateDer::from_pem_slice(cert.as_bytes())
            .expect("leaf pem parses")
            .to_vec();
        Leaf { cert, key, der }
    }
}

/// What a TLS request got back.
#[derive(Debug)]
pub struct TlsReply {
    pub status: u16,
    pub body: String,
    /// The leaf certificate the server presented (DER).
    pub peer: Vec<u8>,
}

/// A TLS client trusting one CA, limited to some protocol versions.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl TlsClient {
    pub fn new(ca_pem: &str, versions: &[&'static SupportedProtocolVersion]) -> TlsClient {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("ca pem")).expect("ca cert");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// TLS 1.2 and 1.3.
    pub fn any_version(ca_pem: &str) -> TlsClient {
        Self::new(ca_pem, rustls::ALL_VERSIONS)
    }

    /// `GET path` over a new TLS connection with SNI and `Host` `sni`.
    pub async fn get(&self, addr: SocketAddr, sni: &str, path: &str) -> Result<TlsReply, String> {
        tokio::time::timeout(Duration::from_secs(10), self.get_inner(addr, sni, path))
            .await
            .map_err(|_| "timed out".to_string())?
    }

    /// A TLS connection with SNI `sni`, and the leaf certificate the server presented (DER).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        sni: &str,
    ) -> Result<(TlsStream<TcpStream>, Vec<u8>), String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .ok_or("no peer certificate")?;
        Ok((tls, peer))
    }

    async fn get_inner(&self, addr: SocketAddr, sni: &str, path: &str) -> Result<TlsReply, String> {
        let (mut tls, peer) = self.connect(addr, sni).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        if let Err(e) = tls.read_to_end(&mut raw).await {
            // A peer closing without close_notify after the whole response is fine.
            if raw.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof {
                return Err(format!("read: {e}"));
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status line in {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok(TlsReply { status, body, peer })
    }
}
