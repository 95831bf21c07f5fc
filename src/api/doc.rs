//! A compact, immutable JSON document: what a source holds for every object it read.
//!
//! A `serde_json::Value` costs about 2 KB for a Mapping of 200 bytes of YAML: every string is
//! its own allocation and every object a `BTreeMap` of ~600-byte nodes, even for two keys
//! (BENCHMARKS.md, "legate's own memory"). A [`Document`] holds the same tree in two
//! allocations: its nodes in one array (16 bytes each; an object's entries are consecutive
//! key/value node pairs, sorted by key as `serde_json::Map` sorts them) and every string's
//! bytes in one text buffer.
//!
//! [`Doc`] is a handle on one node. `Doc` is a serde `Deserializer` that behaves as
//! `&serde_json::Value` does (same visits, same `serde_json::Error` messages), so the typed
//! specs deserialize from a document directly, and it serializes as the `Value` would.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer, forward_to_deserialize_any};
use serde_json::{Error, Map, Number, Value};

/// One node. `Str` is a range of the text; `Array` and `Object` a range of the nodes (an object's
/// `len` entries take `2 * len` nodes: key, value, key, value…).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str { start: u32, len: u32 },
    Array { first: u32, len: u32 },
    Object { first: u32, len: u32 },
}

/// A document too large for 32-bit offsets (4 GiB of text or 4 billion nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("document too large (more than 4 GiB of text or 4 billion values)")
    }
}

/// An immutable JSON document. Two documents built from equal values are equal.
#[derive(Clone, PartialEq)]
pub struct Document {
    /// The root is the first node; a container's children follow it as one block, laid out
    /// before its descendants'.
    nodes: Box<[Node]>,
    text: Box<str>,
}

impl Document {
    /// The document of `value`.
    pub fn from_value(value: &Value) -> Result<Document, TooLarge> {
        // Sized in a first pass, so the build allocates each buffer once.
        let (mut nodes, mut text) = (1, 0);
        count(value, &mut nodes, &mut text);
        if u32::try_from(nodes).is_err() || u32::try_from(text).is_err() {
            return Err(TooLarge);
        }
        let mut builder = Builder {
            nodes: Vec::with_capacity(nodes),
            text: String::with_capacity(text),
        };
        builder.nodes.push(Node::Null);
        builder.fill(0, value);
        Ok(Document {
            nodes: builder.nodes.into_boxed_slice(),
            text: builder.text.into_boxed_str(),
        })
    }

    /// `null`.
    pub fn null() -> Document {
        Document {
            nodes: Box::new([Node::Null]),
            text: Box::default(),
        }
    }

    /// The root node.
    pub fn root(&self) -> Doc<'_> {
        Doc {
            doc: self,
            index: 0,
        }
    }

    /// The root's `key`, if the root is an object holding it.
    pub fn get(&self, key: &str) -> Option<Doc<'_>> {
        self.root().get(key)
    }

    /// The document as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        self.root().to_value()
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.root(), f)
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.root().serialize(serializer)
    }
}

/// Adds the nodes below `value` (object keys included) and the bytes of its strings.
fn count(value: &Value, nodes: &mut usize, text: &mut usize) {
    match value {
        Value::String(s) => *text += s.len(),
        Value::Array(items) => {
            *nodes += items.len();
            for item in items {
                count(item, nodes, text);
            }
        }
        Value::Object(map) => {
            *nodes += 2 * map.len();
            for (key, value) in map {
                *text += key.len();
                count(value, nodes, text);
            }
        }
        _ => {}
    }
}

/// Fills a document sized by [`count`]: every index and offset fits in a `u32`.
struct Builder {
    nodes: Vec<Node>,
    text: String,
}

impl Builder {
    /// Sets node `at` to `value`, appending its children's block and then theirs.
    fn fill(&mut self, at: usize, value: &Value) {
        let node = match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => number(n),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                let first = self.nodes.len();
                self.nodes.resize(first + items.len(), Node::Null);
                for (i, item) in items.iter().enumerate() {
                    self.fill(first + i, item);
                }
                Node::Array {
                    first: first as u32,
                    len: items.len() as u32,
                }
            }
            Value::Object(map) => {
                let first = self.nodes.len();
                self.nodes.resize(first + 2 * map.len(), Node::Null);
                for (i, (key, value)) in map.iter().enumerate() {
                    self.nodes[first + 2 * i] = self.string(key);
                    self.fill(first + 2 * i + 1, value);
                }
                Node::Object {
                    first: first as u32,
                    len: map.len() as u32,
                }
            }
        };
        self.nodes[at] = node;
    }

    fn string(&mut self, s: &str) -> Node {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Node::Str {
            start,
            len: s.len() as u32,
        }
    }
}

