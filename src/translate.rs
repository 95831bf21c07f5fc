//! Ambassador resources → IR: a pure function from [`RawObject`]s to an [`Ir`] plus
//! per-resource errors.
//!
//! The translation never does I/O and never fails as a whole: every problem is a
//! [`ResourceError`] attached to the object that caused it, that object is left out, and the
//! rest is translated as if it were absent (issue 3, "Errors are data"). Output is
//! deterministic: objects are processed sorted by (`name`, `namespace`, then
//! origin), never in input order. The rules are in docs/design.md.
//!
//! [`translate`] runs these phases in order; each reads only what earlier phases produced,
//! and no module imports a later phase:
//!
//! 1. load (`load`): objects filtered, typed and sorted by kind;
//! 2. settings (`module`, `tls`): the Module's settings, the secrets and TLSContexts;
//! 3. plan, one kind at a time: Hosts (`host`), Listeners (`listener`), Mappings (`mapping`),
//!    TCPMappings (`tcp`); Mappings and TCPMappings get their clusters from `upstream`;
//! 4. group (`group`): cluster names settled, Mappings and TCPMappings grouped;
//! 5. assemble (`assemble`): listeners, filter chains, route tables, clusters, secrets and
//!    endpoints of the IR;
//! 6. validate (`validate`): the IR checked, the errors sorted.
//!
//! Helpers shared by phases: `order` (route order and group identity), `endpoint` (Services
//! and EndpointSlices), `service` (the `service` field), `policy` (per-resource policies).

mod assemble;
mod cache;
mod endpoint;
mod group;
mod host;
mod listener;
mod load;
mod mapping;
mod module;
mod order;
mod policy;
mod service;
// AuthService, RateLimitService, LogService, TracingService.
mod services;
mod tcp;
mod tls;
mod upstream;
mod validate;

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::api::{Origin, RawObject, ResourceError};
use crate::ir::Ir;

pub use cache::Cache;

/// What the translation needs to know about the instance it translates for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Options {
    /// `AMBASSADOR_ID`: only resources whose `ambassador_id` contains it are used.
    pub ambassador_id: String,
    /// `AMBASSADOR_NAMESPACE`: the namespace of built-ins, of resources without a namespace,
    /// and the one whose services are not qualified (docs/design.md#service-parsing-and-endpoints).
    pub ambassador_namespace: String,
    /// Host and port of legate's probe server, target of the built-in `check_ready`,
    /// `check_alive` (and, when enabled, diagnostics) routes.
    pub probe_address: (String, u16),
    /// Add Emissary's Helm `createDefaultListeners`: 8080/HTTP and 8443/HTTPS, XFP, ALL.
    pub default_listeners: bool,
    /// legate's `endpoint_routing`: an upstream with no explicit `resolver` (Mapping or Module)
    /// that names a Service present in the input, on one of its ports, is served by EDS from
    /// its EndpointSlices instead of Envoy's DNS. Default false (Emissary's default resolver,
    /// `kubernetes-service`). See `translate::endpoint`.
    pub endpoint_routing: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ambassador_id: "default".into(),
            ambassador_namespace: "default".into(),
            probe_address: ("127.0.0.1".into(), 8877),
            default_listeners: false,
            endpoint_routing: false,
        }
    }
}

/// The result of one translation: an IR that passes [`Ir::validate`], and every problem found
/// (warnings included), sorted by origin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Translation {
    pub ir: Ir,
    pub errors: Vec<ResourceError>,
}

impl Translation {
    /// Errors that left a resource out (not warnings).
    pub fn failures(&self) -> impl Iterator<Item = &ResourceError> {
        self.errors.iter().filter(|e| !e.warning)
    }
}

/// What a translation no longer needs but has not freed: freeing tens of thousands of plans
/// takes a while (issue 10), and a caller that serves the result first
/// ([`translate_deferring`]) frees them after (docs/design.md#deferred-freeing).
#[derive(Default)]
pub struct Leftovers(Vec<Box<dyn Send>>);

impl Leftovers {
    pub fn new() -> Leftovers {
        Leftovers::default()
    }

    /// Keeps `value` until the leftovers are dropped.
    pub fn keep(&mut self, value: impl Send + 'static) {
        self.0.push(Box::new(value));
    }
}

