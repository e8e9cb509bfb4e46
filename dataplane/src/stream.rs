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
//! the client before closing. The session's buffers live as long as the connection:
//! nothing is allocated per request in steady state.

use crate::balance::{hash, header_value, source_hash, uri_key, url_param};
use crate::checks::Observed;
use crate::connect::{
    connect, Attempts, Choice, ConnectError, Origin, Retry, Reuse, ServerConn, Slot, Wanted,
};
use crate::core::Core;
use crate::http::body::{Framing, FramingError};
use crate::http::head::{
    finish_request, parse_request, parse_response, Limits, RequestEdits, RequestInfo,
};
use crate::http::message::start_line;
use crate::http::{cookie, message};
use crate::io::{
    deadline, linger, read_more, read_more_refreshed, read_ready, shutdown_write, wait_readable,
    write_all, write_range, Activity, Deadline, IoFail, Watchdog,
};
use crate::log::record::{Cause, ClientCookie, Phase, Record, ServerCookie};
use crate::plan::{first_set, Backend, BackendId, ErrorPages, Frontend, Plan};
use crate::pool::{ServerKey, ServerStream};
use crate::rules::capture::capture_headers;
use crate::rules::http::{
    after_response, error_reply, respond, run as run_http, run_redirects, Env, LocalReply,
    Messages, TxnState, Verdict,
};
use crate::rules::value::leading_int;
use crate::rules::vars::Vars;
use crate::rules::{holds, rejects, render_log, run_tcp, switch_backend, Content, TcpVerdict};
use compio::net::TcpStream;
use futures_util::future::{select, Either};
use percore_config::log::LogLevel;
use percore_config::rules::sample::Side;
use percore_config::{Balance, CookieMode, HttpConnMode, HttpReuse, RetryOn};
use std::cell::Cell;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a connection waiting for its next request keeps its buffers.
const IDLE_GRACE: Duration = Duration::from_millis(100);

/// The longest an error response may take to write.
const ERROR_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// The most response body bytes copied behind the head so that both leave in one
/// send; what follows is forwarded from the read buffer as it is.
const COALESCE_LIMIT: usize = 16 * 1024;

/// How waiting for a request head ended, when it did not give a request.
enum HeadWait {
    /// The client closed (or reset); `partial` says whether part of a head had come.
    Closed { partial: bool },
    /// No complete head in time; `partial` says whether some of it had arrived.
    Timeout { partial: bool },
    /// The head is invalid: answer with this status.
    Refused(u16),
    /// Nothing came and the buffers are given back: wait without the session, until
    /// the deadline.
    Idle(Deadline),
}

/// How forwarding a response ended, when it did not complete.
enum ResponseFail {
    /// The server connection failed before a single response byte: the request may be
    /// retried on a fresh connection when it went over a reused one; otherwise 502.
    Closed,
    /// Nothing reached the client yet: it gets this status.
    Status(u16),
    /// The response was cut after it started: the client connection is closed. Says
    /// who cut it.
    Broken(Cause),
    /// An `http-response` rule answered instead of the server.
    Replaced(LocalReply),
    /// The response failed as `retry-on` names, before anything reached the client:
    /// the request may be sent again.
    Retry,
}

/// What a response does with the persistence cookie.
enum CookieEdit {
    /// Insert mode: add this `Set-Cookie` value.
    Insert { set: String, nocache: bool },
    /// Prefix mode: prefix the server's own cookie `name` with `server~`.
    Prefix {
        name: String,
        server: String,
        nocache: bool,
    },
}

/// What a completed exchange allows next.
struct Exchange {
    /// The server connection may carry another request.
    server_reusable: bool,
    /// The client connection may carry another request.
    client_reusable: bool,
}

/// Why a body could not be forwarded whole.
#[derive(Debug)]
enum BodyFail {
    /// Invalid chunked encoding.
    Framing,
    /// The sender closed before the end, or a socket failed or timed out: says which
    /// side and how, as the logs tell it.
    Io(Cut),
}

/// Which side of a body transfer failed, and whether by a timeout.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Reading from the sender.
    Read { timeout: bool },
    /// Writing to the receiver.
    Write { timeout: bool },
}

impl Cut {
    /// Who the logs blame, for a body going the way of `message`.
    fn cause(self, message: Side) -> Cause {
        let (read, timeout) = match self {
            Cut::Read { timeout } => (true, timeout),
            Cut::Write { timeout } => (false, timeout),
        };
        // The client's side is where the request is read from and the response written.
        let client = read == (message == Side::Request);
        Cause::of_failure(client, timeout)
    }
}

impl From<FramingError> for BodyFail {
    fn from(_: FramingError) -> Self {
        BodyFail::Framing
    }
}

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
    /// The variables (those of the session scope outlive a transaction).
    vars: Vars,
    /// The PROXY protocol TLVs the connection came with.
    proxy_tlvs: Vec<(u8, Vec<u8>)>,
    /// What the connection's TCP rules set for its first transaction's log line.
    log_level: Option<LogLevel>,
    log: Option<Box<Record>>,
    private: Option<(ServerKey, ServerStream)>,
    requests: u64,
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
            vars: txn.vars,
            proxy_tlvs: txn.proxy_tlvs,
            log_level: txn.log_level,
            log: fe.log.records().then(|| {
                let mut rec = Box::new(Record::new(accepted));
                rec.t_handshake = rec.now();
                rec
            }),
            private: None,
            requests: 0,
        });
        (kept, Start::Read(cbuf))
    }
}

