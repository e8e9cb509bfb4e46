//! The typed configuration: what the parser produces and the dataplane compiles. Every
//! value here is already validated; the dataplane never re-parses text.

use crate::error::Location;
use crate::http_errors::{ErrorPage, HttpErrors};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole configuration, all files merged in order.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The `global` sections, merged.
    pub global: Global,
    /// Frontends, backends and listens, in file order.
    pub proxies: Vec<Proxy>,
    /// `peers` sections (parsed; the stick-table issue runs them).
    pub peers: Vec<Peers>,
    /// `resolvers` sections (parsed; the DNS issue runs them).
    pub resolvers: Vec<Resolvers>,
    /// `http-errors` sections.
    pub http_errors: Vec<HttpErrors>,
}

impl Config {
    /// Finds a proxy able to act as a backend by name.
    pub fn backend(&self, name: &str) -> Option<&Proxy> {
        self.proxies
            .iter()
            .find(|p| p.name == name && p.kind.has_backend())
    }
}

/// Process-wide settings from `global`.
#[derive(Debug, Clone)]
pub struct Global {
    /// `daemon`: go to the background unless `-d` or `-db` says otherwise.
    pub daemon: bool,
    /// `maxconn`: the most concurrent client connections for the whole process.
    pub maxconn: u32,
    /// `nbthread`: how many executors; `None` means one per available CPU.
    pub nbthread: Option<usize>,
    /// `cpu-map` lines, in order.
    pub cpu_map: Vec<CpuMap>,
    /// `pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `maxpipes`: most pipes kept for splicing, per process.
    pub maxpipes: Option<usize>,
    /// `ulimit-n`: the file descriptor limit to set (computed from `maxconn` if absent).
    pub ulimit_n: Option<u64>,
    /// Buffer and parser limits.
    pub tune: Tune,
    /// `log` lines: the targets proxies reach with `log global`.
    pub logs: Vec<crate::log::LogTarget>,
    /// `log-tag`: the tag of syslog headers (the program name by default).
    pub log_tag: Option<String>,
    /// `log-send-hostname [NAME]`: rfc3164 headers carry a host name.
    pub log_send_hostname: Option<LogHostname>,
}

/// Which host name `log-send-hostname` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogHostname {
    /// The system's host name.
    System,
    /// This name.
    Named(String),
}

impl Default for Global {
    fn default() -> Self {
        Self {
            daemon: false,
            maxconn: 4096,
            nbthread: None,
            cpu_map: Vec::new(),
            pidfile: None,
            maxpipes: None,
            ulimit_n: None,
            tune: Tune::default(),
            logs: Vec::new(),
            log_tag: None,
            log_send_hostname: None,
        }
    }
}

/// `tune.*` settings that bound memory and input sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tune {
    /// `tune.bufsize`: the size of one connection buffer.
    pub bufsize: usize,
    /// `tune.maxrewrite`: the part of a buffer kept free for header rewrites.
    pub maxrewrite: usize,
    /// `tune.http.maxhdr`: the most header lines in one message.
    pub http_maxhdr: usize,
    /// `tune.pipesize`: the size of each splice pipe, when set.
    pub pipesize: Option<usize>,
    /// `tune.pool-high-fd-ratio` (25): the share of the process's descriptors, in
    /// percent, in use beyond which no connection is kept idle and a new server
    /// connection closes an idle one first.
    pub pool_high_fd_ratio: u32,
    /// `tune.pool-low-fd-ratio` (20): the share in use beyond which a core keeps no
    /// more idle connections to a server than the one it may always keep.
    pub pool_low_fd_ratio: u32,
}

impl Default for Tune {
    fn default() -> Self {
        Self {
            bufsize: 16384,
            maxrewrite: 1024,
            http_maxhdr: 101,
            pipesize: None,
            pool_high_fd_ratio: 25,
            pool_low_fd_ratio: 20,
        }
    }
}

impl Tune {
    /// The most bytes a request or response head may take.
    pub fn max_head(&self) -> usize {
        self.bufsize - self.maxrewrite
    }
}

