//! Sample fetches: reading a value from the connection, the messages, the servers' state
//! or the variables, without copying when the value is already in a buffer.

use super::hello::Hello;
use super::value::Value;
use super::Context;
use crate::http::message::{header_lines, header_values, query_param, start_line, trim, Target};
use crate::plan::Backend;
use percore_config::rules::sample::{Fetch, HeaderForm, HelloField, Side};
use std::borrow::Cow;
use std::sync::atomic::Ordering;

/// The value of `f`, or `None` when the data is absent.
pub fn fetch<'a>(f: &'a Fetch, cx: &Context<'a>) -> Option<Value<'a>> {
    use Fetch::*;
    let int = |n: usize| Some(Value::Int(n as i64));
    match f {
        Bool(b) => Some(Value::Bool(*b)),
        Int(n) => Some(Value::Int(*n)),
        Str(s) => Some(Value::str(s)),
        Ip(ip) => Some(Value::Ip(*ip)),
        Env(v) => v.as_deref().map(Value::str),
        Rand(range) => {
            let r = cx.core.random();
            Some(Value::Int(match range {
                Some(range) => ((u128::from(r >> 32) * u128::from(*range)) >> 32) as i64,
                None => (r >> 32) as i64,
            }))
        }
        Date(offset) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            Some(Value::Int(now + offset))
        }
        Src => Some(Value::Ip(cx.src.ip())),
        SrcPort => int(cx.src.port().into()),
        Dst => Some(Value::Ip(cx.dst.ip())),
        DstPort => int(cx.dst.port().into()),
        FeName => Some(Value::str(cx.fe.name.as_bytes())),
        FeId => int(cx.fe.id),
        BeName => Some(Value::str(match cx.be {
            Some(be) => be.name.as_bytes(),
            None => cx.fe.name.as_bytes(),
        })),
        BeId => int(cx.be.map_or(cx.fe.id, |be| be.id)),
        SrvName => Some(Value::str(cx.be?.servers[cx.server?].name.as_bytes())),
        SrvId => int(cx.be?.servers[cx.server?].id as usize),
        Nbsrv(b) => int(backend(cx, b)?.usable_servers()),
        BeConn(b) => int(backend(cx, b)?.conns() as usize),
        Queue(b) => int(backend(cx, b)?.queued() as usize),
        AvgQueue(b) => {
            let be = backend(cx, b)?;
            let up = be.usable_servers();
            int((be.queued() as usize).div_ceil(up.max(1)))
        }
        Connslots(b) => {
            let be = backend(cx, b)?;
            let mut free = 0i64;
            for s in be.servers.iter().filter(|s| s.usable()) {
                let Some(max) = s.maxconn_now(be) else {
                    return Some(Value::Int(-1));
                };
                free += i64::from(max.saturating_sub(s.inflight.load(Ordering::Relaxed)));
                free += i64::from(
                    s.maxqueue
                        .unwrap_or(0)
                        .saturating_sub(s.queued.load(Ordering::Relaxed)),
                );
            }
            Some(Value::Int(free))
        }
        SrvIsUp(b, name) => {
            let be = backend(cx, b)?;
            let s = be.servers.iter().find(|s| s.name == *name)?;
            Some(Value::Bool(s.usable()))
        }
        Method => Some(Value::str(start_line(cx.req).0)),
        Path => Some(Value::str(Target::of(start_line(cx.req).1).path())),
        Pathq => Some(Value::str(Target::of(start_line(cx.req).1).pathq())),
        Query => Target::of(start_line(cx.req).1).query().map(Value::str),
        Url => Some(Value::str(start_line(cx.req).1)),
        Base => {
            let host = header_values(cx.req, Some("host"), false).next()?;
            let path = Target::of(start_line(cx.req).1).path();
            let mut b = Vec::with_capacity(host.len() + path.len());
            b.extend_from_slice(host);
            b.extend_from_slice(path);
            Some(Value::Str(Cow::Owned(b)))
        }
        ReqVer => version(start_line(cx.req).2),
        ResVer => version(start_line(cx.res).0),
        ProtoHttp => Some(Value::Bool(!cx.req.is_empty())),
        UrlParam { name, delim, int } => {
            let v = url_param(start_line(cx.req).1, name.as_deref(), *delim)?;
            if *int {
                Some(Value::Int(super::value::leading_int(v)?))
            } else {
                Some(Value::str(v))
            }
        }
        Header { .. } => header(f, cx),
        Cookie { side, name, form } => {
            let head = message(cx, *side);
            let mut all = cookies(head, *side)
                .filter(|(n, _)| name.as_deref().is_none_or(|w| *n == w.as_bytes()));
            match form {
                HeaderForm::Count => int(all.count()),
                HeaderForm::Value => all.next().map(|(_, v)| Value::str(v)),
                HeaderForm::Int => Some(Value::Int(super::value::leading_int(all.next()?.1)?)),
                HeaderForm::Ip => Some(Value::Ip(
                    std::str::from_utf8(all.next()?.1).ok()?.parse().ok()?,
                )),
            }
        }
        UniqueId => (!cx.unique_id.is_empty()).then(|| Value::str(cx.unique_id)),
        CapturedRequest(n) => Some(Value::str(cx.captured.request.get(*n)?.as_deref()?)),
        CapturedResponse(n) => Some(Value::str(cx.captured.response.get(*n)?.as_deref()?)),
        Status => {
            let code = start_line(cx.res).1;
            Some(Value::Int(super::value::leading_int(code)?))
        }
        Var(name, default) => match cx.vars.get(name) {
            Some(v) => Some(v.borrowed()),
            None => default.as_deref().map(Value::str),
        },
        ProxyTlv(kind) => cx
            .proxy_tlvs
            .iter()
            .find(|(t, _)| t == kind)
            .map(|(_, v)| Value::str(v)),
        ReqBody => Some(Value::Bin(Cow::Borrowed(cx.body))),
        ReqBodyLen => int(cx.body.len()),
        ReqLen => buffered_len(cx.payload, cx),
        ReqPayload(off, len) => buffered(cx.payload, (*off, *len), cx),
        ResLen => buffered_len(cx.res_payload, cx),
        ResPayload(off, len) => buffered(cx.res_payload, (*off, *len), cx),
        ClientHello(field) => match Hello::parse(cx.payload) {
            Hello::Partial => {
                cx.may_change.set(true);
                None
            }
            Hello::NotTls => None,
            Hello::Complete { sni, alpn } => match field {
                HelloField::Sni => sni.map(Value::str),
                HelloField::Alpn => alpn.first().copied().map(Value::str),
                HelloField::Type => Some(Value::Int(1)),
            },
        },
    }
}

