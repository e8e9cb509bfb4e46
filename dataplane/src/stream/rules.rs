//! Phase 2, the rules: the frontend's and the backend's `http-request` rules and the
//! backend switch; the answers percore makes itself (rule replies, error pages, after
//! the `http-after-response` rules) and the transaction's log line. Never talks to a
//! server.

use super::{Session, ERROR_WRITE_LIMIT};
use crate::http::head::RequestInfo;
use crate::http::message;
use crate::http::message::start_line;
use crate::io::{deadline, linger, write_all, Watchdog};
use crate::log::record::{Cause, Phase};
use crate::plan::{first_set, ErrorPages, Plan};
use crate::rules::http::{
    after_response, error_reply, run as run_http, run_redirects, Env, LocalReply, Messages, Verdict,
};
use crate::rules::value::leading_int;
use crate::rules::{rejects, run_tcp, switch_backend, Content, TcpVerdict};
use compio::net::TcpStream;
use percore_config::rules::sample::Side;

impl<'a> Session<'a> {
    /// The request rules of the frontend, the backend switch, then the backend's rules.
    /// `Err` carries the reply a rule answered with.
    pub(super) fn request_rules(&mut self) -> Result<(), LocalReply> {
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
    pub(super) fn request_rule_set(
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
    pub(super) async fn send_reply(
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
    pub(super) fn after_response(&mut self, env: &Env<'_>, head: &mut Vec<u8>) {
        let mut msg = Messages {
            req: &mut self.req_head,
            res: head,
            side: Side::Response,
        };
        let own_backend = self.fe.own_backend == Some(self.be_id);
        let pages = [&self.be.settings.errors, &self.fe.settings.errors];
        after_response(env, own_backend, &mut self.txn, &mut msg, &pages);
    }

    /// Where the request's rules run once its backend is chosen and before a server is.
    pub(super) fn env(&self) -> Env<'a> {
        Env {
            core: self.core,
            fe: self.fe,
            be: Some(self.be),
            server: None,
        }
    }

    /// Answers with an error page (backend's, then frontend's, then built-in), logs the
    /// transaction as `end` says, and ends.
    pub(super) async fn fail(&mut self, status: u16, end: (Cause, Phase)) {
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

    /// Ends the current transaction's log record, sends its line and starts the next
    /// one. `status` is what percore itself answered, if it did; `sent` the bytes it
    /// wrote for that answer.
    pub(super) fn conclude(
        &mut self,
        status: Option<u16>,
        cause: Cause,
        phase: Phase,
        sent: usize,
    ) {
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
}

/// Writes an error response (a configured `errorfile` or the built-in one); returns
/// the bytes written. The caller lingers so that the client reads it before the
/// connection closes.
pub(super) async fn send_error(client: &TcpStream, status: u16, pages: &[&ErrorPages]) -> usize {
    write_error(client, ErrorPages::response(pages, status)).await
}

/// Writes a complete error response; returns the bytes written.
pub(super) async fn write_error(client: &TcpStream, body: Vec<u8>) -> usize {
    let len = body.len();
    let mut wd = Watchdog::default();
    match write_all(client, body, wd.until(deadline(Some(ERROR_WRITE_LIMIT)))).await {
        Ok(_) => len,
        Err(_) => 0,
    }
}