/// One `cpu-map` line: which CPUs the threads in `threads` run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMap {
    /// One-based thread numbers, as HAProxy counts them.
    pub threads: Vec<usize>,
    /// CPU numbers.
    pub cpus: Vec<usize>,
    /// `auto:`: spread the threads one CPU each over `cpus`, in order.
    pub auto: bool,
}

/// What a proxy section is, which decides the keywords it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// `defaults`: settings inherited by later sections.
    Defaults,
    /// `frontend`: accepts clients.
    Frontend,
    /// `backend`: holds servers.
    Backend,
    /// `listen`: both at once.
    Listen,
}

impl ProxyKind {
    /// The section keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ProxyKind::Defaults => "defaults",
            ProxyKind::Frontend => "frontend",
            ProxyKind::Backend => "backend",
            ProxyKind::Listen => "listen",
        }
    }

    /// Whether clients connect to it.
    pub fn has_frontend(self) -> bool {
        matches!(self, ProxyKind::Frontend | ProxyKind::Listen)
    }

    /// Whether it holds servers.
    pub fn has_backend(self) -> bool {
        matches!(self, ProxyKind::Backend | ProxyKind::Listen)
    }
}

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Plain TCP relay (HAProxy's default).
    #[default]
    Tcp,
    /// HTTP/1.x with header processing.
    Http,
}

/// How the client side of an HTTP connection is handled after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpConnMode {
    /// Keep-alive on both sides (default).
    #[default]
    KeepAlive,
    /// `option http-server-close`: keep the client, close the server after each response.
    ServerClose,
    /// `option httpclose`: close both sides after each exchange.
    Close,
}

/// `http-reuse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpReuse {
    /// Never share a server connection between client connections.
    Never,
    /// A client's first request gets a fresh connection; later ones may reuse (default).
    #[default]
    Safe,
    /// Reuse connections that already carried more than one request.
    Aggressive,
    /// Always reuse an idle connection when there is one.
    Always,
}

/// The `timeout` family; `None` means not set (HAProxy warns and waits forever; percore
/// applies no limit either, except for the head, which is always bounded by `client`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// `timeout connect`.
    pub connect: Option<Duration>,
    /// `timeout client`.
    pub client: Option<Duration>,
    /// `timeout server`.
    pub server: Option<Duration>,
    /// `timeout http-request`: the whole request head must arrive within it.
    pub http_request: Option<Duration>,
    /// `timeout http-keep-alive`: idle time between two requests.
    pub http_keep_alive: Option<Duration>,
    /// `timeout client-fin`: once the client half-closed.
    pub client_fin: Option<Duration>,
    /// `timeout server-fin`: once the server half-closed.
    pub server_fin: Option<Duration>,
    /// `timeout tunnel`: bidirectional idle time for tunnels (TCP, websocket).
    pub tunnel: Option<Duration>,
    /// `timeout queue`: the longest a request waits for a server slot.
    pub queue: Option<Duration>,
    /// `timeout check`: the longest a health check may take once connected.
    pub check: Option<Duration>,
    /// `timeout tarpit`: how long a tarpitted request is held (`timeout connect` when unset).
    pub tarpit: Option<Duration>,
}

/// `option forwardfor [except NET] [header NAME] [if-none]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardFor {
    /// Sources in this network get no header.
    pub except: Option<IpNet>,
    /// Header name (default `X-Forwarded-For`).
    pub header: String,
    /// Only add the header when the request has none.
    pub if_none: bool,
}

/// `option originalto [except NET] [header NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalTo {
    /// Destinations in this network get no header.
    pub except: Option<IpNet>,
    /// Header name (default `X-Original-To`).
    pub header: String,
}

/// An address with a prefix length, as in `except 10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl IpNet {
    /// Parses `ADDR[/LEN]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                if let (Ok(mask), IpAddr::V4(_)) = (p.parse::<std::net::Ipv4Addr>(), addr) {
                    u32::from(mask).count_ones() as u8
                } else {
                    p.parse::<u8>()
                        .ok()
                        .filter(|&p| p <= max)
                        .ok_or_else(|| format!("bad prefix length in '{s}'"))?
                }
            }
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The `option splice-*` choices: which directions of a TCP relay may use splice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Splice {
    /// `option splice-auto`.
    pub auto: bool,
    /// `option splice-request`.
    pub request: bool,
    /// `option splice-response`.
    pub response: bool,
}

