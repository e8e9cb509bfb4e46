//! Rule actions: what `http-request`, `http-response`, `http-after-response`,
//! `tcp-request` and `tcp-response` lines do, and `redirect`/`return` replies.

use super::logformat::LogFormat;
use super::sample::{Needs, Sample, VarName};
use super::FileReader;
use crate::units::parse_time;
use regex::bytes::Regex;
use std::sync::Arc;
use std::time::Duration;

/// Which part of the request target a `set-*`/`replace-*` action rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriPart {
    /// `set-path`, `replace-path`: the path, query kept.
    Path,
    /// `set-pathq`, `replace-pathq`: path and query.
    Pathq,
    /// `set-query`: the query string (without `?`).
    Query,
    /// `set-uri`, `replace-uri`: the whole target.
    Uri,
}

/// The body of a locally generated reply.
#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// The proxy's error page for the status (the default).
    ErrorPage,
    /// Fixed bytes (`string`, `file`).
    Static(Arc<[u8]>),
    /// `lf-string`, `lf-file`: rendered per request.
    Format(LogFormat),
    /// `errorfile FILE`: a complete response read at load (status line and headers
    /// included).
    Response(Arc<[u8]>),
    /// `errorfiles NAME`: the `http-errors` section's page for the status, else the
    /// proxy's.
    Imported(String),
}

/// A reply built by percore: `return`, `deny`, `tarpit`.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `content-type`.
    pub content_type: Option<String>,
    /// The body.
    pub body: ReplyBody,
    /// `hdr NAME FMT` lines.
    pub headers: Vec<(String, LogFormat)>,
}

/// What a redirect's location is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// `location`: the full new location.
    Location,
    /// `prefix`: put before the original path.
    Prefix,
    /// `scheme`: a new scheme with the original Host and path.
    Scheme,
}

/// `redirect location|prefix|scheme TARGET [code N] [options]`.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// How `target` is used.
    pub kind: RedirectKind,
    /// The location, prefix or scheme.
    pub target: LogFormat,
    /// 301, 302 (default), 303, 307 or 308.
    pub code: u16,
    /// `drop-query`.
    pub drop_query: bool,
    /// `append-slash`.
    pub append_slash: bool,
    /// `set-cookie NAME[=VALUE]`.
    pub set_cookie: Option<String>,
    /// `clear-cookie NAME[=]`.
    pub clear_cookie: Option<String>,
}

/// How a `replace-header`/`replace-value` finds its header and what it does.
#[derive(Debug, Clone)]
pub struct HeaderReplace {
    /// Header name.
    pub name: String,
    /// Matched against the whole value (or each comma-separated value).
    pub regex: Regex,
    /// The new value, with `\N` back-references.
    pub replace: LogFormat,
    /// `replace-value`: applied to each comma-separated value.
    pub each_value: bool,
}

/// An action of the HTTP rule sets.
#[derive(Debug, Clone)]
pub enum HttpAction {
    /// `allow`: stop evaluating this rule set.
    Allow,
    /// `deny`, `return`, `tarpit`: answer locally; `tarpit` waits `timeout tarpit` first.
    Reply {
        /// What is sent.
        reply: Reply,
        /// `tarpit`.
        tarpit: bool,
    },
    /// `redirect`.
    Redirect(Redirect),
    /// `set-header NAME FMT`: replaces every occurrence.
    SetHeader(String, LogFormat),
    /// `add-header NAME FMT`.
    AddHeader(String, LogFormat),
    /// `del-header NAME`.
    DelHeader(String),
    /// `replace-header`, `replace-value`.
    ReplaceHeader(HeaderReplace),
    /// `set-path`, `set-pathq`, `set-query`, `set-uri`.
    SetUri(UriPart, LogFormat),
    /// `replace-path`, `replace-pathq`, `replace-uri`.
    ReplaceUri(UriPart, Regex, LogFormat),
    /// `set-method FMT`.
    SetMethod(LogFormat),
    /// `set-status CODE [reason TEXT]`.
    SetStatus(u16, Option<String>),
    /// `set-var(NAME) EXPR`.
    SetVar(VarName, Sample),
    /// `set-var-fmt(NAME) FMT`: the rendered log-format string, as text.
    SetVarFmt(VarName, LogFormat),
    /// `unset-var(NAME)`.
    UnsetVar(VarName),
    /// `set-src EXPR`: later fetches and headers see this client address.
    SetSrc(Sample),
    /// `set-dst EXPR`: later fetches and headers see this destination address.
    SetDst(Sample),
    /// `set-log-level LEVEL|silent`: the transaction's log line level.
    SetLogLevel(crate::log::LogLevel),
    /// `set-timeout server|tunnel TIME`.
    SetTimeout(TimeoutKind, Duration),
    /// `reject` (http-request): close the connection without answering.
    Reject,
    /// `use-service NAME`: a service built into percore answers the request.
    UseService(Service),
    /// `capture EXPR len N|id N`: keeps the sample's text in capture slot N of the
    /// request (http-request) or response (http-response) side; the `len` form
    /// declares its own slot at load.
    Capture(Sample, usize),
}