fn number(n: &Number) -> Node {
    // serde_json keeps a non-negative integer as unsigned, a negative one as signed.
    if let Some(u) = n.as_u64() {
        Node::U64(u)
    } else if let Some(i) = n.as_i64() {
        Node::I64(i)
    } else {
        Node::F64(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// A document under construction: parsed from any serde `Deserializer` (the file source's YAML)
/// straight into nodes, without a `serde_json::Value` in between; inspected and patched (the
/// file source defaults `metadata.namespace`); then [`finish`](Draft::finish)ed into a
/// [`Document`] laid out exactly as [`Document::from_value`] lays out the same value, so the two
/// compare equal.
///
/// Parsing accepts, rejects and numbers exactly as deserializing a `serde_json::Value` does
/// (same visits, same error texts: the deserializer's locations are kept): a map's entries are
/// sorted by key and a repeated key keeps its last value, as `serde_json::Map` does. Several
/// documents may be parsed into one draft (one file's); [`clear`](Draft::clear) starts afresh.
#[derive(Debug, Default)]
pub struct Draft {
    /// Nodes in the order they were finished (a container's children block is appended when the
    /// container ends, after its descendants'); blocks replaced by `set` stay as garbage.
    nodes: Vec<Node>,
    /// Every string in the order it was read, keys of replaced entries included.
    text: String,
    /// Children of the open sequences, innermost last.
    items: Vec<Node>,
    /// Entries of the open maps, innermost last.
    entries: Vec<(Node, Node)>,
}

/// A node of a [`Draft`]; meaningful only for the draft that made it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DraftNode(Node);

/// What a node holds, without its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Draft {
    pub fn new() -> Draft {
        Draft::default()
    }

    /// Forgets every node (keeps the buffers).
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.text.clear();
        self.items.clear();
        self.entries.clear();
    }

    /// Parses one value from `deserializer`, as `serde_json::Value::deserialize` would.
    pub fn parse<'de, D: de::Deserializer<'de>>(
        &mut self,
        deserializer: D,
    ) -> Result<DraftNode, D::Error> {
        DeserializeSeed::deserialize(Parse(self), deserializer).map(DraftNode)
    }

    pub fn kind(&self, node: DraftNode) -> Kind {
        match node.0 {
            Node::Null => Kind::Null,
            Node::Bool(_) => Kind::Bool,
            Node::U64(_) | Node::I64(_) | Node::F64(_) => Kind::Number,
            Node::Str { .. } => Kind::String,
            Node::Array { .. } => Kind::Array,
            Node::Object { .. } => Kind::Object,
        }
    }

    pub fn as_str(&self, node: DraftNode) -> Option<&str> {
        match node.0 {
            Node::Str { start, len } => Some(self.str_at(start, len)),
            _ => None,
        }
    }

    /// An array's items.
    pub fn items(&self, node: DraftNode) -> Option<impl ExactSizeIterator<Item = DraftNode>> {
        match node.0 {
            Node::Array { first, len } => {
                let block = &self.nodes[first as usize..(first + len) as usize];
                Some(block.iter().map(|n| DraftNode(*n)))
            }
            _ => None,
        }
    }

    /// An object's value for `key`.
    pub fn get(&self, object: DraftNode, key: &str) -> Option<DraftNode> {
        let Node::Object { first, len } = object.0 else {
            return None;
        };
        self.find(first, len, key)
            .ok()
            .map(|i| DraftNode(self.nodes[first as usize + 2 * i + 1]))
    }

    /// A new string node.
    pub fn string(&mut self, s: &str) -> DraftNode {
        DraftNode(self.push_str(s))
    }

    /// An empty object.
    pub fn object(&self) -> DraftNode {
        DraftNode(Node::Object { first: 0, len: 0 })
    }

    /// `object` with `key` set to `value`: the same node, changed in place, if the key is
    /// there; else a new node (its entries copied, the new one in key order). Not an object:
    /// returned unchanged.
    pub fn set(&mut self, object: DraftNode, key: &str, value: DraftNode) -> DraftNode {
        let Node::Object { first, len } = object.0 else {
            return object;
        };
        match self.find(first, len, key) {
            Ok(i) => {
                self.nodes[first as usize + 2 * i + 1] = value.0;
                object
            }
            Err(i) => {
                let key = self.push_str(key);
                let (old, at) = (first as usize, self.nodes.len());
                self.nodes.extend_from_within(old..old + 2 * i);
                self.nodes.extend([key, value.0]);
                self.nodes
                    .extend_from_within(old + 2 * i..old + 2 * len as usize);
                DraftNode(Node::Object {
                    first: at as u32,
                    len: len + 1,
                })
            }
        }
    }

    /// The document whose root is `root`, laid out as [`Document::from_value`] would.
    pub fn finish(&self, root: DraftNode) -> Result<Document, TooLarge> {
        if u32::try_from(self.nodes.len()).is_err() || u32::try_from(self.text.len()).is_err() {
            return Err(TooLarge);
        }
        let (mut nodes, mut text) = (1, 0);
        self.count(root.0, &mut nodes, &mut text);
        if u32::try_from(nodes).is_err() || u32::try_from(text).is_err() {
            return Err(TooLarge);
        }
        let mut builder = Builder {
            nodes: Vec::with_capacity(nodes),
            text: String::with_capacity(text),
        };
        builder.nodes.push(Node::Null);
        self.copy(&mut builder, 0, root.0);
        Ok(Document {
            nodes: builder.nodes.into_boxed_slice(),
            text: builder.text.into_boxed_str(),
        })
    }

    fn str_at(&self, start: u32, len: u32) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }

    /// Where `key` is among the sorted entries at `first`: `Ok(entry)` or `Err(insert at)`.
    fn find(&self, first: u32, len: u32, key: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, len as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = match self.nodes[first as usize + 2 * mid] {
                Node::Str { start, len } => self.str_at(start, len),
                _ => "",
            };
            match k.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Appends `s` to the text. Offsets past `u32` are caught by `finish` (it refuses a draft
    /// whose text does not fit); until then they only wrap.
    fn push_str(&mut self, s: &str) -> Node {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Node::Str {
            start,
            len: s.len() as u32,
        }
    }

    /// As [`count`], over draft nodes.
    fn count(&self, node: Node, nodes: &mut usize, text: &mut usize) {
        match node {
            Node::Str { len, .. } => *text += len as usize,
            Node::Array { first, len } => {
                *nodes += len as usize;
                for i in first..first + len {
                    self.count(self.nodes[i as usize], nodes, text);
                }
            }
            Node::Object { first, len } => {
                *nodes += 2 * len as usize;
                for i in first..first + 2 * len {
                    self.count(self.nodes[i as usize], nodes, text);
                }
            }
            _ => {}
        }
    }

    /// As [`Builder::fill`], from draft nodes: the same layout for the same tree.
    fn copy(&self, out: &mut Builder, at: usize, node: Node) {
        let node = match node {
            Node::Str { start, len } => out.string(self.str_at(start, len)),
            Node::Array { first, len } => {
                let block = out.nodes.len();
                out.nodes.resize(block + len as usize, Node::Null);
                for i in 0..len {
                    self.copy(out, block + i as usize, self.nodes[(first + i) as usize]);
                }
                Node::Array {
                    first: block as u32,
                    len,
                }
            }
            Node::Object { first, len } => {
                let block = out.nodes.len();
                out.nodes.resize(block + 2 * len as usize, Node::Null);
                for i in 0..2 * len {
                    self.copy(out, block + i as usize, self.nodes[(first + i) as usize]);
                }
                Node::Object {
                    first: block as u32,
                    len,
                }
            }
            scalar => scalar,
        };
        out.nodes[at] = node;
    }

    /// Appends the open sequence's items (from `mark` on) as one block.
    fn close_array(&mut self, mark: usize) -> Node {
        let first = self.nodes.len();
        let len = self.items.len() - mark;
        self.nodes.extend(self.items.drain(mark..));
        Node::Array {
            first: first as u32,
            len: len as u32,
        }
    }

    /// Appends the open map's entries (from `mark` on) as one block, sorted by key; of equal
    /// keys the last one read is kept (as `serde_json::Map::insert` keeps it).
    fn close_object(&mut self, mark: usize) -> Node {
        let text = &self.text;
        let key = |n: &Node| match *n {
            Node::Str { start, len } => &text[start as usize..(start + len) as usize],
            _ => "",
        };
        let open = &mut self.entries[mark..];
        // Stable: equal keys stay in reading order.
        open.sort_by(|a, b| key(&a.0).cmp(key(&b.0)));
        let first = self.nodes.len();
        for i in 0..open.len() {
            let last_of_key = open
                .get(i + 1)
                .is_none_or(|next| key(&next.0) != key(&open[i].0));
            if last_of_key {
                self.nodes.extend([open[i].0, open[i].1]);
            }
        }
        self.entries.truncate(mark);
        Node::Object {
            first: first as u32,
            len: ((self.nodes.len() - first) / 2) as u32,
        }
    }
}

/// The seed that parses one value into a draft: mirrors `serde_json::Value`'s visitor.
struct Parse<'d>(&'d mut Draft);

impl<'de> DeserializeSeed<'de> for Parse<'_> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Parse<'_> {
    type Value = Node;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
        Ok(number(&value.into()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Node, E> {
        match Number::from_i128(value) {
            Some(n) => Ok(number(&n)),
            None => Err(E::custom("JSON number out of range")),
        }
    }

    fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
        Ok(Node::U64(value))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Node, E> {
        match Number::from_u128(value) {
            Some(n) => Ok(number(&n)),
            None => Err(E::custom("JSON number out of range")),
        }
    }

    fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
        Ok(Number::from_f64(value).map_or(Node::Null, |n| number(&n)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(self.0.push_str(value))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Parse(self.0).deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let draft = self.0;
        let mark = draft.items.len();
        while let Some(item) = seq.next_element_seed(Parse(draft))? {
            draft.items.push(item);
        }
        Ok(draft.close_array(mark))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let draft = self.0;
        let mark = draft.entries.len();
        // The first key is read as `serde_json::Value` reads it (expecting "a string key"), the
        // others as a `String` ("a string").
        let mut expecting = "a string key";
        while let Some(key) = map.next_key_seed(KeySeed {
            draft: &mut *draft,
            expecting,
        })? {
            expecting = "a string";
            let value = map.next_value_seed(Parse(&mut *draft))?;
            draft.entries.push((key, value));
        }
        Ok(draft.close_object(mark))
    }
}

/// A map key: a string, read with `deserialize_str` / `deserialize_string` as `serde_json`'s
/// value visitor reads it.
struct KeySeed<'d> {
    draft: &'d mut Draft,
    expecting: &'static str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        if self.expecting == "a string key" {
            deserializer.deserialize_str(self)
        } else {
            deserializer.deserialize_string(self)
        }
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Node;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.expecting)
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(self.draft.push_str(value))
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Node, E> {
        // `String` accepts UTF-8 bytes; the first key (`serde_json`'s key classifier) does not.
        if self.expecting == "a string key" {
            return Err(E::invalid_type(Unexpected::Bytes(value), &self));
        }
        match std::str::from_utf8(value) {
            Ok(s) => Ok(self.draft.push_str(s)),
            Err(_) => Err(E::invalid_value(Unexpected::Bytes(value), &self)),
        }
    }
}

/// One node of a [`Document`].
#[derive(Clone, Copy)]
pub struct Doc<'a> {
    doc: &'a Document,
    index: u32,
}

