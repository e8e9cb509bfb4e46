//! Request and response heads: parsed with httparse, checked more strictly than HAProxy
//! 2.6 where RFC 9112 allows, and rewritten in one pass into the head that is sent on
//! (hop-by-hop headers dropped, `Connection` set for the chosen connection mode,
//! `X-Forwarded-For` / `X-Original-To` added). Never reads or writes a socket.

use super::body::Framing;
use std::mem::MaybeUninit;
use std::net::IpAddr;

/// Room reserved beyond the received head for the headers percore adds.
const HEAD_ROOM: usize = 256;

/// Header slots kept on the stack; a `tune.http.maxhdr` above this uses the heap.
const STACK_HEADERS: usize = 128;

/// The slots httparse fills: on the stack for usual limits, so a head is parsed
/// without allocating.
fn header_slots<'a, 'b>(
    stack: &'a mut [MaybeUninit<httparse::Header<'b>>; STACK_HEADERS],
    heap: &'a mut Vec<MaybeUninit<httparse::Header<'b>>>,
    max: usize,
) -> &'a mut [MaybeUninit<httparse::Header<'b>>] {
    if max <= STACK_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize_with(max, MaybeUninit::uninit);
        heap
    }
}

/// Why a head was refused, with the status the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Malformed: 400.
    #[error("bad request: {0}")]
    Bad(&'static str),
    /// The request line alone does not fit: 414.
    #[error("request line too long")]
    UriTooLong,
    /// The head does not fit, or has too many headers: 431.
    #[error("request head too large")]
    TooLarge,
    /// A transfer coding percore cannot frame: 501.
    #[error("unsupported transfer coding")]
    NotImplemented,
}

impl HeadError {
    /// The status code sent back for this error.
    pub fn status(self) -> u16 {
        match self {
            HeadError::Bad(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::TooLarge => 431,
            HeadError::NotImplemented => 501,
        }
    }
}

/// Parser limits from `tune.*`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes in a head.
    pub max_head: usize,
    /// Most header lines.
    pub max_headers: usize,
}

/// What the proxy must know about a request once its head is parsed.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo {
    /// Bytes the head took in the input.
    pub head_len: usize,
    /// `HEAD`: the response has no body whatever it says.
    pub is_head: bool,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// How the request body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// A protocol upgrade (websocket) was requested.
    pub upgrade: bool,
}

