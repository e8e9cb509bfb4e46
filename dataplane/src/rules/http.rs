//! Running an HTTP rule set (`http-request`, `http-response`, `http-after-response`,
//! `redirect`) on a message: header and URI edits in place, variables, and the local
//! replies that `deny`, `return`, `tarpit` and `redirect` answer with.

use super::convert::expand;
use super::vars::Vars;
use super::{holds, render, sample, Context};
use crate::core::Core;
use crate::http::errors::{builtin, reason};
use crate::http::message::{
    append_header, header_lines, remove_header, splice, start_line, target_range, Target,
};
use crate::plan::{Backend, ErrorPages, Frontend};
use percore_config::log::LogLevel;
use percore_config::rules::acl::Acls;
use percore_config::rules::action::{
    HeaderReplace, HttpAction, Redirect, RedirectKind, Reply, ReplyBody, Service, TimeoutKind,
    UriPart,
};
use percore_config::rules::logformat::LogFormat;
use percore_config::rules::sample::Side;
use percore_config::rules::{Rule, Rules};
use std::net::SocketAddr;
use std::time::Duration;

/// What a transaction's rules may change besides its messages.
pub struct TxnState {
    /// Variables of every scope.
    pub vars: Vars,
    /// The client address fetches and `X-Forwarded-For` see.
    pub src: SocketAddr,
    /// The address the client connected to.
    pub dst: SocketAddr,
    /// `set-timeout server`.
    pub server_timeout: Option<Duration>,
    /// `set-timeout tunnel`.
    pub tunnel_timeout: Option<Duration>,
    /// Capture slots.
    pub captured: super::capture::Captured,
    /// `set-log-level`: the level of the transaction's log line.
    pub log_level: Option<LogLevel>,
    /// The request's id (`unique-id-format`); empty without one.
    pub unique_id: Vec<u8>,
    /// The request's number in the process (`%rt`), when the frontend numbers them.
    pub request_number: u64,
    /// The TLVs of the connection's PROXY protocol v2 header (`fc_pp_*`).
    pub proxy_tlvs: Vec<(u8, Vec<u8>)>,
    /// A `tcp-request connection expect-proxy` rule applied.
    pub expect_proxy: bool,
    /// The request body `option http-buffer-request` waited for, de-chunked, while the
    /// request rules run (`req.body`).
    pub body: Vec<u8>,
}

impl TxnState {
    /// The state of a new connection from `src` to `dst`: nothing set yet.
    pub fn new(src: SocketAddr, dst: SocketAddr) -> Self {
        TxnState {
            vars: Vars::default(),
            src,
            dst,
            server_timeout: None,
            tunnel_timeout: None,
            captured: Default::default(),
            log_level: None,
            unique_id: Vec::new(),
            request_number: 0,
            proxy_tlvs: Vec::new(),
            expect_proxy: false,
            body: Vec::new(),
        }
    }
}

/// Where the rules run: the proxies and server involved so far.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The executor.
    pub core: &'a Core,
    /// The frontend.
    pub fe: &'a Frontend,
    /// The backend, once chosen.
    pub be: Option<&'a Backend>,
    /// The server, once chosen.
    pub server: Option<usize>,
}

impl<'a> Env<'a> {
    /// The fetch context over these messages.
    pub fn context<'c>(&self, st: &'c TxnState, req: &'c [u8], res: &'c [u8]) -> Context<'c>
    where
        'a: 'c,
    {
        Context {
            core: self.core,
            fe: self.fe,
            be: self.be,
            server: self.server,
            src: st.src,
            dst: st.dst,
            req,
            res,
            vars: &st.vars,
            captured: &st.captured,
            payload: &[],
            res_payload: &[],
            body: &st.body,
            proxy_tlvs: &st.proxy_tlvs,
            payload_final: true,
            may_change: std::cell::Cell::new(false),
            unique_id: &st.unique_id,
            request_number: st.request_number,
        }
    }
}

/// A response percore writes itself.
#[derive(Debug)]
pub struct LocalReply {
    /// Status line and headers, ending with the empty line.
    pub head: Vec<u8>,
    /// The body.
    pub body: Vec<u8>,
    /// The client connection closes after it (`deny`, `tarpit`).
    pub close: bool,
    /// Hold the request for `timeout tarpit` first.
    pub tarpit: bool,
}

