//! The life of an HTTP client connection, in order. This file tells the story; each
//! phase lives in its own module:
//!
//! 1. wait for a request head (idle: `timeout http-keep-alive`; head: `timeout
//!    http-request`), parse and rewrite it (`request`, over `http::head`);
//! 2. the rules, which answer themselves or pick the backend (`rules`);
//! 3. get a server connection: persistence, slot, idle pool or connect (`route`,
//!    over `connect`);
//! 4. send the request: whole when its body is all at hand (then a failure `retry-on`
//!    names sends it again), otherwise the head, then the body streamed while the
//!    response is read (`exchange`; `transfer` moves bodies, `http::body` tells where
//!    each ends);
//! 5. forward the response, its interim 1xx ones first, or switch to a tunnel after
//!    `101` (`response`); a slow server is waited for without a read buffer;
//! 6. keep both connections for the next request when the protocol and the
//!    connection modes allow, otherwise close.
//!
//! Failures end with HAProxy's status codes (400 408 414 431 501 502 503 504) written to
//! the client before closing. The session's buffers are reused from request to request
//! while the connection is busy, and given back while it idles or its server thinks;
//! each phase's future is boxed for as long as it runs, so that a connection holds
//! what its current phase needs and no more.

use crate::connect::{Attempts, Origin, Reuse, ServerConn};
use crate::core::Core;
use crate::http::body::Framing;
use crate::http::head::{finish_request, Limits};
use crate::http::message;
use crate::io::{linger, shutdown_write, Deadline, IoFail, Watchdog};
use crate::log::record::{Cause, Phase, Record};
use crate::plan::{Backend, BackendId, Frontend};
use crate::pool::{ServerKey, ServerStream};
use crate::rules::capture::capture_headers;
use crate::rules::http::TxnState;
use crate::rules::vars::Vars;
use compio::net::TcpStream;
use percore_config::log::LogLevel;
use percore_config::{HttpConnMode, HttpReuse, RetryOn};
use std::time::{Duration, Instant};

mod exchange;
mod request;
mod response;
mod route;
mod rules;
mod transfer;

use request::HeadWait;
use response::ResponseFail;
use route::CookieEdit;
use rules::send_error;

/// The longest an error response may take to write.
const ERROR_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// One client connection in HTTP mode and everything it keeps between requests.
struct Session<'a> {
    core: &'a Core,
    fe: &'a Frontend,
    be: &'a Backend,
    be_id: BackendId,
    client: TcpStream,
    origin: Origin,
    /// When the connection was accepted.
    accepted: Instant,
    limits: Limits,
    /// Client bytes read and not yet forwarded (a head, body bytes, pipelined requests).
    cbuf: Vec<u8>,
    /// How the idle wait before this session ended, until the session looks at it.
    woke: Option<Result<(), IoFail>>,
    /// The rewritten request head.
    req_head: Vec<u8>,
    /// Server bytes read and not yet forwarded.
    sbuf: Vec<u8>,
    /// `tune.bufsize`: the capacity buffers get when they are needed.
    bufsize: usize,
    /// The rewritten response head.
    resp_head: Vec<u8>,
    /// What the current response must do with the persistence cookie.
    cookie_edit: Option<CookieEdit>,
    /// Deadlines of the request side: waiting for heads, sending them, uploading.
    request_side: Watchdog,
    /// Deadlines of the response side, which runs concurrently with uploads.
    response_side: Watchdog,
    /// A server connection kept for this client only (`http-reuse never`, PROXY headers).
    private: Option<(ServerKey, ServerStream)>,
    /// Requests served so far.
    requests: u64,
    /// Ask servers to close after each response (`http-server-close`, `httpclose`).
    close_server: bool,
    /// Variables, and what the rules changed of the client address and timeouts.
    txn: TxnState,
    /// The current transaction's log record, when the frontend logs.
    log: Option<Box<Record>>,
    /// What getting the current request's server connection went through.
    attempts: Attempts,
    /// The current request's backend was chosen (until then, logs name the frontend).
    routed: bool,
}

