//! Issue 11, item 8: the image as a drop-in for an Emissary Deployment. The real image starts
//! with no command or args, Emissary's environment and uid (8888), and an in-cluster
//! service-account layout (token, CA, namespace) mounted where Kubernetes mounts it; the API
//! server is the project's fake one on the host, behind TLS (as in-cluster config requires).
//! legate must choose Kubernetes by itself and route by the fake API's Mappings, with Emissary's
//! probe paths answering on 8877.

#[path = "common/docker.rs"]
mod docker;
#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "common/service_links.rs"]
mod service_links;
#[path = "kubernetes_e2e/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use docker::{HARDENED, backend_of, eventually, get};
use fake_apiserver::FakeApiServer;
use serde_json::{Value, json};
use service_links::SERVICE_LINKS;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const READY: Duration = Duration::from_secs(90);

fn amb(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "getambassador.io/v3alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": "default"}, "spec": spec,
    })
}

/// Terminates TLS on `listen` and forwards each connection to the fake API server at `to`.
async fn tls_front(listen: SocketAddr, to: SocketAddr, cert: &str, key: &str) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .map(|c| c.expect("cert pem"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key pem");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server cert");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(listen).await.expect("bind the TLS front");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(to).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_image_without_arguments_reads_kubernetes_in_cluster() {
    let Some(scope) = docker::require() else {
        return;
    };
    let net = scope.network();
    let gateway = docker::docker(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        &net,
    ]);
    let upstream = scope.upstream(&net, "alpha");
    let upstream_ip = upstream.inspect(&format!(
        "{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"
    ));

    // the API server on the host, reachable from the container through the network's gateway
    let server = FakeApiServer::start().await;
    let api: SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = tls::Ca::new(dir.path());
    let leaf = ca.leaf("api", "kubernetes", 2, &format!("kubernetes,IP:{gateway}"));
    let front = tls_front(
        SocketAddr::new(gateway.parse().unwrap(), 0),
        api,
        &leaf.cert,
        &leaf.key,
    )
    .await;
    server.apply_all(vec![
        amb(
            "Listener",
            "http",
            json!({"port": 8080, "protocol": "HTTP", "securityModel": "XFP",
                   "hostBinding": {"namespace": {"from": "ALL"}}}),
        ),
        amb(
            "Host",
            "any",
            json!({"hostname": "*", "requestPolicy": {"insecure": {"action": "Route"}}}),
        ),
        amb(
            "Mapping",
            "one",
            json!({"hostname": "*", "prefix": "/one/", "service": format!("{upstream_ip}:9000")}),
        ),
    ]);

    // the service-account layout Kubernetes mounts into every pod
    let sa = dir.path().join("serviceaccount");
    std::fs::create_dir(&sa).unwrap();
    std::fs::write(sa.join("token"), "fake-token").unwrap();
    std::fs::write(sa.join("ca.crt"), &ca.pem).unwrap();
    std::fs::write(sa.join("namespace"), "default").unwrap();
    docker::set_mode(dir.path(), 0o755);
    docker::set_mode(&sa, 0o755);
    for f in ["token", "ca.crt", "namespace"] {
        docker::set_mode(&sa.join(f), 0o644);
    }
    let mount = format!(
        "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        sa.display()
    );
    let (host, port) = (
        format!("KUBERNETES_SERVICE_HOST={gateway}"),
        format!("KUBERNETES_SERVICE_PORT={}", front.port()),
    );
    let image = docker::image();
    // Emissary's Helm chart: its env, its uid, no command/args; plus every service link the
    // kubelet injects for Services named `legate` and `legate-admin` in the namespace
    let mut args: Vec<&str> = vec![
        "--network",
        &net,
        "-p",
        "127.0.0.1::8080",
        "-p",
        "127.0.0.1::8877",
        "--user",
        "8888:8888",
        "-v",
        &mount,
        "-e",
        &host,
        "-e",
        &port,
        "-e",
        "AMBASSADOR_NAMESPACE=default",
        "-e",
        "AMBASSADOR_ID=default",
        "-e",
        "AMBASSADOR_APIEXT_SERVICE_NAME=emissary-apiext",
        "-e",
        "HOST_IP=10.0.0.5",
        "-e",
        "STATSD_ENABLED=false",
        "-e",
        "STATSD_HOST=localhost",
    ];
    // (the `kubernetes` Service's own links are set above, pointing at the fake API server)
    let links: Vec<String> = SERVICE_LINKS
        .iter()
        .filter(|(k, _)| k.starts_with("LEGATE_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for link in &links {
        args.extend(["-e", link.as_str()]);
    }
    args.extend_from_slice(HARDENED);
    args.push(&image);
    let c = scope.run("legate-k8s", &args);

    let probe = c.port(8877);
    eventually(READY, "check_ready 200", || {
        assert_eq!(
            c.inspect("{{.State.Running}}"),
            "true",
            "logs:\n{}",
            c.logs()
        );
        matches!(get(probe, "/ambassador/v0/check_ready"), Ok((200, _))).then_some(())
    });
    assert!(matches!(
        get(probe, "/ambassador/v0/check_alive"),
        Ok((200, _))
    ));
    let logs = c.logs();
    assert!(logs.contains("configuration source: kubernetes"), "{logs}");
    let data = c.port(8080);
    let (status, body) = get(data, "/one/x").unwrap();
    assert_eq!(
        (status, backend_of(&body).as_deref()),
        (200, Some("alpha")),
        "{body}"
    );

    // routing follows the API: a new Mapping is served, a deleted one is not
    server.apply(amb(
        "Mapping",
        "two",
        json!({"hostname": "*", "prefix": "/two/", "service": format!("{upstream_ip}:9000")}),
    ));
    eventually(READY, "/two/ served", || {
        matches!(get(data, "/two/y"), Ok((200, _))).then_some(())
    });
    assert!(server.delete("mappings", "default", "one"));
    eventually(READY, "/one/ gone", || {
        matches!(get(data, "/one/x"), Ok((404, _))).then_some(())
    });
    // everything was read through the in-cluster client
    assert!(server.count("mappings", true) > 0, "a watch on mappings");
}
