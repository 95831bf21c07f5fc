//! Route order and group identity (docs/compatibility.md, "Route order";
//! docs/design.md#groups-canaries-and-weights): the keys the plan phase computes for every
//! Mapping and the group phase compares. Shared by both, so neither imports the other.

/// The route-order key, compared in descending order, element by element (docs/compatibility.md,
/// "Route order"): precedence, prefix length, the weight of the header matchers, the weight of
/// the query matchers, the prefix, the method, then the `name-value` text of every header
/// matcher followed by every query matcher (one list: a list that is a prefix of a longer one
/// sorts lower).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SortKey {
    precedence: i64,
    prefix_len: usize,
    header_weight: usize,
    query_weight: usize,
    prefix: String,
    method: String,
    keys: Vec<String>,
}

/// One header or query condition as the ordering sees it: the name, the value as the user
/// wrote it (`None` for a presence match, counted as `*`), and whether it is a regex. The host
/// condition is the Mapping's host glob as written (`*` included, even though it needs no
/// matcher on the route), not the suffix or prefix matcher it becomes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Condition<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
    pub regex: bool,
}

impl Condition<'_> {
    fn value(&self) -> &str {
        self.value.unwrap_or("*")
    }

    /// `len(name) + len(value or "*") + 1 if regex`.
    fn weight(&self) -> usize {
        self.name.len() + self.value().len() + usize::from(self.regex)
    }
}

/// The group identity and sort key of a Mapping, from its conditions: `headers` in the order
/// they are matched (headers, regex headers, the host, the method), then `query`.
pub(crate) fn identity(
    headers: &[Condition<'_>],
    query: &[Condition<'_>],
    prefix: &str,
    method: Option<&str>,
    precedence: i64,
) -> (GroupKey, SortKey) {
    use std::fmt::Write as _;
    let method = method.unwrap_or("GET").to_ascii_uppercase();
    // Built with `push_str`, not `format!`: this runs for every Mapping.
    let conditions: usize = headers
        .iter()
        .chain(query)
        .map(|c| 4 + c.name.len() + c.value().len())
        .sum();
    let mut id = String::with_capacity(6 + method.len() + prefix.len() + conditions);
    id.push_str("HTTP-");
    id.push_str(&method);
    id.push('-');
    id.push_str(prefix);
    let mut keys = Vec::with_capacity(headers.len() + query.len());
    let mut weight = |conds: &[Condition<'_>], tag: char, id: &mut String| {
        let mut sum = 0;
        for c in conds {
            sum += c.weight();
            let mut key = String::with_capacity(c.name.len() + 1 + c.value().len());
            key.push_str(c.name);
            key.push('-');
            key.push_str(c.value());
            keys.push(key);
            id.push('\0');
            id.push(tag);
            id.push_str(c.name);
            match c.value {
                Some(v) => {
                    id.push('=');
                    id.push_str(v);
                    if c.regex {
                        id.push('~');
                    }
                }
                None => id.push('?'),
            }
        }
        sum
    };
    let header_weight = weight(headers, 'h', &mut id);
    let query_weight = weight(query, 'q', &mut id);
    if precedence != 0 {
        let _ = write!(id, "\0p{precedence}");
    }
    let key = SortKey {
        precedence,
        prefix_len: prefix.len(),
        header_weight,
        query_weight,
        prefix: prefix.to_string(),
        method,
        keys,
    };
    (GroupKey(id), key)
}

/// A group's identity: method, prefix, every header and query condition (the host glob and
/// the method included, `*` too) and a non-zero precedence. Mappings group by equal text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GroupKey(String);