impl Splice {
    /// Both sets of options together (a frontend's and a backend's).
    pub fn union(self, other: Splice) -> Splice {
        Splice {
            auto: self.auto || other.auto,
            request: self.request || other.request,
            response: self.response || other.response,
        }
    }

    /// Whether any direction may splice.
    pub fn any(self) -> bool {
        self.auto || self.request || self.response
    }
}

/// `retry-on`: the failures after which a request is sent again (to another server
/// when `option redispatch` allows), within `retries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// `conn-failure`: the connection could not be established (the default).
    pub conn_failure: bool,
    /// `empty-response`: the server closed without a byte of response.
    pub empty_response: bool,
    /// `junk-response`: the server's response head could not be parsed.
    pub junk_response: bool,
    /// `response-timeout`: no response within `timeout server`.
    pub response_timeout: bool,
    /// The response statuses named, one bit per entry of [`RetryOn::STATUSES`].
    pub statuses: u16,
}

impl RetryOn {
    /// The statuses `retry-on` may name.
    pub const STATUSES: [u16; 10] = [401, 403, 404, 408, 425, 500, 501, 502, 503, 504];

    /// Nothing is retried (`retry-on none`).
    pub const NONE: RetryOn = RetryOn {
        conn_failure: false,
        empty_response: false,
        junk_response: false,
        response_timeout: false,
        statuses: 0,
    };

    /// The bit of `status` in [`RetryOn::statuses`], if `retry-on` may name it.
    pub fn bit(status: u16) -> Option<u16> {
        Self::STATUSES
            .iter()
            .position(|&s| s == status)
            .map(|i| 1 << i)
    }

    /// Whether a response with `status` is retried.
    pub fn status(&self, status: u16) -> bool {
        Self::bit(status).is_some_and(|bit| self.statuses & bit != 0)
    }

    /// Whether any failure after the connection is retried (the request must then be
    /// kept until its response starts).
    pub fn after_connect(&self) -> bool {
        self.empty_response || self.junk_response || self.response_timeout || self.statuses != 0
    }
}

impl Default for RetryOn {
    fn default() -> Self {
        RetryOn {
            conn_failure: true,
            ..RetryOn::NONE
        }
    }
}

/// Boolean and small `option` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `option redispatch [INTERVAL]`: which retries go to another server; `None` when
    /// off (`no option redispatch`, or an interval of 0). A positive P moves every Pth
    /// retry; a negative N the Nth retry before the last (-1, the default: the last).
    pub redispatch: Option<i32>,
    /// `option http-server-close` / `option httpclose`.
    pub http_conn_mode: HttpConnMode,
    /// `option forwardfor`.
    pub forwardfor: Option<ForwardFor>,
    /// `option originalto`.
    pub originalto: Option<OriginalTo>,
    /// `option splice-*`.
    pub splice: Splice,
    /// `option allbackups`: all backup servers share the load, not only the first.
    pub allbackups: bool,
    /// `option http-buffer-request`: wait for the request body (up to a buffer) before
    /// running the HTTP rules, so that they can read it.
    pub http_buffer_request: bool,
    /// `option independent-streams`: writing to a side does not refresh the timeout of
    /// reading from it.
    pub independent_streams: bool,
    /// `option persist`: a persistence cookie keeps naming a server that is down
    /// (until `option redispatch` moves the request).
    pub persist: bool,
    /// `option dontlognull`: connections that sent nothing are not logged.
    pub dontlognull: bool,
    /// `option dontlog-normal`: only errors are logged.
    pub dontlog_normal: bool,
    /// `option log-separate-errors`: errors are logged at level `err`, not `info`.
    pub log_separate_errors: bool,
}

