//! The life of an HTTP client connection, in order. This file tells the story; the
//! steps live in their own modules:
//!
//! 1. wait for a request head (idle: `timeout http-keep-alive`; head: `timeout
//!    http-request`), parse and rewrite it (`http::head`);
//! 2. pick the backend (the frontend's `use_backend` / `default_backend`);
//! 3. get a server connection: slot, idle pool or connect, retries (`connect`);
//! 4. send the head, then stream the request body while reading the response
//!    (`http::body` tells where each body ends), forwarding interim 1xx responses;
//! 5. stream the response back, or switch to a tunnel after `101`;
//! 6. keep both connections for the next request when the protocol and the
//!    connection modes allow, otherwise close.
//!
//! Failures end with HAProxy's status codes (400 408 414 431 501 502 503 504) written to
//! the client before closing.

use crate::connect::{connect, ConnectError, Origin, Reuse, ServerConn};
use crate::core::Core;
use crate::http::body::{Framing, FramingError};
use crate::http::errors::builtin;
use crate::http::head::{parse_request, parse_response, Limits, RequestEdits, RequestInfo};
use crate::io::{deadline, linger, read_more, write_all, write_range, Deadline, IoFail};
use crate::plan::{first_set, Backend, ErrorPages, Frontend};
use crate::pool::ServerKey;
use compio::net::TcpStream;
use futures_util::future::{select, Either};
use percore_config::{HttpConnMode, HttpReuse};
use std::cell::Cell;
use std::pin::pin;
use std::time::Instant;

/// How waiting for a request head ended, when it did not give a request.
enum HeadWait {
    /// The client closed (or reset) between requests.
    Closed,
    /// No complete head in time; `partial` says whether some of it had arrived.
    Timeout { partial: bool },
    /// The head is invalid: answer with this status.
    Refused(u16),
}

/// How forwarding a response ended, when it did not complete.
enum ResponseFail {
    /// Nothing reached the client yet: it gets this status.
    Status(u16),
    /// The response was cut after it started: the client connection is closed.
    Broken,
}

/// What a completed exchange allows next.
struct Exchange {
    /// The server connection may carry another request.
    server_reusable: bool,
    /// The client connection may carry another request.
    client_reusable: bool,
}

