//! Phase 4, the exchange: a whole request (no body, or all of it at hand) leaves in
//! one write and may be sent again; a body still arriving streams while the response
//! is read, so that a server answering early is heard at once. Never parses a
//! response (`response` does).

use super::response::ResponseFail;
use super::transfer::{forward_body, BodyFail, Leg};
use super::Session;
use crate::connect::ServerConn;
use crate::http::head::RequestInfo;
use crate::io::{deadline, write_all, Activity};
use crate::log::record::Cause;
use compio::net::TcpStream;
use futures_util::future::{select, Either};
use percore_config::rules::sample::Side;
use percore_config::RetryOn;
use std::cell::Cell;
use std::pin::pin;
use std::time::Duration;

/// What a completed exchange allows next.
pub(super) struct Exchange {
    /// The server connection may carry another request.
    pub(super) server_reusable: bool,
    /// The client connection may carry another request.
    pub(super) client_reusable: bool,
}

impl<'a> Session<'a> {
    /// `timeout server`, or what `set-timeout server` made it.
    pub(super) fn server_timeout(&self) -> Option<Duration> {
        self.txn.server_timeout.or(self.be.settings.timeouts.server)
    }

    /// Sends the rewritten request head to the server, and in the same write the first
    /// `body` bytes of the client buffer (a whole body; they stay there).
    pub(super) async fn send_head(
        &mut self,
        server: &TcpStream,
        body: usize,
    ) -> Result<(), ResponseFail> {
        let mut head = std::mem::take(&mut self.req_head);
        let head_len = head.len();
        head.extend_from_slice(&self.cbuf[..body]);
        let at = deadline(self.server_timeout());
        match write_all(server, head, self.request_side.until(at)).await {
            Ok(mut head) => {
                head.truncate(head_len);
                self.req_head = head;
                Ok(())
            }
            Err(_) => {
                self.req_head = Vec::new();
                Err(ResponseFail::Closed)
            }
        }
    }

    /// A whole request (its body, `body` bytes long, all in the client buffer): send
    /// it in one write, wait for the response to begin, then forward it; the body
    /// leaves the client buffer once the exchange completes, so that a retry can send
    /// it again. The steps are boxed apart, so that a request whose server is slow to
    /// answer holds only the small waiting step; and it holds no read buffer unless
    /// its core lets it keep one (`Core::buffered_wait`).
    pub(super) async fn exchange_whole(
        &mut self,
        server: &ServerConn<'_>,
        (info, body): (&RequestInfo, usize),
        close_client: bool,
        retry_on: RetryOn,
    ) -> Result<Exchange, ResponseFail> {
        let sending = Box::pin(self.send_head(&server.stream, body));
        sending.await?;
        let core = self.core;
        let buffered = core.buffered_wait();
        match (&buffered, self.cbuf.is_empty()) {
            // The request is all sent: its buffer, empty now, takes the response, so a
            // request in flight holds one buffer, not two. (It comes back to the
            // request side at the next head.)
            (Some(_), true) if self.sbuf.capacity() < self.bufsize => {
                std::mem::swap(&mut self.cbuf, &mut self.sbuf);
            }
            // The client buffer keeps the body (for a retry) or pipelined bytes.
            (Some(_), _) => self.sbuf.reserve(self.bufsize),
            // Waiting without a buffer: the response gets one when it comes.
            (None, true) => {
                self.cbuf = Vec::new();
                self.sbuf = Vec::new();
            }
            (None, false) => self.sbuf = Vec::new(),
        }
        let started = Cell::new(false);
        // Nothing is uploaded: no write to one side can refresh a read of the other.
        let activity = (Activity::new(false), Activity::new(false));
        let waits_unbuffered = buffered.is_none();
        let (mut path, _) = self.response_path(server, &started, &activity, retry_on);
        path.buffered = buffered;
        if waits_unbuffered {
            let waiting = Box::pin(path.wait_for_server());
            waiting.await?;
        }
        let forwarding = Box::pin(path.forward(info, close_client));
        let (server_reusable, client_reusable) = forwarding.await?;
        self.cbuf.drain(..body);
        if let Some(rec) = self.log.as_mut() {
            rec.bytes_in += body as u64;
        }
        Ok(Exchange {
            server_reusable,
            client_reusable,
        })
    }

    /// A request with a body: stream it while the response is read, so that a server
    /// answering early (or with `100 Continue`) is heard at once.
    pub(super) async fn exchange_with_body(
        &mut self,
        server: &ServerConn<'_>,
        info: RequestInfo,
        close_client: bool,
    ) -> Result<Exchange, ResponseFail> {
        self.send_head(&server.stream, 0).await?;
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
    pub(super) async fn exchange_both_ways(
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
        // The response is read while the body goes up: its read is posted at once,
        // with its buffer.
        self.sbuf.reserve(self.bufsize);
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