/// Serves one client connection in HTTP mode until it closes. The connection comes
/// boxed and is moved out at once: an async function keeps its arguments for its whole
/// life, so unboxed they would take room twice in every idle connection's future.
/// Between requests the session is set aside (`Kept`) and only the wait for the
/// client's next bytes remains; the busy session is boxed, so that the idle
/// connection's future is small.
pub async fn serve(core: &Core, fe: &Frontend, conn: Box<Accepted>) {
    // The backend is chosen per request; this is where sessions start.
    let be_id = fe.default_backend.unwrap_or(0);
    let Some(be) = core.plan.backends.get(be_id) else {
        // Boxed: a rare path that would otherwise enlarge every session's future.
        let refusing = Box::pin(async move {
            send_error(&conn.client, 503, &[&fe.settings.errors]).await;
            linger(&conn.client).await;
        });
        return refusing.await;
    };
    let (mut kept, mut start) = Kept::new(fe, conn);
    loop {
        let session = Session::resume(core, fe, (be_id, be), kept, start);
        let busy = Box::pin(session.run());
        let (idle, until) = match busy.await {
            Some(parked) => parked,
            None => return,
        };
        let mut wd = Watchdog::default();
        let woke = wait_readable(&idle.client, wd.until(until)).await;
        (kept, start) = (idle, Start::Woke(woke));
    }
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
            vars,
            proxy_tlvs,
            log_level,
            log,
            private,
            requests,
        } = *kept;
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

    /// Serves requests until the connection ends (`None`), or until it is idle with no
    /// buffer: then it gives back what it keeps and how long to wait for more.
    async fn run(mut self) -> Option<(Box<Kept>, Deadline)> {
        let Ended::Idle(until) = self.serve_requests().await else {
            return None;
        };
        let Session {
            client,
            origin,
            accepted,
            txn,
            log,
            private,
            requests,
            ..
        } = self;
        let kept = Kept {
            client,
            origin,
            accepted,
            vars: txn.vars,
            proxy_tlvs: txn.proxy_tlvs,
            log_level: txn.log_level,
            log,
            private,
            requests,
        };
        Some((Box::new(kept), until))
    }

    /// Serves requests until the connection ends or waits for the next one with no
    /// buffer.
    async fn serve_requests(&mut self) -> Ended {
        loop {
            // 1. The request head.
            let info = match self.wait_head().await {
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
            let result = if info.framing == Framing::Empty {
                let mut fresh_tried = false;
                loop {
                    // What this attempt's failure may be retried for (`retry-on`,
                    // within `retries`); only bodiless requests are sent again.
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
                    let exchange =
                        Box::pin(self.exchange_bodiless(&server, &info, close_client, retry_on));
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
                    drop(slot);
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

    /// `option http-buffer-request`: reads the request body until it is complete or
    /// fills the buffer, keeping a de-chunked copy for the rules (`req.body`); the bytes
    /// stay in the client buffer to be forwarded. Answers `100 Continue` itself when
    /// the client waits for one, as HAProxy does. `Err` says why it stopped, with the
    /// error to answer unless the client went away.
    async fn buffer_body(&mut self, info: &mut RequestInfo) -> Result<(), (Option<u16>, Cause)> {
        if info.expect_continue {
            message::remove_header(&mut self.req_head, "expect");
            info.expect_continue = false;
            let mut wd = Watchdog::default();
            let interim = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
            if write_all(
                &self.client,
                interim,
                wd.until(deadline(Some(ERROR_WRITE_LIMIT))),
            )
            .await
            .is_err()
            {
                return Err((None, Cause::ClientAbort));
            }
        }
        let t = &self.fe.settings.timeouts;
        let at = deadline(first_set(&[t.http_request, t.client]));
        loop {
            self.txn.body.clear();
            let complete = info
                .framing
                .payload(&self.cbuf, &mut self.txn.body)
                .map_err(|_| (Some(400), Cause::Proxy))?;
            if complete || self.cbuf.len() >= self.bufsize {
                return Ok(());
            }
            self.cbuf.reserve(self.bufsize - self.cbuf.len());
            let res = self.read_client(at).await;
            match res {
                Ok(0) | Err(IoFail::Io(_)) => return Err((None, Cause::ClientAbort)),
                Ok(_) => {}
                Err(IoFail::Timeout) => return Err((Some(408), Cause::ClientTimeout)),
            }
        }
    }

    /// Ends the current transaction's log record, sends its line and starts the next
    /// one. `status` is what percore itself answered, if it did; `sent` the bytes it
    /// wrote for that answer.
    fn conclude(&mut self, status: Option<u16>, cause: Cause, phase: Phase, sent: usize) {
        let Some(rec) = self.log.as_mut() else { return };
        rec.bytes_out += sent as u64;
        rec.note_attempts(&self.attempts);
        rec.end(status, cause, phase);
        let env = Env {
            core: self.core,
            fe: self.fe,
            be: self.routed.then_some(self.be),
            server: self.attempts.server,
        };
        let cx = env.context(&self.txn, &self.req_head, &self.resp_head);
        crate::log::traffic(&cx, rec, self.txn.log_level);
        rec.restart();
    }

    /// Numbers the request (`%rt`) and makes its `unique-id-format` id, as the
    /// frontend asks.
    fn identify(&mut self) {
        if self.fe.counts_requests {
            self.txn.request_number = self.core.plan.requests.fetch_add(1, Ordering::Relaxed);
        }
        let Some(format) = &self.fe.unique_id_format else {
            return;
        };
        // The id's dates are the stream's, as the log's are.
        let fresh;
        let rec = match self.log.as_deref() {
            Some(rec) => rec,
            None => {
                fresh = Record::new(Instant::now());
                &fresh
            }
        };
        let env = self.env();
        let mut id = std::mem::take(&mut self.txn.unique_id);
        render_log(
            format,
            &env.context(&self.txn, &self.req_head, &[]),
            rec,
            &mut id,
        );
        self.txn.unique_id = id;
    }

    /// Notes in the log record what the persistence cookie did.
    fn note_cookies(&mut self, presented: Option<&str>, server: usize) {
        let Some(rec) = self.log.as_mut().filter(|_| self.be.cookie.is_some()) else {
            return;
        };
        rec.client_cookie = match presented {
            None => ClientCookie::None,
            Some(v) => match self
                .be
                .servers
                .iter()
                .position(|s| s.cookie.as_deref() == Some(v))
            {
                Some(i) if i == server => ClientCookie::Valid,
                Some(_) => ClientCookie::Down,
                None => ClientCookie::Invalid,
            },
        };
        rec.server_cookie = match &self.cookie_edit {
            Some(CookieEdit::Insert { .. }) => ServerCookie::Inserted,
            Some(CookieEdit::Prefix { .. }) => ServerCookie::Rewritten,
            None => ServerCookie::None,
        };
    }

    /// Forgets what the previous request's rules set. Not called for a connection's
    /// first request: what the connection's TCP rules set belongs to it.
    fn new_transaction(&mut self) {
        self.attempts = Attempts::default();
        self.routed = false;
        self.txn.vars.end_transaction();
        self.txn.captured.clear();
        self.txn.src = self.origin.src;
        self.txn.dst = self.origin.dst;
        self.txn.server_timeout = None;
        self.txn.tunnel_timeout = None;
        self.txn.log_level = None;
        self.txn.unique_id.clear();
    }

    /// The request rules of the frontend, the backend switch, then the backend's rules.
    /// `Err` carries the reply a rule answered with.
    fn request_rules(&mut self) -> Result<(), LocalReply> {
        let (core, fe) = (self.core, self.fe);
        let plan: &'a Plan = &core.plan;
        let mut env = Env {
            core,
            fe,
            be: fe.own_backend.map(|id| &plan.backends[id]),
            server: None,
        };
        let fe_pages = [&fe.settings.errors];
        // As in HAProxy, each later request of a keep-alive connection goes through
        // the frontend's `tcp-request content` rules again, on its head (the first
        // went through them when the connection came).
        if self.requests > 1 && !fe.rules.tcp_content.is_empty() {
            let content = Content {
                bytes: &self.req_head,
                last: true,
                side: Side::Request,
            };
            let rules = &fe.rules;
            let verdict = run_tcp(
                &rules.tcp_content,
                &rules.acls,
                &env,
                &mut self.txn,
                content,
                0,
            );
            if verdict == TcpVerdict::Reject {
                return Err(LocalReply::close_silently());
            }
        }
        self.request_rule_set(&env, &fe.rules, &fe_pages)?;
        let cx = env.context(&self.txn, &self.req_head, &[]);
        let Some(be_id) = switch_backend(fe, &cx) else {
            return Err(error_reply(503, &fe_pages));
        };
        self.be_id = be_id;
        self.be = &plan.backends[be_id];
        self.routed = true;
        if fe.own_backend != Some(be_id) {
            env.be = Some(self.be);
            let rules = &self.be.rules;
            if rejects(&rules.tcp_content, &rules.acls, &env, &mut self.txn) {
                return Err(LocalReply::close_silently());
            }
            let pages = [&self.be.settings.errors, &fe.settings.errors];
            self.request_rule_set(&env, &self.be.rules, &pages)?;
        }
        Ok(())
    }

    /// One proxy's `http-request` rules, then its `redirect` lines.
    fn request_rule_set(
        &mut self,
        env: &Env<'_>,
        rules: &percore_config::rules::Rules,
        pages: &[&ErrorPages],
    ) -> Result<(), LocalReply> {
        let mut none = Vec::new();
        let mut msg = Messages {
            req: &mut self.req_head,
            res: &mut none,
            side: Side::Request,
        };
        if let Verdict::Reply(r) = run_http(
            &rules.http_request,
            &rules.acls,
            env,
            &mut self.txn,
            &mut msg,
            pages,
        ) {
            return Err(r);
        }
        match run_redirects(
            &rules.redirects,
            &rules.acls,
            env,
            &self.txn,
            &self.req_head,
        ) {
            Verdict::Reply(r) => Err(r),
            Verdict::Continue => Ok(()),
        }
    }

    /// Writes a reply percore made (after the `http-after-response` rules) and logs
    /// the transaction; returns whether it was written. `close` ends the connection
    /// after it; `phase` says where the transaction was.
    async fn send_reply(
        &mut self,
        mut reply: LocalReply,
        info: &RequestInfo,
        close: bool,
        phase: Phase,
    ) -> bool {
        let status = leading_int(start_line(&reply.head).1).and_then(|s| u16::try_from(s).ok());
        let cause = if reply.tarpit || reply.close {
            Cause::Proxy
        } else {
            Cause::Local
        };
        let phase = if reply.tarpit { Phase::Tarpit } else { phase };
        if reply.head.is_empty() {
            self.conclude(None, cause, phase, 0);
            return false;
        }
        if reply.tarpit {
            let t = &self.fe.settings.timeouts;
            let hold = first_set(&[t.tarpit, t.connect]).unwrap_or_default();
            compio::time::sleep(hold).await;
        }
        let env = self.env();
        self.after_response(&env, &mut reply.head);
        let has_connection = message::header_values(&reply.head, Some("connection"), false)
            .next()
            .is_some();
        if !has_connection {
            if close {
                message::append_header(&mut reply.head, b"connection", b"close");
            } else if info.minor == 0 {
                message::append_header(&mut reply.head, b"connection", b"keep-alive");
            }
        }
        let mut bytes = reply.head;
        if !info.is_head {
            bytes.extend_from_slice(&reply.body);
        }
        let len = bytes.len();
        let mut wd = Watchdog::default();
        let at = deadline(self.fe.settings.timeouts.client.or(Some(ERROR_WRITE_LIMIT)));
        let written = write_all(&self.client, bytes, wd.until(at)).await.is_ok();
        self.conclude(status, cause, phase, if written { len } else { 0 });
        if close {
            linger(&self.client).await;
        }
        written
    }

    /// Runs the `http-after-response` rules of the backend, then the frontend, on a
    /// response head.
    fn after_response(&mut self, env: &Env<'_>, head: &mut Vec<u8>) {
        let mut msg = Messages {
            req: &mut self.req_head,
            res: head,
            side: Side::Response,
        };
        let own_backend = self.fe.own_backend == Some(self.be_id);
        let pages = [&self.be.settings.errors, &self.fe.settings.errors];
        after_response(env, own_backend, &mut self.txn, &mut msg, &pages);
    }

    /// Counts a retry of the current request, which failed on `server`, and says
    /// which server the next attempt avoids (the failed one, when `option redispatch`
    /// moves the retry, as for a failed connection).
    fn retry_avoiding(&mut self, server: usize, choice: Choice) -> Option<usize> {
        self.attempts.retries += 1;
        let retry = Retry::after(self.be, self.attempts.retries, server, choice);
        let moves = retry.redispatches(self.be.redispatch, self.be.retries);
        self.attempts.redispatched = moves;
        moves.then_some(server)
    }

    /// Gets a server connection for the current request, avoiding `avoid` when another
    /// server can take it.
    async fn server(
        &mut self,
        reuse: Reuse,
        choice: Choice,
        avoid: Option<usize>,
    ) -> Result<ServerConn<'a>, ConnectError> {
        let core: &'a Core = self.core;
        let plan: &'a Plan = &core.plan;
        // Boxed, like the exchanges: connecting and queueing are large futures.
        let connecting = Box::pin(connect(
            core,
            plan,
            self.be_id,
            Wanted {
                reuse,
                choice,
                origin: self.origin,
                avoid,
            },
            &mut self.private,
            &mut self.attempts,
        ));
        connecting.await
    }

    /// Whether the request is for the frontend's `monitor-uri`.
    fn is_monitor_request(&self) -> bool {
        let Some(uri) = &self.fe.monitor_uri else {
            return false;
        };
        self.target() == uri.as_bytes()
    }

    /// Where the request's rules run once its backend is chosen and before a server is.
    fn env(&self) -> Env<'a> {
        Env {
            core: self.core,
            fe: self.fe,
            be: Some(self.be),
            server: None,
        }
    }

    /// Whether `monitor fail` makes the monitor URI report a failure now.
    fn monitor_fails(&self) -> bool {
        if self.fe.monitor_fail.is_none() {
            return false;
        }
        let env = self.env();
        let cx = env.context(&self.txn, &self.req_head, &[]);
        holds(&self.fe.monitor_fail, &self.fe.rules.acls, &cx)
    }

    /// The request target of the current request: the rewritten head starts with
    /// "METHOD SP TARGET SP".
    fn target(&self) -> &[u8] {
        self.req_head
            .split(|&c| c == b' ')
            .nth(1)
            .unwrap_or_default()
    }

    /// Finds (and, as the mode says, removes or un-prefixes) the persistence cookie in
    /// the request; returns the server value the client presented.
    fn take_cookie(&mut self) -> Option<String> {
        let c = self.be.cookie.as_ref()?;
        let strip = c.mode == CookieMode::Insert && c.indirect;
        cookie::take_from_request(
            &mut self.req_head,
            &c.name,
            strip,
            c.mode == CookieMode::Prefix,
        )
    }

    /// The server a presented cookie designates, if it is up (even at weight 0, or
    /// down with `option persist`, as in HAProxy); otherwise the backend's algorithm
    /// decides.
    fn choice(&self, presented: Option<&str>) -> Choice {
        if let Some(i) = self.use_server() {
            return Choice::Server(i);
        }
        let persisted = presented.and_then(|v| {
            self.be
                .servers
                .iter()
                .position(|s| s.cookie.as_deref() == Some(v) && (s.is_up() || self.be.persist))
        });
        match persisted {
            Some(i) => Choice::Server(i),
            None => self.request_hash().map_or(Choice::Balance, Choice::Hash),
        }
    }

    /// The server a `use-server` rule names, when its condition holds and the server
    /// is up (weight 0 included) or `option persist` is set, as in HAProxy.
    fn use_server(&self) -> Option<usize> {
        let env = self.env();
        let cx = env.context(&self.txn, &self.req_head, &[]);
        self.be.use_server.iter().find_map(|(i, cond)| {
            let usable = self.be.servers[*i].is_up() || self.be.persist;
            (usable && holds(cond, &self.be.rules.acls, &cx)).then_some(*i)
        })
    }

    /// What the response to the current request must do with the persistence cookie,
    /// once server `s` was chosen.
    fn cookie_edit_for(&self, s: usize, presented: Option<&str>) -> Option<CookieEdit> {
        let c = self.be.cookie.as_ref()?;
        let value = self.be.servers[s].cookie.clone()?;
        match c.mode {
            CookieMode::Insert if presented == Some(value.as_str()) => None,
            CookieMode::Insert => {
                let mut set = format!("{}={value}; path=/", c.name);
                for d in &c.domains {
                    set.push_str(&format!("; domain={d}"));
                }
                if c.httponly {
                    set.push_str("; HttpOnly");
                }
                if c.secure {
                    set.push_str("; Secure");
                }
                Some(CookieEdit::Insert {
                    set,
                    nocache: c.nocache,
                })
            }
            CookieMode::Prefix => Some(CookieEdit::Prefix {
                name: c.name.clone(),
                server: value,
                nocache: c.nocache,
            }),
        }
    }

    /// The hash that picks the server for the current request, for hashing algorithms;
    /// `None` means round-robin (also when a `url_param` or `hdr` key is absent, as in
    /// HAProxy).
    fn request_hash(&self) -> Option<u32> {
        let ht = self.be.hash_type;
        match &self.be.balance {
            Balance::Uri(options) => Some(hash(uri_key(self.target(), options), ht)),
            Balance::Source => Some(source_hash(self.txn.src.ip(), ht)),
            Balance::UrlParam(name) => url_param(self.target(), name).map(|v| hash(v, ht)),
            Balance::Hdr(name) => header_value(&self.req_head, name).map(|v| hash(v, ht)),
            Balance::RoundRobin
            | Balance::StaticRr
            | Balance::LeastConn
            | Balance::First
            | Balance::Random(_) => None,
        }
    }

    /// Answers with an error page (backend's, then frontend's, then built-in), logs the
    /// transaction as `end` says, and ends.
    async fn fail(&mut self, status: u16, end: (Cause, Phase)) {
        // Boxed, like the exchanges, to keep the waiting connection's future small.
        let pages = [&self.be.settings.errors, &self.fe.settings.errors];
        let mut reply = error_reply(status, &pages);
        let after = [&self.fe.rules, &self.be.rules]
            .iter()
            .any(|r| !r.http_after_response.is_empty());
        if after && !reply.head.is_empty() {
            // As in HAProxy, http-after-response rules apply to percore's own pages.
            let env = self.env();
            self.after_response(&env, &mut reply.head);
        }
        let mut page = reply.head;
        page.extend_from_slice(&reply.body);
        let sending = Box::pin(write_error(&self.client, page));
        let sent = sending.await;
        self.conclude(Some(status), end.0, end.1, sent);
        let lingering = Box::pin(linger(&self.client));
        lingering.await;
    }

    /// The header additions this frontend/backend pair makes for this client.
    fn edits(&self) -> RequestEdits<'a> {
        let (fe, be) = (self.fe, self.be);
        let (src, dst) = (self.txn.src, self.txn.dst);
        let ff = fe
            .settings
            .forwardfor
            .as_ref()
            .or(be.settings.forwardfor.as_ref());
        let ot = fe
            .settings
            .originalto
            .as_ref()
            .or(be.settings.originalto.as_ref());
        RequestEdits {
            forwarded_for: ff
                .filter(|f| !f.except.is_some_and(|n| n.contains(src.ip())))
                .map(|f| (f.header.as_str(), src.ip(), f.if_none)),
            original_to: ot
                .filter(|o| !o.except.is_some_and(|n| n.contains(dst.ip())))
                .map(|o| (o.header.as_str(), dst.ip())),
            close_server: self.close_server,
        }
    }

    /// Waits for and parses the next request head into `req_head`.
    async fn wait_head(&mut self) -> Result<RequestInfo, HeadWait> {
        let t = &self.fe.settings.timeouts;
        let head_limit = first_set(&[t.http_request, t.client]);
        let first = self.requests == 0;
        let idle_deadline: Deadline = if first {
            head_limit.map(|d| self.accepted + d)
        } else {
            deadline(first_set(&[t.http_keep_alive, t.http_request, t.client]))
        };
        let mut head_deadline: Deadline = if first { idle_deadline } else { None };
        // The buffer the last response was read into serves the request side again
        // (see `exchange_bodiless`).
        if self.cbuf.capacity() == 0 && self.sbuf.is_empty() {
            std::mem::swap(&mut self.cbuf, &mut self.sbuf);
        }
        // Whether the speculative read of a new connection is still to be tried.
        let mut fresh = first;
        loop {
            if !self.cbuf.is_empty() {
                if let Some(rec) = self.log.as_mut() {
                    rec.request_began();
                }
                if head_deadline.is_none() {
                    head_deadline = deadline(head_limit);
                }
                match parse_request(&self.cbuf, self.limits, &mut self.req_head) {
                    Ok(Some(info)) => return Ok(info),
                    Ok(None) => {}
                    Err(e) => return Err(HeadWait::Refused(e.status())),
                }
            }
            let mut at = if self.cbuf.is_empty() {
                idle_deadline
            } else {
                head_deadline
            };
            let mut releasing = false;
            let mut grace = false;
            if self.cbuf.is_empty() && self.cbuf.capacity() == 0 {
                // Idle with no buffer: the session is set aside while the connection
                // waits, and resumes here with how the wait ended.
                match self.woke.take() {
                    None if fresh => {
                        // A new connection: its request is usually here already. When
                        // it is not, the buffer is kept for the grace period, as
                        // between requests: it is likely on its way.
                        fresh = false;
                        self.cbuf.reserve(self.bufsize);
                        match read_ready(&self.client, &mut self.cbuf) {
                            Ok(Some(0)) | Err(_) => {
                                return Err(HeadWait::Closed { partial: false })
                            }
                            Ok(Some(_)) => continue,
                            Ok(None) => grace = true,
                        }
                    }
                    None => return Err(HeadWait::Idle(idle_deadline)),
                    Some(Ok(())) => {}
                    Some(Err(IoFail::Timeout)) => return Err(HeadWait::Timeout { partial: false }),
                    Some(Err(IoFail::Io(_))) => return Err(HeadWait::Closed { partial: false }),
                }
                self.cbuf.reserve(self.bufsize);
            } else if self.cbuf.is_empty() {
                grace = true;
            }
            if grace {
                // Keep the buffer for a short grace period, so a busy connection reads
                // directly into it; give it up if nothing comes.
                let until = Instant::now() + IDLE_GRACE;
                if idle_deadline.is_none_or(|d| until < d) {
                    at = Some(until);
                    releasing = true;
                }
            }
            let res = self.read_client(at).await;
            match res {
                Ok(0) | Err(IoFail::Io(_)) => {
                    return Err(HeadWait::Closed {
                        partial: !self.cbuf.is_empty(),
                    })
                }
                Ok(_) => {}
                Err(IoFail::Timeout) if releasing => self.release_buffers(),
                Err(IoFail::Timeout) => {
                    return Err(HeadWait::Timeout {
                        partial: !self.cbuf.is_empty(),
                    })
                }
            }
        }
    }

    /// Reads more client bytes into `cbuf` (which keeps spare room), until `at`.
    async fn read_client(&mut self, at: Deadline) -> Result<usize, IoFail> {
        let (res, b) = read_more(
            &self.client,
            std::mem::take(&mut self.cbuf),
            self.request_side.until(at),
        )
        .await;
        self.cbuf = b;
        res
    }

    /// Gives back the buffers of a connection that has nothing in flight.
    fn release_buffers(&mut self) {
        self.cbuf = Vec::new();
        self.sbuf = Vec::new();
        self.req_head = Vec::new();
        self.resp_head = Vec::new();
    }

    /// `timeout server`, or what `set-timeout server` made it.
    fn server_timeout(&self) -> Option<Duration> {
        self.txn.server_timeout.or(self.be.settings.timeouts.server)
    }

    /// Sends the rewritten request head to the server.
    async fn send_head(&mut self, server: &TcpStream) -> Result<(), ResponseFail> {
        let head = std::mem::take(&mut self.req_head);
        let at = deadline(self.server_timeout());
        match write_all(server, head, self.request_side.until(at)).await {
            Ok(head) => {
                self.req_head = head;
                Ok(())
            }
            Err(_) => {
                self.req_head = Vec::new();
                Err(ResponseFail::Closed)
            }
        }
    }

    /// The response side of an exchange, borrowing what it needs from the session.
    fn response_path<'s>(
        &'s mut self,
        server: &'s ServerConn<'_>,
        started: &'s Cell<bool>,
        activity: &'s (Activity, Activity),
        retry_on: RetryOn,
    ) -> (ResponsePath<'s>, Upload<'s>) {
        self.sbuf.clear();
        self.sbuf.reserve(self.bufsize);
        let server_timeout = self.server_timeout();
        (
            ResponsePath {
                core: self.core,
                fe: self.fe,
                be: self.be,
                own_backend: self.fe.own_backend == Some(self.be_id),
                be_id: self.be_id,
                server_index: server.key.1,
                slot: &server.slot,
                txn: &mut self.txn,
                req_head: &mut self.req_head,
                server_timeout,
                sides: Sides {
                    client: &self.client,
                    server: &server.stream,
                    to_client: &activity.0,
                    to_server: &activity.1,
                },
                client_timeout: self.fe.settings.timeouts.client,
                limits: self.limits,
                sbuf: &mut self.sbuf,
                head: &mut self.resp_head,
                started,
                wd: &mut self.response_side,
                cookie: self.cookie_edit.as_ref(),
                log: self.log.as_deref_mut(),
                retry_on,
            },
            Upload {
                cbuf: &mut self.cbuf,
                wd: &mut self.request_side,
            },
        )
    }

    /// A request without a body: send the head, then forward the response.
    async fn exchange_bodiless(
        &mut self,
        server: &ServerConn<'_>,
        info: &RequestInfo,
        close_client: bool,
        retry_on: RetryOn,
    ) -> Result<Exchange, ResponseFail> {
        self.send_head(&server.stream).await?;
        // The request is all in its head: its buffer, empty now, takes the response,
        // so a request in flight holds one buffer, not two. (It comes back to the
        // request side at the next head.)
        if self.cbuf.is_empty() && self.sbuf.capacity() < self.bufsize {
            std::mem::swap(&mut self.cbuf, &mut self.sbuf);
        }
        let started = Cell::new(false);
        // Nothing is uploaded: no write to one side can refresh a read of the other.
        let activity = (Activity::new(false), Activity::new(false));
        let (path, _) = self.response_path(server, &started, &activity, retry_on);
        let (server_reusable, client_reusable) = path.forward(info, close_client).await?;
        Ok(Exchange {
            server_reusable,
            client_reusable,
        })
    }

    /// A request with a body: stream it while the response is read, so that a server
    /// answering early (or with `100 Continue`) is heard at once.
    async fn exchange_with_body(
        &mut self,
        server: &ServerConn<'_>,
        info: RequestInfo,
        close_client: bool,
    ) -> Result<Exchange, ResponseFail> {
        self.send_head(&server.stream).await?;
        let started = Cell::new(false);
        let mut uploaded = 0;
        let result = self
            .exchange_both_ways(server, &info, close_client, &started, &mut uploaded)
            .await;
        if let Some(rec) = self.log.as_mut() {
            rec.bytes_in += uploaded;
        }
        result
    }

    /// The two directions of [`Self::exchange_with_body`], counting the body bytes
    /// uploaded in `uploaded`.
    async fn exchange_both_ways(
        &mut self,
        server: &ServerConn<'_>,
        info: &RequestInfo,
        close_client: bool,
        started: &Cell<bool>,
        uploaded: &mut u64,
    ) -> Result<Exchange, ResponseFail> {
        let mut framing = info.framing;
        let (client_timeout, server_timeout) =
            (self.fe.settings.timeouts.client, self.server_timeout());
        // Writes refresh the other way's reads, unless `option independent-streams`
        // (the frontend's for the client side, the backend's for the server side).
        let activity = (
            Activity::new(!self.fe.settings.independent_streams),
            Activity::new(!self.be.settings.independent_streams),
        );
        let (path, up) = self.response_path(server, started, &activity, RetryOn::NONE);
        let upload = pin!(forward_body(
            Leg::upload(path.sides, (client_timeout, server_timeout)),
            up.cbuf,
            &mut framing,
            up.wd,
            uploaded,
            None,
        ));
        let response = pin!(path.forward(info, close_client));
        match select(upload, response).await {
            Either::Left((Ok(()), response)) => {
                let (server_reusable, client_reusable) = response.await?;
                Ok(Exchange {
                    server_reusable,
                    client_reusable,
                })
            }
            Either::Left((Err(BodyFail::Framing), _)) if !started.get() => {
                Err(ResponseFail::Status(400))
            }
            Either::Left((Err(BodyFail::Framing), _)) => Err(ResponseFail::Broken(Cause::Proxy)),
            Either::Left((Err(BodyFail::Io(cut)), _)) => {
                Err(ResponseFail::Broken(cut.cause(Side::Request)))
            }
            // The response ended first (an early answer, or the last request bytes'
            // completion not yet seen): the rest of the body still goes to the server,
            // within the usual timeouts, so both connections stay in step.
            Either::Right((response, upload)) => {
                let (server_reusable, client_reusable) = response?;
                let complete = upload.await.is_ok();
                Ok(Exchange {
                    server_reusable: server_reusable && complete,
                    client_reusable: client_reusable && complete,
                })
            }
        }
    }
}