/// Serves one client connection in HTTP mode until it closes.
pub async fn serve(
    core: &Core,
    fe: &Frontend,
    client: TcpStream,
    mut buf: Vec<u8>,
    origin: Origin,
    accepted: Instant,
) {
    let plan = core.plan.clone();
    let limits = Limits {
        max_head: plan.tune.max_head(),
        max_headers: plan.tune.http_maxhdr,
    };
    let mut out = Vec::with_capacity(1024);
    let mut private: Option<(ServerKey, TcpStream)> = None;
    let mut requests: u64 = 0;
    let Some(be_id) = fe.backend else {
        send_error(&client, 503, &[&fe.errors]).await;
        return;
    };
    let be = &plan.backends[be_id];
    let close_server =
        fe.conn_mode != HttpConnMode::KeepAlive || be.conn_mode != HttpConnMode::KeepAlive;
    let close_client = fe.conn_mode == HttpConnMode::Close || be.conn_mode == HttpConnMode::Close;
    let edits = request_edits(fe, be, origin, close_server);
    loop {
        // 1. The request head.
        let info = match wait_head(
            fe,
            &client,
            &mut buf,
            limits,
            edits,
            &mut out,
            requests == 0,
            accepted,
        )
        .await
        {
            Ok(info) => info,
            Err(HeadWait::Closed) => return,
            // An idle keep-alive connection times out silently.
            Err(HeadWait::Timeout { partial: false }) if requests > 0 => return,
            Err(HeadWait::Timeout { .. }) => return send_error(&client, 408, &[&fe.errors]).await,
            Err(HeadWait::Refused(status)) => {
                return send_error(&client, status, &[&fe.errors]).await
            }
        };
        buf.drain(..info.head_len);
        requests += 1;
        let close_client = close_client || !info.keep_alive;

        // 2-3. Backend and server connection.
        let reuse = Reuse {
            shared: match be.reuse {
                HttpReuse::Never => false,
                HttpReuse::Safe => requests > 1,
                HttpReuse::Aggressive | HttpReuse::Always => true,
            },
        };
        let mut server = match connect(core, &plan, be_id, reuse, &mut private, origin).await {
            Ok(s) => s,
            Err(e) => {
                let status = match e {
                    ConnectError::NoServer
                    | ConnectError::Failed
                    | ConnectError::QueueFull
                    | ConnectError::QueueTimeout => 503,
                };
                return send_error(&client, status, &[&be.errors, &fe.errors]).await;
            }
        };

        // 4-5. The exchange.
        let result = if info.framing == Framing::Empty {
            let mut r = exchange_bodiless(
                core,
                be,
                fe.timeouts.client,
                &client,
                &server,
                &out,
                &info,
                close_client,
                limits,
            )
            .await;
            if matches!(r, Err(ResponseFail::Status(502))) && server.reused {
                // An idle connection the server had just closed: one fresh attempt.
                drop(server);
                let fresh = Reuse { shared: false };
                server = match connect(core, &plan, be_id, fresh, &mut None, origin).await {
                    Ok(s) => s,
                    Err(_) => return send_error(&client, 503, &[&be.errors, &fe.errors]).await,
                };
                r = exchange_bodiless(
                    core,
                    be,
                    fe.timeouts.client,
                    &client,
                    &server,
                    &out,
                    &info,
                    close_client,
                    limits,
                )
                .await;
            }
            r
        } else {
            exchange_with_body(
                core,
                fe,
                be,
                &client,
                &server,
                &mut buf,
                &out,
                info,
                close_client,
                limits,
            )
            .await
        };

        // 6. What the connections may do next.
        match result {
            Ok(x) => {
                let ServerConn {
                    stream, key, slot, ..
                } = server;
                drop(slot);
                if x.server_reusable && !close_server {
                    if be.reuse == HttpReuse::Never || be.servers[key.1].send_proxy.is_some() {
                        private = Some((key, stream));
                    } else {
                        core.pool.borrow_mut().put(key, stream);
                    }
                }
                if !x.client_reusable || close_client {
                    crate::io::shutdown_write(&client).await;
                    return;
                }
            }
            Err(ResponseFail::Status(status)) => {
                return send_error(&client, status, &[&be.errors, &fe.errors]).await
            }
            Err(ResponseFail::Broken) => return,
        }
    }
}

/// The header additions this frontend/backend pair makes for this client.
fn request_edits<'p>(
    fe: &'p Frontend,
    be: &'p Backend,
    origin: Origin,
    close_server: bool,
) -> RequestEdits<'p> {
    let ff = fe.forwardfor.as_ref().or(be.forwardfor.as_ref());
    let ot = fe.originalto.as_ref().or(be.originalto.as_ref());
    RequestEdits {
        forwarded_for: ff
            .filter(|f| !f.except.is_some_and(|n| n.contains(origin.src.ip())))
            .map(|f| (f.header.as_str(), origin.src.ip(), f.if_none)),
        original_to: ot
            .filter(|o| !o.except.is_some_and(|n| n.contains(origin.dst.ip())))
            .map(|o| (o.header.as_str(), origin.dst.ip())),
        close_server,
    }
}

