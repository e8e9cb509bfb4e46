//! The load generator: HTTP request load (keep-alive or one request per connection,
//! as fast as possible or at a fixed rate), TCP streaming throughput, and idle
//! connections held open. Each thread runs its own compio runtime; results are merged
//! at the end. Latencies at a fixed rate are measured from when each request was due,
//! not from when it was sent, so a stalled proxy cannot hide its stall (coordinated
//! omission).

use compio::buf::{BufResult, IntoInner, IoBufMut};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use hdrhistogram::Histogram;
use percore_dataplane::http::body::Framing;
use percore_dataplane::io::Watchdog;
use serde::Serialize;
use std::cell::RefCell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Where an HTTP load goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// Address to connect to.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Request target (path and query).
    pub path: String,
}

impl Target {
    /// Parses `http://HOST[:PORT][/PATH]`.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("'{url}': only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("'{authority}': {e}"))?
            .next()
            .ok_or_else(|| format!("'{authority}' has no address"))?;
        Ok(Target {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

/// What an HTTP load run does.
#[derive(Debug, Clone)]
pub struct HttpLoad {
    /// Where requests go.
    pub target: Target,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to run.
    pub duration: Duration,
    /// Requests per second in total (open model), or `None` for as fast as possible.
    pub rate: Option<f64>,
    /// One request per connection.
    pub close: bool,
    /// Request body size; a body makes the request a POST.
    pub body: usize,
    /// Threads (runtimes) sharing the connections.
    pub threads: usize,
    /// Longest wait for one response.
    pub timeout: Duration,
}

/// Failures by kind.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Errors {
    /// Connection refused or failed.
    pub connect: u64,
    /// Writing the request failed.
    pub write: u64,
    /// Reading the response failed or it was malformed.
    pub read: u64,
    /// No response within the timeout.
    pub timeout: u64,
    /// Responses with a status of 400 or more.
    pub status: u64,
}

impl Errors {
    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.write += o.write;
        self.read += o.read;
        self.timeout += o.timeout;
        self.status += o.status;
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        self.connect + self.write + self.read + self.timeout + self.status
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// The outcome of an HTTP load run.
#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    /// Successful responses (status below 400).
    pub requests: u64,
    /// Requests per second over the run.
    pub rate: f64,
    /// Response bytes received.
    pub bytes: u64,
    /// Failures by kind.
    pub errors: Errors,
    /// Latency percentiles of successful responses.
    pub latency: Latency,
    /// Measured duration in seconds.
    pub seconds: f64,
}

/// Per-thread tallies.
struct Tally {
    requests: u64,
    bytes: u64,
    errors: Errors,
    histogram: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            requests: 0,
            bytes: 0,
            errors: Errors::default(),
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

/// Raises the open-file limit to its hard maximum (thousands of connections need it).
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs the HTTP load; `tick` is called about every 100 ms with the elapsed time.
pub fn run_http(load: &HttpLoad, tick: &dyn Fn(Duration)) -> HttpReport {
    raise_fd_limit();
    let threads = load.threads.max(1).min(load.connections.max(1));
    let start = Instant::now();
    let end = start + load.duration;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let load = load.clone();
            let conns = load.connections / threads + usize::from(t < load.connections % threads);
            std::thread::spawn(move || {
                let rt = percore_dataplane::runtime::executor_runtime().expect("io_uring runtime");
                rt.block_on(http_thread(load, conns, start, end))
            })
        })
        .collect();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        tick(start.elapsed().min(load.duration));
    }
    let mut total = Tally::new();
    for h in handles {
        let t = h.join().expect("load thread");
        total.requests += t.requests;
        total.bytes += t.bytes;
        total.errors.add(&t.errors);
        let _ = total.histogram.add(&t.histogram);
    }
    let seconds = start
        .elapsed()
        .as_secs_f64()
        .max(load.duration.as_secs_f64());
    let h = &total.histogram;
    HttpReport {
        requests: total.requests,
        rate: total.requests as f64 / load.duration.as_secs_f64(),
        bytes: total.bytes,
        errors: total.errors,
        latency: Latency {
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        },
        seconds,
    }
}

fn request_bytes(load: &HttpLoad) -> Vec<u8> {
    let method = if load.body > 0 { "POST" } else { "GET" };
    let mut r = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\n",
        load.target.path, load.target.host
    );
    if load.close {
        r.push_str("Connection: close\r\n");
    }
    if load.body > 0 {
        r.push_str(&format!("Content-Length: {}\r\n", load.body));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.resize(bytes.len() + load.body, b'b');
    bytes
}