impl std::fmt::Debug for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Leftovers({})", self.0.len())
    }
}

/// Translates every object into one IR. Pure and deterministic.
pub fn translate(objects: &[RawObject], options: &Options) -> Translation {
    translate_deferring(objects, options, None, &mut Leftovers::new())
}

/// [`translate`] (with `cache`, [`translate_with`]), handing what it no longer needs to
/// `leftovers` instead of freeing it: the caller frees it once the result is served.
pub fn translate_deferring(
    objects: &[RawObject],
    options: &Options,
    mut cache: Option<&mut Cache>,
    leftovers: &mut Leftovers,
) -> Translation {
    if let Some(cache) = cache.as_deref_mut() {
        cache.prepare(objects, options);
    }
    run(objects, options, cache, leftovers)
}

/// [`translate`], reusing what `cache` kept from earlier translations where the objects and
/// inputs are unchanged (see `translate::cache`), and updating it. The result is exactly
/// [`translate`]'s.
pub fn translate_with(objects: &[RawObject], options: &Options, cache: &mut Cache) -> Translation {
    translate_deferring(objects, options, Some(cache), &mut Leftovers::new())
}

fn run(
    objects: &[RawObject],
    options: &Options,
    cache: Option<&mut Cache>,
    leftovers: &mut Leftovers,
) -> Translation {
    let mut errs = Errors::default();
    // 1. load
    let mut loaded = load::load(objects, options, &mut errs);
    // 2. settings
    let settings = module::settings(&loaded.modules, options, &mut errs);
    let mut tls = tls::Store::new(&loaded.secrets, &mut errs);
    tls.namespacing = settings.tls_secret_namespacing;
    tls.load_contexts(&loaded.tls_contexts, &mut errs);
    // 3. plan each kind
    let hosts = host::plan_all(&loaded.hosts, &tls, options, &mut errs);
    let listeners = listener::plan_all(&loaded.listeners, options, &mut errs);
    let mut index = endpoint::Index::new(
        &loaded.services,
        &loaded.endpoint_slices,
        options.endpoint_routing,
    );
    let mut cx = upstream::Context {
        settings: &settings,
        store: &tls,
        options,
        index: &mut index,
    };
    // AuthService and RateLimitService are planned before the Mappings that refer to them.
    let service_plan = services::plan(&loaded, &settings, &tls, options, &mut errs);
    let plans = cache.map(|c| &mut c.mappings);
    let mut mappings = mapping::plan_all(
        std::mem::take(&mut loaded.mappings),
        &mut cx,
        plans,
        &mut errs,
    );
    services::check(
        mappings
            .iter()
            .filter(|m| !m.builtin)
            .filter_map(|m| Some((&m.meta, m.services.as_deref()?))),
        &service_plan,
        &mut errs,
    );
    let mut tcp = tcp::plan_all(&loaded.tcp_mappings, &mut cx, &mut errs);
    // 4. group
    let groups = group::group(&mut mappings, &mut tcp, &mut errs);
    services::prepare_limits(
        mappings
            .iter_mut()
            .filter_map(|m| m.services.as_deref_mut()),
        &service_plan,
    );
    // 5. assemble
    let inputs = assemble::Inputs {
        listeners,
        hosts,
        mappings,
        tcp,
        groups,
        services: services::Planned {
            plan: service_plan,
            log_services: &loaded.log_services,
            tracing_services: &loaded.tracing_services,
            options,
        },
        settings: &settings,
    };
    let ir = assemble::assemble(inputs, tls, &mut index, &mut errs, leftovers);
    // 6. validate
    validate::validate(ir, errs)
}

/// The errors of one translation, in the order they were found.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub Vec<ResourceError>);

impl Errors {
    pub fn push(&mut self, e: ResourceError) {
        tracing::debug!(error = %e, "resource problem");
        self.0.push(e);
    }

    /// A problem not tied to one resource (no Listener, the synthesized default Host).
    pub fn global(&mut self, message: impl Into<String>, warning: bool) {
        self.push(ResourceError {
            origin: Origin::Builtin,
            kind: String::new(),
            name: String::new(),
            field: None,
            message: message.into(),
            warning,
        });
    }
}
