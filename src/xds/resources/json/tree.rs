//! A lean JSON tree for rendering one resource: what `serde_json::Value` would hold, with each
//! object's keys sorted as `Value`'s `BTreeMap` sorts them, but stored as a sorted `Vec` (a
//! `BTreeMap` allocates a whole node even for a one-key object, and Envoy resources are mostly
//! small objects). Printing a [`Node`] with serde_json gives byte for byte what printing the
//! equivalent `Value` gives (numbers are kept as `Value` keeps them: `f32` widened to `f64`,
//! non-finite floats as `null`, integers as `u64`/`i64`).

use serde::ser::{self, Serialize};

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys sorted, no duplicates.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// Sets `key` of an object, keeping its keys sorted.
    pub fn insert(&mut self, key: &str, value: Node) -> Result<(), TreeError> {
        let Node::Map(entries) = self else {
            return Err(TreeError(format!("{key}: not an object")));
        };
        match entries.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => entries[i].1 = value,
            Err(i) => entries.insert(i, (key.to_string(), value)),
        }
        Ok(())
    }
}

impl Serialize for Node {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Int(i) => s.serialize_i64(*i),
            Node::Uint(u) => s.serialize_u64(*u),
            Node::Float(f) => s.serialize_f64(*f),
            Node::Str(v) => s.serialize_str(v),
            Node::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Why a value has no JSON form (the same cases `serde_json::to_value` refuses).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct TreeError(String);

impl ser::Error for TreeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        TreeError(msg.to_string())
    }
}

/// Builds a [`Node`] from any `Serialize` value.
pub(super) fn to_node<T: Serialize + ?Sized>(value: &T) -> Result<Node, TreeError> {
    value.serialize(NodeSerializer)
}

fn number(n: i128) -> Result<Node, TreeError> {
    if let Ok(i) = i64::try_from(n) {
        Ok(if i < 0 {
            Node::Int(i)
        } else {
            Node::Uint(i as u64)
        })
    } else if let Ok(u) = u64::try_from(n) {
        Ok(Node::Uint(u))
    } else {
        Err(TreeError("number out of range".into()))
    }
}

fn float(f: f64) -> Node {
    if f.is_finite() {
        Node::Float(f)
    } else {
        Node::Null
    }
}

/// Sorts an object's entries; of duplicate keys the last wins (as a map insert would).
fn sorted(mut entries: Vec<(String, Node)>) -> Node {
    entries.reverse();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|later, first| later.0 == first.0);
    Node::Map(entries)
}

fn tagged(variant: &str, value: Node) -> Node {
    Node::Map(vec![(variant.to_string(), value)])
}

pub(super) struct NodeSerializer;