impl<'a> Doc<'a> {
    fn node(self) -> Node {
        self.doc.nodes[self.index as usize]
    }

    fn at(self, index: u32) -> Doc<'a> {
        Doc {
            doc: self.doc,
            index,
        }
    }

    fn text(self, start: u32, len: u32) -> &'a str {
        let doc: &'a Document = self.doc;
        &doc.text[start as usize..(start + len) as usize]
    }

    pub fn is_null(self) -> bool {
        matches!(self.node(), Node::Null)
    }

    pub fn is_object(self) -> bool {
        matches!(self.node(), Node::Object { .. })
    }

    pub fn is_string(self) -> bool {
        matches!(self.node(), Node::Str { .. })
    }

    pub fn as_bool(self) -> Option<bool> {
        match self.node() {
            Node::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(self) -> Option<&'a str> {
        match self.node() {
            Node::Str { start, len } => Some(self.text(start, len)),
            _ => None,
        }
    }

    /// An integer that fits an `i64` (what typing an `i64` accepts), else `None`.
    pub fn as_i64(self) -> Option<i64> {
        match self.node() {
            Node::U64(u) => i64::try_from(u).ok(),
            Node::I64(i) => Some(i),
            _ => None,
        }
    }

    /// An array's items.
    pub fn as_array(self) -> Option<impl ExactSizeIterator<Item = Doc<'a>>> {
        match self.node() {
            Node::Array { first, len } => Some((first..first + len).map(move |i| self.at(i))),
            _ => None,
        }
    }

    /// An object's entries, sorted by key.
    pub fn entries(self) -> Option<impl ExactSizeIterator<Item = (&'a str, Doc<'a>)>> {
        match self.node() {
            Node::Object { first, len } => Some((0..len).map(move |i| self.entry(first + 2 * i))),
            _ => None,
        }
    }

    /// The key/value pair whose key node is at `index`.
    fn entry(self, index: u32) -> (&'a str, Doc<'a>) {
        let key = match self.doc.nodes[index as usize] {
            Node::Str { start, len } => self.text(start, len),
            _ => "",
        };
        (key, self.at(index + 1))
    }

    /// An object's value for `key`.
    pub fn get(self, key: &str) -> Option<Doc<'a>> {
        let Node::Object { first, len } = self.node() else {
            return None;
        };
        // Keys compared as bytes, which orders them as `str` does, without slicing the text
        // at checked character boundaries for every probe.
        let (nodes, text, key) = (&self.doc.nodes, self.doc.text.as_bytes(), key.as_bytes());
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = first + 2 * mid;
            let k: &[u8] = match nodes.get(at as usize) {
                Some(Node::Str { start, len }) => text
                    .get(*start as usize..(*start + *len) as usize)
                    .unwrap_or_default(),
                _ => b"",
            };
            match k.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.at(at + 1)),
            }
        }
        None
    }

    /// This node as a `serde_json::Value`.
    pub fn to_value(self) -> Value {
        match self.node() {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::U64(u) => Value::Number(u.into()),
            Node::I64(i) => Value::Number(i.into()),
            Node::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Node::Str { start, len } => Value::String(self.text(start, len).to_string()),
            Node::Array { .. } => Value::Array(
                self.as_array()
                    .into_iter()
                    .flatten()
                    .map(Doc::to_value)
                    .collect(),
            ),
            Node::Object { .. } => Value::Object(
                self.entries()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// What serde calls this node in a type error (as `serde_json::Value` does).
    fn unexpected(self) -> Unexpected<'a> {
        match self.node() {
            Node::Null => Unexpected::Unit,
            Node::Bool(b) => Unexpected::Bool(b),
            Node::U64(u) => Unexpected::Unsigned(u),
            Node::I64(i) => Unexpected::Signed(i),
            Node::F64(f) => Unexpected::Float(f),
            Node::Str { start, len } => Unexpected::Str(self.text(start, len)),
            Node::Array { .. } => Unexpected::Seq,
            Node::Object { .. } => Unexpected::Map,
        }
    }

    fn invalid_type(self, expected: &dyn de::Expected) -> Error {
        de::Error::invalid_type(self.unexpected(), expected)
    }
}

impl fmt::Debug for Doc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_value(), f)
    }
}