/// Waits for and parses the next request head.
#[allow(clippy::too_many_arguments)]
async fn wait_head(
    fe: &Frontend,
    client: &TcpStream,
    buf: &mut Vec<u8>,
    limits: Limits,
    edits: RequestEdits<'_>,
    out: &mut Vec<u8>,
    first: bool,
    accepted: Instant,
) -> Result<RequestInfo, HeadWait> {
    let t = &fe.timeouts;
    let head_limit = first_set(&[t.http_request, t.client]);
    let idle_deadline: Deadline = if first {
        head_limit.map(|d| accepted + d)
    } else {
        deadline(first_set(&[t.http_keep_alive, t.http_request, t.client]))
    };
    let mut head_deadline: Deadline = if first { idle_deadline } else { None };
    loop {
        if !buf.is_empty() {
            if head_deadline.is_none() {
                head_deadline = deadline(head_limit);
            }
            match parse_request(buf, limits, edits, out) {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => {}
                Err(e) => return Err(HeadWait::Refused(e.status())),
            }
        }
        let at = if buf.is_empty() {
            idle_deadline
        } else {
            head_deadline
        };
        let (res, b) = read_more(client, std::mem::take(buf), at).await;
        *buf = b;
        match res {
            Ok(0) => return Err(HeadWait::Closed),
            Ok(_) => {}
            Err(IoFail::Timeout) => {
                return Err(HeadWait::Timeout {
                    partial: !buf.is_empty(),
                })
            }
            Err(IoFail::Io(_)) => return Err(HeadWait::Closed),
        }
    }
}

/// A request without a body: send the head, then forward the response.
#[allow(clippy::too_many_arguments)]
async fn exchange_bodiless(
    core: &Core,
    be: &Backend,
    client_timeout: Option<std::time::Duration>,
    client: &TcpStream,
    server: &ServerConn<'_>,
    head: &[u8],
    info: &RequestInfo,
    close_client: bool,
    limits: Limits,
) -> Result<Exchange, ResponseFail> {
    let at = deadline(be.timeouts.server);
    if write_all(&server.stream, head.to_vec(), at).await.is_err() {
        return Err(ResponseFail::Status(502));
    }
    let (server_reusable, client_ok) = forward_response(
        core,
        be,
        client_timeout,
        client,
        &server.stream,
        info,
        close_client,
        limits,
        &Cell::new(false),
    )
    .await?;
    Ok(Exchange {
        server_reusable,
        client_reusable: client_ok,
    })
}

/// A request with a body: stream it while the response is read, so that a server
/// answering early (or with `100 Continue`) is heard at once.
#[allow(clippy::too_many_arguments)]
async fn exchange_with_body(
    core: &Core,
    fe: &Frontend,
    be: &Backend,
    client: &TcpStream,
    server: &ServerConn<'_>,
    buf: &mut Vec<u8>,
    head: &[u8],
    info: RequestInfo,
    close_client: bool,
    limits: Limits,
) -> Result<Exchange, ResponseFail> {
    let at = deadline(be.timeouts.server);
    if write_all(&server.stream, head.to_vec(), at).await.is_err() {
        return Err(ResponseFail::Status(502));
    }
    let mut framing = info.framing;
    let client_timeout = fe.timeouts.client;
    let server_timeout = be.timeouts.server;
    let started = Cell::new(false);
    let upload = pin!(forward_body(
        client,
        &server.stream,
        buf,
        &mut framing,
        client_timeout,
        server_timeout
    ));
    let response = pin!(forward_response(
        core,
        be,
        client_timeout,
        client,
        &server.stream,
        &info,
        close_client,
        limits,
        &started,
    ));
    match select(upload, response).await {
        Either::Left((Ok(()), response)) => {
            let (server_reusable, client_ok) = response.await?;
            Ok(Exchange {
                server_reusable,
                client_reusable: client_ok,
            })
        }
        Either::Left((Err(BodyFail::Framing), _)) if !started.get() => {
            Err(ResponseFail::Status(400))
        }
        Either::Left((Err(_), _)) => Err(ResponseFail::Broken),
        Either::Right((response, _upload)) => {
            response?;
            Ok(Exchange {
                server_reusable: false,
                client_reusable: false,
            })
        }
    }
}

/// Why a body could not be forwarded whole.
#[derive(Debug)]
enum BodyFail {
    /// Invalid chunked encoding.
    Framing,
    /// The sender closed before the end, or a socket failed or timed out.
    Io,
}

impl From<FramingError> for BodyFail {
    fn from(_: FramingError) -> Self {
        BodyFail::Framing
    }
}

