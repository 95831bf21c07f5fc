//! State-of-the-World behaviour, one test per protocol rule
//! (docs/design.md#state-of-the-world-rules).

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::build::*;
use super::client::*;
use crate::xds::server::{Address, ServerError};
use crate::xds::snapshot::TypeKind::{self, Cluster, Endpoint, Listener, Route, Secret};

#[tokio::test]
async fn ack_is_not_answered_again() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Cluster, &[]).await;
    let r = c.recv_type(Cluster).await;
    assert_eq!(r.version_info, "v1");
    assert_eq!(names(&r), ["c1"]);
    c.ack(&r, &[]).await;
    c.silent().await;
    let state = h.clients.state();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].node_id, "n1");
    let cds = &state[0].types[&Cluster];
    assert!(cds.wildcard);
    assert_eq!(cds.acked_version.as_deref(), Some("v1"));
    assert_eq!(cds.sent_nonce.as_deref(), Some(r.nonce.as_str()));
}

#[tokio::test]
async fn wildcard_cds_gets_all_and_named_eds_only_its_names() {
    let h = Harness::tcp().await;
    let snap = basic("v1")
        .with(
            Cluster,
            "v1",
            vec![eds_cluster("c1", 1), eds_cluster("c2", 1)],
        )
        .with(Endpoint, "v1", vec![cla("c1", 1), cla("c2", 2)]);
    h.set(snap.build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Cluster, &[]).await;
    assert_eq!(names(&c.recv_type(Cluster).await), ["c1", "c2"]);
    c.subscribe(Endpoint, &["c2"]).await;
    assert_eq!(names(&c.recv_type(Endpoint).await), ["c2"]);
}

#[tokio::test]
async fn nack_is_not_resent_and_is_visible() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Cluster, &[]).await;
    let r1 = c.recv_type(Cluster).await;
    c.ack(&r1, &[]).await;
    h.set(
        basic("v1")
            .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
            .build(),
    );
    let r2 = c.recv_type(Cluster).await;
    assert_eq!(r2.version_info, "v2");
    c.nack(&r2, &[], "v1", "duplicate cluster c1 found").await;
    // No resend loop: nothing until the cluster configuration changes.
    c.silent().await;
    h.until("nack recorded", |cl| {
        cl.state()[0].types[&Cluster].nack_count == 1
    })
    .await;
    let cds = h.clients.state()[0].types[&Cluster].clone();
    let nack = cds.last_nack.unwrap();
    assert_eq!(nack.version, "v2");
    assert_eq!(nack.nonce, r2.nonce);
    assert_eq!(nack.message, "duplicate cluster c1 found");
    assert_eq!(
        cds.acked_version.as_deref(),
        Some("v1"),
        "last good version kept"
    );
    assert_eq!(h.metrics.nacks.get("cds"), 1.0);
    // An unrelated change does not re-send the rejected clusters either.
    h.set(
        basic("v1")
            .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
            .with(Route, "v3", vec![])
            .build(),
    );
    c.silent().await;
    // A new cluster configuration is pushed.
    h.set(
        basic("v1")
            .with(Cluster, "v4", vec![eds_cluster("c1", 4)])
            .build(),
    );
    assert_eq!(c.recv_type(Cluster).await.version_info, "v4");
}

