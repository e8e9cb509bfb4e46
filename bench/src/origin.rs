//! The origin server. Each request chooses its answer through query parameters:
//!
//! | parameter | effect |
//! |---|---|
//! | `status=N` | status code (default 200) |
//! | `size=N` | body of N bytes (default: a one-line greeting naming the origin) |
//! | `delay=MS` | wait before answering |
//! | `chunked=1` | send the body chunked |
//! | `close=1` | answer with `Connection: close` and close |
//! | `echo=1` | the body is the request head as received |
//! | `noresp=1` | close without answering |
//! | `garbage=1` | answer with bytes that are not HTTP |
//! | `setcookie=NAME=VALUE` | add `Set-Cookie: NAME=VALUE; Path=/` |
//!
//! Every response carries `X-Origin` (the origin's name), `X-Conn` (the serial number
//! of the connection on this origin) and `X-Req-Body` (request body bytes received).
//! `Expect: 100-continue` gets `100 Continue`; `Upgrade` gets `101` and an echo tunnel.

use compio::buf::{BufResult, IntoInner, IoBuf, IoBufMut};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use percore_dataplane::http::body::Framing;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters a test reads to see what reached the origin.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Requests being answered right now (during `delay`).
    pub in_progress: AtomicU64,
    /// The most requests ever answered at the same time.
    pub peak: AtomicU64,
}

/// A running origin.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it has seen.
    pub stats: Arc<Stats>,
}

impl Origin {
    /// Starts an origin named `name` on `addr` (port 0 picks a free one) in a thread of
    /// its own; it runs until the process exits.
    pub fn start(name: &str, addr: SocketAddr) -> std::io::Result<Origin> {
        Self::start_threads(name, addr, 1)
    }

    /// Like [`Origin::start`] with `threads` threads, each with its own `SO_REUSEPORT`
    /// listener, so that a benchmark's origin is never its bottleneck.
    pub fn start_threads(name: &str, addr: SocketAddr, threads: usize) -> std::io::Result<Origin> {
        let first = reuseport_listener(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..threads.max(1) {
            listeners.push(reuseport_listener(addr)?);
        }
        let stats = Arc::new(Stats::default());
        for (i, listener) in listeners.into_iter().enumerate() {
            let (name, s) = (name.to_string(), stats.clone());
            std::thread::Builder::new()
                .name(format!("origin-{name}-{i}"))
                .spawn(move || {
                    let rt =
                        percore_dataplane::runtime::executor_runtime().expect("io_uring runtime");
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener).expect("adopt listener");
                        let name: Rc<str> = name.into();
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let serial = s.connections.fetch_add(1, Ordering::Relaxed) + 1;
                            s.open.fetch_add(1, Ordering::Relaxed);
                            let (name, s) = (name.clone(), s.clone());
                            compio::runtime::spawn(async move {
                                serve(stream, name, serial, s.clone()).await;
                                s.open.fetch_sub(1, Ordering::Relaxed);
                            })
                            .detach();
                        }
                    });
                })?;
        }
        Ok(Origin { addr, stats })
    }
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    // Room for perf/compare's 2000 requests in flight arriving at once: with 1024,
    // a cold origin's queue overflowed and the connections beyond it were retried a
    // second later, still connecting (and holding their request) when the proxy's
    // memory was read. The kernel caps it at `net.core.somaxconn`.
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Query parameter `key` of a request target.
fn param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

async fn write(stream: &TcpStream, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut w = stream;
    let BufResult(r, b) = w.write_all(data).await;
    r.map(|_| b)
}

