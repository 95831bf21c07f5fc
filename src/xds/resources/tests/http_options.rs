//! The Module's HCM options and header-name case, as Envoy receives them.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction;
use envoy_types::pb::envoy::config::core::v3::http1_protocol_options::header_key_format::HeaderFormat;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::rbac::v3::{principal, rbac};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::ForwardClientCertDetails;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};

use super::fixture::rich_ir;
use super::{any_as, build, decode, hcm_of};
use crate::xds::TypeKind;

fn rbac_of(l: &Listener, chain: &str) -> Option<Rbac> {
    let hcm = hcm_of(l, chain);
    let first = hcm.http_filters.first()?;
    if first.name != "envoy.filters.http.rbac" {
        return None;
    }
    match &first.config_type {
        Some(http_filter::ConfigType::TypedConfig(any)) => Some(any_as(any)),
        other => panic!("untyped rbac filter: {other:?}"),
    }
}

#[test]
fn ip_rules_become_the_first_http_filter() {
    let l: Listener = decode(&build(&rich_ir()), TypeKind::Listener, "edge");
    let deny = rbac_of(&l, "https").expect("rbac first").rules.unwrap();
    assert_eq!(deny.action, rbac::Action::Deny as i32);
    let policy = &deny.policies["ambassador-ip-deny"];
    let ids: Vec<_> = policy
        .principals
        .iter()
        .map(|p| p.identifier.clone().unwrap())
        .collect();
    let [
        principal::Identifier::DirectRemoteIp(peer),
        principal::Identifier::RemoteIp(remote),
    ] = ids.as_slice()
    else {
        panic!("expected a peer then a remote principal: {ids:?}");
    };
    assert_eq!(
        (peer.address_prefix.as_str(), peer.prefix_len.unwrap().value),
        ("192.0.2.0", 24)
    );
    assert_eq!(
        (
            remote.address_prefix.as_str(),
            remote.prefix_len.unwrap().value
        ),
        ("2001:db8::", 32)
    );
    let allow = rbac_of(&l, "plain").expect("rbac first").rules.unwrap();
    assert_eq!(allow.action, rbac::Action::Allow as i32);
    assert!(allow.policies.contains_key("ambassador-ip-allow"));
}

#[test]
fn hcm_carries_http1_header_and_client_cert_options() {
    let l: Listener = decode(&build(&rich_ir()), TypeKind::Listener, "edge");
    let hcm = hcm_of(&l, "https");
    let h1 = hcm.http_protocol_options.unwrap();
    assert!(h1.accept_http_10 && h1.allow_chunked_length);
    assert!(matches!(
        h1.header_key_format.unwrap().header_format,
        Some(HeaderFormat::ProperCaseWords(_))
    ));
    let common = hcm.common_http_protocol_options.unwrap();
    assert_eq!(
        common.headers_with_underscores_action,
        HeadersWithUnderscoresAction::DropHeader as i32
    );
    assert_eq!(common.idle_timeout.unwrap().seconds, 300);
    assert_eq!(
        hcm.forward_client_cert_details,
        ForwardClientCertDetails::SanitizeSet as i32
    );
    let d = hcm.set_current_client_cert_details.unwrap();
    assert!(d.subject.unwrap().value && d.cert && d.chain && d.dns && d.uri);

    // The plain chain sets none of them: Envoy's defaults, nothing emitted.
    let plain = hcm_of(&l, "plain");
    assert!(plain.http_protocol_options.is_none());
    assert!(plain.common_http_protocol_options.is_none());
    assert!(plain.set_current_client_cert_details.is_none());
    assert_eq!(
        plain.forward_client_cert_details,
        ForwardClientCertDetails::Sanitize as i32
    );
}

fn upstream_options(c: &Cluster) -> Option<HttpProtocolOptions> {
    c.typed_extension_protocol_options
        .get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
        .map(any_as)
}

fn http1_header_format(c: &Cluster) -> Option<HeaderFormat> {
    use http_protocol_options::{UpstreamProtocolOptions, explicit_http_config::ProtocolConfig};
    match upstream_options(c)?.upstream_protocol_options? {
        UpstreamProtocolOptions::ExplicitHttpConfig(e) => match e.protocol_config? {
            ProtocolConfig::HttpProtocolOptions(h1) => h1.header_key_format?.header_format,
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn clusters_carry_the_upstream_header_key_format() {
    let snap = build(&rich_ir());
    for name in ["web", "logical"] {
        let c: Cluster = decode(&snap, TypeKind::Cluster, name);
        assert!(
            matches!(
                http1_header_format(&c),
                Some(HeaderFormat::ProperCaseWords(_))
            ),
            "{name}"
        );
    }
    // Alone, the format is what makes the options appear; HTTP/2 never gets it.
    let logical: Cluster = decode(&snap, TypeKind::Cluster, "logical");
    assert!(
        upstream_options(&logical)
            .unwrap()
            .common_http_protocol_options
            .is_none()
    );
    let eds: Cluster = decode(&snap, TypeKind::Cluster, "eds-svc");
    assert_eq!(http1_header_format(&eds), None);
    let grpc: Cluster = decode(&snap, TypeKind::Cluster, "grpc");
    assert_eq!(http1_header_format(&grpc), None);
    let plain: Cluster = decode(&snap, TypeKind::Cluster, "eds-empty");
    assert!(upstream_options(&plain).is_none());
}