impl LocalReply {
    /// No answer at all: the connection is closed (a TCP `reject` on an HTTP request).
    pub fn close_silently() -> Self {
        Self {
            head: Vec::new(),
            body: Vec::new(),
            close: true,
            tarpit: false,
        }
    }
}

/// How a rule set ended.
#[derive(Debug)]
pub enum Verdict {
    /// Go on with the next step.
    Continue,
    /// Answer with this instead.
    Reply(LocalReply),
}

/// The message a rule set edits, and the other one it may read.
pub struct Messages<'m> {
    /// The request head.
    pub req: &'m mut Vec<u8>,
    /// The response head (empty on the request side).
    pub res: &'m mut Vec<u8>,
    /// Which of the two the actions edit.
    pub side: Side,
}

impl Messages<'_> {
    fn edited(&mut self) -> &mut Vec<u8> {
        match self.side {
            Side::Request => self.req,
            Side::Response => self.res,
        }
    }
}

/// Runs `rules` in order until one stops the set.
pub fn run(
    rules: &[Rule<HttpAction>],
    acls: &Acls,
    env: &Env<'_>,
    st: &mut TxnState,
    msg: &mut Messages<'_>,
    pages: &[&ErrorPages],
) -> Verdict {
    let mut text = Vec::new();
    for rule in rules {
        let cx = env.context(st, msg.req, msg.res);
        if !holds(&rule.cond, acls, &cx) {
            continue;
        }
        match &rule.action {
            HttpAction::Allow => return Verdict::Continue,
            HttpAction::Reply { reply, tarpit } => {
                let mut r = local_reply(reply, &cx, pages);
                r.close |= *tarpit || reply_closes(&rule.action, msg.side);
                r.tarpit = *tarpit;
                return Verdict::Reply(r);
            }
            HttpAction::Redirect(r) => return Verdict::Reply(redirect(r, &cx)),
            HttpAction::Reject => return Verdict::Reply(LocalReply::close_silently()),
            HttpAction::UseService(Service::PrometheusExporter) => {
                let body = crate::prometheus::render(cx.core, start_line(cx.req).1);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                return Verdict::Reply(LocalReply {
                    head: head.into_bytes(),
                    body,
                    close: false,
                    tarpit: false,
                });
            }
            HttpAction::SetHeader(name, lf) => {
                render(lf, &cx, &mut text);
                let head = msg.edited();
                remove_header(head, name);
                append_header(head, name.as_bytes(), &text);
            }
            HttpAction::AddHeader(name, lf) => {
                render(lf, &cx, &mut text);
                append_header(msg.edited(), name.as_bytes(), &text);
            }
            HttpAction::DelHeader(name) => remove_header(msg.edited(), name),
            HttpAction::ReplaceHeader(r) => {
                render(&r.replace, &cx, &mut text);
                replace_header(msg.edited(), r, &text);
            }
            HttpAction::SetUri(part, lf) => {
                render(lf, &cx, &mut text);
                set_uri(msg.req, *part, &text);
            }
            HttpAction::ReplaceUri(part, regex, lf) => {
                render(lf, &cx, &mut text);
                let uri = start_line(msg.req).1;
                let t = Target::of(uri);
                let (from, to) = match part {
                    UriPart::Path => (t.path_start, t.query_mark),
                    UriPart::Pathq => (t.path_start, uri.len()),
                    UriPart::Query | UriPart::Uri => (0, uri.len()),
                };
                let Some(caps) = regex.captures(&uri[from..to]) else {
                    continue;
                };
                let mut new = Vec::with_capacity(uri.len());
                new.extend_from_slice(&uri[..from]);
                expand(&text, &caps, &mut new);
                new.extend_from_slice(&uri[to..]);
                let range = target_range(msg.req);
                splice(msg.req, range, &new);
            }
            HttpAction::SetMethod(lf) => {
                render(lf, &cx, &mut text);
                let len = start_line(msg.req).0.len();
                splice(msg.req, 0..len, &text);
            }
            HttpAction::SetStatus(code, why) => {
                // Status and reason: after the version, up to the end of the line.
                let from = (start_line(msg.res).0.len() + 1).min(msg.res.len());
                let to = memchr::memchr(b'\r', msg.res)
                    .unwrap_or(msg.res.len())
                    .max(from);
                let why = why.as_deref().unwrap_or_else(|| reason(*code));
                let new = format!("{code} {why}");
                splice(msg.res, from..to, new.as_bytes());
            }
            HttpAction::SetVar(name, s) => {
                let v = sample(s, &cx).map(|v| v.into_owned());
                if let Some(v) = v {
                    st.vars.set(name, v);
                }
            }
            HttpAction::SetVarFmt(name, lf) => {
                render(lf, &cx, &mut text);
                st.vars
                    .set(name, super::value::Value::Str(text.clone().into()));
            }
            HttpAction::UnsetVar(name) => st.vars.unset(name),
            HttpAction::Capture(s, id) => {
                let slots = match msg.side {
                    Side::Request => &env.fe.captures.request,
                    Side::Response => &env.fe.captures.response,
                };
                // `cx` borrows `st`: the value is copied out before the slot is written.
                let value = slots.get(*id).and_then(|slot| {
                    let v = sample(s, &cx)?;
                    let b = v.as_bytes();
                    Some(b[..b.len().min(slot.len)].to_vec())
                });
                if let Some(v) = value {
                    let values = match msg.side {
                        Side::Request => &mut st.captured.request,
                        Side::Response => &mut st.captured.response,
                    };
                    if values.len() <= *id {
                        values.resize(*id + 1, None);
                    }
                    values[*id] = Some(v);
                }
            }
            HttpAction::SetSrc(s) => {
                if let Some(ip) = sample(s, &cx).and_then(|v| v.as_ip()) {
                    st.src = SocketAddr::new(ip, st.src.port());
                }
            }
            HttpAction::SetDst(s) => {
                if let Some(ip) = sample(s, &cx).and_then(|v| v.as_ip()) {
                    st.dst = SocketAddr::new(ip, st.dst.port());
                }
            }
            HttpAction::SetLogLevel(level) => st.log_level = Some(*level),
            HttpAction::SetTimeout(TimeoutKind::Server, d) => st.server_timeout = Some(*d),
            HttpAction::SetTimeout(TimeoutKind::Tunnel, d) => st.tunnel_timeout = Some(*d),
        }
    }
    Verdict::Continue
}