/// The two sides of an exchange, and when each was last written to.
#[derive(Clone, Copy)]
struct Sides<'s> {
    client: &'s TcpStream,
    server: &'s TcpStream,
    /// Response bytes written to the client.
    to_client: &'s Activity,
    /// Request bytes written to the server.
    to_server: &'s Activity,
}

/// One direction of a body: read from one side, written to the other, each with its
/// inactivity timeout.
struct Leg<'s> {
    from: &'s TcpStream,
    to: &'s TcpStream,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Marked at each write to `to`.
    wrote_to: &'s Activity,
    /// The writes to `from` (by the other direction), which refresh the read timeout.
    wrote_from: &'s Activity,
}

impl<'s> Leg<'s> {
    /// The request body's way, client to server.
    fn upload(sides: Sides<'s>, (client, server): (Option<Duration>, Option<Duration>)) -> Self {
        Self {
            from: sides.client,
            to: sides.server,
            read_timeout: client,
            write_timeout: server,
            wrote_to: sides.to_server,
            wrote_from: sides.to_client,
        }
    }

    /// The response body's way, server to client.
    fn download(sides: Sides<'s>, (client, server): (Option<Duration>, Option<Duration>)) -> Self {
        Self {
            from: sides.server,
            to: sides.client,
            read_timeout: server,
            write_timeout: client,
            wrote_to: sides.to_client,
            wrote_from: sides.to_server,
        }
    }
}