async fn http_thread(load: HttpLoad, conns: usize, start: Instant, end: Instant) -> Tally {
    let tally = Rc::new(RefCell::new(Tally::new()));
    let request: Rc<[u8]> = request_bytes(&load).into();
    // Each connection's share of the rate; connections start staggered.
    let interval = load
        .rate
        .map(|r| Duration::from_secs_f64(load.connections as f64 / r));
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let offset = interval
                .map(|iv| iv.mul_f64(i as f64 / conns.max(1) as f64))
                .unwrap_or_default();
            compio::runtime::spawn(connection(
                load.clone(),
                request.clone(),
                tally.clone(),
                start + offset,
                interval,
                end,
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    Rc::try_unwrap(tally)
        .ok()
        .expect("all connections ended")
        .into_inner()
}

/// How one exchange failed (a timeout is seen from outside it).
enum Fail {
    Write,
    Read,
}

async fn connection(
    load: HttpLoad,
    request: Rc<[u8]>,
    tally: Rc<RefCell<Tally>>,
    first: Instant,
    interval: Option<Duration>,
    end: Instant,
) {
    let mut stream: Option<TcpStream> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(65536);
    // One lazily re-armed timer per connection, as in the proxy (see `io::Watchdog`).
    let mut wd = Watchdog::default();
    let mut due = first;
    loop {
        let intended = match interval {
            Some(iv) => {
                if due > Instant::now() {
                    compio::time::sleep_until(due).await;
                }
                let t = due;
                due += iv;
                t
            }
            None => Instant::now(),
        };
        if intended >= end {
            return;
        }
        let s = match stream.take() {
            Some(s) => s,
            None => match compio::time::timeout(load.timeout, TcpStream::connect(load.target.addr))
                .await
            {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                _ => {
                    tally.borrow_mut().errors.connect += 1;
                    compio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        buf.clear();
        let at = Some(Instant::now() + load.timeout);
        let result = wd
            .until(at)
            .run(exchange(&s, request.clone(), std::mem::take(&mut buf)))
            .await;
        let done = Instant::now();
        let mut t = tally.borrow_mut();
        match result {
            Ok((Ok((status, bytes, keep)), b)) => {
                buf = b;
                if done > end {
                    return;
                }
                if status >= 400 {
                    t.errors.status += 1;
                } else {
                    t.requests += 1;
                    t.bytes += bytes;
                    let us = done.duration_since(intended).as_micros().max(1) as u64;
                    let _ = t.histogram.record(us.min(60_000_000));
                }
                if keep && !load.close {
                    stream = Some(s);
                }
            }
            Ok((Err(Fail::Write), b)) => {
                buf = b;
                t.errors.write += 1;
            }
            Ok((Err(Fail::Read), b)) => {
                buf = b;
                t.errors.read += 1;
            }
            Err(_) => {
                buf = Vec::with_capacity(65536);
                t.errors.timeout += 1;
            }
        }
    }
}

/// Sends one request and reads its response: (status, bytes, connection reusable).
async fn exchange(
    s: &TcpStream,
    request: Rc<[u8]>,
    mut buf: Vec<u8>,
) -> (Result<(u16, u64, bool), Fail>, Vec<u8>) {
    let mut w = s;
    let BufResult(res, _) = w.write_all(request).await;
    if res.is_err() {
        return (Err(Fail::Write), buf);
    }
    let (status, framing, keep, head_len) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = resp.code.unwrap_or(0);
                let mut framing = Framing::UntilClose;
                let mut keep = resp.version == Some(1);
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let len = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        framing = if len == 0 {
                            Framing::Empty
                        } else {
                            Framing::Length(len)
                        };
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        framing = Framing::chunked();
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        keep = !h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                if status == 204 || status == 304 {
                    framing = Framing::Empty;
                }
                break (status, framing, keep, n);
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return (Err(Fail::Read), buf),
        }
        if buf.len() == buf.capacity() {
            return (Err(Fail::Read), buf);
        }
        let mut r = s;
        let BufResult(res, b) = r.read(buf.uninit()).await;
        buf = b.into_inner();
        match res {
            Ok(0) | Err(_) => return (Err(Fail::Read), buf),
            Ok(_) => {}
        }
    };
    let mut bytes = buf.len() as u64;
    buf.drain(..head_len);
    let mut framing = framing;
    loop {
        if !buf.is_empty() {
            let Ok(n) = framing.advance(&mut buf, usize::MAX) else {
                return (Err(Fail::Read), buf);
            };
            buf.drain(..n);
        }
        if framing.is_done() {
            return (
                Ok((status, bytes, keep && framing != Framing::UntilClose)),
                buf,
            );
        }
        let mut r = s;
        let BufResult(res, b) = r.read(buf.uninit()).await;
        buf = b.into_inner();
        match res {
            Ok(0) if framing == Framing::UntilClose => return (Ok((status, bytes, false)), buf),
            Ok(0) | Err(_) => return (Err(Fail::Read), buf),
            Ok(n) => bytes += n as u64,
        }
    }
}

/// The outcome of a TCP streaming run.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// Bytes received over all connections.
    pub bytes: u64,
    /// Throughput in Gbit/s.
    pub gbps: f64,
    /// Connections that failed.
    pub errors: u64,
    /// Measured duration in seconds.
    pub seconds: f64,
}

/// Streams from `addr` over `connections` connections for `duration`: each sends
/// `GET path` (by default an effectively endless body from `percore-bench origin`) and
/// counts what arrives. Through a TCP-mode proxy this measures its relay throughput.
pub fn run_stream(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> StreamReport {
    raise_fd_limit();
    let rt = percore_dataplane::runtime::executor_runtime().expect("io_uring runtime");
    let request: Rc<[u8]> = format!("GET {path} HTTP/1.1\r\nHost: stream\r\n\r\n")
        .into_bytes()
        .into();
    let start = Instant::now();
    let end = start + duration;
    let (bytes, errors) = rt.block_on(async move {
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let request = request.clone();
                compio::runtime::spawn(async move {
                    let Ok(s) = TcpStream::connect(addr).await else {
                        return Err(());
                    };
                    let mut w = &s;
                    if w.write_all(request).await.0.is_err() {
                        return Err(());
                    }
                    let mut got = 0u64;
                    let mut buf = Vec::with_capacity(1 << 18);
                    while Instant::now() < end {
                        buf.clear();
                        let mut r = &s;
                        let left = end.saturating_duration_since(Instant::now());
                        match compio::time::timeout(left, r.read(buf)).await {
                            Ok(BufResult(Ok(n), b)) if n > 0 => {
                                got += n as u64;
                                buf = b;
                            }
                            _ => break,
                        }
                    }
                    Ok(got)
                })
            })
            .collect();
        let (mut bytes, mut errors) = (0u64, 0u64);
        for t in tasks {
            match t.await {
                Ok(Ok(n)) => bytes += n,
                _ => errors += 1,
            }
        }
        (bytes, errors)
    });
    let seconds = duration.as_secs_f64();
    StreamReport {
        bytes,
        gbps: bytes as f64 * 8.0 / seconds / 1e9,
        errors,
        seconds,
    }
}

/// Opens `connections` keep-alive connections to `addr`, makes one request on each
/// (so that every proxy has really accepted and served them), then holds them idle
/// until `hold` has passed; returns how many were opened and served. `opened` is called
/// once they all are.
pub fn run_idle(
    addr: SocketAddr,
    connections: usize,
    hold: Duration,
    opened: &dyn Fn(usize),
) -> usize {
    raise_fd_limit();
    let rt = percore_dataplane::runtime::executor_runtime().expect("io_uring runtime");
    let request: Rc<[u8]> = b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n".to_vec().into();
    rt.block_on(async move {
        let mut open = Vec::with_capacity(connections);
        let mut buf = Vec::with_capacity(4096);
        for _ in 0..connections {
            let Ok(s) = TcpStream::connect(addr).await else {
                continue;
            };
            buf.clear();
            let (result, b) = exchange(&s, request.clone(), buf).await;
            buf = b;
            if matches!(result, Ok((status, _, true)) if status < 400) {
                open.push(s);
            }
        }
        let n = open.len();
        opened(n);
        compio::time::sleep(hold).await;
        n
    })
}

/// Opens `connections` connections to `addr` and sends on each a request for `path`
/// that the origin answers late (`?delay=`), so that all of them are in flight through
/// the proxy at once; `sent` is called once every request is out, then the responses
/// are read. Returns how many were answered with a success.
pub fn run_inflight(
    addr: SocketAddr,
    connections: usize,
    path: &str,
    sent: &dyn Fn(usize),
) -> usize {
    raise_fd_limit();
    let rt = percore_dataplane::runtime::executor_runtime().expect("io_uring runtime");
    let request: Rc<[u8]> = format!("GET {path} HTTP/1.1\r\nHost: inflight\r\n\r\n")
        .into_bytes()
        .into();
    rt.block_on(async move {
        let mut open = Vec::with_capacity(connections);
        for _ in 0..connections {
            let Ok(s) = TcpStream::connect(addr).await else {
                continue;
            };
            let mut w = &s;
            if w.write_all(request.clone()).await.0.is_ok() {
                open.push(s);
            }
        }
        sent(open.len());
        let answers: Vec<_> = open
            .into_iter()
            .map(|s| {
                compio::runtime::spawn(async move {
                    let mut r = &s;
                    let buf = Vec::with_capacity(4096);
                    let BufResult(res, b) = r.read(buf).await;
                    matches!(res, Ok(n) if n > 0) && b.starts_with(b"HTTP/1.1 2")
                })
            })
            .collect();
        let mut ok = 0;
        for a in answers {
            if a.await.unwrap_or(false) {
                ok += 1;
            }
        }
        ok
    })
}
