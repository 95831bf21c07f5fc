//! The RBAC HTTP filter that allows or denies requests by client address (Module `ip_allow` /
//! `ip_deny`), encoded deterministically.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac as Rules, permission, principal, rbac,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::super::u32v;
use crate::ir;

/// `RBAC.rules` field number of the HTTP filter's config.
const RULES_TAG: u32 = 1;

/// The filter's config: one policy, named as Emissary names it, matching any request from a
/// listed address. `policies` is a protobuf map, which prost encodes from a `HashMap` in a
/// random order per instance; as for the JSON access log, each entry is encoded on its own and
/// appended in a fixed order, so equal IR always gives equal bytes.
pub(super) fn config(rules: &ir::IpRules) -> Any {
    let (action, name) = match rules.action {
        ir::IpAction::Allow => (rbac::Action::Allow, "ambassador-ip-allow"),
        ir::IpAction::Deny => (rbac::Action::Deny, "ambassador-ip-deny"),
    };
    let policy = Policy {
        permissions: vec![Permission {
            rule: Some(permission::Rule::Any(true)),
        }],
        principals: rules.principals.iter().map(principal).collect(),
        ..Default::default()
    };
    let mut encoded = Rules {
        action: action as i32,
        ..Default::default()
    }
    .encode_to_vec();
    // Further policies would each be appended the same way, in a fixed order.
    encoded.extend(policy_entry(name, policy));
    let mut value = Rbac::default().encode_to_vec();
    prost::encoding::bytes::encode(RULES_TAG, &encoded, &mut value);
    Any {
        type_url: Rbac::type_url(),
        value,
    }
}

/// One `policies` map entry, encoded alone (a map entry is an independent record on the wire).
fn policy_entry(name: &str, policy: Policy) -> Vec<u8> {
    Rules {
        policies: HashMap::from([(name.to_string(), policy)]),
        ..Default::default()
    }
    .encode_to_vec()
}

fn principal(p: &ir::IpPrincipal) -> Principal {
    let range = CidrRange {
        address_prefix: p.address.clone(),
        prefix_len: Some(u32v(p.prefix_len)),
    };
    let identifier = match p.source {
        ir::IpSource::Peer => principal::Identifier::DirectRemoteIp(range),
        ir::IpSource::Remote => principal::Identifier::RemoteIp(range),
    };
    Principal {
        identifier: Some(identifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(action: ir::IpAction) -> ir::IpRules {
        ir::IpRules {
            action,
            principals: vec![
                ir::IpPrincipal {
                    source: ir::IpSource::Peer,
                    address: "127.0.0.1".into(),
                    prefix_len: 32,
                },
                ir::IpPrincipal {
                    source: ir::IpSource::Remote,
                    address: "2001:db8::".into(),
                    prefix_len: 32,
                },
            ],
        }
    }

    #[test]
    fn rbac_decodes_to_the_message_prost_would_build() {
        let any = config(&rules(ir::IpAction::Deny));
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
        );
        let decoded = Rbac::decode(any.value.as_slice()).unwrap();
        let cidr = |a: &str, n: u32| CidrRange {
            address_prefix: a.into(),
            prefix_len: Some(u32v(n)),
        };
        let policy = Policy {
            permissions: vec![Permission {
                rule: Some(permission::Rule::Any(true)),
            }],
            principals: vec![
                Principal {
                    identifier: Some(principal::Identifier::DirectRemoteIp(cidr("127.0.0.1", 32))),
                },
                Principal {
                    identifier: Some(principal::Identifier::RemoteIp(cidr("2001:db8::", 32))),
                },
            ],
            ..Default::default()
        };
        let expected = Rbac {
            rules: Some(Rules {
                action: rbac::Action::Deny as i32,
                policies: HashMap::from([("ambassador-ip-deny".to_string(), policy)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(decoded, expected);
    }

    #[test]
    fn allow_is_named_and_acts_as_allow() {
        let decoded = Rbac::decode(config(&rules(ir::IpAction::Allow)).value.as_slice()).unwrap();
        let rules = decoded.rules.unwrap();
        assert_eq!(rules.action, rbac::Action::Allow as i32);
        assert_eq!(
            rules.policies.keys().collect::<Vec<_>>(),
            ["ambassador-ip-allow"]
        );
    }

    #[test]
    fn rbac_bytes_are_deterministic() {
        let first = config(&rules(ir::IpAction::Deny));
        for _ in 0..20 {
            assert_eq!(config(&rules(ir::IpAction::Deny)), first);
        }
    }
}