/// `req.len`, `res.len`: what is buffered so far, which more bytes would change.
fn buffered_len<'a>(bytes: &[u8], cx: &Context<'a>) -> Option<Value<'a>> {
    cx.may_change.set(true);
    Some(Value::Int(bytes.len() as i64))
}

/// `req.payload`, `res.payload`: `len` bytes at `off` (the rest of the buffer when
/// `len` is 0); undecided while they have not all arrived.
fn buffered<'a>(
    bytes: &'a [u8],
    (off, len): (usize, usize),
    cx: &Context<'a>,
) -> Option<Value<'a>> {
    let end = off.checked_add(len)?;
    if end > cx.core.plan.tune.bufsize {
        return None;
    }
    if len == 0 {
        // The rest of the buffer, which grows while the peer sends.
        cx.may_change.set(true);
        return bytes.get(off..).map(|b| Value::Bin(Cow::Borrowed(b)));
    }
    let b = bytes.get(off..end);
    cx.may_change.set(b.is_none());
    b.map(|b| Value::Bin(Cow::Borrowed(b)))
}

/// Calls `each` with every value of a multi-valued fetch (every header value), until
/// it returns true; for other fetches, with the single value. Returns whether it did.
pub fn any_value<'a>(
    f: &'a Fetch,
    cx: &Context<'a>,
    mut each: impl FnMut(Value<'a>) -> bool,
) -> bool {
    if !f.multi_valued() {
        return fetch(f, cx).is_some_and(each);
    }
    if let Fetch::ClientHello(HelloField::Alpn) = f {
        return match Hello::parse(cx.payload) {
            Hello::Complete { alpn, .. } => alpn.into_iter().map(Value::str).any(each),
            Hello::Partial => {
                cx.may_change.set(true);
                false
            }
            Hello::NotTls => false,
        };
    }
    let Fetch::Header {
        side,
        name,
        full,
        form,
        ..
    } = f
    else {
        return false;
    };
    header_values(message(cx, *side), name.as_deref(), !full)
        .filter_map(|v| header_form(v, *form))
        .any(&mut each)
}

