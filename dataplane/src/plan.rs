//! The plan: the configuration compiled into what the executors run. Immutable and
//! shared read-only by every core through an `Arc`; a reload will build a new one.
//! Resolves server names once, at start; never does I/O afterwards.

use crate::health::ServerState;
use crate::log::syslog::{Identity, Loggers, Sink};
use crate::log::TrafficLog;
use percore_config::check::Checks;
use percore_config::log::{LogLine, LogTarget};
use percore_config::rules::capture::Captures;
use percore_config::rules::condition::Condition;
use percore_config::rules::logformat::LogFormat;
use percore_config::rules::{BackendTarget, Rules};
use percore_config::{
    AgentOptions, Balance, Bind, CheckOptions, Config, Cookie, ForwardFor, HashType, HttpConnMode,
    HttpReuse, LogHostname, Mode, Observe, OriginalTo, PoolOptions, ProxyKind, RetryOn, SendProxy,
    Splice, Timeouts, Tune,
};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
    /// A log target's socket could not be opened.
    #[error("cannot open log target {target:?}: {reason}")]
    Log {
        /// The target.
        target: percore_config::log::LogAddr,
        /// What the system said.
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
    /// Sockets opened for log targets (they take descriptors).
    pub log_sockets: usize,
    /// What syslog headers and `%H` say of this process.
    pub identity: Arc<Identity>,
    /// Requests numbered so far (`%rt`).
    pub requests: AtomicU64,
    /// `http-errors` sections, by name, for replies that name one (`errorfiles NAME`).
    pub http_errors: Vec<(String, ErrorPages)>,
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
    /// `monitor fail`: the monitor URI answers 503 while this holds.
    pub monitor_fail: Option<Condition>,
    /// Capture slots (`capture ... header`, `declare capture`).
    pub captures: Captures,
    /// Traffic logs.
    pub log: TrafficLog,
    /// `unique-id-format`.
    pub unique_id_format: Option<LogFormat>,
    /// `unique-id-header`.
    pub unique_id_header: Option<String>,
    /// Requests get a process-wide number (a format uses `%rt`).
    pub counts_requests: bool,
    /// `option http-buffer-request` on the frontend or its default backend: the body
    /// is waited for before the HTTP rules run. (A backend reached only by a
    /// `use_backend` rule does not make its frontend wait.)
    pub buffer_request: bool,
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
    /// Health checks: protocol, request, expectation, logging.
    pub checks: Checks,
    /// `fullconn` (or HAProxy's default: a tenth of the `maxconn` of the frontends
    /// that can reach the backend).
    pub fullconn: u32,
    /// `option persist`.
    pub persist: bool,
    /// `cookie`, for persistence.
    pub cookie: Option<Cookie>,
    /// `option allbackups`.
    pub allbackups: bool,
    /// `retries`.
    pub retries: u32,
    /// `retry-on`.
    pub retry_on: RetryOn,
    /// `option redispatch [INTERVAL]` (see `percore_config::Options::redispatch`).
    pub redispatch: Option<i32>,
    /// `http-reuse`.
    pub reuse: HttpReuse,
    /// Where server state changes are logged.
    pub loggers: Loggers,
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
    /// `errorfile`, `errorloc*` and `errorfiles` responses.
    pub errors: ErrorPages,
    /// `option independent-streams`.
    pub independent_streams: bool,
}