impl HttpAction {
    /// Where the data read by the action's formats and expressions comes from.
    pub fn needs(&self) -> Needs {
        let reply = |r: &Reply| {
            let body = match &r.body {
                ReplyBody::Format(lf) => lf.needs(),
                _ => Needs::Nothing,
            };
            r.headers
                .iter()
                .map(|(_, v)| v.needs())
                .fold(body, Needs::max)
        };
        match self {
            HttpAction::Reply { reply: r, .. } => reply(r),
            HttpAction::Redirect(r) => r.target.needs(),
            HttpAction::SetHeader(_, v)
            | HttpAction::AddHeader(_, v)
            | HttpAction::SetUri(_, v)
            | HttpAction::ReplaceUri(_, _, v)
            | HttpAction::SetMethod(v)
            | HttpAction::SetVarFmt(_, v) => v.needs(),
            HttpAction::ReplaceHeader(r) => r.replace.needs(),
            HttpAction::SetVar(_, s)
            | HttpAction::SetSrc(s)
            | HttpAction::SetDst(s)
            | HttpAction::Capture(s, _) => s.needs(),
            HttpAction::Allow
            | HttpAction::DelHeader(_)
            | HttpAction::SetStatus(..)
            | HttpAction::UnsetVar(_)
            | HttpAction::SetLogLevel(_)
            | HttpAction::SetTimeout(..)
            | HttpAction::UseService(_)
            | HttpAction::Reject => Needs::Nothing,
        }
    }
}

/// The timeouts `set-timeout` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// `server`.
    Server,
    /// `tunnel`.
    Tunnel,
}

/// An action of the TCP rule sets.
#[derive(Debug, Clone)]
pub enum TcpAction {
    /// `accept`: stop evaluating this rule set.
    Accept,
    /// `reject`: close the connection.
    Reject,
    /// `set-var(NAME) EXPR`.
    SetVar(VarName, Sample),
    /// `set-var-fmt(NAME) FMT`.
    SetVarFmt(VarName, LogFormat),
    /// `unset-var(NAME)`.
    UnsetVar(VarName),
    /// `set-log-level LEVEL|silent`.
    SetLogLevel(crate::log::LogLevel),
    /// `expect-proxy layer4` (`tcp-request connection` only): read a PROXY protocol
    /// header first, as `accept-proxy` on the bind line does, for the clients the
    /// condition selects.
    ExpectProxy,
}

/// A service `use-service` hands a request to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `prometheus-exporter`: metrics in Prometheus' text format.
    PrometheusExporter,
}

/// Which HTTP rule set a line belongs to, for the actions each allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRuleSet {
    /// `http-request`.
    Request,
    /// `http-response`.
    Response,
    /// `http-after-response`.
    AfterResponse,
}

fn status_code(s: &str, allowed: &[u16]) -> Result<u16, String> {
    let code: u16 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a status code"))?;
    if !allowed.is_empty() && !allowed.contains(&code) {
        return Err(format!(
            "status {code} is not allowed here (use one of {allowed:?})"
        ));
    }
    if !(100..=999).contains(&code) {
        return Err(format!("'{s}' is not a status code"));
    }
    Ok(code)
}

fn need<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str, String> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("{what} is missing"))
}