async fn serve(stream: TcpStream, name: Rc<str>, serial: u64, stats: Arc<Stats>) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(65536);
    let filler = Rc::new(vec![b'x'; 65536]);
    loop {
        // Head.
        let (target, head_len, framing, expect, upgrade, keep_alive, head_text) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut framing = Framing::Empty;
                    let (mut expect, mut upgrade, mut close) =
                        (false, false, req.version == Some(0));
                    for h in req.headers.iter() {
                        let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                        match h.name.to_ascii_lowercase().as_str() {
                            "content-length" => {
                                framing = Framing::Length(v.trim().parse().unwrap_or(0))
                            }
                            "transfer-encoding" if v.contains("chunked") => {
                                framing = Framing::chunked()
                            }
                            "expect" => expect = v == "100-continue",
                            "upgrade" => upgrade = true,
                            "connection" if v.contains("close") => close = true,
                            "connection" if v.contains("keep-alive") => close = false,
                            _ => {}
                        }
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    break (
                        req.path.unwrap_or("/").to_string(),
                        n,
                        framing,
                        expect,
                        upgrade,
                        !close,
                        text,
                    );
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
            if buf.len() == buf.capacity() {
                return;
            }
            let mut r = &stream;
            let BufResult(res, b) = r.read(buf.uninit()).await;
            buf = b.into_inner();
            if !matches!(res, Ok(n) if n > 0) {
                return;
            }
        };
        buf.drain(..head_len);
        if param(&target, "noresp").is_some() {
            return;
        }
        if upgrade {
            let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Origin: {name}\r\n\r\n");
            if write(&stream, head.into_bytes()).await.is_err() {
                return;
            }
            return echo(&stream, buf).await;
        }
        if expect
            && write(&stream, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
                .await
                .is_err()
        {
            return;
        }
        // Body, read and discarded.
        let mut framing = framing;
        let mut received: u64 = 0;
        while !framing.is_done() {
            if !buf.is_empty() {
                let Ok(n) = framing.advance(&mut buf, usize::MAX) else {
                    return;
                };
                received += n as u64;
                buf.drain(..n);
                if framing.is_done() {
                    break;
                }
            }
            let mut r = &stream;
            let BufResult(res, b) = r.read(buf.uninit()).await;
            buf = b.into_inner();
            if !matches!(res, Ok(n) if n > 0) {
                return;
            }
        }
        if let Some(ms) = param(&target, "delay").and_then(|d| d.parse().ok()) {
            let now = stats.in_progress.fetch_add(1, Ordering::Relaxed) + 1;
            stats.peak.fetch_max(now, Ordering::Relaxed);
            compio::time::sleep(Duration::from_millis(ms)).await;
            stats.in_progress.fetch_sub(1, Ordering::Relaxed);
        }
        if param(&target, "garbage").is_some() {
            let _ = write(&stream, b"\x00\x01 not http at all\r\n\r\n".to_vec()).await;
            return;
        }
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let status: u16 = param(&target, "status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let close = !keep_alive || param(&target, "close").is_some();
        let chunked = param(&target, "chunked").is_some();
        let body: Option<Vec<u8>> = if param(&target, "echo").is_some() {
            Some(head_text.into_bytes())
        } else if param(&target, "size").is_some() {
            None
        } else {
            Some(format!("hello from {name}\n").into_bytes())
        };
        let size: u64 = match &body {
            Some(b) => b.len() as u64,
            None => param(&target, "size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        };
        let mut head = format!("HTTP/1.1 {status} X\r\nX-Origin: {name}\r\nX-Conn: {serial}\r\nX-Req-Body: {received}\r\n");
        let no_body = status == 204 || status == 304 || (100..200).contains(&status);
        if !no_body {
            if chunked {
                head.push_str("Transfer-Encoding: chunked\r\n");
            } else {
                head.push_str(&format!("Content-Length: {size}\r\n"));
            }
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        if let Some(cookie) = param(&target, "setcookie") {
            head.push_str(&format!("Set-Cookie: {cookie}; Path=/\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if let (Some(b), false, false) = (&body, chunked, no_body) {
            out.extend_from_slice(b);
        }
        if write(&stream, out).await.is_err() {
            return;
        }
        if !no_body && (chunked || body.is_none()) {
            let mut left = size;
            while left > 0 {
                let n = left.min(filler.len() as u64) as usize;
                let data = match &body {
                    Some(b) => b.clone(),
                    None => filler[..n].to_vec(),
                };
                let piece = if chunked {
                    let mut p = format!("{:x}\r\n", data.len()).into_bytes();
                    p.extend_from_slice(&data);
                    p.extend_from_slice(b"\r\n");
                    p
                } else {
                    data
                };
                if write(&stream, piece).await.is_err() {
                    return;
                }
                left -= n as u64;
                if body.is_some() {
                    break;
                }
            }
            if chunked && write(&stream, b"0\r\n\r\n".to_vec()).await.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

async fn echo(stream: &TcpStream, mut buf: Vec<u8>) {
    loop {
        if !buf.is_empty() {
            let len = buf.len();
            let mut w = stream;
            let BufResult(r, b) = w.write_all(buf.slice(0..len)).await;
            buf = b.into_inner();
            if r.is_err() {
                return;
            }
            buf.clear();
        }
        let mut r = stream;
        let BufResult(res, b) = r.read(buf.uninit()).await;
        buf = b.into_inner();
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
}
