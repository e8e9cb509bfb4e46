//! The plan: the configuration compiled into what the executors run. Immutable and
//! shared read-only by every core through an `Arc`; a reload will build a new one.
//! Resolves server names once, at start; never does I/O afterwards.

use percore_config::rules::condition::Condition;
use percore_config::rules::logformat::LogFormat;
use percore_config::rules::{BackendTarget, Rules};
use percore_config::{
    Balance, Bind, CheckOptions, Config, Cookie, ForwardFor, HashType, HttpCheck, HttpConnMode,
    HttpReuse, Mode, OriginalTo, ProxyKind, SendProxy, Splice, Timeouts, Tune,
};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why a configuration cannot be turned into a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A server's host name did not resolve.
    #[error(
        "parsing [{location}] : server '{server}': could not resolve address '{host}': {reason}"
    )]
    Resolve {
        /// Where the server was declared.
        location: String,
        /// Server name.
        server: String,
        /// Host as written.
        host: String,
        /// What the resolver said.
        reason: String,
    },
}

/// Everything the executors need, compiled once.
#[derive(Debug)]
pub struct Plan {
    /// Frontends (and the frontend half of listens).
    pub frontends: Vec<Frontend>,
    /// Backends (and the backend half of listens), indexed by [`BackendId`].
    pub backends: Vec<Backend>,
    /// Buffer and parser limits.
    pub tune: Tune,
    /// Process-wide connection limit.
    pub maxconn: u32,
    /// `maxpipes`: the most splice pipes for the whole process (HAProxy's default is a
    /// quarter of `maxconn`); executors share it out evenly.
    pub maxpipes: usize,
}

/// Index of a backend in [`Plan::backends`].
pub type BackendId = usize;

/// A frontend: where clients arrive and which backend they go to.
#[derive(Debug)]
pub struct Frontend {
    /// Name, for errors and logs.
    pub name: String,
    /// TCP or HTTP.
    pub mode: Mode,
    /// Listening addresses.
    pub binds: Vec<Bind>,
    /// Per-frontend connection limit, if any.
    pub maxconn: Option<u32>,
    /// Current connections, shared by all executors (one increment per connection).
    pub conns: AtomicU32,
    /// `id`: the proxy's number (its position among all proxies, from 1).
    pub id: usize,
    /// Where requests go when no `use_backend` applies: `default_backend`, or the
    /// backend half of a `listen`.
    pub default_backend: Option<BackendId>,
    /// The backend half of a `listen` section: its rules run once, as the frontend's.
    pub own_backend: Option<BackendId>,
    /// `use_backend` lines with their targets resolved.
    pub switching: Vec<Switch>,
    /// ACLs and rule sets.
    pub rules: Rules,
    /// `monitor-uri`: answered 200 by percore itself.
    pub monitor_uri: Option<String>,
    /// Timeouts, connection mode, header additions, splicing and error pages.
    pub settings: Settings,
}

/// Where a `use_backend` line sends a request.
#[derive(Debug)]
pub enum SwitchTarget {
    /// A backend known at load.
    Static(BackendId),
    /// A backend named per request; an unknown name means the default backend.
    Dynamic(LogFormat),
}

/// A `use_backend` line.
#[derive(Debug)]
pub struct Switch {
    /// The backend.
    pub target: SwitchTarget,
    /// When.
    pub cond: Option<Condition>,
}

/// A backend: its servers and how to talk to them.
#[derive(Debug)]
pub struct Backend {
    /// Name, for errors and logs.
    pub name: String,
    /// `id`: the proxy's number (its position among all proxies, from 1).
    pub id: usize,
    /// ACLs and rule sets.
    pub rules: Rules,
    /// `use-server` lines: a server index and its condition.
    pub use_server: Vec<(usize, Option<Condition>)>,
    /// TCP or HTTP.
    pub mode: Mode,
    /// Servers in declaration order.
    pub servers: Vec<ServerPlan>,
    /// `balance`.
    pub balance: Balance,
    /// `hash-type`.
    pub hash_type: HashType,
    /// `hash-balance-factor` (0: off).
    pub hash_balance_factor: u32,
    /// Bumped whenever a server of this backend goes up or down, so that executors
    /// rebuild their view of usable servers.
    pub epoch: AtomicU64,
    /// `option httpchk`, when checks are HTTP requests.
    pub httpchk: Option<HttpCheck>,
    /// `cookie`, for persistence.
    pub cookie: Option<Cookie>,
    /// `option allbackups`.
    pub allbackups: bool,
    /// `retries`.
    pub retries: u32,
    /// `option redispatch`.
    pub redispatch: bool,
    /// `http-reuse`.
    pub reuse: HttpReuse,
    /// Timeouts, connection mode, header additions, splicing and error pages.
    pub settings: Settings,
}