impl Settings {
    fn of(config: &Config, p: &percore_config::Proxy) -> Self {
        Self {
            timeouts: p.timeouts.clone(),
            conn_mode: p.options.http_conn_mode,
            forwardfor: p.options.forwardfor.clone(),
            originalto: p.options.originalto.clone(),
            splice: p.options.splice,
            independent_streams: p.options.independent_streams,
            errors: ErrorPages(
                config
                    .error_pages(p)
                    .into_iter()
                    .map(|e| (e.status, e.response))
                    .collect(),
            ),
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
    /// Configured weight; 0 takes only persistent traffic.
    pub weight: u32,
    /// Concurrent requests allowed, if limited.
    pub maxconn: Option<u32>,
    /// `minconn` (equal to `maxconn` unless set lower).
    pub minconn: u32,
    /// Requests allowed to wait for a slot, if limited.
    pub maxqueue: Option<u32>,
    /// In-flight requests on this server, shared by all executors: one atomic
    /// increment and decrement per request, the price of a process-wide `maxconn`.
    pub inflight: AtomicU32,
    /// Requests waiting for a slot on this server, across executors.
    pub queued: AtomicU32,
    /// PROXY protocol header to send first.
    pub send_proxy: Option<SendProxy>,
    /// Health-check settings (`check` and its timings); `enabled` is false for a
    /// server that tracks another.
    pub check: CheckOptions,
    /// `slowstart`.
    pub slowstart: Option<Duration>,
    /// `observe`, `error-limit`, `on-error`.
    pub observe: Observe,
    /// `agent-check` settings (`enabled` only with a port).
    pub agent: AgentOptions,
    /// The server this one tracks: (backend, server), resolved to the end of a chain.
    pub tracks: Option<(BackendId, usize)>,
    /// The servers that track this one, directly or through a chain.
    pub trackers: Vec<(BackendId, usize)>,
    /// `cookie VALUE`: this server's value in the persistence cookie.
    pub cookie: Option<String>,
    /// `backup`: used only when no active server can take traffic.
    pub backup: bool,
    /// How idle connections to the server are kept.
    pub pool: PoolOptions,
    /// The server's idle connections in the process, counted only when
    /// `pool-max-conn` bounds them.
    pub idle: AtomicU32,
    /// Up or down, warmth, agent weight, live errors.
    pub state: ServerState,
}

impl ServerPlan {
    /// Whether the server takes new, non-persistent traffic now: up, and with a
    /// non-zero effective weight.
    pub fn usable(&self) -> bool {
        self.state.is_up() && self.eweight() > 0
    }

    /// Whether the server is up, whatever its weight (persistent traffic goes to an
    /// up server of weight 0, as in HAProxy).
    pub fn is_up(&self) -> bool {
        self.state.is_up()
    }

    /// The effective weight now, in sixteenths (slow start and agent applied).
    pub fn eweight(&self) -> u32 {
        self.state.eweight(self.weight)
    }

    /// The `maxconn` in force now in backend `be`, if the server is limited.
    pub fn maxconn_now(&self, be: &Backend) -> Option<u32> {
        let max = self.maxconn?;
        // The backend's load only matters below `fullconn` with a lower `minconn`.
        let conns = if self.minconn < max { be.conns() } else { 0 };
        Some(
            self.state
                .maxconn_now(max, self.minconn, conns, be.fullconn),
        )
    }
}

impl Backend {
    /// How many of the backend's servers take traffic now (`nbsrv`).
    pub fn usable_servers(&self) -> usize {
        self.servers.iter().filter(|s| s.usable()).count()
    }

    /// Requests in flight on the backend's servers (`be_conn`).
    pub fn conns(&self) -> u32 {
        self.servers
            .iter()
            .map(|s| s.inflight.load(Ordering::Relaxed))
            .sum()
    }

    /// Requests waiting for a slot on the backend's servers (`queue`).
    pub fn queued(&self) -> u32 {
        self.servers
            .iter()
            .map(|s| s.queued.load(Ordering::Relaxed))
            .sum()
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
        let identity = Arc::new(Identity {
            tag: config.global.log_tag.clone().unwrap_or_else(program_name),
            send_hostname: config.global.log_send_hostname.as_ref().map(|h| match h {
                LogHostname::System => crate::log::system_hostname(),
                LogHostname::Named(n) => n.clone(),
            }),
            hostname: crate::log::system_hostname(),
            pid: std::process::id(),
        });
        let mut sinks = SinkSet::default();
        let mut loggers = |p: &percore_config::Proxy| -> Result<Loggers, PlanError> {
            let targets: Vec<Arc<Sink>> = p
                .logs
                .iter()
                .flat_map(|l| match l {
                    LogLine::Global => config.global.logs.clone(),
                    LogLine::Target(t) => vec![t.clone()],
                })
                .map(|t| sinks.open(&t))
                .collect::<Result<_, _>>()?;
            let mut id = (*identity).clone();
            if let Some(tag) = &p.log_tag {
                id.tag = tag.clone();
            }
            Ok(Loggers::new(targets, Arc::new(id)))
        };
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
                    // As in HAProxy: `minconn` alone is a `maxconn`; `maxconn` alone is
                    // also the `minconn`.
                    maxconn: s.options.maxconn.max(s.options.minconn),
                    minconn: s.options.minconn.or(s.options.maxconn).unwrap_or(0),
                    maxqueue: s.options.maxqueue,
                    inflight: AtomicU32::new(0),
                    queued: AtomicU32::new(0),
                    send_proxy: s.options.send_proxy,
                    check: CheckOptions {
                        enabled: s.options.check.enabled
                            && !s.options.disabled
                            && s.options.track.is_none(),
                        ..s.options.check.clone()
                    },
                    slowstart: s.options.slowstart,
                    observe: s.options.observe.clone(),
                    agent: AgentOptions {
                        enabled: s.options.agent.enabled
                            && s.options.agent.port.is_some()
                            && !s.options.disabled,
                        ..s.options.agent.clone()
                    },
                    tracks: None,
                    trackers: Vec::new(),
                    cookie: s.options.cookie.clone(),
                    backup: s.options.backup,
                    pool: s.options.pool,
                    idle: AtomicU32::new(0),
                    state: ServerState::new(!s.options.disabled),
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
                checks: p.checks.clone(),
                fullconn: p.fullconn.unwrap_or(0),
                persist: p.options.persist,
                cookie: p.cookie.clone(),
                allbackups: p.options.allbackups,
                servers,
                retries: p.retries,
                retry_on: p.retry_on,
                redispatch: p.options.redispatch,
                reuse: p.http_reuse,
                loggers: loggers(p)?,
                settings: Settings::of(config, p),
            });
        }
        link_trackers(config, &mut backends);
        let backend_id = |name: &str| -> Option<BackendId> {
            backends.iter().position(|b: &Backend| b.name == name)
        };
        let frontends: Vec<Frontend> = proxies
            .filter(|(_, p)| p.kind.has_frontend())
            .map(|(id, p)| {
                let log = TrafficLog {
                    loggers: loggers(p)?,
                    format: p
                        .traffic_log
                        .as_ref()
                        .map(|f| f.compile(p.mode == Mode::Tcp)),
                    dontlognull: p.options.dontlognull,
                    dontlog_normal: p.options.dontlog_normal,
                    separate_errors: p.options.log_separate_errors,
                };
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
                Ok(Frontend {
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
                    monitor_fail: p.monitor_fail.clone(),
                    captures: p.captures.clone(),
                    counts_requests: log.format.as_ref().is_some_and(|f| f.counts_requests())
                        || p.unique_id_format
                            .as_ref()
                            .is_some_and(|f| f.counts_requests()),
                    buffer_request: p.options.http_buffer_request
                        || p.default_backend
                            .as_ref()
                            .and_then(|n| config.backend(&n.name))
                            .is_some_and(|b| b.options.http_buffer_request),
                    unique_id_format: p.unique_id_format.clone(),
                    unique_id_header: p.unique_id_header.clone(),
                    log,
                    settings: Settings::of(config, p),
                })
            })
            .collect::<Result<_, PlanError>>()?;
        default_fullconn(&frontends, config.global.maxconn, &mut backends);
        Ok(Plan {
            frontends,
            backends,
            tune: config.global.tune.clone(),
            maxconn: config.global.maxconn,
            maxpipes: config
                .global
                .maxpipes
                .unwrap_or(config.global.maxconn as usize / 4),
            log_sockets: sinks.0.len(),
            identity,
            requests: AtomicU64::new(0),
            http_errors: config
                .http_errors
                .iter()
                .map(|s| {
                    let pages = s.pages.iter().map(|e| (e.status, e.response.clone()));
                    (s.name.clone(), ErrorPages(pages.collect()))
                })
                .collect(),
        })
    }
}

