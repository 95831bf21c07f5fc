//! The translation cache (issue 10, "a change served fast at scale"): what [`super::translate_with`]
//! keeps between two translations so that an object whose content and inputs are unchanged
//! is not planned again.
//!
//! Cached: each Mapping's plan (its typed spec checked, its route match, its cluster built by
//! `upstream`) and the errors and warnings planning it reported. A plan is a function of
//!
//! - the Mapping itself: reused only if the object has the same origin and the same content
//!   ([`RawObject::same_content`]);
//! - the Module's settings and the TLS store: built from the Modules, TLSContexts and Secrets,
//!   and the options. Any change to one of those objects or to the options drops every
//!   cached plan (they are few and rarely change);
//! - the Services and EndpointSlices, through the endpoint index: the lookups a plan made
//!   that read a Service are recorded with their results (`endpoint::Lookup`) and replayed;
//!   the plan is reused only if each gives the same result again.
//!
//! Every other phase (grouping, assembling, validating) runs whole on every translation, so
//! the output is exactly the cache-less [`super::translate`]'s
//! (`translate::tests::cache_equivalence` checks it on random edit sequences).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::api::{RawObject, ResourceError};

use super::Options;
use super::endpoint::Lookup;
use super::load::Meta;
use super::mapping::MappingPlan;

/// Kept by the caller between translations (`Pipeline` keeps one); see the module docs.
#[derive(Debug, Default)]
pub struct Cache {
    /// What every plan depends on besides its own object and the Services.
    inputs: Option<Inputs>,
    pub(crate) mappings: Plans,
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// How many Mapping plans are cached (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.mappings.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.entries.is_empty()
    }

    /// How many Mapping plans the last translation reused.
    pub fn reused(&self) -> usize {
        self.mappings.reused.load(Ordering::Relaxed)
    }

    /// Drops every cached plan if the settings' inputs (the Modules, TLSContexts, Secrets
    /// and options) differ from the previous translation's.
    pub(crate) fn prepare(&mut self, objects: &[RawObject], options: &Options) {
        *self.mappings.reused.get_mut() = 0;
        let inputs = Inputs::of(objects, options);
        if self.inputs.as_ref() != Some(&inputs) {
            if !self.mappings.entries.is_empty() {
                tracing::debug!("settings, TLS or options changed: translation cache dropped");
            }
            self.mappings.entries.clear();
            self.inputs = Some(inputs);
        }
    }
}

/// The objects the settings and the TLS store are built from, and the options.
#[derive(Debug)]
struct Inputs {
    options: Options,
    objects: Vec<RawObject>,
}

impl Inputs {
    fn of(objects: &[RawObject], options: &Options) -> Inputs {
        Inputs {
            options: options.clone(),
            objects: objects
                .iter()
                .filter(|o| matches!(o.kind(), "Module" | "TLSContext" | "Secret"))
                .cloned()
                .collect(),
        }
    }
}

impl PartialEq for Inputs {
    fn eq(&self, other: &Inputs) -> bool {
        self.options == other.options
            && self.objects.len() == other.objects.len()
            && self
                .objects
                .iter()
                .zip(&other.objects)
                .all(|(a, b)| a.origin == b.origin && a.same_content(b))
    }
}

/// The cached Mapping plans, by Mapping.
#[derive(Debug, Default)]
pub(crate) struct Plans {
    entries: HashMap<u64, Entry>,
    reused: AtomicUsize,
}

/// One Mapping's planning, as it happened.
#[derive(Debug)]
pub(crate) struct Entry {
    raw: RawObject,
    /// `None`: the Mapping was left out (its errors say why). Boxed: a plan is about a
    /// kilobyte, and the table keeps spare slots.
    pub plan: Option<Box<MappingPlan>>,
    /// Errors and warnings planning it reported, in order.
    pub errors: Vec<ResourceError>,
    pub lookups: Vec<Lookup>,
    /// Used by the current translation (entries no translation used are dropped after it).
    used: AtomicBool,
}

impl Entry {
    pub fn new(
        raw: &RawObject,
        plan: Option<MappingPlan>,
        errors: Vec<ResourceError>,
        lookups: Vec<Lookup>,
    ) -> Entry {
        Entry {
            raw: raw.clone(),
            plan: plan.map(Box::new),
            errors,
            lookups,
            used: AtomicBool::new(true),
        }
    }
}

/// The key of a Mapping: its namespace and name (unique among the loaded Mappings: load
/// leaves duplicates out). A collision only costs a miss: entries are checked on lookup.
pub(crate) fn key(meta: &Meta) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (meta.namespace.as_str(), meta.name.as_str()).hash(&mut h);
    h.finish()
}

impl Plans {
    /// The entry of this object, if its origin and content are those it was planned from.
    pub fn get(&self, key: u64, raw: &RawObject) -> Option<&Entry> {
        self.entries
            .get(&key)
            .filter(|e| e.raw.origin == raw.origin && e.raw.same_content(raw))
    }

    /// Counts a reused entry.
    pub fn reuse(&self, entry: &Entry) {
        entry.used.store(true, Ordering::Relaxed);
        self.reused.fetch_add(1, Ordering::Relaxed);
    }

    /// After a translation: keeps the entries it used, adds those it planned.
    pub fn update(&mut self, fresh: Vec<(u64, Entry)>) {
        self.entries
            .retain(|_, e| e.used.swap(false, Ordering::Relaxed));
        for (key, mut entry) in fresh {
            *entry.used.get_mut() = false;
            self.entries.insert(key, entry);
        }
        // The table shrinks when the input does (it keeps at most twice what it holds).
        if self.entries.capacity() > 2 * self.entries.len() + 16 {
            self.entries.shrink_to_fit();
        }
    }
}