/// A client connection as the accept path hands it to HTTP mode.
pub struct Accepted {
    /// The client.
    pub client: TcpStream,
    /// What was already read (after a PROXY header, or by content inspection).
    pub cbuf: Vec<u8>,
    /// When it was accepted.
    pub accepted: Instant,
    /// What the connection-level rules set, the connection's addresses included.
    pub txn: TxnState,
}

/// What a client connection keeps from one request to the next. An idle connection
/// holds this alone while it waits for its next request: the session around it, with
/// its buffers and deadlines, is made again when the client speaks (HAProxy's idle
/// connections are small the same way).
struct Kept {
    client: TcpStream,
    origin: Origin,
    accepted: Instant,
    log: Option<Box<Record>>,
    requests: u64,
    /// What few connections have, boxed apart so that the others do not carry room
    /// for it while they idle.
    extras: Option<Box<Extras>>,
}

/// What a connection keeps between requests only when it has it.
#[derive(Default)]
struct Extras {
    /// The variables (those of the session scope outlive a transaction).
    vars: Vars,
    /// The PROXY protocol TLVs the connection came with.
    proxy_tlvs: Vec<(u8, Vec<u8>)>,
    /// What the connection's TCP rules set for its first transaction's log line.
    log_level: Option<LogLevel>,
    /// A server connection kept for this client only.
    private: Option<(ServerKey, ServerStream)>,
}

impl Extras {
    /// The extras worth keeping, if any.
    fn of(extras: Extras) -> Option<Box<Extras>> {
        let empty = extras.vars.is_empty()
            && extras.proxy_tlvs.is_empty()
            && extras.log_level.is_none()
            && extras.private.is_none();
        (!empty).then(|| Box::new(extras))
    }
}

impl Kept {
    /// What a new connection keeps, and the bytes it came with.
    fn new(fe: &Frontend, conn: Box<Accepted>) -> (Box<Kept>, Start) {
        let Accepted {
            client,
            cbuf,
            accepted,
            txn,
        } = *conn;
        let kept = Box::new(Kept {
            client,
            // The socket's addresses, or those of the PROXY header.
            origin: Origin {
                src: txn.src,
                dst: txn.dst,
            },
            accepted,
            log: fe.log.records().then(|| {
                let mut rec = Box::new(Record::new(accepted));
                rec.t_handshake = rec.now();
                rec
            }),
            requests: 0,
            extras: Extras::of(Extras {
                vars: txn.vars,
                proxy_tlvs: txn.proxy_tlvs,
                log_level: txn.log_level,
                private: None,
            }),
        });
        (kept, Start::Read(cbuf))
    }
}

/// Where a client connection's HTTP service starts: freshly accepted, or back from
/// an idle wait.
pub enum Resume {
    /// A new connection, as the accept path hands it over.
    New(Box<Accepted>),
    /// A parked connection, and how its wait ended.
    Woke(Idle, Result<(), IoFail>),
}

/// An HTTP client connection between requests: what it keeps, and until when it may
/// stay silent. It holds no buffer and no session.
pub struct Idle {
    kept: Box<Kept>,
    until: Deadline,
}

impl Idle {
    /// The client.
    pub fn client(&self) -> &TcpStream {
        &self.kept.client
    }

    /// Until when the client may stay silent.
    pub fn until(&self) -> Deadline {
        self.until
    }
}