#[tokio::test]
async fn new_stream_after_nack_gets_the_last_accepted_content() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut a = h.sotw("envoy-a").await;
    a.subscribe(Cluster, &[]).await;
    let r1 = a.recv_type(Cluster).await;
    a.ack(&r1, &[]).await;
    h.set(
        basic("v1")
            .with(
                Cluster,
                "v2",
                vec![eds_cluster("c1", 2), eds_cluster("bad", 2)],
            )
            .build(),
    );
    let r2 = a.recv_type(Cluster).await;
    a.nack(&r2, &[], "v1", "bad cluster").await;
    h.until("nack recorded", |cl| {
        cl.state()[0].types[&Cluster].nack_count == 1
    })
    .await;
    // A restarted Envoy must not be given the configuration known to be bad.
    let mut b = h.sotw("envoy-b").await;
    b.subscribe(Cluster, &[]).await;
    let rb = b.recv_type(Cluster).await;
    assert_eq!(rb.version_info, "v1");
    assert_eq!(rb.resources, r1.resources);
    b.ack(&rb, &[]).await;
    b.silent().await;
    // Once the configuration changes, both get the new one.
    h.set(
        basic("v1")
            .with(Cluster, "v3", vec![eds_cluster("c1", 3)])
            .build(),
    );
    assert_eq!(a.recv_type(Cluster).await.version_info, "v3");
    assert_eq!(b.recv_type(Cluster).await.version_info, "v3");
}

#[tokio::test]
async fn stale_nonce_is_ignored() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Endpoint, &["c1"]).await;
    let r1 = c.recv_type(Endpoint).await;
    h.set(
        basic("v2")
            .with(Endpoint, "v2", vec![cla("c1", 2), cla("c2", 2)])
            .build(),
    );
    let r2 = c.recv_type(Endpoint).await;
    assert_eq!(r2.version_info, "v2");
    // A request echoing the superseded nonce is dropped, even with new names.
    c.send(Endpoint, &["c1", "c2"], "v1", &r1.nonce, None).await;
    c.silent().await;
    // The same request with the current nonce is answered.
    c.send(Endpoint, &["c1", "c2"], "v2", &r2.nonce, None).await;
    let r3 = c.recv_type(Endpoint).await;
    assert_eq!(names(&r3), ["c1", "c2"]);
}

#[tokio::test]
async fn reconnect_with_known_version_is_answered() {
    let h = Harness::tcp().await;
    h.set(basic("boot1-v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Cluster, &[]).await;
    let r = c.recv_type(Cluster).await;
    c.ack(&r, &[]).await;
    drop(c);
    h.until("first stream gone", |cl| cl.is_empty()).await;
    let mut c = h.sotw("n1").await;
    // Envoy's first request after a reconnect carries the version it holds, no nonce.
    c.send(Cluster, &[], "boot1-v1", "", None).await;
    let again = c.recv_type(Cluster).await;
    assert_eq!(again.version_info, "boot1-v1");
    assert_eq!(names(&again), ["c1"]);
}

#[tokio::test]
async fn subscription_change_echoing_last_nonce_is_answered() {
    let h = Harness::tcp().await;
    let snap = basic("v1").with(Endpoint, "v1", vec![cla("c1", 1), cla("c2", 2)]);
    h.set(snap.build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Endpoint, &["c1"]).await;
    let r = c.recv_type(Endpoint).await;
    c.ack(&r, &["c1"]).await;
    c.silent().await;
    // CDS replaced c1 with c2: Envoy's EDS request echoes the last version and nonce.
    c.send(Endpoint, &["c2"], "v1", &r.nonce, None).await;
    let r2 = c.recv_type(Endpoint).await;
    assert_eq!(names(&r2), ["c2"]);
}

#[tokio::test]
async fn missing_name_is_delivered_when_it_appears() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Endpoint, &["c1", "c9"]).await;
    let r = c.recv_type(Endpoint).await;
    assert_eq!(names(&r), ["c1"]);
    c.ack(&r, &["c1", "c9"]).await;
    c.silent().await;
    h.set(
        basic("v2")
            .with(Endpoint, "v2", vec![cla("c1", 1), cla("c9", 9)])
            .build(),
    );
    assert_eq!(names(&c.recv_type(Endpoint).await), ["c1", "c9"]);
}

/// Subscribes to every type the way Envoy does and ACKs the first responses.
async fn subscribe_all(c: &mut SotwClient) {
    let subs: [(TypeKind, &[&str]); 5] = [
        (Secret, &["s1"]),
        (Cluster, &[]),
        (Endpoint, &["c1"]),
        (Listener, &[]),
        (Route, &["r1"]),
    ];
    for (kind, names) in subs {
        c.subscribe(kind, names).await;
        let r = c.recv_type(kind).await;
        c.ack(&r, names).await;
    }
}