/// A proxy section: frontend, backend, listen, or defaults.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Section name (empty for an anonymous defaults).
    pub name: String,
    /// What kind of section.
    pub kind: ProxyKind,
    /// Where the section starts.
    pub location: Location,
    /// `mode`.
    pub mode: Mode,
    /// `bind` lines.
    pub binds: Vec<Bind>,
    /// `maxconn` of a frontend.
    pub maxconn: Option<u32>,
    /// `default_backend`.
    pub default_backend: Option<Named>,
    /// ACLs, rules and `use_backend`/`use-server` lines.
    pub rules: crate::rules::Rules,
    /// `balance`.
    pub balance: Balance,
    /// `hash-type`.
    pub hash_type: HashType,
    /// `hash-balance-factor`: with consistent hashing, no server takes more than this
    /// percentage of the average load (0: off).
    pub hash_balance_factor: u32,
    /// `server` lines.
    pub servers: Vec<Server>,
    /// `default-server` settings applied to later `server` lines.
    pub default_server: ServerOptions,
    /// `timeout *`.
    pub timeouts: Timeouts,
    /// `retries`.
    pub retries: u32,
    /// `retry-on`.
    pub retry_on: RetryOn,
    /// `option *`.
    pub options: Options,
    /// `http-reuse`.
    pub http_reuse: HttpReuse,
    /// `errorfile`, `errorloc*` and `errorfiles` lines, in order (see
    /// `Config::error_pages`).
    pub errorfiles: Vec<ErrorPage>,
    /// Health checks: `option httpchk|tcp-check|log-health-checks`, `http-check`,
    /// `tcp-check`.
    pub checks: crate::check::Checks,
    /// `fullconn`: the backend load at which servers reach their `maxconn` (those
    /// with a `minconn` run below it until then).
    pub fullconn: Option<u32>,
    /// `capture request|response header` and `declare capture` slots.
    pub captures: crate::rules::capture::Captures,
    /// `monitor fail if|unless COND`: the `monitor-uri` answers 503 when it holds.
    pub monitor_fail: Option<crate::rules::condition::Condition>,
    /// `cookie`: persistence through a cookie.
    pub cookie: Option<Cookie>,
    /// `monitor-uri`: requests for this path are answered 200 by percore itself.
    pub monitor_uri: Option<String>,
    /// `log` lines, in order (`no log` empties the list).
    pub logs: Vec<crate::log::LogLine>,
    /// `option httplog|tcplog` or `log-format`: the last one wins.
    pub traffic_log: Option<crate::log::TrafficFormat>,
    /// `log-tag`: this proxy's syslog tag.
    pub log_tag: Option<String>,
    /// `unique-id-format`: each request gets an id made with this format.
    pub unique_id_format: Option<crate::rules::logformat::LogFormat>,
    /// `unique-id-header`: the request carries its id in this header.
    pub unique_id_header: Option<String>,
}

/// `cookie NAME insert|prefix [indirect] [nocache] [httponly] [secure] [domain D]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Cookie name.
    pub name: String,
    /// How the cookie travels.
    pub mode: CookieMode,
    /// `indirect`: the inserted cookie never reaches the server, and is not sent again
    /// to a client that already has it.
    pub indirect: bool,
    /// `nocache`: responses that set the cookie are marked private.
    pub nocache: bool,
    /// `httponly`.
    pub httponly: bool,
    /// `secure`.
    pub secure: bool,
    /// `domain D` (may repeat).
    pub domains: Vec<String>,
}

/// Cookie persistence modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    /// `insert`: percore sets its own cookie naming the server.
    Insert,
    /// `prefix`: the application's cookie is prefixed with the server's name.
    Prefix,
}

