//! A bound on what YAML aliases expand to, checked before a document is converted.
//!
//! Why (issue 9, item 8, found by `tests/fuzz.rs`): `serde_yaml` limits alias *jumps* to 100
//! per event of the document, but a jump can expand a large anchored node, so a file of `n`
//! bytes can expand to O(n²) nodes: one anchor of 50,000 items referenced 50,000 times (350 KB)
//! ran for minutes and would have exhausted memory. Nested anchors (the classic "billion
//! laughs") are caught by that jump limit already.
//!
//! The check walks each document as `serde_yaml` presents it (aliases expanded), counting
//! nodes, and stops at [`budget`] nodes for the file: linear in the input whatever the
//! aliases do. Only text that holds both `&` and `*` can have aliases, so other files skip it.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Nodes a file of `len` bytes may expand to: four times what any file without aliases has (a
/// node takes at least two bytes), plus room for small files that share a large anchor.
pub(super) fn budget(len: usize) -> usize {
    50_000 + 2 * len
}

/// Whether `text` may use aliases at all.
pub(super) fn may_alias(text: &str) -> bool {
    text.contains('&') && text.contains('*')
}

/// Counts the nodes of every document (aliases expanded) and fails with "aliases expand to
/// more than N nodes" once the budget is spent. Syntax errors are not this check's business:
/// it stops counting at the first one and passes (the conversion reports it).
pub(super) fn check<'a>(
    documents: impl Iterator<Item = serde_yaml::Deserializer<'a>>,
    budget: usize,
) -> Result<(), serde_yaml::Error> {
    let mut state = State {
        left: budget,
        budget,
        exceeded: false,
    };
    for document in documents {
        if let Err(e) = (Count { state: &mut state }).deserialize(document) {
            return if state.exceeded { Err(e) } else { Ok(()) };
        }
    }
    Ok(())
}

struct State {
    left: usize,
    budget: usize,
    exceeded: bool,
}

struct Count<'a> {
    state: &'a mut State,
}

impl Count<'_> {
    fn take<E: de::Error>(&mut self) -> Result<(), E> {
        match self.state.left.checked_sub(1) {
            Some(left) => {
                self.state.left = left;
                Ok(())
            }
            None => {
                self.state.exceeded = true;
                Err(E::custom(format_args!(
                    "aliases expand to more than {} nodes",
                    self.state.budget
                )))
            }
        }
    }

    fn child(&mut self) -> Count<'_> {
        Count { state: self.state }
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.take()
    }
    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.take()
    }
    fn visit_i128<E: de::Error>(mut self, _: i128) -> Result<(), E> {
        self.take()
    }
    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.take()
    }
    fn visit_u128<E: de::Error>(mut self, _: u128) -> Result<(), E> {
        self.take()
    }
    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.take()
    }
    fn visit_str<E: de::Error>(mut self, _: &str) -> Result<(), E> {
        self.take()
    }
    fn visit_bytes<E: de::Error>(mut self, _: &[u8]) -> Result<(), E> {
        self.take()
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.take()
    }
    fn visit_none<E: de::Error>(mut self) -> Result<(), E> {
        self.take()
    }
    fn visit_some<D: serde::Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        self.take()?;
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.take()?;
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.take()?;
        while map.next_key_seed(self.child())?.is_some() {
            map.next_value_seed(self.child())?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
        // a tagged node (`!tag value`): count the value under the tag
        use de::VariantAccess;
        self.take()?;
        let ((), variant) = data.variant_seed(self.child())?;
        variant.newtype_variant_seed(self.child())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, budget: usize) -> Result<(), String> {
        check(serde_yaml::Deserializer::from_str(text), budget).map_err(|e| e.to_string())
    }

    #[test]
    fn counts_expanded_nodes_and_stops_at_the_budget() {
        // a map, two keys, a list of three, and the alias expanding the list again
        let text = "a: &x [1, 2, 3]\nb: *x\n";
        assert_eq!(run(text, 11), Ok(()));
        let e = run(text, 10).unwrap_err();
        assert!(e.contains("aliases expand to more than 10 nodes"), "{e}");
        assert!(may_alias(text) && !may_alias("a: '*'\n"));
        // a syntax error is left to the conversion
        assert_eq!(run("a: &x [1\nb: *x\n", 100), Ok(()));
    }

    /// An anchor of `n` items referenced `n` times is `n²` nodes: the check gives up after the
    /// budget, so the work stays proportional to the text (counted, not timed).
    #[test]
    fn a_wide_alias_fan_out_is_cut_at_the_budget() {
        let n = 20_000;
        let text = format!(
            "big: &b [{}]\nrefs: [{}]\n",
            vec!["x"; n].join(", "),
            vec!["*b"; n].join(", ")
        );
        let e = run(&text, budget(text.len())).unwrap_err();
        assert!(e.contains("aliases expand to more than"), "{e}");
    }
}