fn names_for(kind: TypeKind) -> &'static [&'static str] {
    match kind {
        Secret => &["s1"],
        Endpoint => &["c1"],
        Route => &["r1"],
        _ => &[],
    }
}

#[tokio::test]
async fn pushes_are_ordered_and_routes_wait_for_clusters() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    subscribe_all(&mut c).await;
    let v2 = basic("v2")
        .with(Secret, "v2", vec![secret("s1", "b")])
        .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
        .with(Endpoint, "v2", vec![cla("c1", 2)])
        .with(Listener, "v2", vec![listener("l1", 10002, "r1")])
        .with(Route, "v2", vec![direct_route("r1", 201, "v2")]);
    h.set(v2.build());
    let mut phase1 = Vec::new();
    for kind in [Secret, Cluster, Endpoint] {
        phase1.push(c.recv_type(kind).await);
    }
    // Listeners and routes wait until the clusters they may use are accepted.
    c.silent().await;
    for r in &phase1 {
        c.ack(r, names_for(TypeKind::from_type_url(&r.type_url).unwrap()))
            .await;
    }
    for kind in [Listener, Route] {
        let r = c.recv_type(kind).await;
        assert_eq!(r.version_info, "v2");
        c.ack(&r, names_for(kind)).await;
    }
    c.silent().await;
    h.until("all acked", |cl| cl.acked(&versions("v2"))).await;
}

#[tokio::test]
async fn eds_request_after_cds_change_is_answered_afresh() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.subscribe(Endpoint, &["c1"]).await;
    let eds = c.recv_type(Endpoint).await;
    c.ack(&eds, &["c1"]).await;
    c.ack(&cds, &[]).await;
    c.silent().await;
    // Only the cluster changes; its endpoints keep version v1.
    h.set(
        basic("v1")
            .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
            .build(),
    );
    let cds2 = c.recv_type(Cluster).await;
    assert_eq!(cds2.version_info, "v2");
    // Envoy re-requests EDS byte-identically to its last ACK; the warming cluster needs an
    // answer.
    c.ack(&eds, &["c1"]).await;
    let eds2 = c.recv_type(Endpoint).await;
    assert_eq!(eds2.version_info, "v1");
    assert_ne!(eds2.nonce, eds.nonce);
    assert_eq!(names(&eds2), ["c1"]);
    c.ack(&eds2, &["c1"]).await;
    c.ack(&cds2, &[]).await;
    c.silent().await;
}

#[tokio::test]
async fn removed_clusters_stay_until_routes_moved() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    for (kind, names) in [(Cluster, &[][..]), (Listener, &[]), (Route, &["r1"][..])] {
        c.subscribe(kind, names).await;
        let r = c.recv_type(kind).await;
        c.ack(&r, names).await;
    }
    // c1 is replaced by c2 and the route moves to it.
    let v2 = basic("v1")
        .with(Cluster, "v2", vec![eds_cluster("c2", 1)])
        .with(Route, "v2", vec![direct_route("r1", 200, "c2")]);
    h.set(v2.build());
    let keep = c.recv_type(Cluster).await;
    assert_eq!(keep.version_info, "v2+keep");
    assert_eq!(names(&keep), ["c1", "c2"]);
    c.ack(&keep, &[]).await;
    let route = c.recv_type(Route).await;
    assert_eq!(route.version_info, "v2");
    assert!(!h.clients.acked(&versions("v2")));
    c.ack(&route, &["r1"]).await;
    let exact = c.recv_type(Cluster).await;
    assert_eq!(exact.version_info, "v2");
    assert_eq!(names(&exact), ["c2"]);
    c.ack(&exact, &[]).await;
    c.silent().await;
}