impl ser::Serializer for NodeSerializer {
    type Ok = Node;
    type Error = TreeError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Node, TreeError> {
        Ok(Node::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Node, TreeError> {
        number(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Node, TreeError> {
        number(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Node, TreeError> {
        number(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Node, TreeError> {
        number(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<Node, TreeError> {
        number(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Node, TreeError> {
        number(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Node, TreeError> {
        number(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Node, TreeError> {
        number(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Node, TreeError> {
        Ok(Node::Uint(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Node, TreeError> {
        u64::try_from(v)
            .map(Node::Uint)
            .map_err(|_| TreeError("number out of range".into()))
    }
    fn serialize_f32(self, v: f32) -> Result<Node, TreeError> {
        Ok(float(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Node, TreeError> {
        Ok(float(v))
    }
    fn serialize_char(self, v: char) -> Result<Node, TreeError> {
        Ok(Node::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Node, TreeError> {
        Ok(Node::Str(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Node, TreeError> {
        Ok(Node::Seq(v.iter().map(|&b| Node::Uint(b.into())).collect()))
    }
    fn serialize_none(self) -> Result<Node, TreeError> {
        Ok(Node::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Node, TreeError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Node, TreeError> {
        Ok(Node::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Node, TreeError> {
        Ok(Node::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Node, TreeError> {
        Ok(Node::Str(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Node, TreeError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Node, TreeError> {
        Ok(tagged(variant, to_node(v)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, TreeError> {
        Ok(SeqBuilder {
            variant: None,
            items: Vec::with_capacity(len.unwrap_or(0)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, TreeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, TreeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, TreeError> {
        Ok(SeqBuilder {
            variant: Some(variant),
            items: Vec::with_capacity(len),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, TreeError> {
        Ok(MapBuilder {
            variant: None,
            entries: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<MapBuilder, TreeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, TreeError> {
        Ok(MapBuilder {
            variant: Some(variant),
            entries: Vec::with_capacity(len),
            key: None,
        })
    }
}

pub(super) struct SeqBuilder {
    variant: Option<&'static str>,
    items: Vec<Node>,
}

impl SeqBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), TreeError> {
        self.items.push(to_node(v)?);
        Ok(())
    }

    fn done(self) -> Node {
        let seq = Node::Seq(self.items);
        match self.variant {
            Some(variant) => tagged(variant, seq),
            None => seq,
        }
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Node;
    type Error = TreeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), TreeError> {
        self.push(v)
    }
    fn end(self) -> Result<Node, TreeError> {
        Ok(self.done())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Node;
    type Error = TreeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), TreeError> {
        self.push(v)
    }
    fn end(self) -> Result<Node, TreeError> {
        Ok(self.done())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Node;
    type Error = TreeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), TreeError> {
        self.push(v)
    }
    fn end(self) -> Result<Node, TreeError> {
        Ok(self.done())
    }
}

impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Node;
    type Error = TreeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), TreeError> {
        self.push(v)
    }
    fn end(self) -> Result<Node, TreeError> {
        Ok(self.done())
    }
}

pub(super) struct MapBuilder {
    variant: Option<&'static str>,
    entries: Vec<(String, Node)>,
    key: Option<String>,
}

impl MapBuilder {
    fn done(self) -> Node {
        let map = sorted(self.entries);
        match self.variant {
            Some(variant) => tagged(variant, map),
            None => map,
        }
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Node;
    type Error = TreeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), TreeError> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), TreeError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| TreeError("map value without a key".into()))?;
        self.entries.push((key, to_node(v)?));
        Ok(())
    }
    fn end(self) -> Result<Node, TreeError> {
        Ok(self.done())
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Node;
    type Error = TreeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), TreeError> {
        self.entries.push((key.to_string(), to_node(v)?));
        Ok(())
    }
    fn end(self) -> Result<Node, TreeError> {
        Ok(self.done())
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Node;
    type Error = TreeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), TreeError> {
        self.entries.push((key.to_string(), to_node(v)?));
        Ok(())
    }
    fn end(self) -> Result<Node, TreeError> {
        Ok(self.done())
    }
}

/// Object keys: strings, and the scalars `serde_json` turns into strings.
struct KeySerializer;

fn key_error() -> TreeError {
    TreeError("key must be a string".into())
}

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = TreeError;
    type SerializeSeq = ser::Impossible<String, TreeError>;
    type SerializeTuple = ser::Impossible<String, TreeError>;
    type SerializeTupleStruct = ser::Impossible<String, TreeError>;
    type SerializeTupleVariant = ser::Impossible<String, TreeError>;
    type SerializeMap = ser::Impossible<String, TreeError>;
    type SerializeStruct = ser::Impossible<String, TreeError>;
    type SerializeStructVariant = ser::Impossible<String, TreeError>;

    fn serialize_bool(self, v: bool) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, _: f32) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_f64(self, _: f64) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_char(self, v: char) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, TreeError> {
        Ok(v.to_string())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_none(self) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_unit(self) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, TreeError> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, TreeError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, TreeError> {
        Err(key_error())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, TreeError> {
        Err(key_error())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, TreeError> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, TreeError> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, TreeError> {
        Err(key_error())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, TreeError> {
        Err(key_error())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, TreeError> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, TreeError> {
        Err(key_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree prints exactly as `serde_json::Value` prints: sorted keys, duplicates resolved
    /// to the last value, `f32` widened, non-finite floats as null, variants tagged.
    #[test]
    fn prints_as_serde_json_value_prints() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(i8, i64),
            Struct { z: bool, a: Option<u32> },
        }
        #[derive(serde::Serialize)]
        struct S {
            zeta: String,
            alpha: Vec<E>,
            f: f32,
            g: f64,
            nan: f64,
            neg: i32,
            big: u64,
            bytes: &'static [u8],
            unit: (),
            map: std::collections::HashMap<u32, &'static str>,
        }
        let s = S {
            zeta: "q\"\n\u{1}é".into(),
            alpha: vec![
                E::Unit,
                E::New(7),
                E::Tuple(-1, i64::MIN),
                E::Struct { z: true, a: None },
            ],
            f: 0.1,
            g: 1e300,
            nan: f64::NAN,
            neg: -5,
            big: u64::MAX,
            bytes: b"ab",
            unit: (),
            map: [(10, "x"), (2, "y"), (33, "z")].into_iter().collect(),
        };
        let want = serde_json::to_string_pretty(&serde_json::to_value(&s).unwrap()).unwrap();
        let got = serde_json::to_string_pretty(&to_node(&s).unwrap()).unwrap();
        assert_eq!(got, want);
        let mut m = MapBuilder {
            variant: None,
            entries: Vec::new(),
            key: None,
        };
        for (k, v) in [("b", 1u64), ("a", 2), ("b", 3)] {
            ser::SerializeMap::serialize_entry(&mut m, k, &v).unwrap();
        }
        let got = serde_json::to_string(&m.done()).unwrap();
        assert_eq!(got, r#"{"a":2,"b":3}"#);
    }
}