/// What frontends and backends both carry from their section; each side uses the
/// timeouts and error pages that concern it.
#[derive(Debug)]
pub struct Settings {
    /// `timeout *`.
    pub timeouts: Timeouts,
    /// Keep-alive, server-close or close.
    pub conn_mode: HttpConnMode,
    /// `option forwardfor`.
    pub forwardfor: Option<ForwardFor>,
    /// `option originalto`.
    pub originalto: Option<OriginalTo>,
    /// `option splice-*`.
    pub splice: Splice,
    /// `errorfile` responses.
    pub errors: ErrorPages,
}

impl Settings {
    fn of(p: &percore_config::Proxy) -> Self {
        Self {
            timeouts: p.timeouts.clone(),
            conn_mode: p.options.http_conn_mode,
            forwardfor: p.options.forwardfor.clone(),
            originalto: p.options.originalto.clone(),
            splice: p.options.splice,
            errors: error_pages(p),
        }
    }
}

/// A server, with its address resolved.
#[derive(Debug)]
pub struct ServerPlan {
    /// Name, for errors and logs.
    pub name: String,
    /// `id`, or the lowest id left free, from 1 (HAProxy's numbering).
    pub id: u32,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Round-robin weight; 0 takes no traffic.
    pub weight: u32,
    /// Concurrent requests allowed, if limited.
    pub maxconn: Option<u32>,
    /// Requests allowed to wait for a slot, if limited.
    pub maxqueue: Option<u32>,
    /// In-flight requests on this server, shared by all executors: one atomic
    /// increment and decrement per request, the price of a process-wide `maxconn`.
    pub inflight: AtomicU32,
    /// Requests waiting for a slot on this server, across executors.
    pub queued: AtomicU32,
    /// PROXY protocol header to send first.
    pub send_proxy: Option<SendProxy>,
    /// Health-check settings (`check` and its timings).
    pub check: CheckOptions,
    /// `cookie VALUE`: this server's value in the persistence cookie.
    pub cookie: Option<String>,
    /// `backup`: used only when no active server can take traffic.
    pub backup: bool,
    /// Whether the server takes traffic: set by the executor that owns its checks,
    /// read by every executor's balancer.
    pub up: AtomicBool,
}

impl ServerPlan {
    /// Whether the server takes traffic now: up, and with a non-zero weight.
    pub fn usable(&self) -> bool {
        self.weight > 0 && self.up.load(Ordering::Acquire)
    }
}

impl Backend {
    /// How many of the backend's servers take traffic now (`nbsrv`).
    pub fn usable_servers(&self) -> usize {
        self.servers.iter().filter(|s| s.usable()).count()
    }
}

/// Custom error responses from `errorfile`, by status code.
#[derive(Debug, Default, Clone)]
pub struct ErrorPages(Vec<(u16, Arc<[u8]>)>);

impl ErrorPages {
    /// The custom response for `status`, if one was configured.
    pub fn get(&self, status: u16) -> Option<&Arc<[u8]>> {
        self.0.iter().find(|(s, _)| *s == status).map(|(_, r)| r)
    }

    /// The whole response for `status`: the first custom one among `pages` (the
    /// backend's, then the frontend's), else the built-in one.
    pub fn response(pages: &[&ErrorPages], status: u16) -> Vec<u8> {
        match pages.iter().find_map(|p| p.get(status)) {
            Some(custom) => custom.to_vec(),
            None => crate::http::errors::builtin(status),
        }
    }
}