impl PartialEq<&str> for Doc<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.node() {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(b),
            Node::U64(u) => serializer.serialize_u64(u),
            Node::I64(i) => serializer.serialize_i64(i),
            Node::F64(f) => serializer.serialize_f64(f),
            Node::Str { start, len } => serializer.serialize_str(self.text(start, len)),
            Node::Array { len, .. } => {
                let mut seq = serializer.serialize_seq(Some(len as usize))?;
                for item in self.as_array().into_iter().flatten() {
                    seq.serialize_element(&item)?;
                }
                seq.end()
            }
            Node::Object { len, .. } => {
                let mut map = serializer.serialize_map(Some(len as usize))?;
                for (k, v) in self.entries().into_iter().flatten() {
                    map.serialize_entry(k, &v)?;
                }
                map.end()
            }
        }
    }
}

// The deserializer mirrors `impl Deserializer for &serde_json::Value` method by method, so
// typing from a document visits, accepts and rejects exactly what typing from the value did.
impl<'de> de::Deserializer<'de> for Doc<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(b),
            Node::U64(u) => visitor.visit_u64(u),
            Node::I64(i) => visitor.visit_i64(i),
            Node::F64(f) => visitor.visit_f64(f),
            Node::Str { start, len } => visitor.visit_borrowed_str(self.text(start, len)),
            Node::Array { first, len } => visit_array(self, first, len, visitor),
            Node::Object { first, len } => visit_object(self, first, len, visitor),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.node() {
            Node::Object { first, len } => {
                if len != 1 {
                    return Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"map with a single key",
                    ));
                }
                let (variant, value) = self.entry(first);
                visitor.visit_enum(Enum {
                    variant,
                    value: Some(value),
                })
            }
            Node::Str { start, len } => visitor.visit_enum(Enum {
                variant: self.text(start, len),
                value: None,
            }),
            _ => Err(self.invalid_type(&"string or map")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Bool(b) => visitor.visit_bool(b),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Str { start, len } => visitor.visit_borrowed_str(self.text(start, len)),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Str { start, len } => visitor.visit_borrowed_str(self.text(start, len)),
            Node::Array { first, len } => visit_array(self, first, len, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Null => visitor.visit_unit(),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Array { first, len } => visit_array(self, first, len, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::Object { first, len } => visit_object(self, first, len, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.node() {
            Node::Array { first, len } => visit_array(self, first, len, visitor),
            Node::Object { first, len } => visit_object(self, first, len, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

impl<'de> Doc<'de> {
    /// Every number type: the number as it is held (the visitor checks the range), else a type
    /// error.
    fn deserialize_number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node() {
            Node::U64(u) => visitor.visit_u64(u),
            Node::I64(i) => visitor.visit_i64(i),
            Node::F64(f) => visitor.visit_f64(f),
            _ => Err(self.invalid_type(&visitor)),
        }
    }
}

fn visit_array<'de, V: Visitor<'de>>(
    doc: Doc<'de>,
    first: u32,
    len: u32,
    visitor: V,
) -> Result<V::Value, Error> {
    let mut seq = Seq {
        doc,
        next: first,
        end: first + len,
    };
    let value = visitor.visit_seq(&mut seq)?;
    if seq.next == seq.end {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(
            len as usize,
            &"fewer elements in array",
        ))
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    doc: Doc<'de>,
    first: u32,
    len: u32,
    visitor: V,
) -> Result<V::Value, Error> {
    let mut map = Entries {
        doc,
        next: first,
        end: first + 2 * len,
        value: None,
    };
    let value = visitor.visit_map(&mut map)?;
    if map.next == map.end {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(
            len as usize,
            &"fewer elements in map",
        ))
    }
}

struct Seq<'de> {
    doc: Doc<'de>,
    next: u32,
    end: u32,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.next == self.end {
            return Ok(None);
        }
        let item = self.doc.at(self.next);
        self.next += 1;
        seed.deserialize(item).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.end - self.next) as usize)
    }
}