#[tokio::test]
async fn lingering_cluster_is_removed_after_its_linger() {
    let h = Harness::tcp().await;
    let v1 = basic("v1").with(
        Cluster,
        "v1",
        vec![lingering(eds_cluster("c1", 1), 600), eds_cluster("c3", 1)],
    );
    h.set(v1.build());
    let mut c = h.sotw("n1").await;
    for (kind, names) in [(Cluster, &[][..]), (Listener, &[]), (Route, &["r1"][..])] {
        c.subscribe(kind, names).await;
        let r = c.recv_type(kind).await;
        c.ack(&r, names).await;
    }
    let v2 = basic("v1")
        .with(Cluster, "v2", vec![eds_cluster("c2", 1)])
        .with(Route, "v2", vec![direct_route("r1", 200, "c2")]);
    h.set(v2.build());
    let keep = c.recv_type(Cluster).await;
    assert_eq!(names(&keep), ["c1", "c2", "c3"]);
    c.ack(&keep, &[]).await;
    let route = c.recv_type(Route).await;
    c.ack(&route, &["r1"]).await;
    let answered = std::time::Instant::now();
    // c3 goes at once; c1 stays for its linger.
    let partial = c.recv_type(Cluster).await;
    assert_eq!(partial.version_info, "v2+keep");
    assert_eq!(names(&partial), ["c1", "c2"]);
    c.ack(&partial, &[]).await;
    assert!(!h.clients.acked(&versions("v2")));
    let exact = c.recv_type(Cluster).await;
    assert!(answered.elapsed() >= std::time::Duration::from_millis(600));
    assert_eq!(exact.version_info, "v2");
    assert_eq!(names(&exact), ["c2"]);
    c.ack(&exact, &[]).await;
    c.silent().await;
}

#[tokio::test]
async fn empty_type_url_is_tolerated() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.send_raw(DiscoveryRequest {
        response_nonce: "whatever".into(),
        ..Default::default()
    })
    .await;
    c.send_raw(DiscoveryRequest {
        type_url: "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration".into(),
        ..Default::default()
    })
    .await;
    c.silent().await;
    c.subscribe(Cluster, &[]).await;
    assert_eq!(c.recv_type(Cluster).await.version_info, "v1");
}

#[tokio::test]
async fn acked_needs_every_subscribed_type() {
    let h = Harness::tcp().await;
    // No secrets at all: SDS is never subscribed and must not block.
    h.set(basic("v1").with(Secret, "v1", vec![]).build());
    let want = versions("v1");
    let mut c = h.sotw("n1").await;
    let subs: [(TypeKind, &[&str]); 4] = [
        (Cluster, &[]),
        (Endpoint, &["c1"]),
        (Listener, &[]),
        (Route, &["r1"]),
    ];
    for (kind, names) in subs {
        c.subscribe(kind, names).await;
        let r = c.recv_type(kind).await;
        assert!(!h.clients.acked(&want));
        c.ack(&r, names).await;
        h.until("ack recorded", |cl| {
            cl.state()[0].types[&kind].acked_version.as_deref() == Some("v1")
        })
        .await;
    }
    assert!(h.clients.acked(&want));
    assert!(!h.clients.acked(&versions("v2")));
    assert!(h.clients.settled(&want));
}

#[tokio::test]
async fn several_clients_and_stream_gauge() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut a = h.sotw("a").await;
    let mut b = h.sotw("b").await;
    a.subscribe(Cluster, &[]).await;
    b.subscribe(Cluster, &[]).await;
    assert_eq!(a.recv_type(Cluster).await.version_info, "v1");
    assert_eq!(b.recv_type(Cluster).await.version_info, "v1");
    assert_eq!(h.clients.len(), 2);
    assert_eq!(h.metrics.xds_streams.get(), 2);
    drop(a);
    h.until("one stream left", |cl| cl.len() == 1).await;
    assert_eq!(h.metrics.xds_streams.get(), 1);
    h.set(basic("v2").build());
    assert_eq!(b.recv_type(Cluster).await.version_info, "v2");
}