/// The log targets opened so far: proxies naming the same target share its socket.
#[derive(Default)]
struct SinkSet(std::collections::HashMap<LogTarget, Arc<Sink>>);

impl SinkSet {
    fn open(&mut self, t: &LogTarget) -> Result<Arc<Sink>, PlanError> {
        if let Some(s) = self.0.get(t) {
            return Ok(s.clone());
        }
        let sink = Arc::new(Sink::open(t).map_err(|e| PlanError::Log {
            target: t.addr.clone(),
            reason: e.to_string(),
        })?);
        self.0.insert(t.clone(), sink.clone());
        Ok(sink)
    }
}

/// The tag syslog headers carry by default: the program's name, as in HAProxy.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "percore".into())
}

impl Plan {
    /// The backend named `name`, for dynamic `use_backend` and fetches naming one.
    pub fn backend_named(&self, name: &[u8]) -> Option<BackendId> {
        self.backends.iter().position(|b| b.name.as_bytes() == name)
    }
}

/// Resolves `track` lines (to the end of a chain) and gives each tracked server the
/// list of its trackers. Validation has refused unknown targets and loops.
fn link_trackers(config: &Config, backends: &mut [Backend]) {
    let find = |be: &str, s: &str| -> Option<(BackendId, usize)> {
        let b = backends.iter().position(|b| b.name == be)?;
        Some((b, backends[b].servers.iter().position(|x| x.name == s)?))
    };
    let proxies: Vec<_> = config
        .proxies
        .iter()
        .filter(|p| p.kind.has_backend())
        .collect();
    let direct = |b: BackendId, s: usize| -> Option<(BackendId, usize)> {
        let t = proxies[b].servers[s].options.track.as_ref()?;
        find(t.backend.as_deref().unwrap_or(&proxies[b].name), &t.server)
    };
    let mut links = Vec::new();
    for (b, be) in backends.iter().enumerate() {
        for s in 0..be.servers.len() {
            let mut end = direct(b, s);
            let mut hops = 0;
            while let Some(next) = end.and_then(|(tb, ts)| direct(tb, ts)) {
                end = Some(next);
                hops += 1;
                if hops > backends.len() * 256 {
                    break;
                }
            }
            if let Some(target) = end {
                links.push(((b, s), target));
            }
        }
    }
    for ((b, s), (tb, ts)) in links {
        backends[b].servers[s].tracks = Some((tb, ts));
        backends[tb].servers[ts].trackers.push((b, s));
    }
}

/// HAProxy's default `fullconn`: a tenth (rounded up, at least 1) of the `maxconn` of
/// the frontends (the global `maxconn` when they set none) whose default or static
/// `use_backend` rules reach the backend.
fn default_fullconn(frontends: &[Frontend], global_maxconn: u32, backends: &mut [Backend]) {
    let mut totals = vec![0u64; backends.len()];
    for fe in frontends {
        let maxconn = u64::from(fe.maxconn.unwrap_or(global_maxconn));
        let mut reached: Vec<BackendId> = fe.default_backend.into_iter().collect();
        for sw in &fe.switching {
            if let SwitchTarget::Static(b) = sw.target {
                if !reached.contains(&b) {
                    reached.push(b);
                }
            }
        }
        for b in reached {
            totals[b] += maxconn;
        }
    }
    for (be, total) in backends.iter_mut().zip(totals) {
        if be.fullconn == 0 {
            be.fullconn = total.div_ceil(10).clamp(1, u64::from(u32::MAX)) as u32;
        }
    }
}

/// The effective value of a timeout: the first that is set, or none.
pub fn first_set(candidates: &[Option<Duration>]) -> Option<Duration> {
    candidates.iter().flatten().next().copied()
}