/// Forwards one body along `leg`, starting with the bytes already in `buf`; leaves in
/// `buf` whatever follows the body (a pipelined request).
/// `moved` counts the bytes written. A response's server `slot` is given back once its
/// last bytes are read, before they are sent.
async fn forward_body(
    leg: Leg<'_>,
    buf: &mut Vec<u8>,
    framing: &mut Framing,
    wd: &mut Watchdog,
    moved: &mut u64,
    slot: Option<&Slot<'_>>,
) -> Result<(), BodyFail> {
    let Leg {
        from,
        to,
        read_timeout,
        write_timeout,
        wrote_to,
        wrote_from,
    } = leg;
    let refresh = read_timeout.map(|t| (wrote_from, t));
    loop {
        if !buf.is_empty() {
            let n = framing.advance(buf, buf.len())?;
            if let (true, Some(slot)) = (framing.is_done(), slot) {
                slot.release();
            }
            if n > 0 {
                let (res, b) = write_range(
                    to,
                    std::mem::take(buf),
                    0..n,
                    wd.until(deadline(write_timeout)),
                )
                .await;
                *buf = b;
                res.map_err(|e| {
                    BodyFail::Io(Cut::Write {
                        timeout: matches!(e, IoFail::Timeout),
                    })
                })?;
                *moved += n as u64;
                wrote_to.mark();
                buf.drain(..n);
            }
        }
        if framing.is_done() {
            return Ok(());
        }
        // A chunk-size or trailer line is only consumed whole: room for the rest of it.
        if buf.len() == buf.capacity() {
            buf.reserve(crate::http::body::LINE_LIMIT);
        }
        let (res, b) = read_more_refreshed(
            from,
            std::mem::take(buf),
            wd.until(deadline(read_timeout)),
            refresh,
        )
        .await;
        *buf = b;
        match res {
            Ok(0) if *framing == Framing::UntilClose => return Ok(()),
            Ok(0) | Err(IoFail::Io(_)) => return Err(BodyFail::Io(Cut::Read { timeout: false })),
            Err(IoFail::Timeout) => return Err(BodyFail::Io(Cut::Read { timeout: true })),
            Ok(_) => {}
        }
    }
}