impl Proxy {
    /// A fresh section with HAProxy's defaults.
    pub fn new(name: &str, kind: ProxyKind, location: Location) -> Self {
        Self {
            name: name.to_string(),
            kind,
            location,
            mode: Mode::Tcp,
            binds: Vec::new(),
            maxconn: None,
            default_backend: None,
            rules: Default::default(),
            balance: Balance::RoundRobin,
            hash_type: HashType::default(),
            hash_balance_factor: 0,
            servers: Vec::new(),
            default_server: ServerOptions::default(),
            timeouts: Timeouts::default(),
            retries: 3,
            retry_on: RetryOn::default(),
            options: Options::default(),
            http_reuse: HttpReuse::default(),
            errorfiles: Vec::new(),
            checks: Default::default(),
            fullconn: None,
            captures: Default::default(),
            monitor_fail: None,
            cookie: None,
            monitor_uri: None,
            logs: Vec::new(),
            traffic_log: None,
            log_tag: None,
            unique_id_format: None,
            unique_id_header: None,
        }
    }
}

impl Proxy {
    /// Each server's numeric id, in declaration order, as HAProxy numbers them: an
    /// explicit `id` is kept, and the others take the lowest ids still free, from 1.
    /// Consistent hashing places servers by these ids, so they must match HAProxy's.
    pub fn server_ids(&self) -> Vec<u32> {
        let taken: std::collections::BTreeSet<u32> =
            self.servers.iter().filter_map(|s| s.options.id).collect();
        let mut next = 1;
        self.servers
            .iter()
            .map(|s| {
                s.options.id.unwrap_or_else(|| {
                    while taken.contains(&next) {
                        next += 1;
                    }
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }
}

/// A name that refers to another section, with the line that named it for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The referenced name.
    pub name: String,
    /// Where it was written.
    pub location: Location,
}

/// `balance`: the algorithms implemented so far (the rest come with issue #4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Balance {
    /// `roundrobin`, weighted.
    #[default]
    RoundRobin,
    /// `static-rr`: weighted, in the fixed order of HAProxy's server map.
    StaticRr,
    /// `uri`: a hash of the request target picks the server.
    Uri(UriHash),
    /// `source`: a hash of the client address picks the server.
    Source,
    /// `url_param NAME`: a hash of the parameter's value; round-robin without it.
    UrlParam(String),
    /// `hdr(NAME)`: a hash of the header's value; round-robin without it.
    Hdr(String),
    /// `leastconn`: the server with the fewest requests in flight for its weight.
    LeastConn,
    /// `first`: the first server (in declaration order) with a free slot.
    First,
    /// `random[(N)]`: N weighted random draws, the least loaded one wins.
    Random(u32),
}

impl Balance {
    /// Whether the algorithm hashes a key (and falls back to round-robin without one).
    pub fn hashes(&self) -> bool {
        matches!(
            self,
            Balance::Uri(_) | Balance::Source | Balance::UrlParam(_) | Balance::Hdr(_)
        )
    }
}

/// The options of `balance uri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UriHash {
    /// `whole`: hash the query string too.
    pub whole: bool,
    /// `len N`: hash at most N characters.
    pub len: Option<u32>,
    /// `depth N`: hash at most N directory levels.
    pub depth: Option<u32>,
    /// `path-only`: hash the path, without scheme and authority of an absolute URI.
    pub path_only: bool,
}

/// `hash-type`: how a hash becomes a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashType {
    /// How a hash is mapped to a server.
    pub method: HashMethod,
    /// The hash function.
    pub function: HashFunction,
    /// `avalanche`: mix the hash before use.
    pub avalanche: bool,
}

/// The first word of `hash-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashMethod {
    /// `map-based`: a hash modulo a static table of the usable servers; smooth, but
    /// most keys move when a server comes or goes.
    #[default]
    MapBased,
    /// `consistent`: the closest of each server's points on a ring; only the keys of a
    /// server that comes or goes move.
    Consistent,
}

/// Hash functions of `hash-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashFunction {
    /// `sdbm`, HAProxy's default.
    #[default]
    Sdbm,
    /// `djb2`.
    Djb2,
    /// `wt6`.
    Wt6,
    /// `crc32` (IEEE).
    Crc32,
    /// `none`: the key is already a number (HAProxy 2.9 and later).
    None,
}

/// Where a `bind` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// An IP address (`None` for `*` / all IPv4, `::` for all IPv6) and port range.
    Inet {
        /// The address; `None` means every IPv4 address.
        ip: Option<IpAddr>,
        /// First port.
        port: u16,
        /// Last port (same as `port` unless a range was given).
        port_end: u16,
    },
    /// A UNIX stream socket path.
    Unix(PathBuf),
    /// An inherited, already listening file descriptor (`fd@N`).
    Fd(i32),
}