fn exactly(action: &str, args: &[String], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "'{action}' expects {n} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

/// `set-var(txn.x)` → the variable.
fn var_in(word: &str, prefix: &str) -> Option<Result<VarName, String>> {
    let inner = word
        .strip_prefix(prefix)?
        .strip_prefix('(')?
        .strip_suffix(')');
    Some(match inner {
        Some(v) if v.contains(',') => Err(format!(
            "'{word}': set-var conditions are not supported by percore yet ({})",
            crate::planned::NOT_PLANNED
        )),
        Some(v) => VarName::parse(v),
        None => Err(format!("'{word}' is missing its ')'")),
    })
}

/// Parses the reply arguments shared by `return`, `deny` and `tarpit`.
fn reply(args: &[String], default_status: u16, files: FileReader<'_>) -> Result<Reply, String> {
    let mut r = Reply {
        status: default_status,
        content_type: None,
        body: ReplyBody::ErrorPage,
        headers: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let w = args[i].as_str();
        let arg = |what: &str| need(args, i + 1, &format!("'{w}' {what}"));
        match w {
            "status" | "deny_status" => r.status = status_code(arg("status code")?, &[])?,
            "content-type" => r.content_type = Some(arg("type")?.to_string()),
            "default-errorfiles" => {
                r.body = ReplyBody::ErrorPage;
                i += 1;
                continue;
            }
            "string" => r.body = ReplyBody::Static(arg("text")?.as_bytes().into()),
            "lf-string" => r.body = ReplyBody::Format(LogFormat::parse(arg("format")?, files)?),
            "file" => r.body = ReplyBody::Static(files(arg("file name")?)?.into_bytes().into()),
            "lf-file" => {
                r.body = ReplyBody::Format(LogFormat::parse(&files(arg("file name")?)?, files)?)
            }
            "hdr" => {
                let name = arg("header name")?.to_string();
                let value = need(args, i + 2, "'hdr' value")?;
                r.headers.push((name, LogFormat::parse(value, files)?));
                i += 3;
                continue;
            }
            "errorfile" => {
                let file = arg("file name")?;
                let response =
                    crate::http_errors::complete_response(file, files(file)?.into_bytes())
                        .map_err(|e| format!("'errorfile': {e}"))?;
                r.body = ReplyBody::Response(response.into());
            }
            "errorfiles" => r.body = ReplyBody::Imported(arg("http-errors section")?.to_string()),
            other => return Err(format!("unknown reply argument '{other}'")),
        }
        i += 2;
    }
    let has_body = matches!(r.body, ReplyBody::Static(_) | ReplyBody::Format(_));
    if has_body && r.content_type.is_none() {
        return Err("a reply with a body needs a 'content-type'".into());
    }
    if !has_body && r.content_type.is_some() {
        return Err("'content-type' without a body ('string', 'file', ...)".into());
    }
    Ok(r)
}

/// Parses `redirect location|prefix|scheme TARGET [code N] [options]`.
pub fn redirect(args: &[String], files: FileReader<'_>) -> Result<Redirect, String> {
    let kind = match need(
        args,
        0,
        "the redirect type ('location', 'prefix' or 'scheme')",
    )? {
        "location" => RedirectKind::Location,
        "prefix" => RedirectKind::Prefix,
        "scheme" => RedirectKind::Scheme,
        other => {
            return Err(format!(
                "'redirect' expects 'location', 'prefix' or 'scheme', got '{other}'"
            ))
        }
    };
    let target = LogFormat::parse(need(args, 1, "the redirect target")?, files)?;
    let mut r = Redirect {
        kind,
        target,
        code: 302,
        drop_query: false,
        append_slash: false,
        set_cookie: None,
        clear_cookie: None,
    };
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "code" => {
                i += 1;
                r.code = status_code(need(args, i, "'code' value")?, &[301, 302, 303, 307, 308])?;
            }
            "drop-query" => r.drop_query = true,
            "append-slash" => r.append_slash = true,
            "set-cookie" => {
                i += 1;
                r.set_cookie = Some(need(args, i, "'set-cookie' value")?.to_string());
            }
            "clear-cookie" => {
                i += 1;
                r.clear_cookie = Some(need(args, i, "'clear-cookie' value")?.to_string());
            }
            other => return Err(format!("unknown redirect option '{other}'")),
        }
        i += 1;
    }
    Ok(r)
}

