//! The snapshot's per-change bookkeeping: version strings and the walked lookups of the
//! previous snapshot's resources (`Previous`).

use std::collections::BTreeMap;

use super::super::{Previous, Versioner};
use crate::xds::Resource;

#[test]
fn version_strings_are_the_boot_id_and_sixteen_hex_digits() {
    let v = Versioner { boot_id: "boot" };
    for hash in [0, 1, 0x1234_5678_9abc_def0, u64::MAX, 0x8000_0000_0000_000f] {
        assert_eq!(v.version(hash), format!("boot-{hash:016x}"));
    }
}

fn resources(names: &[&str]) -> BTreeMap<String, Resource> {
    names
        .iter()
        .map(|n| {
            let r = Resource {
                name: (*n).to_string(),
                version: format!("v-{n}"),
                body: Default::default(),
                linger: std::time::Duration::ZERO,
                pieces: Default::default(),
            };
            ((*n).to_string(), r)
        })
        .collect()
}

/// Sorted lookups walk the map; lookups out of order (a name at or before one the walk has
/// passed) must still find what the map holds, and names past the end find nothing.
#[test]
fn lookups_in_any_order_find_exactly_the_map_entries() {
    let map = resources(&["b", "d", "f", "h"]);
    let mut previous = Previous::new(&map);
    let order = [
        "a", "b", "c", "d", "b", "e", "f", "d", "h", "z", "f", "a", "h", "i",
    ];
    for name in order {
        let found = previous.get(name).map(|r| r.version.as_str());
        let expected = map.get(name).map(|r| r.version.as_str());
        assert_eq!(found, expected, "lookup of {name:?}");
    }
}

#[test]
fn an_empty_previous_type_finds_nothing() {
    let map = resources(&[]);
    let mut previous = Previous::new(&map);
    assert!(previous.get("a").is_none());
    assert!(previous.get("a").is_none());
}