/// Forwards one body from `from` to `to`, starting with the bytes already in `buf`;
/// leaves in `buf` whatever follows the body (a pipelined request).
async fn forward_body(
    from: &TcpStream,
    to: &TcpStream,
    buf: &mut Vec<u8>,
    framing: &mut Framing,
    read_timeout: Option<std::time::Duration>,
    write_timeout: Option<std::time::Duration>,
) -> Result<(), BodyFail> {
    loop {
        if !buf.is_empty() {
            let n = framing.advance(buf)?;
            if n > 0 {
                let (res, b) =
                    write_range(to, std::mem::take(buf), 0..n, deadline(write_timeout)).await;
                *buf = b;
                res.map_err(|_| BodyFail::Io)?;
                buf.drain(..n);
            }
        }
        if framing.is_done() {
            return Ok(());
        }
        if buf.len() == buf.capacity() {
            buf.reserve(16384);
        }
        let (res, b) = read_more(from, std::mem::take(buf), deadline(read_timeout)).await;
        *buf = b;
        match res {
            Ok(0) if *framing == Framing::UntilClose => return Ok(()),
            Ok(0) | Err(_) => return Err(BodyFail::Io),
            Ok(_) => {}
        }
    }
}

/// Reads the response head (forwarding interim 1xx ones), sends it to the client,
/// then streams the body or switches to a tunnel. Returns whether the server
/// connection and the client connection may be reused.
#[allow(clippy::too_many_arguments)]
async fn forward_response(
    core: &Core,
    be: &Backend,
    client_timeout: Option<std::time::Duration>,
    client: &TcpStream,
    server: &TcpStream,
    request: &RequestInfo,
    close_client: bool,
    limits: Limits,
    started: &Cell<bool>,
) -> Result<(bool, bool), ResponseFail> {
    let mut sbuf = Vec::with_capacity(core.plan.tune.bufsize);
    let mut out = Vec::with_capacity(512);
    let fail = |status: u16| {
        if started.get() {
            ResponseFail::Broken
        } else {
            ResponseFail::Status(status)
        }
    };
    loop {
        let parsed = if sbuf.is_empty() {
            Ok(None)
        } else {
            parse_response(&sbuf, limits, request, close_client, &mut out)
        };
        let info = match parsed {
            Ok(Some(info)) => info,
            Ok(None) => {
                let (res, b) = read_more(server, sbuf, deadline(be.timeouts.server)).await;
                sbuf = b;
                match res {
                    Ok(0) | Err(IoFail::Io(_)) => return Err(fail(502)),
                    Err(IoFail::Timeout) => return Err(fail(504)),
                    Ok(_) => continue,
                }
            }
            Err(_) => return Err(fail(502)),
        };
        sbuf.drain(..info.head_len);
        let client_deadline = deadline(client_timeout);
        out = write_all(client, out, client_deadline)
            .await
            .map_err(|_| ResponseFail::Broken)?;
        started.set(true);
        if info.status == 101 && request.upgrade {
            let idle_client = first_set(&[be.timeouts.tunnel, client_timeout]);
            let idle_server = first_set(&[be.timeouts.tunnel, be.timeouts.server]);
            crate::tcp::tunnel(
                client,
                server,
                Vec::new(),
                sbuf,
                idle_client,
                idle_server,
                core,
            )
            .await;
            return Ok((false, false));
        }
        if (100..200).contains(&info.status) {
            continue;
        }
        let mut framing = info.framing;
        let until_close = framing == Framing::UntilClose;
        forward_body(
            server,
            client,
            &mut sbuf,
            &mut framing,
            be.timeouts.server,
            client_timeout,
        )
        .await
        .map_err(|_| ResponseFail::Broken)?;
        let clean = sbuf.is_empty();
        return Ok((info.keep_alive && clean, !until_close));
    }
}

/// Writes an error response (a configured `errorfile` or the built-in one), then
/// lingers so the client reads it before the connection closes.
async fn send_error(client: &TcpStream, status: u16, pages: &[&ErrorPages]) {
    let body: Vec<u8> = match pages.iter().find_map(|p| p.get(status)) {
        Some(custom) => custom.to_vec(),
        None => builtin(status),
    };
    let _ = write_all(
        client,
        body,
        deadline(Some(std::time::Duration::from_secs(5))),
    )
    .await;
    linger(client).await;
}