/// One `bind` line (one per address when the line lists several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Where it listens.
    pub addr: BindAddr,
    /// `accept-proxy`: a PROXY protocol header must start each connection.
    pub accept_proxy: bool,
    /// `name`.
    pub name: Option<String>,
    /// `backlog`.
    pub backlog: Option<u32>,
    /// `mode` for UNIX sockets (octal).
    pub unix_mode: Option<u32>,
    /// `user` for UNIX sockets (a name or a number).
    pub unix_user: Option<String>,
    /// `group` for UNIX sockets (a name or a number).
    pub unix_group: Option<String>,
    /// Where it was written.
    pub location: Location,
}

/// Which PROXY protocol header a server connection starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendProxy {
    /// `send-proxy`: the text form.
    V1,
    /// `send-proxy-v2`: the binary form.
    V2,
}

/// The settings a `server` or `default-server` line may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// `weight` (0..=256, default 1).
    pub weight: u32,
    /// `maxconn`: concurrent requests per server; excess waits in the queue.
    pub maxconn: Option<u32>,
    /// `maxqueue`: the most requests waiting for this server.
    pub maxqueue: Option<u32>,
    /// `send-proxy` / `send-proxy-v2`.
    pub send_proxy: Option<SendProxy>,
    /// Health checking (`check` and its timing options).
    pub check: CheckOptions,
    /// `cookie VALUE`: the value that designates this server in the persistence cookie.
    pub cookie: Option<String>,
    /// `backup`: used only when no active server can take traffic.
    pub backup: bool,
    /// `disabled`: starts in maintenance, takes no traffic.
    pub disabled: bool,
    /// `id N`: the server's numeric identifier.
    pub id: Option<u32>,
    /// `minconn`: the `maxconn` used while the backend is far below `fullconn`.
    pub minconn: Option<u32>,
    /// `slowstart T`: after coming back up, weight and `maxconn` ramp up over T.
    pub slowstart: Option<Duration>,
    /// `track [BACKEND/]SERVER`: take that server's state instead of checking.
    pub track: Option<Track>,
    /// `observe layer4|layer7`, `error-limit`, `on-error`: live traffic counts as
    /// checks.
    pub observe: Observe,
    /// `agent-check` and its settings.
    pub agent: AgentOptions,
    /// `pool-purge-delay`, `pool-max-conn`, `pool-low-conn`: how idle connections to
    /// the server are kept.
    pub pool: PoolOptions,
}

/// How idle connections to a server are kept for reuse (HAProxy's server pool
/// settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// `pool-purge-delay` (5 s): how often part of the idle connections beyond what the
    /// recent load needed are closed; zero keeps no idle connection at all.
    pub purge_delay: Duration,
    /// `pool-max-conn`: the most idle connections to the server in the process (`-1`,
    /// the default, is no limit).
    pub max_conn: Option<u32>,
    /// `pool-low-conn` (0): idle connections a core keeps beyond its estimated need.
    pub low_conn: u32,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            purge_delay: Duration::from_secs(5),
            max_conn: None,
            low_conn: 0,
        }
    }
}

/// `track [BACKEND/]SERVER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// The tracked server's backend (the same backend when absent).
    pub backend: Option<String>,
    /// The tracked server.
    pub server: String,
}

/// What live traffic tells about a server (`observe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observe {
    /// Which errors count; none when `observe` is not set.
    pub layer: Option<ObserveLayer>,
    /// `error-limit` (10): consecutive errors before `on-error` applies.
    pub error_limit: u32,
    /// `on-error` (fail-check).
    pub on_error: OnError,
}

impl Default for Observe {
    fn default() -> Self {
        Self {
            layer: None,
            error_limit: 10,
            on_error: OnError::FailCheck,
        }
    }
}

/// `observe layer4|layer7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveLayer {
    /// Connection failures and timeouts.
    Layer4,
    /// Those, and 5xx responses other than 501 and 505.
    Layer7,
}