/// Serves a client connection in HTTP mode until it closes (`None`) or goes idle. The
/// busy session is boxed, and set aside (`Kept`) when it ends idle, so that an idle
/// connection holds only what it keeps.
pub async fn serve(core: &Core, fe: &Frontend, from: Resume) -> Option<Idle> {
    // The backend is chosen per request; this is where sessions start.
    let be_id = fe.default_backend.unwrap_or(0);
    let (kept, start) = match from {
        Resume::New(conn) => {
            if core.plan.backends.get(be_id).is_none() {
                // Boxed: a rare path that would otherwise enlarge every session's future.
                let refusing = Box::pin(async move {
                    send_error(&conn.client, 503, &[&fe.settings.errors]).await;
                    linger(&conn.client).await;
                });
                refusing.await;
                return None;
            }
            Kept::new(fe, conn)
        }
        Resume::Woke(idle, woke) => (idle.kept, Start::Woke(woke)),
    };
    let be = core.plan.backends.get(be_id)?;
    // The session and its requests' future are boxed apart: an async function taking
    // the session by value would hold it twice (its argument and its local), 0.8 KiB
    // more for every request in flight.
    let mut session = Box::new(Session::resume(core, fe, (be_id, be), kept, start));
    let ended = {
        let busy = Box::pin(session.serve_requests());
        busy.await
    };
    let Ended::Idle(until) = ended else {
        return None;
    };
    Some(Idle {
        kept: session.into_kept(),
        until,
    })
}

/// How a session's run of requests ended.
enum Ended {
    /// The connection is over.
    Closed,
    /// The connection waits for its next request, with no buffer, until the deadline.
    Idle(Deadline),
}

/// How a session starts: with the bytes already read from the client, or after an
/// idle wait and how it ended.
enum Start {
    /// Bytes read before the session began (after a PROXY header, or by inspection).
    Read(Vec<u8>),
    /// The client became readable, closed, or stayed silent until the deadline.
    Woke(Result<(), IoFail>),
}