/// The rule sets a response passes through, in HAProxy's order: the backend's, then the
/// frontend's. The backend half of a `listen` is its frontend: its rules run once.
fn response_sets<'r>(env: &Env<'r>, own_backend: bool) -> impl Iterator<Item = &'r Rules> + Clone {
    let be = env.be.filter(|_| !own_backend).map(|b| &b.rules);
    be.into_iter().chain([&env.fe.rules])
}

/// Runs the `http-response` rules, then the `http-after-response` rules, on a response
/// from a server.
pub fn respond(
    env: &Env<'_>,
    own_backend: bool,
    st: &mut TxnState,
    msg: &mut Messages<'_>,
    pages: &[&ErrorPages],
) -> Verdict {
    for rules in response_sets(env, own_backend) {
        if let Verdict::Reply(r) = run(&rules.http_response, &rules.acls, env, st, msg, pages) {
            return Verdict::Reply(r);
        }
    }
    after_response(env, own_backend, st, msg, pages);
    Verdict::Continue
}

/// Runs the `http-after-response` rules on a response (a server's, or one percore made).
/// A reply from these rules is not applied: the response is already decided.
pub fn after_response(
    env: &Env<'_>,
    own_backend: bool,
    st: &mut TxnState,
    msg: &mut Messages<'_>,
    pages: &[&ErrorPages],
) {
    for rules in response_sets(env, own_backend) {
        let _ = run(&rules.http_after_response, &rules.acls, env, st, msg, pages);
    }
}

/// `deny` closes the client connection, as HAProxy does; `return` does not.
fn reply_closes(action: &HttpAction, side: Side) -> bool {
    match action {
        HttpAction::Reply { reply, .. } => {
            side == Side::Response
                || matches!(reply.body, ReplyBody::ErrorPage) && reply.status >= 400
        }
        _ => false,
    }
}