/// What forwarding a response needs: the session's response-side buffers and sockets.
struct ResponsePath<'s> {
    core: &'s Core,
    fe: &'s Frontend,
    be: &'s Backend,
    /// The backend is the frontend's own (`listen`): its rules run once.
    own_backend: bool,
    /// The backend's index, for `observe`.
    be_id: BackendId,
    /// The server that answers.
    server_index: usize,
    /// The request's slot on that server, given back once its response is read.
    slot: &'s Slot<'s>,
    /// Variables and what the request rules changed.
    txn: &'s mut TxnState,
    /// The request head as sent (response rules may read it).
    req_head: &'s mut Vec<u8>,
    /// `timeout server` for this request.
    server_timeout: Option<Duration>,
    /// The client and server, and when each was last written to.
    sides: Sides<'s>,
    client_timeout: Option<Duration>,
    limits: Limits,
    sbuf: &'s mut Vec<u8>,
    head: &'s mut Vec<u8>,
    /// Set once any byte of the response reached the client.
    started: &'s Cell<bool>,
    /// The persistence cookie to insert or prefix.
    cookie: Option<&'s CookieEdit>,
    /// Deadlines of the response side.
    wd: &'s mut Watchdog,
    /// The transaction's log record, when the frontend logs.
    log: Option<&'s mut Record>,
    /// The failures that end this attempt with [`ResponseFail::Retry`] instead of an
    /// error response, as long as nothing has reached the client.
    retry_on: RetryOn,
}