#[tokio::test]
async fn a_newer_stream_of_the_same_node_replaces_the_older() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut old = h.sotw("envoy").await;
    old.subscribe(Cluster, &[]).await;
    old.recv_type(Cluster).await;
    let mut new = h.sotw("envoy").await;
    new.subscribe(Cluster, &[]).await;
    new.recv_type(Cluster).await;
    let end = tokio::time::timeout(WAIT, old.rx.message()).await.unwrap();
    assert!(
        matches!(end, Ok(None) | Err(_)),
        "old stream ended: {end:?}"
    );
    h.until("one stream", |cl| cl.len() == 1).await;
}

#[tokio::test]
async fn shutdown_ends_streams() {
    let mut h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Cluster, &[]).await;
    c.recv_type(Cluster).await;
    h.shutdown().await.unwrap();
    let end = tokio::time::timeout(WAIT, c.rx.message()).await.unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "stream ended: {end:?}");
    assert!(h.clients.is_empty());
}

#[tokio::test]
async fn unix_socket_is_private_and_served() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Harness::unix().await;
    let Address::Unix(path) = h.address.clone() else {
        panic!("not a unix address")
    };
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    c.subscribe(Cluster, &[]).await;
    assert_eq!(c.recv_type(Cluster).await.version_info, "v1");
    h.shutdown().await.unwrap();
    assert!(!path.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn the_server_binds_only_to_loopback() {
    for bad in ["0.0.0.0:0", "[::]:0", "localhost:0"] {
        let settings = crate::config::XdsSettings {
            address: bad.into(),
            ..Default::default()
        };
        let (_publish, rx) = tokio::sync::watch::channel(None);
        let server = crate::xds::server::Server::new(&settings, rx, Default::default());
        let err = server
            .bind(std::path::Path::new("/nonexistent/x.sock"))
            .await;
        assert!(matches!(err, Err(ServerError::Address(_))), "{bad}");
    }
}

#[tokio::test]
async fn push_answered_with_empty_type_url_does_not_hold_back_routes() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.sotw("n1").await;
    for (kind, names) in [(Endpoint, &["c1"][..]), (Listener, &[]), (Route, &["r1"])] {
        c.subscribe(kind, names).await;
        let r = c.recv_type(kind).await;
        c.ack(&r, names).await;
    }
    h.set(basic("v2").build());
    let eds = c.recv_type(Endpoint).await;
    c.silent().await;
    // Envoy answers a push for a type it no longer watches with an empty type URL.
    c.send_raw(DiscoveryRequest {
        response_nonce: eds.nonce.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(c.recv_type(Listener).await.version_info, "v2");
}

#[tokio::test]
async fn superseded_snapshots_are_released_once_answered() {
    let h = Harness::tcp().await;
    let mut c = h.sotw("n1").await;
    let s1 = basic("v1").build();
    let weak1 = std::sync::Arc::downgrade(&s1);
    h.set(s1);
    c.subscribe(Cluster, &[]).await;
    let r1 = c.recv_type(Cluster).await;
    c.ack(&r1, &[]).await;
    let s2 = basic("v1")
        .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
        .build();
    let weak2 = std::sync::Arc::downgrade(&s2);
    h.set(s2);
    let r2 = c.recv_type(Cluster).await;
    h.set(
        basic("v1")
            .with(Cluster, "v3", vec![eds_cluster("c1", 3)])
            .build(),
    );
    let r3 = c.recv_type(Cluster).await;
    assert_eq!(r3.version_info, "v3");
    // r2 is still unanswered: its snapshot must be kept for a late ACK or NACK.
    assert!(weak2.upgrade().is_some());
    c.ack(&r2, &[]).await;
    c.ack(&r3, &[]).await;
    h.until("v3 acked", |cl| {
        cl.state()[0].types[&Cluster].acked_version.as_deref() == Some("v3")
    })
    .await;
    assert!(weak1.upgrade().is_none(), "v1's snapshot is still held");
    assert!(weak2.upgrade().is_none(), "v2's snapshot is still held");
}