/// What the proxy adds to a forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct RequestEdits<'a> {
    /// `X-Forwarded-For`-style header name and the client address, when enabled.
    pub forwarded_for: Option<(&'a str, IpAddr, bool)>,
    /// `X-Original-To`-style header name and the destination address, when enabled.
    pub original_to: Option<(&'a str, IpAddr)>,
    /// Ask the server to close after the response.
    pub close_server: bool,
}

/// What the proxy must know about a response.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInfo {
    /// Bytes the head took.
    pub head_len: usize,
    /// Status code.
    pub status: u16,
    /// How the response body is delimited.
    pub framing: Framing,
    /// Whether the server keeps the connection open.
    pub keep_alive: bool,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Connection tokens named by `Connection` headers.
struct ConnTokens<'b> {
    values: [&'b [u8]; 8],
    n: usize,
}

impl<'b> ConnTokens<'b> {
    fn new() -> Self {
        Self {
            values: [&[]; 8],
            n: 0,
        }
    }

    fn push(&mut self, v: &'b [u8]) -> Result<(), HeadError> {
        if self.n == self.values.len() {
            return Err(HeadError::Bad("too many Connection headers"));
        }
        self.values[self.n] = v;
        self.n += 1;
        Ok(())
    }

    fn has(&self, token: &str) -> bool {
        self.values[..self.n].iter().any(|v| {
            v.split(|&c| c == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Whether `name` is one of the headers the client declared hop-by-hop (framing
    /// headers and Host cannot be removed this way).
    fn names(&self, name: &str) -> bool {
        self.n > 0
            && !(eq(name, "content-length") || eq(name, "transfer-encoding") || eq(name, "host"))
            && self.has(name)
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    eq(name, "connection") || eq(name, "keep-alive") || eq(name, "proxy-connection")
}

/// Rejects bare LF line ends, which httparse tolerates and RFC 9112 lets us refuse.
fn check_crlf(head: &[u8]) -> Result<(), HeadError> {
    let bare = head
        .iter()
        .enumerate()
        .any(|(i, &c)| c == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    if bare {
        Err(HeadError::Bad("bare LF"))
    } else {
        Ok(())
    }
}

/// The headers that decide a message's framing and connection handling, gathered the
/// same way for requests and responses.
struct FramingHeaders<'b> {
    tokens: ConnTokens<'b>,
    cl: Option<u64>,
    te: TransferCoding,
}

impl<'b> FramingHeaders<'b> {
    fn new() -> Self {
        Self {
            tokens: ConnTokens::new(),
            cl: None,
            te: TransferCoding::default(),
        }
    }

    /// Takes note of a header; returns whether it was one of these.
    fn observe(&mut self, name: &str, value: &'b [u8]) -> Result<bool, HeadError> {
        if eq(name, "connection") {
            self.tokens.push(value)?;
        } else if eq(name, "content-length") {
            self.cl = content_length(self.cl, value)?;
        } else if eq(name, "transfer-encoding") {
            self.te.add(value);
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Parses `Content-Length` values (several headers or a list must all agree).
fn content_length(current: Option<u64>, value: &[u8]) -> Result<Option<u64>, HeadError> {
    let mut result = current;
    for part in value.split(|&c| c == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 18 || !part.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::Bad("invalid Content-Length"));
        }
        let n: u64 = std::str::from_utf8(part)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(HeadError::Bad("invalid Content-Length"))?;
        match result {
            Some(prev) if prev != n => return Err(HeadError::Bad("conflicting Content-Length")),
            _ => result = Some(n),
        }
    }
    Ok(result)
}

/// Tracks `Transfer-Encoding`: whether `chunked` is present and last.
#[derive(Default)]
struct TransferCoding {
    seen: bool,
    chunked_last: bool,
    chunked_count: u32,
}

impl TransferCoding {
    fn add(&mut self, value: &[u8]) {
        self.seen = true;
        for t in value.split(|&c| c == b',') {
            let t = t.trim_ascii();
            if t.is_empty() {
                continue;
            }
            let chunked = t.eq_ignore_ascii_case(b"chunked");
            self.chunked_count += u32::from(chunked);
            self.chunked_last = chunked;
        }
    }
}

/// 414 when the request line alone is over the limit, 431 when the headers are.
fn oversized(buf: &[u8], limits: Limits) -> HeadError {
    let line_len = buf.iter().position(|&c| c == b'\n').unwrap_or(buf.len());
    if line_len >= limits.max_head {
        HeadError::UriTooLong
    } else {
        HeadError::TooLarge
    }
}

/// Parses a request head at the start of `buf` and writes the head to forward into
/// `out`, hop-by-hop headers removed; [`finish_request`] adds the proxy's own headers
/// once the rules and the backend are known. `Ok(None)`: more bytes are needed.
pub fn parse_request(
    buf: &[u8],
    limits: Limits,
    out: &mut Vec<u8>,
) -> Result<Option<RequestInfo>, HeadError> {
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => {
            return Err(oversized(buf, limits))
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head {
                return Err(oversized(buf, limits));
            }
            if let Some(lf) = buf.iter().position(|&c| c == b'\n') {
                check_crlf(&buf[..=lf])?;
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Bad("unsupported HTTP version")),
        Err(_) => return Err(HeadError::Bad("malformed request head")),
    };
    check_crlf(&buf[..head_len])?;
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let minor = req.version.unwrap_or(1);
    let mut fh = FramingHeaders::new();
    let (mut hosts, mut host) = (0, None);
    let mut upgrade_hdr = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if fh.observe(h.name, h.value)? {
            // Framing and connection headers: noted by `fh`.
        } else if eq(h.name, "host") {
            hosts += 1;
            host = Some(h.value);
        } else if eq(h.name, "upgrade") {
            upgrade_hdr = true;
        } else if eq(h.name, "expect") && h.value.eq_ignore_ascii_case(b"100-continue") {
            expect_continue = true;
        }
    }
    let FramingHeaders { tokens, cl, te } = fh;
    if minor == 1 && hosts == 0 {
        return Err(HeadError::Bad("HTTP/1.1 request without Host"));
    }
    if hosts > 1 {
        return Err(HeadError::Bad("several Host headers"));
    }
    if path.contains('#') {
        return Err(HeadError::Bad("fragment in the request target"));
    }
    if let Some(target) = absolute_authority(path) {
        if host.is_some_and(|h| !same_authority(target, h)) {
            return Err(HeadError::Bad(
                "Host differs from the request target's authority",
            ));
        }
    }
    let framing = if te.seen {
        if cl.is_some() {
            return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
        }
        if minor == 0 {
            return Err(HeadError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !te.chunked_last || te.chunked_count != 1 {
            return Err(HeadError::NotImplemented);
        }
        Framing::chunked()
    } else {
        match cl {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let keep_alive = if minor == 0 {
        tokens.has("keep-alive")
    } else {
        !tokens.has("close")
    };
    let upgrade = upgrade_hdr && tokens.has("upgrade");

    out.clear();
    out.reserve(head_len + HEAD_ROOM);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(if minor == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let mut lengths = OneLength::new(cl, te.seen);
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name) || (tokens.names(h.name) && !(upgrade && eq(h.name, "upgrade"))) {
            continue;
        }
        if eq(h.name, "upgrade") && !upgrade {
            continue;
        }
        lengths.push(out, h);
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(RequestInfo {
        head_len,
        is_head: eq(method, "HEAD"),
        minor,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    }))
}

/// Adds the headers the proxy itself sets to a request head from [`parse_request`]:
/// `X-Forwarded-For`, `X-Original-To` and the `Connection` header for the chosen mode.
pub fn finish_request(out: &mut Vec<u8>, info: &RequestInfo, edits: RequestEdits<'_>) {
    out.truncate(out.len().saturating_sub(2));
    if let Some((name, ip, if_none)) = edits.forwarded_for {
        let has_ff = if_none
            && super::message::header_lines(out)
                .any(|h| out[h.name].eq_ignore_ascii_case(name.as_bytes()));
        if !has_ff {
            push_header(out, name.as_bytes(), ip_text(ip).as_bytes());
        }
    }
    if let Some((name, ip)) = edits.original_to {
        push_header(out, name.as_bytes(), ip_text(ip).as_bytes());
    }
    if info.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if edits.close_server {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if info.minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a message's `Content-Length` once, whatever the number of lines and list
/// members it came with, and not at all beside `Transfer-Encoding` (RFC 9112 6.3),
/// passing every other header on.
struct OneLength {
    /// The length to write at the first `Content-Length` line, until it is written.
    pending: Option<u64>,
}

impl OneLength {
    fn new(cl: Option<u64>, transfer_encoding: bool) -> Self {
        Self {
            pending: cl.filter(|_| !transfer_encoding),
        }
    }

    fn push(&mut self, out: &mut Vec<u8>, h: &httparse::Header<'_>) {
        if !eq(h.name, "content-length") {
            push_header(out, h.name.as_bytes(), h.value);
        } else if let Some(n) = self.pending.take() {
            let mut digits = itoa::Buffer::new();
            push_header(out, h.name.as_bytes(), digits.format(n).as_bytes());
        }
    }
}

/// The scheme and authority of an absolute-form request target
/// (`http://host[:port]/...`), user information left out; `None` for any other form.
fn absolute_authority(target: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = target.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
    {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    Some((
        scheme,
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host),
    ))
}

/// Whether a `Host` value names the same authority as the request target's: case
/// aside, and with the scheme's default port written or not, as HAProxy compares.
fn same_authority((scheme, authority): (&str, &str), host: &[u8]) -> bool {
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    let bare = |a: &[u8]| -> Vec<u8> {
        let a = a.trim_ascii();
        let a = a.strip_suffix(default_port.as_bytes()).unwrap_or(a);
        let a = a.strip_suffix(b":").unwrap_or(a);
        a.to_ascii_lowercase()
    };
    bare(authority.as_bytes()) == bare(host)
}

fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    }
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a response head and writes the head to send to the client into `out`.
/// `request` is the request it answers; `close_client` says whether the client
/// connection ends after this response. `Ok(None)`: more bytes are needed.
pub fn parse_response(
    buf: &[u8],
    limits: Limits,
    request: &RequestInfo,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseInfo>, HeadError> {
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, slots)
    {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Bad("malformed response head")),
    };
    check_crlf(&buf[..head_len])?;
    let status = resp.code.unwrap_or(0);
    let minor = resp.version.unwrap_or(1);
    let mut fh = FramingHeaders::new();
    for h in resp.headers.iter() {
        fh.observe(h.name, h.value)?;
    }
    let FramingHeaders { tokens, cl, te } = fh;
    if !(100..=599).contains(&status) {
        return Err(HeadError::Bad("invalid status code"));
    }
    // A switch the request did not ask for would turn what follows into a response
    // nobody can frame: refused, and the connection closed, as HAProxy does.
    if status == 101 && !request.upgrade {
        return Err(HeadError::Bad("101 without an upgrade request"));
    }
    let switching = status == 101;
    let framing =
        if request.is_head || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else if te.seen {
            if te.chunked_last && te.chunked_count == 1 {
                Framing::chunked()
            } else {
                Framing::UntilClose
            }
        } else {
            match cl {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        };
    let keep_alive = framing != Framing::UntilClose
        && if minor == 0 {
            tokens.has("keep-alive")
        } else {
            !tokens.has("close")
        };
    let reason = resp.reason.unwrap_or("");
    out.clear();
    out.reserve(head_len + HEAD_ROOM);
    out.extend_from_slice(if request.minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut lengths = OneLength::new(cl, te.seen);
    for h in resp.headers.iter() {
        if is_hop_by_hop(h.name) || (tokens.names(h.name) && !(switching && eq(h.name, "upgrade")))
        {
            continue;
        }
        lengths.push(out, h);
    }
    if switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if (100..200).contains(&status) {
        // Interim responses carry no connection management.
    } else if close_client || framing == Framing::UntilClose {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if request.minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseInfo {
        head_len,
        status,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 15360,
        max_headers: 101,
    };
    const NO_EDITS: RequestEdits<'static> = RequestEdits {
        forwarded_for: None,
        original_to: None,
        close_server: false,
    };

    fn req(raw: &[u8]) -> Result<Option<(RequestInfo, String)>, HeadError> {
        let mut out = Vec::new();
        let Some(info) = parse_request(raw, LIMITS, &mut out)? else {
            return Ok(None);
        };
        finish_request(&mut out, &info, NO_EDITS);
        Ok(Some((info, String::from_utf8(out).unwrap())))
    }

    #[test]
    fn basic_request() {
        let raw = b"GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\n\r\nrest";
        let (info, out) = req(raw).unwrap().unwrap();
        assert_eq!(info.head_len, raw.len() - 4);
        assert!(info.keep_alive);
        assert_eq!(info.framing, Framing::Empty);
        assert_eq!(out, "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn http10_keepalive_and_edits() {
        let mut out = Vec::new();
        let edits = RequestEdits {
            forwarded_for: Some((
                "X-Forwarded-For",
                "::ffff:192.0.2.7".parse().unwrap(),
                false,
            )),
            original_to: Some(("X-Original-To", "10.0.0.1".parse().unwrap())),
            close_server: true,
        };
        let info = parse_request(b"GET / HTTP/1.0\r\n\r\n", LIMITS, &mut out)
            .unwrap()
            .unwrap();
        finish_request(&mut out, &info, edits);
        assert!(!info.keep_alive);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.0\r\nX-Forwarded-For: 192.0.2.7\r\nX-Original-To: 10.0.0.1\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_and_host_must_agree() {
        let ok = |raw: &[u8]| req(raw).unwrap().unwrap().1;
        let bad = |raw: &[u8]| req(raw).unwrap_err().status();
        assert_eq!(
            bad(b"GET http://internal.example/ HTTP/1.1\r\nHost: public.example\r\n\r\n"),
            400
        );
        assert_eq!(
            bad(b"GET http://u@internal.example/ HTTP/1.1\r\nHost: public.example\r\n\r\n"),
            400
        );
        for same in [
            &b"GET http://public.example/ HTTP/1.1\r\nHost: public.example\r\n\r\n"[..],
            b"GET http://user:pw@PUBLIC.example:80/x HTTP/1.1\r\nHost: public.example\r\n\r\n",
            b"GET https://public.example:443?q HTTP/1.1\r\nHost: Public.Example\r\n\r\n",
            b"GET http://public.example:8080/ HTTP/1.1\r\nHost: public.example:8080\r\n\r\n",
            b"GET http://x/ HTTP/1.0\r\n\r\n",
        ] {
            ok(same);
        }
        assert_eq!(
            bad(b"GET http://public.example:8080/ HTTP/1.1\r\nHost: public.example\r\n\r\n"),
            400
        );
        assert_eq!(bad(b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(bad(b"GET a:// HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    }

    #[test]
    fn one_content_length_goes_out() {
        let (_, out) = req(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\nA: b\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nA: b\r\n\r\n"
        );
        let (request, _) = req(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        let mut out = Vec::new();
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let r = parse_response(both, LIMITS, &request, false, &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, Framing::chunked());
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let listed = b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n";
        parse_response(listed, LIMITS, &request, false, &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    }

    #[test]
    fn odd_statuses_are_refused() {
        let (request, _) = req(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        let mut out = Vec::new();
        for head in [
            &b"HTTP/1.1 099 Early\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 600 Late\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        ] {
            assert!(parse_response(head, LIMITS, &request, false, &mut out).is_err());
        }
    }

    #[test]
    fn strict_framing() {
        assert_eq!(req(b"GET / HTTP/1.1\r\n\r\n").unwrap_err().status(), 400);
        assert_eq!(req(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err().status(), 400);
        assert_eq!(
            req(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert!(
            req(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            req(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\nHost: x\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            req(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
                .unwrap_err()
                .status(),
            501
        );
        assert_eq!(
            req(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        let (info, _) = req(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(info.framing, Framing::chunked());
    }

    #[test]
    fn limits() {
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(20000));
        assert_eq!(req(long_line.as_bytes()).unwrap_err().status(), 414);
        let many = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "A: b\r\n".repeat(200)
        );
        assert_eq!(req(many.as_bytes()).unwrap_err().status(), 431);
        assert!(req(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn responses() {
        let (request, _) = req(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        let mut out = Vec::new();
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
            LIMITS,
            &request,
            false,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.status, r.framing, r.keep_alive),
            (200, Framing::Length(5), true)
        );
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        let r = parse_response(
            b"HTTP/1.0 200 OK\r\n\r\n",
            LIMITS,
            &request,
            false,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
        assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
        let r = parse_response(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            LIMITS,
            &request,
            true,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing, Framing::Empty);
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                LIMITS,
                &request,
                false,
                &mut out
            )
            .unwrap_err()
            .status(),
            400
        );
    }
}