fn header<'a>(f: &'a Fetch, cx: &Context<'a>) -> Option<Value<'a>> {
    let Fetch::Header {
        side,
        name,
        occ,
        full,
        form,
    } = f
    else {
        return None;
    };
    let head = message(cx, *side);
    let values = || header_values(head, name.as_deref(), !full);
    if *form == HeaderForm::Count {
        return Some(Value::Int(values().count() as i64));
    }
    let v = match occ {
        None | Some(-1) => values().last()?,
        Some(n) if *n > 0 => values().nth(*n as usize - 1)?,
        Some(0) => return None,
        Some(n) => {
            let count = values().count();
            values().nth(count.checked_sub(n.unsigned_abs() as usize)?)?
        }
    };
    header_form(v, *form)
}

fn header_form(v: &[u8], form: HeaderForm) -> Option<Value<'_>> {
    match form {
        HeaderForm::Value => Some(Value::str(v)),
        HeaderForm::Count => None,
        HeaderForm::Int => Some(Value::Int(super::value::leading_int(v)?)),
        HeaderForm::Ip => Some(Value::Ip(std::str::from_utf8(v).ok()?.parse().ok()?)),
    }
}

fn message<'a>(cx: &Context<'a>, side: Side) -> &'a [u8] {
    match side {
        Side::Request => cx.req,
        Side::Response => cx.res,
    }
}

/// The cookies of a message: `Cookie` pairs in a request, the first pair of each
/// `Set-Cookie` in a response.
fn cookies(head: &[u8], side: Side) -> impl Iterator<Item = (&[u8], &[u8])> {
    let (header, per_line) = match side {
        Side::Request => ("cookie", usize::MAX),
        Side::Response => ("set-cookie", 1),
    };
    header_lines(head)
        .filter(move |h| head[h.name.clone()].eq_ignore_ascii_case(header.as_bytes()))
        .flat_map(move |h| {
            head[h.value]
                .split(|&c| c == b';')
                .take(per_line)
                .filter_map(|pair| {
                    let eq = pair.iter().position(|&c| c == b'=')?;
                    Some((trim(&pair[..eq]), trim(&pair[eq + 1..])))
                })
        })
}

fn version(v: &[u8]) -> Option<Value<'_>> {
    v.strip_prefix(b"HTTP/").map(Value::str)
}

/// `url_param`: the parameters start after `?` (or `delim`) in the path and end at
/// `&`, `;` or `delim`.
fn url_param<'t>(target: &'t [u8], name: Option<&str>, delim: Option<u8>) -> Option<&'t [u8]> {
    let path_start = Target::of(target).path_start;
    let starts = |c: &u8| *c == b'?' || Some(*c) == delim;
    let query = &target[path_start + target[path_start..].iter().position(starts)? + 1..];
    let seps = [b'&', b';', delim.unwrap_or(b'&')];
    query_param(query, name, &seps)
}

fn backend<'a>(cx: &Context<'a>, name: &Option<String>) -> Option<&'a Backend> {
    match name {
        Some(n) => {
            let plan = &cx.core.plan;
            plan.backend_named(n.as_bytes())
                .map(|id| &plan.backends[id])
        }
        None => cx.be,
    }
}

#[cfg(test)]
mod tests {
    use super::url_param;

    #[test]
    fn url_parameters_and_delimiters() {
        assert_eq!(url_param(b"/p?a=1;id=2", Some("id"), None), Some(&b"2"[..]));
        assert_eq!(url_param(b"/p?a=1", None, None), Some(&b"1"[..]));
        assert_eq!(
            url_param(b"/p|id=3|b=4", Some("id"), Some(b'|')),
            Some(&b"3"[..])
        );
        assert_eq!(url_param(b"/p|id=3", Some("id"), None), None);
        assert_eq!(
            url_param(b"http://h/p?id=5", Some("id"), None),
            Some(&b"5"[..])
        );
    }
}