/// Parses the action part of an `http-request`/`http-response`/`http-after-response`
/// line (the words before any `if`/`unless`).
pub fn http_action(
    set: HttpRuleSet,
    words: &[String],
    files: FileReader<'_>,
) -> Result<HttpAction, String> {
    let (action, args) = words.split_first().ok_or("an action is expected")?;
    let regex = |s: &str| super::pattern::compile_regex(s, false);
    let lf = |s: &str| LogFormat::parse(s, files);
    let request = set == HttpRuleSet::Request;
    if let Some(var) = var_in(action, "set-var") {
        exactly(action, args, 1)?;
        return Ok(HttpAction::SetVar(var?, Sample::parse(&args[0], files)?));
    }
    if let Some(var) = var_in(action, "set-var-fmt") {
        exactly(action, args, 1)?;
        return Ok(HttpAction::SetVarFmt(var?, lf(&args[0])?));
    }
    if let Some(var) = var_in(action, "unset-var") {
        exactly(action, args, 0)?;
        return Ok(HttpAction::UnsetVar(var?));
    }
    let uri_part = |part| -> Result<HttpAction, String> {
        exactly(action, args, 1)?;
        Ok(HttpAction::SetUri(part, lf(&args[0])?))
    };
    let replace_uri = |part| -> Result<HttpAction, String> {
        exactly(action, args, 2)?;
        Ok(HttpAction::ReplaceUri(
            part,
            regex(&args[0])?,
            lf(&args[1])?,
        ))
    };
    let only_request = |a: HttpAction| {
        if request {
            Ok(a)
        } else {
            Err(format!(
                "'{action}' is only allowed in 'http-request' rules"
            ))
        }
    };
    match action.as_str() {
        "allow" => {
            exactly(action, args, 0)?;
            Ok(HttpAction::Allow)
        }
        "deny" => Ok(HttpAction::Reply {
            reply: reply(args, if request { 403 } else { 502 }, files)?,
            tarpit: false,
        }),
        "tarpit" => only_request(HttpAction::Reply {
            reply: reply(args, 500, files)?,
            tarpit: true,
        }),
        "return" => Ok(HttpAction::Reply {
            reply: reply(args, 200, files)?,
            tarpit: false,
        }),
        "redirect" => Ok(HttpAction::Redirect(redirect(args, files)?)),
        "set-header" | "add-header" => {
            exactly(action, args, 2)?;
            let v = lf(&args[1])?;
            Ok(if action == "set-header" {
                HttpAction::SetHeader(args[0].clone(), v)
            } else {
                HttpAction::AddHeader(args[0].clone(), v)
            })
        }
        "del-header" => {
            exactly(action, args, 1)?;
            Ok(HttpAction::DelHeader(args[0].clone()))
        }
        "replace-header" | "replace-value" => {
            exactly(action, args, 3)?;
            Ok(HttpAction::ReplaceHeader(HeaderReplace {
                name: args[0].clone(),
                regex: regex(&args[1])?,
                replace: lf(&args[2])?,
                each_value: action == "replace-value",
            }))
        }
        "set-path" => only_request(uri_part(UriPart::Path)?),
        "set-pathq" => only_request(uri_part(UriPart::Pathq)?),
        "set-query" => only_request(uri_part(UriPart::Query)?),
        "set-uri" => only_request(uri_part(UriPart::Uri)?),
        "replace-path" => only_request(replace_uri(UriPart::Path)?),
        "replace-pathq" => only_request(replace_uri(UriPart::Pathq)?),
        "replace-uri" => only_request(replace_uri(UriPart::Uri)?),
        "set-method" => {
            exactly(action, args, 1)?;
            only_request(HttpAction::SetMethod(lf(&args[0])?))
        }
        "set-src" => {
            exactly(action, args, 1)?;
            only_request(HttpAction::SetSrc(Sample::parse(&args[0], files)?))
        }
        "set-dst" => {
            exactly(action, args, 1)?;
            only_request(HttpAction::SetDst(Sample::parse(&args[0], files)?))
        }
        "set-log-level" => {
            exactly(action, args, 1)?;
            Ok(HttpAction::SetLogLevel(crate::log::LogLevel::parse(
                &args[0],
            )?))
        }
        "auth" => {
            let realm = match args {
                [] => None,
                [r, realm] if r == "realm" => Some(realm.clone()),
                _ => return Err("'auth' expects '[realm REALM]'".into()),
            };
            // Without a realm, HAProxy names the proxy whose rule it is: `%b` is the
            // backend, or the frontend before one is chosen.
            let realm = realm.map_or_else(|| "%b".to_string(), |r| r.replace('%', "%%"));
            let value = lf(&format!("Basic realm=\"{realm}\""))?;
            only_request(HttpAction::Reply {
                reply: Reply {
                    status: 401,
                    content_type: None,
                    body: ReplyBody::ErrorPage,
                    headers: vec![("WWW-Authenticate".into(), value)],
                },
                tarpit: false,
            })
        }
        "set-status" if !request => {
            let code = status_code(need(args, 0, "the status code")?, &[])?;
            match &args[1..] {
                [] => Ok(HttpAction::SetStatus(code, None)),
                [r, text] if r == "reason" => Ok(HttpAction::SetStatus(code, Some(text.clone()))),
                _ => Err("'set-status' expects 'CODE [reason TEXT]'".into()),
            }
        }
        "set-timeout" => {
            exactly(action, args, 2)?;
            let kind = match args[0].as_str() {
                "server" => TimeoutKind::Server,
                "tunnel" => TimeoutKind::Tunnel,
                other => {
                    return Err(format!(
                        "'set-timeout' expects 'server' or 'tunnel', got '{other}'"
                    ))
                }
            };
            only_request(HttpAction::SetTimeout(kind, parse_time(&args[1])?))
        }
        a if a.starts_with("track-sc") || a.starts_with("sc-") => Err(format!(
            "'{a}' is not supported by percore yet (planned: stick tables and peers)"
        )),
        "reject" => {
            exactly(action, args, 0)?;
            only_request(HttpAction::Reject)
        }
        "use-service" => match args {
            [name] if name == "prometheus-exporter" => {
                only_request(HttpAction::UseService(Service::PrometheusExporter))
            }
            [name] => Err(format!(
                "unknown service '{name}' (percore has 'prometheus-exporter')"
            )),
            _ => Err("'use-service' expects a service name".into()),
        },
        "set-mark"
        | "set-tos"
        | "set-nice"
        | "normalize-uri"
        | "cache-use"
        | "cache-store"
        | "do-resolve"
        | "lua"
        | "set-map"
        | "del-map"
        | "add-acl"
        | "del-acl"
        | "early-hint"
        | "set-dst-port"
        | "set-src-port"
        | "wait-for-body"
        | "wait-for-handshake"
        | "strict-mode"
        | "silent-drop"
        | "disable-l7-retry"
        | "set-bandwidth-limit" => Err(format!(
            "action '{action}' is not supported by percore yet ({})",
            crate::planned::planned_action(action)
        )),
        other => Err(format!("unknown action '{other}'")),
    }
}