struct Entries<'de> {
    doc: Doc<'de>,
    /// The next entry's key node.
    next: u32,
    end: u32,
    value: Option<Doc<'de>>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.next == self.end {
            return Ok(None);
        }
        let (key, value) = self.doc.entry(self.next);
        self.next += 2;
        self.value = Some(value);
        seed.deserialize(Key(key)).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(((self.end - self.next) / 2) as usize)
    }
}

/// An object key: a borrowed string (the typed specs key their maps by `String`).
struct Key<'de>(&'de str);

impl<'de> de::Deserializer<'de> for Key<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // As serde_json: a present key is never `None`.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0
            .into_deserializer()
            .deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// An enum: a string (unit variant) or a one-key object (variant and its content).
struct Enum<'de> {
    variant: &'de str,
    value: Option<Doc<'de>>,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = Error;
    type Variant = Variant<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'de>), Error> {
        let variant: de::value::BorrowedStrDeserializer<'de, Error> =
            de::value::BorrowedStrDeserializer::new(self.variant);
        seed.deserialize(variant)
            .map(|v| (v, Variant { value: self.value }))
    }
}

struct Variant<'de> {
    value: Option<Doc<'de>>,
}

impl<'de> de::VariantAccess<'de> for Variant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Some(value) => de::Deserialize::deserialize(value),
            None => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.value {
            Some(value) => seed.deserialize(value),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value.map(|v| (v, v.node())) {
            Some((v, Node::Array { first, len })) => {
                if len == 0 {
                    visitor.visit_unit()
                } else {
                    visit_array(v, first, len, visitor)
                }
            }
            Some((v, _)) => Err(v.invalid_type(&"tuple variant")),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value.map(|v| (v, v.node())) {
            Some((v, Node::Object { first, len })) => visit_object(v, first, len, visitor),
            Some((v, _)) => Err(v.invalid_type(&"struct variant")),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}

#[cfg(test)]
mod tests;
