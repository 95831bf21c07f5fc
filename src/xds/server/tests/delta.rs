//! Delta behaviour (docs/design.md#delta-rules).

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use super::build::*;
use super::client::*;
use crate::xds::snapshot::TypeKind::{Cluster, Endpoint, Listener, Route, Secret};

fn nv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn subscribe_and_unsubscribe_named() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.delta("n1").await;
    c.subscribe(Endpoint, &["c1", "c9"], &[]).await;
    let r = c.recv_type(Endpoint).await;
    assert_eq!(delta_names(&r), nv(&[("c1", "c1-p9001")]));
    assert_eq!(r.removed_resources, ["c9"], "absent names are reported");
    assert_eq!(r.system_version_info, "v1");
    c.ack(&r).await;
    c.silent().await;
    // c9 appears: it is delivered; c1 is unchanged and not re-sent.
    h.set(
        basic("v2")
            .with(Endpoint, "v2", vec![cla("c1", 9001), cla("c9", 9)])
            .build(),
    );
    let r2 = c.recv_type(Endpoint).await;
    assert_eq!(delta_names(&r2), nv(&[("c9", "c9-p9")]));
    assert!(r2.removed_resources.is_empty());
    c.ack(&r2).await;
    // After unsubscribing c1, its changes are not sent.
    c.change(Endpoint, &[], &["c1"]).await;
    c.silent().await;
    h.set(
        basic("v3")
            .with(Endpoint, "v3", vec![cla("c1", 3), cla("c9", 9)])
            .build(),
    );
    c.silent().await;
    // Subscribing again to a name the client held is answered.
    c.change(Endpoint, &["c9"], &[]).await;
    let r3 = c.recv_type(Endpoint).await;
    assert_eq!(delta_names(&r3), nv(&[("c9", "c9-p9")]));
}

#[tokio::test]
async fn wildcard_removal_and_initial_versions() {
    let h = Harness::tcp().await;
    let v1 = basic("v1").with(
        Cluster,
        "v1",
        vec![eds_cluster("c1", 1), eds_cluster("c2", 1)],
    );
    h.set(v1.build());
    let mut c = h.delta("n1").await;
    // A reconnecting client already holds c1 at its current version.
    c.subscribe(Cluster, &[], &[("c1", "c1-t1"), ("gone", "x")])
        .await;
    let r = c.recv_type(Cluster).await;
    assert_eq!(delta_names(&r), nv(&[("c2", "c2-t1")]));
    c.ack(&r).await;
    // `gone` no longer exists: removed once nothing else is pending.
    let r = c.recv_type(Cluster).await;
    assert_eq!(r.removed_resources, ["gone"]);
    c.ack(&r).await;
    c.silent().await;
    h.set(
        basic("v2")
            .with(Cluster, "v2", vec![eds_cluster("c1", 1)])
            .build(),
    );
    let r2 = c.recv_type(Cluster).await;
    assert!(r2.resources.is_empty());
    assert_eq!(r2.removed_resources, ["c2"]);
    assert_eq!(r2.system_version_info, "v2");
    c.ack(&r2).await;
    c.silent().await;
}

#[tokio::test]
async fn nack_is_not_resent() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.delta("n1").await;
    c.subscribe(Cluster, &[], &[]).await;
    let r1 = c.recv_type(Cluster).await;
    c.ack(&r1).await;
    h.set(
        basic("v1")
            .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
            .build(),
    );
    let r2 = c.recv_type(Cluster).await;
    c.nack(&r2, "bad timeout").await;
    c.silent().await;
    h.until("nack recorded", |cl| {
        cl.state()[0].types[&Cluster].nack_count == 1
    })
    .await;
    let cds = h.clients.state()[0].types[&Cluster].clone();
    assert_eq!(cds.last_nack.unwrap().message, "bad timeout");
    assert_eq!(cds.acked_version.as_deref(), Some("v1"));
    assert_eq!(h.metrics.nacks.get("cds"), 1.0);
    h.set(
        basic("v1")
            .with(Cluster, "v3", vec![eds_cluster("c1", 3)])
            .build(),
    );
    assert_eq!(c.recv_type(Cluster).await.system_version_info, "v3");
}