/// `capture EXPR len N` (request rules only; declares a new slot in `slots`) or
/// `capture EXPR id N` (an existing slot; `declared` says how many a frontend has, or
/// `None` in a backend, where the slots are the frontend's, known only at run time).
pub fn capture_action(
    set: HttpRuleSet,
    args: &[String],
    slots: &mut Vec<super::capture::Capture>,
    declared: Option<usize>,
    files: FileReader<'_>,
) -> Result<HttpAction, String> {
    let [expr, how, n] = args else {
        return Err("'capture' expects 'EXPR len LENGTH' or 'EXPR id SLOT'".into());
    };
    let n: usize = n
        .parse()
        .map_err(|_| format!("'capture': '{how}' expects a number, got '{n}'"))?;
    let sample = Sample::parse(expr, files)?;
    let id = match how.as_str() {
        "len" if set == HttpRuleSet::Request && declared.is_some() && n > 0 => {
            slots.push(super::capture::Capture {
                header: None,
                len: n,
            });
            slots.len() - 1
        }
        "len" => return Err(
            "'capture ... len' declares a slot: only in a frontend's http-request rules; use 'id'"
                .into(),
        ),
        "id" if declared.is_none_or(|d| n < d) => n,
        "id" => return Err(format!("'capture': no capture slot {n} is declared (yet)")),
        other => return Err(format!("'capture' expects 'len' or 'id', got '{other}'")),
    };
    Ok(HttpAction::Capture(sample, id))
}

