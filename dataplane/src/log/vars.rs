//! Writing log variables (`%ci`, `%Tr`, `%tsc`, `%{+Q}r`, ...) as HAProxy writes them:
//! `-` for what is missing, `<NOSRV>` when no server was reached, request lines and
//! captured headers with unsafe bytes encoded as `#XX`.

use super::record::Record;
use super::time::Clock;
use crate::http::message::{first_line, start_line};
use crate::rules::value::leading_int;
use crate::rules::Context;
use percore_config::rules::logformat::{LfFlags, LogVar};
use percore_config::Mode;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Which bytes a request line or a captured header gets encoded as `#XX`.
#[derive(Clone, Copy)]
enum Encode {
    /// Request lines: controls, non-ASCII, `"` and `#`.
    Url,
    /// Captured headers: the same, and `{`, `|`, `}`.
    Header,
}

impl Encode {
    fn needs(self, c: u8) -> bool {
        !(0x20..0x7f).contains(&c)
            || matches!(c, b'"' | b'#')
            || matches!(self, Encode::Header) && matches!(c, b'{' | b'|' | b'}')
    }
}

/// Writes `s` encoded with `map`, in quotes with `+Q`.
fn encoded(s: &[u8], map: Encode, flags: LfFlags, out: &mut Vec<u8>) {
    if flags.quote {
        out.push(b'"');
    }
    for &c in s {
        if map.needs(c) {
            let _ = write!(out, "#{c:02X}");
        } else {
            out.push(c);
        }
    }
    if flags.quote {
        out.push(b'"');
    }
}