impl<'a> Session<'a> {
    /// The session of a connection that keeps `kept`, its next request due to
    /// `be` unless the rules say otherwise.
    #[expect(
        clippy::boxed_local,
        reason = "taking the box frees it here; moved out of in the caller, it would \
                  stay allocated while the connection waits"
    )]
    fn resume(
        core: &'a Core,
        fe: &'a Frontend,
        (be_id, be): (BackendId, &'a Backend),
        kept: Box<Kept>,
        start: Start,
    ) -> Self {
        let Kept {
            client,
            origin,
            accepted,
            log,
            requests,
            extras,
        } = *kept;
        let Extras {
            vars,
            proxy_tlvs,
            log_level,
            private,
        } = extras.map(|e| *e).unwrap_or_default();
        let txn = TxnState {
            vars,
            proxy_tlvs,
            log_level,
            ..TxnState::new(origin.src, origin.dst)
        };
        let (cbuf, woke) = match start {
            Start::Read(cbuf) => (cbuf, None),
            Start::Woke(woke) => (Vec::new(), Some(woke)),
        };
        let plan = &core.plan;
        Session {
            core,
            fe,
            be,
            be_id,
            client,
            origin,
            accepted,
            limits: Limits {
                max_head: plan.tune.max_head(),
                max_headers: plan.tune.http_maxhdr,
            },
            cbuf,
            woke,
            req_head: Vec::new(),
            sbuf: Vec::new(),
            bufsize: plan.tune.bufsize,
            resp_head: Vec::new(),
            cookie_edit: None,
            request_side: Watchdog::default(),
            response_side: Watchdog::default(),
            private,
            requests,
            close_server: false,
            txn,
            log,
            attempts: Attempts::default(),
            routed: false,
        }
    }

    /// What a session idle with no buffer keeps while it waits for more.
    fn into_kept(self: Box<Self>) -> Box<Kept> {
        let Session {
            client,
            origin,
            accepted,
            txn,
            log,
            private,
            requests,
            ..
        } = *self;
        Box::new(Kept {
            client,
            origin,
            accepted,
            log,
            requests,
            extras: Extras::of(Extras {
                vars: txn.vars,
                proxy_tlvs: txn.proxy_tlvs,
                log_level: txn.log_level,
                private,
            }),
        })
    }

    /// Serves requests until the connection ends or waits for the next one with no
    /// buffer.
    async fn serve_requests(&mut self) -> Ended {
        loop {
            // 1. The request head. (Boxed, as the later steps are: the connection's
            // future keeps only what every step needs.)
            let waiting = Box::pin(self.wait_head());
            let info = match waiting.await {
                Ok(info) => info,
                Err(HeadWait::Idle(until)) => return Ended::Idle(until),
                // Closing between requests is normal; closing a new connection (or
                // within a head) is logged as HAProxy logs it.
                Err(HeadWait::Closed { partial: false }) if self.requests > 0 => {
                    return Ended::Closed
                }
                Err(HeadWait::Closed { partial }) => {
                    if !partial && self.fe.log.dontlognull {
                        return Ended::Closed;
                    }
                    self.conclude(Some(400), Cause::ClientAbort, Phase::Request, 0);
                    return Ended::Closed;
                }
                // An idle keep-alive connection times out silently.
                Err(HeadWait::Timeout { partial: false }) if self.requests > 0 => {
                    return Ended::Closed
                }
                Err(HeadWait::Timeout { partial }) => {
                    let end = (Cause::ClientTimeout, Phase::Request);
                    if !partial && self.fe.log.dontlognull {
                        self.log = None;
                    }
                    self.fail(408, end).await;
                    return Ended::Closed;
                }
                Err(HeadWait::Refused(status)) => {
                    self.fail(status, (Cause::Proxy, Phase::Request)).await;
                    return Ended::Closed;
                }
            };
            self.cbuf.drain(..info.head_len);
            self.requests += 1;
            if self.requests > 1 {
                self.new_transaction();
            }
            if let Some(rec) = self.log.as_mut() {
                rec.t_request = rec.now();
                rec.bytes_in = info.head_len as u64;
                rec.request_line
                    .extend_from_slice(message::first_line(&self.req_head));
            }
            self.identify();
            capture_headers(
                &self.fe.captures.request,
                &self.req_head,
                &mut self.txn.captured.request,
            );
            if self.is_monitor_request() {
                // As in HAProxy, monitor requests are not logged.
                self.log = None;
                let status = if self.monitor_fails() { 503 } else { 200 };
                self.fail(status, (Cause::Local, Phase::Request)).await;
                return Ended::Closed;
            }

            // 2. The rules, which pick the backend or answer themselves.
            let mut info = info;
            if self.fe.buffer_request && info.framing != Framing::Empty {
                let buffering = Box::pin(self.buffer_body(&mut info));
                if let Err((status, cause)) = buffering.await {
                    match status {
                        Some(status) => self.fail(status, (cause, Phase::Request)).await,
                        None => self.conclude(None, cause, Phase::Request, 0),
                    }
                    return Ended::Closed;
                }
            }
            let ruled = self.request_rules();
            self.txn.body = Vec::new();
            if let Err(reply) = ruled {
                let close = reply.close || !info.keep_alive || info.framing != Framing::Empty;
                let sending = Box::pin(self.send_reply(reply, &info, close, Phase::Request));
                if !sending.await || close {
                    return Ended::Closed;
                }
                continue;
            }
            let (fe_mode, be_mode) = (self.fe.settings.conn_mode, self.be.settings.conn_mode);
            let close_mode = fe_mode == HttpConnMode::Close || be_mode == HttpConnMode::Close;
            self.close_server =
                fe_mode != HttpConnMode::KeepAlive || be_mode != HttpConnMode::KeepAlive;
            let close_client = close_mode || !info.keep_alive;
            if let Some(name) = &self.fe.unique_id_header {
                message::append_header(&mut self.req_head, name.as_bytes(), &self.txn.unique_id);
            }
            let edits = self.edits();
            finish_request(&mut self.req_head, &info, edits);
            // A request whose body is all at hand (or that has none) is sent whole and
            // may be sent again, as HAProxy resends a request that fits its buffer.
            let Ok(whole) = self.whole_body(&info) else {
                self.fail(400, (Cause::ClientAbort, Phase::Data)).await;
                return Ended::Closed;
            };

            // 3. The server.
            let shared = match self.be.reuse {
                HttpReuse::Never => false,
                HttpReuse::Safe => self.requests > 1,
                HttpReuse::Aggressive | HttpReuse::Always => true,
            };
            let presented = self.take_cookie();
            let choice = self.choice(presented.as_deref());
            let mut server = match self.server(Reuse { shared }, choice, None).await {
                Ok(server) => server,
                Err(e) => {
                    let end = self.attempts.end_of(&e);
                    self.fail(503, end).await;
                    return Ended::Closed;
                }
            };
            self.cookie_edit = self.cookie_edit_for(server.key.1, presented.as_deref());
            self.note_cookies(presented.as_deref(), server.key.1);

            // 4-5. The exchange.
            let result = if let Some(body) = whole {
                let mut fresh_tried = false;
                loop {
                    // What this attempt's failure may be retried for (`retry-on`,
                    // within `retries`); only whole requests are sent again.
                    let retry_on = if self.attempts.retries_left(self.be) > 0 {
                        self.be.retry_on
                    } else {
                        RetryOn::NONE
                    };
                    // Exchanges are boxed: the connection's future then stays small while
                    // it waits for a request, which is what an idle connection costs.
                    // (The box is made in its own statement: a temporary future in the
                    // statement of an `.await` would be kept in the connection's future
                    // all the same.)
                    let exchange = Box::pin(self.exchange_whole(
                        &server,
                        (&info, body),
                        close_client,
                        retry_on,
                    ));
                    let r = exchange.await;
                    let avoid = match r {
                        // An idle connection the server had just closed: one fresh
                        // attempt, not counted as a retry.
                        Err(ResponseFail::Closed) if server.reused && !fresh_tried => {
                            fresh_tried = true;
                            None
                        }
                        Err(ResponseFail::Closed) if retry_on.empty_response => {
                            self.retry_avoiding(server.key.1, choice)
                        }
                        Err(ResponseFail::Retry) => self.retry_avoiding(server.key.1, choice),
                        r => break r,
                    };
                    drop(server);
                    server = match self.server(Reuse { shared: false }, choice, avoid).await {
                        Ok(next) => next,
                        Err(e) => {
                            let end = self.attempts.end_of(&e);
                            self.fail(503, end).await;
                            return Ended::Closed;
                        }
                    };
                }
            } else {
                let exchange = Box::pin(self.exchange_with_body(&server, info, close_client));
                exchange.await
            };

            // 6. What the connections may do next.
            match result {
                Ok(x) => {
                    let ServerConn {
                        stream, key, slot, ..
                    } = server;
                    slot.release();
                    // Logged once the server slot is given back: `%bc` and `%sc` do not
                    // count this request any more, as in HAProxy.
                    self.conclude(None, Cause::Normal, Phase::Done, 0);
                    if x.server_reusable && !self.close_server {
                        if self.be.reuse == HttpReuse::Never
                            || self.be.servers[key.1].send_proxy.is_some()
                        {
                            self.private = Some((key, stream));
                        } else {
                            let sp = &self.be.servers[key.1];
                            self.core.pool.put(key, sp, stream, self.core.clients());
                        }
                    } else {
                        stream.discard();
                    }
                    drop(slot);
                    if !x.client_reusable || close_client {
                        shutdown_write(&self.client);
                        return Ended::Closed;
                    }
                }
                // (A retry is only asked for while one is allowed; the loop above
                // makes it.)
                Err(ResponseFail::Closed | ResponseFail::Retry) => {
                    self.fail(502, (Cause::ServerAbort, Phase::Headers)).await;
                    return Ended::Closed;
                }
                Err(ResponseFail::Status(status)) => {
                    let end = match status {
                        504 => (Cause::ServerTimeout, Phase::Headers),
                        400 => (Cause::ClientAbort, Phase::Data),
                        _ => (Cause::Proxy, Phase::Headers),
                    };
                    self.fail(status, end).await;
                    return Ended::Closed;
                }
                Err(ResponseFail::Broken(cause)) => {
                    self.conclude(None, cause, Phase::Data, 0);
                    return Ended::Closed;
                }
                Err(ResponseFail::Replaced(reply)) => {
                    let sending = Box::pin(self.send_reply(reply, &info, true, Phase::Headers));
                    sending.await;
                    return Ended::Closed;
                }
            }
        }
    }
}