/// Parses the action part of a `tcp-request`/`tcp-response` line.
pub fn tcp_action(words: &[String], files: FileReader<'_>) -> Result<TcpAction, String> {
    let (action, args) = words.split_first().ok_or("an action is expected")?;
    if let Some(var) = var_in(action, "set-var") {
        exactly(action, args, 1)?;
        return Ok(TcpAction::SetVar(var?, Sample::parse(&args[0], files)?));
    }
    if let Some(var) = var_in(action, "set-var-fmt") {
        exactly(action, args, 1)?;
        return Ok(TcpAction::SetVarFmt(
            var?,
            LogFormat::parse(&args[0], files)?,
        ));
    }
    if let Some(var) = var_in(action, "unset-var") {
        exactly(action, args, 0)?;
        return Ok(TcpAction::UnsetVar(var?));
    }
    match action.as_str() {
        "accept" => exactly(action, args, 0).map(|_| TcpAction::Accept),
        "set-log-level" => {
            exactly(action, args, 1)?;
            Ok(TcpAction::SetLogLevel(crate::log::LogLevel::parse(
                &args[0],
            )?))
        }
        "reject" => exactly(action, args, 0).map(|_| TcpAction::Reject),
        a if a.starts_with("track-sc") || a.starts_with("sc-") => Err(format!(
            "'{a}' is not supported by percore yet (planned: stick tables and peers)"
        )),
        "expect-proxy" => match args {
            [layer] if layer == "layer4" => Ok(TcpAction::ExpectProxy),
            _ => Err("'expect-proxy' expects 'layer4'".into()),
        },
        "expect-netscaler-cip"
        | "capture"
        | "set-src"
        | "set-dst"
        | "silent-drop"
        | "use-service"
        | "switch-mode"
        | "close"
        | "do-resolve"
        | "set-mark"
        | "set-tos"
        | "set-nice"
        | "lua" => Err(format!(
            "action '{action}' is not supported by percore yet ({})",
            crate::planned::planned_action(action)
        )),
        other => Err(format!("unknown action '{other}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{no_files, words};

    fn req(s: &str) -> Result<HttpAction, String> {
        http_action(HttpRuleSet::Request, &words(s), &no_files)
    }

    #[test]
    fn request_actions() {
        assert!(matches!(
            req("deny deny_status 429").unwrap(),
            HttpAction::Reply {
                reply: Reply { status: 429, .. },
                tarpit: false
            }
        ));
        assert!(matches!(
            req("replace-path /static(/.*) \\1").unwrap(),
            HttpAction::ReplaceUri(UriPart::Path, ..)
        ));
        assert!(matches!(
            req("set-path /v2%[path]").unwrap(),
            HttpAction::SetUri(UriPart::Path, _)
        ));
        assert!(matches!(
            req("set-var(txn.x) path,lower").unwrap(),
            HttpAction::SetVar(..)
        ));
        assert!(matches!(
            req("return status 200 content-type text/plain string ok").unwrap(),
            HttpAction::Reply { .. }
        ));
        assert!(matches!(
            req("redirect scheme https code 301").unwrap(),
            HttpAction::Redirect(Redirect {
                code: 301,
                kind: RedirectKind::Scheme,
                ..
            })
        ));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(req("nosuch").unwrap_err().contains("'nosuch'"));
        assert!(req("set-header X").unwrap_err().contains("2 argument"));
        assert!(req("return string x").unwrap_err().contains("content-type"));
        assert!(req("redirect location /x code 200")
            .unwrap_err()
            .contains("200"));
        assert!(req("track-sc0 src").unwrap_err().contains("stick tables"));
        assert!(http_action(HttpRuleSet::Response, &words("set-path /x"), &no_files).is_err());
        assert!(req("set-status 200").is_err());
    }
}