/// Writes a text value: in quotes with `+Q`, escaped with `+E`; a missing one is `-`
/// (or `""` with `+Q`).
pub fn text(s: Option<&[u8]>, flags: LfFlags, out: &mut Vec<u8>) {
    let Some(s) = s else {
        out.extend_from_slice(if flags.quote { b"\"\"" } else { b"-" });
        return;
    };
    if flags.quote {
        out.push(b'"');
    }
    for &c in s {
        if flags.escape && matches!(c, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(c);
    }
    if flags.quote {
        out.push(b'"');
    }
}

fn number(n: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A number that `+X` writes in hexadecimal (`%pid`, `%rt`).
fn counter(n: u64, flags: LfFlags, out: &mut Vec<u8>) {
    if flags.hex {
        let _ = write!(out, "{n:04X}");
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

fn ip(a: IpAddr, flags: LfFlags, out: &mut Vec<u8>) {
    match a {
        IpAddr::V4(v4) if flags.hex => {
            let _ = write!(out, "{:08X}", u32::from(v4));
        }
        IpAddr::V4(v4) if !flags.quote => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
            }
        }
        a => {
            let s = a.to_string();
            text(Some(s.as_bytes()), flags, out);
        }
    }
}

fn port(p: u16, flags: LfFlags, out: &mut Vec<u8>) {
    if flags.hex {
        let _ = write!(out, "{p:04X}");
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(p).as_bytes());
    }
}

/// The path of a URI without scheme and authority (`%HPO`).
fn path_only(uri: &[u8]) -> &[u8] {
    let uri = &uri[..memchr::memchr(b'?', uri).unwrap_or(uri.len())];
    if uri.starts_with(b"/") {
        return uri;
    }
    match memchr::memmem::find(uri, b"://") {
        Some(i) => {
            let rest = &uri[i + 3..];
            &rest[memchr::memchr(b'/', rest).unwrap_or(rest.len())..]
        }
        None => uri,
    }
}

/// Writes variable `v` for the transaction `cx` shows; `rec` is the finished
/// transaction's record in a traffic log, `None` in a rule (where parsing refused the
/// variables that need it).
pub fn write(v: LogVar, flags: LfFlags, cx: &Context<'_>, rec: Option<&Record>, out: &mut Vec<u8>) {
    use LogVar::*;
    let server = cx.be.zip(cx.server).map(|(be, s)| &be.servers[s]);
    let line: &[u8] = match rec {
        Some(r) => &r.request_line,
        None => first_line(cx.req),
    };
    match v {
        ClientIp => ip(cx.src.ip(), flags, out),
        ClientPort => port(cx.src.port(), flags, out),
        FrontendIp => ip(cx.dst.ip(), flags, out),
        FrontendPort => port(cx.dst.port(), flags, out),
        Frontend => text(Some(cx.fe.name.as_bytes()), flags, out),
        Backend => {
            let name = cx.be.map_or(&cx.fe.name, |b| &b.name);
            text(Some(name.as_bytes()), flags, out)
        }
        Server => {
            let name = server.map_or("<NOSRV>", |s| &s.name);
            text(Some(name.as_bytes()), flags, out)
        }
        ServerIp => match server {
            Some(s) => ip(s.addr.ip(), flags, out),
            None => text(None, flags, out),
        },
        ServerPort => match server {
            Some(s) => port(s.addr.port(), flags, out),
            None => text(None, flags, out),
        },
        RequestLine if line.is_empty() => text(Some(b"<BADREQ>"), flags, out),
        RequestLine => encoded(line, Encode::Url, flags, out),
        Method | Uri | UriPath | PathOnly | Query | Version => {
            let (method, uri, version) = start_line(line);
            let query_at = memchr::memchr(b'?', uri).unwrap_or(uri.len());
            let part = match v {
                Method => method,
                Uri => uri,
                UriPath => &uri[..query_at],
                PathOnly => path_only(uri),
                Query => &uri[query_at..],
                _ => version,
            };
            // An empty query is written as nothing; any other missing part as `-`.
            let missing = part.is_empty() && (v != Query || uri.is_empty());
            if missing {
                text(None, flags, out)
            } else {
                encoded(part, Encode::Url, flags, out)
            }
        }
        Status => {
            let status = match rec {
                Some(r) => r.status.map(i64::from),
                None => leading_int(start_line(cx.res).1),
            };
            number(status.unwrap_or(-1), out)
        }
        Pid => counter(u64::from(std::process::id()), flags, out),
        UniqueId => text(
            (!cx.unique_id.is_empty()).then_some(cx.unique_id),
            flags,
            out,
        ),
        RequestCounter => counter(cx.request_number, flags, out),
        Hostname => text(Some(cx.core.plan.identity.hostname.as_bytes()), flags, out),
        ActConn => number(
            i64::from(cx.core.process_conns.load(Ordering::Relaxed)),
            out,
        ),
        FeConn => number(i64::from(cx.fe.conns.load(Ordering::Relaxed)), out),
        BeConn => number(i64::from(cx.be.map_or(0, |b| b.conns())), out),
        SrvConn => number(
            i64::from(server.map_or(0, |s| s.inflight.load(Ordering::Relaxed))),
            out,
        ),
        ReqHeaders | ResHeaders | ReqHeaderList | ResHeaderList => {
            let (slots, values) = match v {
                ReqHeaders | ReqHeaderList => (cx.fe.captures.request.len(), &cx.captured.request),
                _ => (cx.fe.captures.response.len(), &cx.captured.response),
            };
            // Without a request (`<BADREQ>`), HAProxy has no capture slots to show.
            let no_request = rec.is_some_and(|r| r.request_line.is_empty());
            if slots == 0 || no_request {
                return;
            }
            let value = |i: usize| values.get(i).and_then(|v| v.as_deref());
            if matches!(v, ReqHeaders | ResHeaders) {
                if flags.quote {
                    out.push(b'"');
                }
                out.push(b'{');
                for i in 0..slots {
                    if i > 0 {
                        out.push(b'|');
                    }
                    if let Some(val) = value(i) {
                        encoded(val, Encode::Header, LfFlags::default(), out);
                    }
                }
                out.push(b'}');
                if flags.quote {
                    out.push(b'"');
                }
            } else {
                for i in 0..slots {
                    if i > 0 {
                        out.push(b' ');
                    }
                    match value(i) {
                        Some(val) => encoded(val, Encode::Header, flags, out),
                        None if flags.quote => out.extend_from_slice(b"\"\""),
                        None => out.push(b'-'),
                    }
                }
            }
        }
        _ => {
            let Some(r) = rec else {
                return text(None, flags, out);
            };
            log_only(v, flags, r, cx.fe.mode == Mode::Http, out)
        }
    }
}

/// The variables only a finished transaction has.
fn log_only(v: LogVar, flags: LfFlags, r: &Record, http: bool, out: &mut Vec<u8>) {
    use LogVar::*;
    let idle = r.t_idle.max(0) + r.t_handshake;
    let request_wall = r.start_wall + Duration::from_millis(idle as u64);
    let since = |later: i64, earlier: i64| if later >= 0 { later - earlier } else { -1 };
    match v {
        AcceptDate => Clock::local(r.start_wall).write_log_millis(out),
        AcceptDateGmt => Clock::gmt(r.start_wall).write_log_zone(out),
        AcceptDateLocal => Clock::local(r.start_wall).write_log_zone(out),
        RequestDate => Clock::local(request_wall).write_log_millis(out),
        RequestDateGmt => Clock::gmt(request_wall).write_log_zone(out),
        RequestDateLocal => Clock::local(request_wall).write_log_zone(out),
        AcceptTimestamp | AcceptMillis => {
            let since_epoch = r
                .start_wall
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = match (v, flags.hex) {
                (AcceptTimestamp, false) => write!(out, "{}", since_epoch.as_secs()),
                (AcceptTimestamp, true) => write!(out, "{:04X}", since_epoch.as_secs()),
                (_, false) => write!(out, "{:03}", since_epoch.subsec_millis()),
                (_, true) => write!(out, "{:02X}", since_epoch.subsec_millis()),
            };
        }
        Th => number(r.t_handshake, out),
        Ti => number(r.t_idle, out),
        TR => number(since(r.t_request, idle), out),
        Tq => number(r.t_request, out),
        Tw => number(since(r.t_queue, r.t_request), out),
        Tc => number(since(r.t_connect, r.t_queue), out),
        Tr => number(since(r.t_data, r.t_connect), out),
        Td if http => number(
            if r.t_data >= 0 {
                r.t_close - r.t_data
            } else {
                -1
            },
            out,
        ),
        Td => number(
            if r.t_connect >= 0 {
                r.t_close - r.t_connect
            } else {
                -1
            },
            out,
        ),
        Ta => number(r.t_close - idle, out),
        Tt => number(r.t_close, out),
        Tu => number(r.t_close - r.t_idle.max(0), out),
        BytesOut => number(r.bytes_out as i64, out),
        BytesIn => number(r.bytes_in as i64, out),
        CapturedCookie | CapturedSetCookie => text(None, flags, out),
        TermState => out.extend_from_slice(&r.term()),
        TermStateCookie => {
            out.extend_from_slice(&r.term());
            out.extend_from_slice(&r.cookies());
        }
        Retries => {
            if r.redispatched {
                out.push(b'+');
            }
            number(i64::from(r.retries), out)
        }
        SrvQueue => number(i64::from(r.srv_queue), out),
        BeQueue => number(0, out),
        _ => text(None, flags, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let mut out = Vec::new();
        let q = LfFlags {
            quote: true,
            ..LfFlags::default()
        };
        encoded(b"GET /a\"b#c HTTP/1.1", Encode::Url, q, &mut out);
        assert_eq!(out, b"\"GET /a#22b#23c HTTP/1.1\"");
        out.clear();
        encoded(b"x{y|z}\x01", Encode::Header, LfFlags::default(), &mut out);
        assert_eq!(out, b"x#7By#7Cz#7D#01");
        out.clear();
        text(None, q, &mut out);
        text(None, LfFlags::default(), &mut out);
        assert_eq!(out, b"\"\"-");
        out.clear();
        let e = LfFlags {
            escape: true,
            ..LfFlags::default()
        };
        text(Some(b"a\"]\\"), e, &mut out);
        assert_eq!(out, b"a\\\"\\]\\\\");
    }

    #[test]
    fn uri_parts() {
        assert_eq!(path_only(b"/a/b?x=1"), b"/a/b");
        assert_eq!(path_only(b"http://h:80/p?q"), b"/p");
        assert_eq!(path_only(b"http://h"), b"");
    }
}