impl Plan {
    /// Compiles a validated configuration.
    pub fn compile(config: &Config) -> Result<Plan, PlanError> {
        let mut backends = Vec::new();
        // A proxy's `id` is its position among all proxies, from 1.
        let proxies = config.proxies.iter().enumerate().map(|(i, p)| (i + 1, p));
        for (id, p) in proxies.clone().filter(|(_, p)| p.kind.has_backend()) {
            let mut servers = Vec::new();
            for (s, id) in p.servers.iter().zip(p.server_ids()) {
                let addr = (s.host.as_str(), s.port)
                    .to_socket_addrs()
                    .map_err(|e| e.to_string())
                    .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
                    .map_err(|reason| PlanError::Resolve {
                        location: s.location.to_string(),
                        server: s.name.clone(),
                        host: s.host.clone(),
                        reason,
                    })?;
                servers.push(ServerPlan {
                    name: s.name.clone(),
                    id,
                    addr,
                    weight: s.options.weight,
                    maxconn: s.options.maxconn,
                    maxqueue: s.options.maxqueue,
                    inflight: AtomicU32::new(0),
                    queued: AtomicU32::new(0),
                    send_proxy: s.options.send_proxy,
                    check: CheckOptions {
                        enabled: s.options.check.enabled && !s.options.disabled,
                        ..s.options.check.clone()
                    },
                    cookie: s.options.cookie.clone(),
                    backup: s.options.backup,
                    up: AtomicBool::new(!s.options.disabled),
                });
            }
            let use_server = p
                .rules
                .use_server
                .iter()
                .filter_map(|u| {
                    let i = p.servers.iter().position(|s| s.name == u.server)?;
                    Some((i, u.cond.clone()))
                })
                .collect();
            backends.push(Backend {
                name: p.name.clone(),
                id,
                rules: p.rules.clone(),
                use_server,
                mode: p.mode,
                balance: p.balance.clone(),
                hash_type: p.hash_type,
                hash_balance_factor: p.hash_balance_factor,
                epoch: AtomicU64::new(0),
                httpchk: p.httpchk.clone(),
                cookie: p.cookie.clone(),
                allbackups: p.options.allbackups,
                servers,
                retries: p.retries,
                redispatch: p.options.redispatch,
                reuse: p.http_reuse,
                settings: Settings::of(p),
            });
        }
        let backend_id = |name: &str| -> Option<BackendId> {
            backends.iter().position(|b: &Backend| b.name == name)
        };
        let frontends = proxies
            .filter(|(_, p)| p.kind.has_frontend())
            .map(|(id, p)| {
                let own_backend = (p.kind == ProxyKind::Listen)
                    .then(|| backend_id(&p.name))
                    .flatten();
                let default_backend = p
                    .default_backend
                    .as_ref()
                    .and_then(|n| backend_id(&n.name))
                    .or(own_backend);
                let switching = p
                    .rules
                    .use_backend
                    .iter()
                    .filter_map(|u| {
                        let target = match &u.target {
                            BackendTarget::Static(name) => SwitchTarget::Static(backend_id(name)?),
                            BackendTarget::Dynamic(lf) => SwitchTarget::Dynamic(lf.clone()),
                        };
                        Some(Switch {
                            target,
                            cond: u.cond.clone(),
                        })
                    })
                    .collect();
                Frontend {
                    name: p.name.clone(),
                    id,
                    mode: p.mode,
                    binds: p.binds.clone(),
                    maxconn: p.maxconn,
                    conns: AtomicU32::new(0),
                    default_backend,
                    own_backend,
                    switching,
                    rules: p.rules.clone(),
                    monitor_uri: p.monitor_uri.clone(),
                    settings: Settings::of(p),
                }
            })
            .collect();
        Ok(Plan {
            frontends,
            backends,
            tune: config.global.tune.clone(),
            maxconn: config.global.maxconn,
            maxpipes: config
                .global
                .maxpipes
                .unwrap_or(config.global.maxconn as usize / 4),
        })
    }
}

impl Plan {
    /// The backend named `name`, for dynamic `use_backend` and fetches naming one.
    pub fn backend_named(&self, name: &[u8]) -> Option<BackendId> {
        self.backends.iter().position(|b| b.name.as_bytes() == name)
    }
}

fn error_pages(p: &percore_config::Proxy) -> ErrorPages {
    ErrorPages(
        p.errorfiles
            .iter()
            .map(|e| (e.status, Arc::from(e.response.as_slice())))
            .collect(),
    )
}

/// The effective value of a timeout: the first that is set, or none.
pub fn first_set(candidates: &[Option<Duration>]) -> Option<Duration> {
    candidates.iter().flatten().next().copied()
}
