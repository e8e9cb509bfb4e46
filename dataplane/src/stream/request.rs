//! Phase 1, the request head: waiting for it (keep-alive idle, `timeout
//! http-request`), giving the buffers back while a connection is idle, parsing it, and
//! what the request itself decides (`option http-buffer-request`, `monitor-uri`, the
//! header additions, the unique id). Never talks to a server.

use super::{Session, ERROR_WRITE_LIMIT};
use crate::connect::Attempts;
use crate::http::body::FramingError;
use crate::http::head::{parse_request, RequestEdits, RequestInfo};
use crate::http::message;
use crate::io::{deadline, read_more, read_ready, write_all, Deadline, IoFail, Watchdog};
use crate::log::record::{Cause, Record};
use crate::plan::first_set;
use crate::rules::{holds, render_log};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a connection waiting for its next request keeps its buffers.
const IDLE_GRACE: Duration = Duration::from_millis(100);

/// How waiting for a request head ended, when it did not give a request.
pub(super) enum HeadWait {
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

impl<'a> Session<'a> {
    /// The length of the request's body when all of it is in the client buffer
    /// already (0 without a body), its chunk-size lines made canonical in place on the
    /// way; `None` while some of it is still to come. `Err` for invalid chunked
    /// framing.
    pub(super) fn whole_body(&mut self, info: &RequestInfo) -> Result<Option<usize>, FramingError> {
        let mut framing = info.framing;
        let at_hand = self.cbuf.len();
        let n = framing.advance(&mut self.cbuf, at_hand)?;
        Ok(framing.is_done().then_some(n))
    }

    /// Waits for and parses the next request head into `req_head`.
    pub(super) async fn wait_head(&mut self) -> Result<RequestInfo, HeadWait> {
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
    pub(super) async fn read_client(&mut self, at: Deadline) -> Result<usize, IoFail> {
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
    pub(super) fn release_buffers(&mut self) {
        self.cbuf = Vec::new();
        self.sbuf = Vec::new();
        self.req_head = Vec::new();
        self.resp_head = Vec::new();
    }

    /// `option http-buffer-request`: reads the request body until it is complete or
    /// fills the buffer, keeping a de-chunked copy for the rules (`req.body`); the bytes
    /// stay in the client buffer to be forwarded. Answers `100 Continue` itself when
    /// the client waits for one, as HAProxy does. `Err` says why it stopped, with the
    /// error to answer unless the client went away.
    pub(super) async fn buffer_body(
        &mut self,
        info: &mut RequestInfo,
    ) -> Result<(), (Option<u16>, Cause)> {
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

    /// Numbers the request (`%rt`) and makes its `unique-id-format` id, as the
    /// frontend asks.
    pub(super) fn identify(&mut self) {
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

    /// Forgets what the previous request's rules set. Not called for a connection's
    /// first request: what the connection's TCP rules set belongs to it.
    pub(super) fn new_transaction(&mut self) {
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

    /// Whether the request is for the frontend's `monitor-uri`.
    pub(super) fn is_monitor_request(&self) -> bool {
        let Some(uri) = &self.fe.monitor_uri else {
            return false;
        };
        self.target() == uri.as_bytes()
    }

    /// Whether `monitor fail` makes the monitor URI report a failure now.
    pub(super) fn monitor_fails(&self) -> bool {
        if self.fe.monitor_fail.is_none() {
            return false;
        }
        let env = self.env();
        let cx = env.context(&self.txn, &self.req_head, &[]);
        holds(&self.fe.monitor_fail, &self.fe.rules.acls, &cx)
    }

    /// The request target of the current request: the rewritten head starts with
    /// "METHOD SP TARGET SP".
    pub(super) fn target(&self) -> &[u8] {
        self.req_head
            .split(|&c| c == b' ')
            .nth(1)
            .unwrap_or_default()
    }

    /// The header additions this frontend/backend pair makes for this client.
    pub(super) fn edits(&self) -> RequestEdits<'a> {
        let (fe, be) = (self.fe, self.be);
        let (src, dst) = (self.txn.src, self.txn.dst);
        let ffs = [
            fe.settings.forwardfor.as_ref(),
            be.settings.forwardfor.as_ref(),
        ];
        let forwarded_for =
            combined(ffs, |f| f.except.is_some_and(|n| n.contains(src.ip()))).map(|f| {
                // `if-none` holds only when every side that asks says it.
                let if_none = ffs.iter().flatten().all(|f| f.if_none);
                (f.header.as_str(), src.ip(), if_none)
            });
        let ots = [
            fe.settings.originalto.as_ref(),
            be.settings.originalto.as_ref(),
        ];
        let original_to = combined(ots, |o| o.except.is_some_and(|n| n.contains(dst.ip())))
            .map(|o| (o.header.as_str(), dst.ip()));
        RequestEdits {
            forwarded_for,
            original_to,
            close_server: self.close_server,
        }
    }
}

/// The `option forwardfor` or `option originalto` a frontend/backend pair applies, as
/// HAProxy combines the two: the header is added when either side asks, unless
/// `excepted` holds for either side's option; the backend's option (its header name)
/// wins.
fn combined<T>(sides: [Option<&T>; 2], excepted: impl Fn(&T) -> bool) -> Option<&T> {
    if sides.iter().flatten().any(|o| excepted(o)) {
        return None;
    }
    sides[1].or(sides[0])
}