/// Runs `redirect` lines: the first whose condition holds answers.
pub fn run_redirects(
    rules: &[Rule<Redirect>],
    acls: &Acls,
    env: &Env<'_>,
    st: &TxnState,
    req: &[u8],
) -> Verdict {
    let cx = env.context(st, req, &[]);
    rules
        .iter()
        .find(|r| holds(&r.cond, acls, &cx))
        .map_or(Verdict::Continue, |r| {
            Verdict::Reply(redirect(&r.action, &cx))
        })
}

/// Replaces a header's value (or each of its comma-separated values) where the regex
/// matches, with the rendered template and its back-references.
fn replace_header(head: &mut Vec<u8>, r: &HeaderReplace, template: &[u8]) {
    let lines: Vec<_> = header_lines(head)
        .filter(|h| head[h.name.clone()].eq_ignore_ascii_case(r.name.as_bytes()))
        .map(|h| h.value)
        .collect();
    for range in lines.into_iter().rev() {
        let value = &head[range.clone()];
        let mut new = Vec::with_capacity(value.len());
        let parts: Vec<&[u8]> = if r.each_value {
            value.split(|&c| c == b',').collect()
        } else {
            vec![value]
        };
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                new.push(b',');
            }
            let lead = part.len() - part.trim_ascii_start().len();
            new.extend_from_slice(&part[..lead]);
            let part = &part[lead..];
            match r.regex.captures(part) {
                Some(caps) => expand(template, &caps, &mut new),
                None => new.extend_from_slice(part),
            }
        }
        splice(head, range, &new);
    }
}

/// `set-path`, `set-pathq`, `set-query`, `set-uri`.
fn set_uri(req: &mut Vec<u8>, part: UriPart, text: &[u8]) {
    let range = target_range(req);
    let uri = &req[range.clone()];
    let t = Target::of(uri);
    let mut new = Vec::with_capacity(uri.len() + text.len());
    match part {
        UriPart::Uri => new.extend_from_slice(text),
        UriPart::Path => {
            new.extend_from_slice(&uri[..t.path_start]);
            new.extend_from_slice(text);
            new.extend_from_slice(&uri[t.query_mark..]);
        }
        UriPart::Pathq => {
            new.extend_from_slice(&uri[..t.path_start]);
            new.extend_from_slice(text);
        }
        UriPart::Query => {
            new.extend_from_slice(&uri[..t.query_mark]);
            if !text.is_empty() {
                new.push(b'?');
                new.extend_from_slice(text);
            }
        }
    }
    splice(req, range, &new);
}

/// The response for `deny`, `return` or `tarpit`.
fn local_reply(reply: &Reply, cx: &Context<'_>, pages: &[&ErrorPages]) -> LocalReply {
    let body = match &reply.body {
        ReplyBody::Response(r) => return with_headers(split_reply(r.to_vec()), reply, cx),
        ReplyBody::ErrorPage | ReplyBody::Imported(_) => {
            let section = match &reply.body {
                ReplyBody::Imported(name) => cx.core.plan.http_errors.iter().find(|s| s.0 == *name),
                _ => None,
            };
            let custom = section
                .into_iter()
                .map(|s| &s.1)
                .chain(pages.iter().copied())
                .find_map(|p| p.get(reply.status));
            // An empty custom page (`/dev/null`) closes without an answer.
            match custom {
                Some(page) => return with_headers(split_reply(page.to_vec()), reply, cx),
                None if reply.status >= 400 => {
                    return with_headers(split_reply(builtin(reply.status)), reply, cx)
                }
                None => Vec::new(),
            }
        }
        ReplyBody::Static(b) => b.to_vec(),
        ReplyBody::Format(lf) => {
            let mut b = Vec::new();
            render(lf, cx, &mut b);
            b
        }
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        reply.status,
        reason(reply.status),
        body.len()
    )
    .into_bytes();
    if let Some(ct) = &reply.content_type {
        head.extend_from_slice(format!("content-type: {ct}\r\n").as_bytes());
    }
    write_headers(&reply.headers, cx, &mut head);
    head.extend_from_slice(b"\r\n");
    LocalReply {
        head,
        body,
        close: false,
        tarpit: false,
    }
}

