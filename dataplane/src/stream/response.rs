//! Phase 5, the response: reading its head (forwarding interim 1xx), the
//! `http-response` rules and the persistence cookie, sending it and its body, or a
//! tunnel after `101`. Never decides a retry itself: it says a failure is retryable
//! and the session decides.

use super::route::CookieEdit;
use super::transfer::{forward_body, BodyFail, Leg, Sides};
use super::Session;
use crate::checks::Observed;
use crate::connect::{ServerConn, Slot};
use crate::core::{BufferedWait, Core};
use crate::http::body::Framing;
use crate::http::cookie;
use crate::http::head::{parse_response, Limits, RequestInfo};
use crate::io::{
    deadline, read_more_refreshed, read_ready, wait_readable, write_all, Activity, IoFail, Watchdog,
};
use crate::log::record::{Cause, Record};
use crate::plan::{first_set, Backend, BackendId, Frontend};
use crate::rules::capture::capture_headers;
use crate::rules::http::{respond, Env, LocalReply, Messages, TxnState, Verdict};
use percore_config::rules::sample::Side;
use percore_config::RetryOn;
use std::cell::Cell;
use std::time::Duration;

/// The most response body bytes copied behind the head so that both leave in one
/// send; what follows is forwarded from the read buffer as it is.
const COALESCE_LIMIT: usize = 16 * 1024;

/// How forwarding a response ended, when it did not complete.
pub(super) enum ResponseFail {
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

impl<'a> Session<'a> {
    /// The response side of an exchange, borrowing what it needs from the session.
    pub(super) fn response_path<'s>(
        &'s mut self,
        server: &'s ServerConn<'_>,
        started: &'s Cell<bool>,
        activity: &'s (Activity, Activity),
        retry_on: RetryOn,
    ) -> (ResponsePath<'s>, Upload<'s>) {
        self.sbuf.clear();
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
                bufsize: self.bufsize,
                sbuf: &mut self.sbuf,
                head: &mut self.resp_head,
                started,
                wd: &mut self.response_side,
                cookie: self.cookie_edit.as_ref(),
                log: self.log.as_deref_mut(),
                retry_on,
                buffered: None,
            },
            Upload {
                cbuf: &mut self.cbuf,
                wd: &mut self.request_side,
            },
        )
    }
}

/// What forwarding a response needs: the session's response-side buffers and sockets.
pub(super) struct ResponsePath<'s> {
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
    pub(super) sides: Sides<'s>,
    client_timeout: Option<Duration>,
    limits: Limits,
    /// `tune.bufsize`: the capacity `sbuf` gets when it has none.
    bufsize: usize,
    /// Server bytes read and not yet forwarded. It has no capacity when the response
    /// was waited for without a buffer: then the server has something to read.
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
    /// The core's leave to wait for this response with a read buffer, given back
    /// when its head has come.
    pub(super) buffered: Option<BufferedWait<'s>>,
}

/// What streaming the request body needs, alongside a [`ResponsePath`].
pub(super) struct Upload<'s> {
    pub(super) cbuf: &'s mut Vec<u8>,
    /// Deadlines of the request side.
    pub(super) wd: &'s mut Watchdog,
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

    /// Waits, holding no buffer, until the server has sent something or closed (the
    /// read that follows tells which), as HAProxy waits for every response; `timeout
    /// server` ends the wait as it would end a read.
    pub(super) async fn wait_for_server(&mut self) -> Result<(), ResponseFail> {
        let at = deadline(self.server_timeout);
        match wait_readable(self.sides.server, self.wd.until(at)).await {
            Err(IoFail::Timeout) => Err(self.fail_or_retry(504, self.retry_on.response_timeout)),
            Ok(()) | Err(IoFail::Io(_)) => Ok(()),
        }
    }

    /// Reads the response head (forwarding interim 1xx ones), sends it to the client,
    /// then streams the body or switches to a tunnel. Returns whether the server
    /// connection and the client connection may be reused.
    pub(super) async fn forward(
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
                    // A response waited for without a buffer (`wait_for_server`) has
                    // something to read: it is read at once, without posting a read.
                    let ready = if self.sbuf.capacity() == 0 {
                        self.sbuf.reserve(self.bufsize);
                        read_ready(self.sides.server, self.sbuf).transpose()
                    } else {
                        None
                    };
                    let res = match ready {
                        Some(res) => res.map_err(IoFail::from),
                        None => {
                            let (res, b) = read_more_refreshed(
                                self.sides.server,
                                std::mem::take(self.sbuf),
                                self.wd.until(deadline(self.server_timeout)),
                                self.server_timeout.map(|t| (self.sides.to_server, t)),
                            )
                            .await;
                            *self.sbuf = b;
                            res
                        }
                    };
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
            self.buffered = None;
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