/// What streaming the request body needs, alongside a [`ResponsePath`].
struct Upload<'s> {
    cbuf: &'s mut Vec<u8>,
    /// Deadlines of the request side.
    wd: &'s mut Watchdog,
}

impl ResponsePath<'_> {
    /// The `http-response` rules of the backend then the frontend, then the
    /// `http-after-response` rules in the same order, on the response head.
    fn response_rules(&mut self) -> Verdict {
        let env = Env {
            core: self.core,
            fe: self.fe,
            be: Some(self.be),
            server: Some(self.server_index),
        };
        let pages = [&self.be.settings.errors, &self.fe.settings.errors];
        let mut msg = Messages {
            req: self.req_head,
            res: self.head,
            side: Side::Response,
        };
        respond(&env, self.own_backend, self.txn, &mut msg, &pages)
    }

    /// Tells `observe` what this response showed of the server.
    fn observed(&self, seen: Observed) {
        crate::checks::observe(&self.core.plan, self.be_id, self.server_index, seen);
    }

    /// A failure that answers `status`, or, when `retry-on` names it (`retryable`)
    /// and nothing has reached the client, sends the request again. Either way it
    /// counts against the server as the error it is.
    fn fail_or_retry(&self, status: u16, retryable: bool) -> ResponseFail {
        if !retryable || self.started.get() {
            return self.fail(status);
        }
        self.observed(Observed::ResponseError);
        ResponseFail::Retry
    }

    fn fail(&self, status: u16) -> ResponseFail {
        if matches!(status, 502 | 504) {
            self.observed(Observed::ResponseError);
        }
        match (self.started.get(), status) {
            (false, _) => ResponseFail::Status(status),
            (true, 504) => ResponseFail::Broken(Cause::ServerTimeout),
            (true, _) => ResponseFail::Broken(Cause::ServerAbort),
        }
    }

    /// Reads the response head (forwarding interim 1xx ones), sends it to the client,
    /// then streams the body or switches to a tunnel. Returns whether the server
    /// connection and the client connection may be reused.
    async fn forward(
        mut self,
        request: &RequestInfo,
        close_client: bool,
    ) -> Result<(bool, bool), ResponseFail> {
        loop {
            let parsed = if self.sbuf.is_empty() {
                Ok(None)
            } else {
                parse_response(self.sbuf, self.limits, request, close_client, self.head)
            };
            let info = match parsed {
                Ok(Some(info)) => info,
                Ok(None) => {
                    let (res, b) = read_more_refreshed(
                        self.sides.server,
                        std::mem::take(self.sbuf),
                        self.wd.until(deadline(self.server_timeout)),
                        self.server_timeout.map(|t| (self.sides.to_server, t)),
                    )
                    .await;
                    *self.sbuf = b;
                    match res {
                        Ok(0) | Err(IoFail::Io(_))
                            if self.sbuf.is_empty() && !self.started.get() =>
                        {
                            return Err(ResponseFail::Closed)
                        }
                        Ok(0) | Err(IoFail::Io(_)) => return Err(self.fail(502)),
                        Err(IoFail::Timeout) => {
                            return Err(self.fail_or_retry(504, self.retry_on.response_timeout))
                        }
                        Ok(_) => continue,
                    }
                }
                Err(_) => return Err(self.fail_or_retry(502, self.retry_on.junk_response)),
            };
            self.sbuf.drain(..info.head_len);
            if let Some(rec) = self.log.as_deref_mut() {
                rec.t_data = rec.now();
                rec.status = Some(info.status);
            }
            if info.status >= 200 {
                let failed = (500..600).contains(&info.status) && !matches!(info.status, 501 | 505);
                self.observed(if failed {
                    Observed::ResponseError
                } else {
                    Observed::Fine
                });
                if self.retry_on.status(info.status) && !self.started.get() {
                    return Err(ResponseFail::Retry);
                }
                capture_headers(
                    &self.fe.captures.response,
                    self.head,
                    &mut self.txn.captured.response,
                );
                if let Verdict::Reply(r) = self.response_rules() {
                    return Err(ResponseFail::Replaced(r));
                }
                match self.cookie {
                    Some(CookieEdit::Insert { set, nocache }) => {
                        cookie::insert_into_response(self.head, set, *nocache)
                    }
                    Some(CookieEdit::Prefix {
                        name,
                        server,
                        nocache,
                    }) => cookie::prefix_in_response(self.head, name, server, *nocache),
                    None => {}
                }
            }
            // The body bytes already read leave in the same send as the head, as
            // HAProxy sends what its buffer holds: one write, one segment.
            let mut framing = info.framing;
            let carried = match info.status {
                200.. => {
                    let at_hand = self.sbuf.len().min(COALESCE_LIMIT);
                    framing.advance(self.sbuf, at_hand)
                }
                _ => Ok(0),
            };
            // Invalid framing among the body bytes that came with the head: nothing
            // has reached the client yet, so it gets a 502, as from HAProxy.
            let Ok(n) = carried else {
                return Err(self.fail(502));
            };
            self.head.extend_from_slice(&self.sbuf[..n]);
            self.sbuf.drain(..n);
            if info.status >= 200 && framing.is_done() {
                self.slot.release();
            }
            let head = std::mem::take(self.head);
            let head_len = head.len() as u64;
            *self.head = write_all(
                self.sides.client,
                head,
                self.wd.until(deadline(self.client_timeout)),
            )
            .await
            .map_err(|_| ResponseFail::Broken(Cause::ClientAbort))?;
            self.sides.to_client.mark();
            self.started.set(true);
            if let Some(rec) = self.log.as_deref_mut() {
                rec.bytes_out += head_len;
            }
            if info.status == 101 && request.upgrade {
                let tunnel = self.txn.tunnel_timeout.or(self.be.settings.timeouts.tunnel);
                let idle_client = first_set(&[tunnel, self.client_timeout]);
                let idle_server = first_set(&[tunnel, self.server_timeout]);
                let pending = std::mem::take(self.sbuf);
                // Boxed: a tunnel's relay is a large future that every response would
                // otherwise carry while it waits for its head (2 KiB per request in
                // flight, measured with heaptrack).
                let tunnelling = Box::pin(crate::tcp::tunnel(
                    self.sides.client,
                    self.sides.server,
                    Vec::new(),
                    pending,
                    idle_client,
                    idle_server,
                    self.core,
                ));
                tunnelling.await;
                return Ok((false, false));
            }
            if (100..200).contains(&info.status) {
                continue;
            }
            let until_close = framing == Framing::UntilClose;
            let mut sent = 0;
            let forwarded = forward_body(
                Leg::download(self.sides, (self.client_timeout, self.server_timeout)),
                self.sbuf,
                &mut framing,
                self.wd,
                &mut sent,
                Some(self.slot),
            )
            .await;
            if let Some(rec) = self.log.as_deref_mut() {
                rec.bytes_out += sent;
            }
            forwarded.map_err(|e| {
                ResponseFail::Broken(match e {
                    BodyFail::Framing => Cause::Proxy,
                    BodyFail::Io(cut) => cut.cause(Side::Response),
                })
            })?;
            let clean = self.sbuf.is_empty();
            return Ok((info.keep_alive && clean, !until_close));
        }
    }
}

/// Writes an error response (a configured `errorfile` or the built-in one); returns
/// the bytes written. The caller lingers so that the client reads it before the
/// connection closes.
async fn send_error(client: &TcpStream, status: u16, pages: &[&ErrorPages]) -> usize {
    write_error(client, ErrorPages::response(pages, status)).await
}

/// Writes a complete error response; returns the bytes written.
async fn write_error(client: &TcpStream, body: Vec<u8>) -> usize {
    let len = body.len();
    let mut wd = Watchdog::default();
    match write_all(client, body, wd.until(deadline(Some(ERROR_WRITE_LIMIT)))).await {
        Ok(_) => len,
        Err(_) => 0,
    }
}
