//! Namespace, label and field selectors of the fake API server, and which watch event a
//! change is for a selecting request.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Change, Target, event};

/// Namespace, label and field selectors of one request.
pub(super) struct Filter {
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<(String, bool, String)>,
}

enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

impl Filter {
    pub(super) fn new(target: &Target, query: &BTreeMap<String, String>) -> Result<Self, String> {
        let labels = match query.get("labelSelector") {
            Some(s) => parse_labels(s)?,
            None => Vec::new(),
        };
        let mut fields = Vec::new();
        for term in query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
        {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (key, neg, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, false, v)
            } else {
                return Err(format!("invalid field selector {term:?}"));
            };
            fields.push((key.trim().to_string(), neg, value.trim().to_string()));
        }
        Ok(Filter {
            namespace: target.namespace.clone(),
            labels,
            fields,
        })
    }

    pub(super) fn matches(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        let labels = &object["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(|v| v.as_str());
        let labels_ok = self.labels.iter().all(|req| match req {
            LabelReq::Eq(k, v) => label(k) == Some(v),
            LabelReq::Ne(k, v) => label(k) != Some(v),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::Absent(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(path, neg, value)| {
                let pointer = format!("/{}", path.replace('.', "/"));
                let actual = object
                    .pointer(&pointer)
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                (actual == value) != *neg
            })
    }

    /// The watch event a change is for this request, if any: objects that start or stop
    /// matching are ADDED or DELETED.
    pub(super) fn event_for(&self, change: &Change) -> Option<Value> {
        let before = change.before.as_ref().filter(|v| self.matches(v));
        match (&change.after, before) {
            (None, Some(before)) => Some(event("DELETED", before)),
            (None, None) => None,
            (Some(after), before) => match (self.matches(after), before) {
                (true, Some(_)) => Some(event("MODIFIED", after)),
                (true, None) => Some(event("ADDED", after)),
                (false, Some(_)) => Some(event("DELETED", after)),
                (false, None) => None,
            },
        }
    }
}

fn parse_labels(selector: &str) -> Result<Vec<LabelReq>, String> {
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    let set = |s: &str| -> Vec<String> {
        s.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.trim().to_string())
            .collect()
    };
    let mut reqs = Vec::new();
    for term in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let req = if let Some((k, v)) = term.split_once(" notin ") {
            LabelReq::NotIn(k.trim().into(), set(v))
        } else if let Some((k, v)) = term.split_once(" in ") {
            LabelReq::In(k.trim().into(), set(v))
        } else if let Some((k, v)) = term.split_once("!=") {
            LabelReq::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once("==") {
            LabelReq::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once('=') {
            LabelReq::Eq(k.trim().into(), v.trim().into())
        } else if let Some(k) = term.strip_prefix('!') {
            LabelReq::Absent(k.trim().into())
        } else if term
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./".contains(c))
        {
            LabelReq::Exists(term.into())
        } else {
            return Err(format!("invalid label selector {term:?}"));
        };
        reqs.push(req);
    }
    Ok(reqs)
}