/// A page's reply with the rule's headers (`auth`'s WWW-Authenticate, `hdr` lines)
/// joining the page's own.
fn with_headers(mut r: LocalReply, reply: &Reply, cx: &Context<'_>) -> LocalReply {
    if r.head.ends_with(b"\r\n\r\n") {
        r.head.truncate(r.head.len() - 2);
        write_headers(&reply.headers, cx, &mut r.head);
        r.head.extend_from_slice(b"\r\n");
    }
    r
}

/// Appends a reply's `hdr` lines, rendered, to `head`.
fn write_headers(headers: &[(String, LogFormat)], cx: &Context<'_>, head: &mut Vec<u8>) {
    let mut value = Vec::new();
    for (name, lf) in headers {
        render(lf, cx, &mut value);
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(&value);
        head.extend_from_slice(b"\r\n");
    }
}

/// The error page for `status` (a configured `errorfile` or the built-in one) as a
/// reply that closes the connection.
pub fn error_reply(status: u16, pages: &[&ErrorPages]) -> LocalReply {
    split_reply(ErrorPages::response(pages, status))
}

/// Splits a complete response (an error page) into head and body.
fn split_reply(mut page: Vec<u8>) -> LocalReply {
    let at = page
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(page.len(), |p| p + 4);
    let body = page.split_off(at);
    LocalReply {
        head: page,
        body,
        close: true,
        tarpit: false,
    }
}

/// The response for a redirect rule.
fn redirect(r: &Redirect, cx: &Context<'_>) -> LocalReply {
    let mut target = Vec::new();
    render(&r.target, cx, &mut target);
    let uri = start_line(cx.req).1;
    let t = Target::of(uri);
    let tail = if r.drop_query { t.path() } else { t.pathq() };
    let mut location = Vec::new();
    match r.kind {
        RedirectKind::Location => location.extend_from_slice(&target),
        RedirectKind::Prefix => {
            if target != b"/" {
                location.extend_from_slice(&target);
            }
            location.extend_from_slice(tail);
        }
        RedirectKind::Scheme => {
            let host = crate::http::message::header_values(cx.req, Some("host"), false)
                .next()
                .unwrap_or_default();
            location.extend_from_slice(&target);
            location.extend_from_slice(b"://");
            location.extend_from_slice(host);
            location.extend_from_slice(tail);
        }
    }
    if r.append_slash && r.kind != RedirectKind::Location && !location.ends_with(b"/") {
        location.push(b'/');
    }
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nlocation: ",
        r.code,
        reason(r.code)
    )
    .into_bytes();
    head.extend_from_slice(&location);
    head.extend_from_slice(b"\r\n");
    if let Some(c) = &r.set_cookie {
        head.extend_from_slice(format!("set-cookie: {c}; path=/\r\n").as_bytes());
    }
    if let Some(c) = &r.clear_cookie {
        head.extend_from_slice(
            format!(
                "set-cookie: {c}; path=/; Max-Age=0; Expires=Thu, 01-Jan-1970 00:00:01 GMT\r\n"
            )
            .as_bytes(),
        );
    }
    head.extend_from_slice(b"\r\n");
    LocalReply {
        head,
        body: Vec::new(),
        close: false,
        tarpit: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parts_are_set() {
        let mut req = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
        set_uri(&mut req, UriPart::Path, b"/v2/a/b");
        assert!(req.starts_with(b"GET /v2/a/b?x=1 HTTP/1.1\r\n"));
        set_uri(&mut req, UriPart::Query, b"");
        assert!(req.starts_with(b"GET /v2/a/b HTTP/1.1\r\n"));
        set_uri(&mut req, UriPart::Query, b"y=2");
        assert!(req.starts_with(b"GET /v2/a/b?y=2 HTTP/1.1\r\n"));
        set_uri(&mut req, UriPart::Pathq, b"/z");
        assert!(req.starts_with(b"GET /z HTTP/1.1\r\n"));
    }

    #[test]
    fn header_values_are_replaced() {
        let mut head = b"GET / HTTP/1.1\r\nX-L: v1, v2,x\r\n\r\n".to_vec();
        let r = HeaderReplace {
            name: "x-l".into(),
            regex: regex::bytes::Regex::new("^v(.)$").unwrap(),
            replace: Default::default(),
            each_value: true,
        };
        replace_header(&mut head, &r, b"w\\1");
        assert_eq!(head, b"GET / HTTP/1.1\r\nX-L: w1, w2,x\r\n\r\n");
    }
}
