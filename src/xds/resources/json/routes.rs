//! Route configurations rendered one route at a time. A table of thousands of routes is one
//! resource; decoded whole (as a dynamic message, or as envoy-types' `RouteConfiguration`,
//! whose `Route` is several kilobytes) and turned into one tree, it would be the largest
//! structure of the process. Instead the encoded bytes are split at the protobuf wire level
//! (`virtual_hosts` of the configuration, `routes` of each virtual host), every piece is
//! rendered on its own, and the printed pieces are put back where the list belongs. The text
//! is the same as the whole resource's: a nested message prints the same wherever it is.

use super::{Error, bytes_to_tree, descriptor, pretty, tree};
use envoy_types::pb::google::protobuf::Any;

const CONFIG: &str = "envoy.config.route.v3.RouteConfiguration";
const VHOST: &str = "envoy.config.route.v3.VirtualHost";
const ROUTE: &str = "envoy.config.route.v3.Route";

/// The pretty JSON of a packed `RouteConfiguration`.
pub(super) fn route_configuration(any: &Any) -> Result<Vec<u8>, Error> {
    let (config, vhost, route) = (descriptor(CONFIG)?, descriptor(VHOST)?, descriptor(ROUTE)?);
    let number = |d: &prost_reflect::MessageDescriptor, field: &str| {
        d.get_field_by_name(field)
            .map(|f| f.number())
            .ok_or_else(|| Error::Json(format!("{} has no field {field}", d.full_name())))
    };
    let (vhosts_field, routes_field) =
        (number(&config, "virtual_hosts")?, number(&vhost, "routes")?);
    let (vhosts, rest) = split_field(&any.value, vhosts_field)?;
    let vhosts = vhosts
        .into_iter()
        .map(|bytes| {
            let (routes, rest) = split_field(bytes, routes_field)?;
            let routes = routes
                .into_iter()
                .map(|r| pretty(&bytes_to_tree(&route, r)?))
                .collect::<Result<Vec<_>, _>>()?;
            with_list(bytes_to_tree(&vhost, &rest)?, "routes", routes)
        })
        .collect::<Result<Vec<_>, _>>()?;
    with_list(bytes_to_tree(&config, &rest)?, "virtual_hosts", vhosts)
}

/// Splits an encoded message into the payloads of every occurrence of the length-delimited
/// field `number` (in order) and the encoding of every other field.
fn split_field(bytes: &[u8], number: u32) -> Result<(Vec<&[u8]>, Vec<u8>), Error> {
    let bad = || {
        Error::Json(format!(
            "malformed protobuf while looking for field {number}"
        ))
    };
    let mut found = Vec::new();
    let mut rest = Vec::with_capacity(bytes.len().min(4096));
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at).ok_or_else(bad)?;
        let (field, wire) = (key >> 3, key & 7);
        let payload = match wire {
            0 => {
                varint(bytes, &mut at).ok_or_else(bad)?;
                None
            }
            1 => {
                at += 8;
                None
            }
            2 => {
                let len =
                    usize::try_from(varint(bytes, &mut at).ok_or_else(bad)?).map_err(|_| bad())?;
                let from = at;
                at = at.checked_add(len).ok_or_else(bad)?;
                Some(from)
            }
            5 => {
                at += 4;
                None
            }
            // Groups (3, 4) are not used by Envoy's API.
            _ => return Err(bad()),
        };
        if at > bytes.len() {
            return Err(bad());
        }
        match payload {
            Some(from) if field == u64::from(number) => found.push(&bytes[from..at]),
            _ => rest.extend_from_slice(&bytes[start..at]),
        }
    }
    Ok((found, rest))
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Prints `node` (an object) with `key` set to the list of already printed `items`, as if
/// they had been part of the tree (an empty list is left out, as proto3 JSON leaves it out).
fn with_list(mut node: tree::Node, key: &str, items: Vec<Vec<u8>>) -> Result<Vec<u8>, Error> {
    if items.is_empty() {
        return pretty(&node);
    }
    // A placeholder no resource contains (NUL characters), printed, then replaced.
    const MARK: &str = "\0legate:list\0";
    node.insert(key, tree::Node::Str(MARK.to_string()))
        .map_err(|e| Error::Json(e.to_string()))?;
    let text = pretty(&node)?;
    let mark = serde_json::to_string(MARK).map_err(|e| Error::Json(e.to_string()))?;
    let at = text
        .windows(mark.len())
        .position(|w| w == mark.as_bytes())
        .ok_or_else(|| Error::Json(format!("{key}: placeholder not printed")))?;
    let line = text[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let indent = text[line..].iter().take_while(|&&b| b == b' ').count();
    let size: usize = items.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(text.len() + size + size / 4);
    out.extend_from_slice(&text[..at]);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        indented(&mut out, item, indent + 2);
    }
    out.push(b'\n');
    out.resize(out.len() + indent, b' ');
    out.push(b']');
    out.extend_from_slice(&text[at + mark.len()..]);
    Ok(out)
}

/// Appends `text` indented by `indent` spaces: before its first line and after every newline
/// (a JSON string holds no raw newline, so every newline starts a line).
fn indented(out: &mut Vec<u8>, text: &[u8], indent: usize) {
    for (j, line) in text.split(|&b| b == b'\n').enumerate() {
        if j > 0 {
            out.push(b'\n');
        }
        out.resize(out.len() + indent, b' ');
        out.extend_from_slice(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_one_field_out_of_the_wire_format() {
        // field 1 varint 150, field 2 bytes "ab", field 3 fixed32, field 2 bytes "c".
        let bytes = [
            0x08, 0x96, 0x01, 0x12, 2, b'a', b'b', 0x1d, 1, 2, 3, 4, 0x12, 1, b'c',
        ];
        let (found, rest) = split_field(&bytes, 2).unwrap();
        assert_eq!(found, [&b"ab"[..], &b"c"[..]]);
        assert_eq!(rest, [0x08, 0x96, 0x01, 0x1d, 1, 2, 3, 4]);
        assert!(
            split_field(&[0x12, 5, b'a'], 2).is_err(),
            "truncated payload"
        );
        assert!(split_field(&[0x08, 0x96], 1).is_err(), "truncated varint");
    }

    #[test]
    fn lists_are_spliced_at_the_indentation_of_their_key() {
        let node = tree::Node::Map(vec![
            ("a".into(), tree::Node::Uint(1)),
            ("z".into(), tree::Node::Map(vec![])),
        ]);
        let items = vec![b"{\n  \"x\": 1\n}".to_vec(), b"2".to_vec()];
        let got = with_list(node.clone(), "m", items).unwrap();
        let mut want = node;
        want.insert(
            "m",
            tree::Node::Seq(vec![
                tree::Node::Map(vec![("x".into(), tree::Node::Uint(1))]),
                tree::Node::Uint(2),
            ]),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            serde_json::to_string_pretty(&want).unwrap()
        );
    }
}