#[tokio::test]
async fn subscription_with_stale_nonce_is_honoured() {
    let h = Harness::tcp().await;
    h.set(
        basic("v1")
            .with(Endpoint, "v1", vec![cla("c1", 1), cla("c2", 2)])
            .build(),
    );
    let mut c = h.delta("n1").await;
    c.subscribe(Endpoint, &["c1"], &[]).await;
    let r1 = c.recv_type(Endpoint).await;
    h.set(
        basic("v2")
            .with(Endpoint, "v2", vec![cla("c1", 11), cla("c2", 2)])
            .build(),
    );
    let r2 = c.recv_type(Endpoint).await;
    assert_eq!(delta_names(&r2), nv(&[("c1", "c1-p11")]));
    c.send(DeltaDiscoveryRequest {
        type_url: Endpoint.type_url().into(),
        response_nonce: r1.nonce.clone(),
        resource_names_subscribe: vec!["c2".into()],
        ..Default::default()
    })
    .await;
    let r3 = c.recv_type(Endpoint).await;
    assert_eq!(delta_names(&r3), nv(&[("c2", "c2-p2")]));
}

#[tokio::test]
async fn pushes_are_ordered() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.delta("n1").await;
    for (kind, names) in [
        (Secret, &["s1"][..]),
        (Cluster, &[]),
        (Endpoint, &["c1"]),
        (Listener, &[]),
        (Route, &["r1"]),
    ] {
        c.subscribe(kind, names, &[]).await;
        let r = c.recv_type(kind).await;
        c.ack(&r).await;
    }
    let v2 = basic("v2")
        .with(Secret, "v2", vec![secret("s1", "b")])
        .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
        .with(Endpoint, "v2", vec![cla("c1", 2)])
        .with(Listener, "v2", vec![listener("l1", 10002, "r1")])
        .with(Route, "v2", vec![direct_route("r1", 201, "v2")]);
    h.set(v2.build());
    let mut got = Vec::new();
    for kind in [Secret, Cluster, Endpoint] {
        got.push(c.recv_type(kind).await);
    }
    c.silent().await;
    for r in &got {
        c.ack(r).await;
    }
    for kind in [Listener, Route] {
        let r = c.recv_type(kind).await;
        c.ack(&r).await;
    }
    c.silent().await;
    h.until("all acked", |cl| cl.acked(&versions("v2"))).await;
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
    let mut c = h.delta("n1").await;
    for (kind, names) in [(Cluster, &[][..]), (Listener, &[]), (Route, &["r1"])] {
        c.subscribe(kind, names, &[]).await;
        let r = c.recv_type(kind).await;
        c.ack(&r).await;
    }
    let v2 = basic("v1")
        .with(Cluster, "v2", vec![eds_cluster("c2", 1)])
        .with(Route, "v2", vec![direct_route("r1", 200, "c2")]);
    h.set(v2.build());
    let add = c.recv_type(Cluster).await;
    assert_eq!(add.system_version_info, "v2+keep");
    assert!(add.removed_resources.is_empty());
    c.ack(&add).await;
    let route = c.recv_type(Route).await;
    c.ack(&route).await;
    let answered = std::time::Instant::now();
    // c3 goes at once; c1 stays for its linger.
    let partial = c.recv_type(Cluster).await;
    assert_eq!(partial.removed_resources, ["c3"]);
    assert_eq!(partial.system_version_info, "v2+keep");
    c.ack(&partial).await;
    let last = c.recv_type(Cluster).await;
    assert!(answered.elapsed() >= std::time::Duration::from_millis(600));
    assert_eq!(last.removed_resources, ["c1"]);
    assert_eq!(last.system_version_info, "v2");
    c.ack(&last).await;
    c.silent().await;
    h.until("the exact clusters acked", |cl| {
        cl.state()[0].types[&Cluster].acked_version.as_deref() == Some("v2")
    })
    .await;
}

#[tokio::test]
async fn changed_eds_cluster_gets_its_endpoints_again() {
    let h = Harness::tcp().await;
    h.set(basic("v1").build());
    let mut c = h.delta("n1").await;
    c.subscribe(Cluster, &[], &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.subscribe(Endpoint, &["c1"], &[]).await;
    let eds = c.recv_type(Endpoint).await;
    c.ack(&eds).await;
    c.ack(&cds).await;
    c.silent().await;
    h.set(
        basic("v1")
            .with(Cluster, "v2", vec![eds_cluster("c1", 2)])
            .build(),
    );
    let cds2 = c.recv_type(Cluster).await;
    assert_eq!(delta_names(&cds2), nv(&[("c1", "c1-t2")]));
    let eds2 = c.recv_type(Endpoint).await;
    assert_eq!(delta_names(&eds2), nv(&[("c1", "c1-p9001")]));
}