/// `on-error`: what reaching `error-limit` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// `fastinter`: check at `fastinter` to find out sooner.
    Fastinter,
    /// `fail-check`: counts as one failed check.
    FailCheck,
    /// `sudden-death`: counts as all failed checks but the last.
    SuddenDeath,
    /// `mark-down`: the server goes down at once.
    MarkDown,
}

/// `agent-check`: a side channel where the server reports its own state and weight.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentOptions {
    /// `agent-check`.
    pub enabled: bool,
    /// `agent-port` (required with `agent-check`).
    pub port: Option<u16>,
    /// `agent-addr`: where the agent listens, if not on the server's address.
    pub addr: Option<IpAddr>,
    /// `agent-inter`: time between agent queries (`inter` when absent).
    pub inter: Option<Duration>,
    /// `agent-send`: the string sent after connecting.
    pub send: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            weight: 1,
            maxconn: None,
            maxqueue: None,
            send_proxy: None,
            check: CheckOptions::default(),
            cookie: None,
            backup: false,
            disabled: false,
            id: None,
            minconn: None,
            slowstart: None,
            track: None,
            observe: Observe::default(),
            agent: AgentOptions::default(),
            pool: PoolOptions::default(),
        }
    }
}

/// A server's health-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// `check`: the server is checked at all.
    pub enabled: bool,
    /// `inter`: time between checks (2 s).
    pub inter: Duration,
    /// `fastinter`: between checks while the state is changing.
    pub fastinter: Option<Duration>,
    /// `downinter`: between checks while the server is down.
    pub downinter: Option<Duration>,
    /// `rise`: consecutive successes to come up (2).
    pub rise: u32,
    /// `fall`: consecutive failures to go down (3).
    pub fall: u32,
    /// `port`: the port checks connect to (the server's by default).
    pub port: Option<u16>,
    /// `addr`: the address checks connect to (the server's by default).
    pub addr: Option<IpAddr>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            inter: Duration::from_secs(2),
            fastinter: None,
            downinter: None,
            rise: 2,
            fall: 3,
            port: None,
            addr: None,
        }
    }
}

/// One `server` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Server name, unique in its backend.
    pub name: String,
    /// Host (an IP address or a name resolved at start) as written.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Its settings.
    pub options: ServerOptions,
    /// Where it was written.
    pub location: Location,
}

/// A `peers` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// Section name.
    pub name: String,
    /// `peer NAME HOST:PORT` lines.
    pub peers: Vec<Peer>,
    /// Where the section starts.
    pub location: Location,
}

/// One `peer` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Peer name (matched against `-L` or the host name).
    pub name: String,
    /// Host as written.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A `resolvers` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolvers {
    /// Section name.
    pub name: String,
    /// `nameserver NAME HOST:PORT` lines.
    pub nameservers: Vec<Peer>,
    /// `resolve_retries`.
    pub resolve_retries: u32,
    /// `timeout resolve`.
    pub timeout_resolve: Duration,
    /// `timeout retry`.
    pub timeout_retry: Duration,
    /// `hold STATUS PERIOD` lines.
    pub hold: Vec<(HoldStatus, Duration)>,
    /// `accepted_payload_size`.
    pub accepted_payload_size: u32,
    /// `parse-resolv-conf`.
    pub parse_resolv_conf: bool,
    /// Where the section starts.
    pub location: Location,
}

/// The response classes `hold` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    /// `hold nx`.
    Nx,
    /// `hold other`.
    Other,
    /// `hold refused`.
    Refused,
    /// `hold timeout`.
    Timeout,
    /// `hold valid`.
    Valid,
    /// `hold obsolete`.
    Obsolete,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipnet() {
        let net = IpNet::parse("192.0.2.0/24").unwrap();
        assert!(net.contains("192.0.2.77".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.1".parse().unwrap()));
        let any = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        let mask = IpNet::parse("10.0.0.0/255.0.0.0").unwrap();
        assert_eq!(mask.prefix, 8);
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("nope").is_err());
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
    }
}
