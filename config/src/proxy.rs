//! Keywords of proxy sections (`defaults`, `frontend`, `backend`, `listen`), as a
//! declarative table naming the sections each keyword is allowed in.

use crate::check::{http_check_line, option_httpchk, tcp_check_line, CheckType};
use crate::error::Location;
use crate::global::{no_args, one};
use crate::http_errors::{self, ErrorPage};
use crate::log::TrafficFormat;
use crate::model::{
    Balance, Bind, BindAddr, Cookie, CookieMode, ForwardFor, HashFunction, HashMethod, HashType,
    HttpConnMode, HttpReuse, IpNet, Mode, Named, ObserveLayer, OnError, OriginalTo, Proxy,
    ProxyKind, RetryOn, SendProxy, Server, ServerOptions, Track, UriHash,
};
use crate::parser::check_name;
use crate::planned::{planned, unsupported};
use crate::rules::{
    self,
    action::{capture_action, http_action, tcp_action, HttpRuleSet, TcpAction},
    condition::{split_condition, Condition},
    logformat::LogFormat,
    read_file,
    sample::Needs,
    BackendTarget, Rule, UseBackend, UseServer,
};
use crate::units::{parse_time, parse_uint};

const D: u8 = 1;
const F: u8 = 2;
const B: u8 = 4;
const L: u8 = 8;
const ALL: u8 = D | F | B | L;

type Handler = fn(&mut Proxy, &[String], &Location, &mut Vec<String>) -> Result<(), String>;

struct Keyword {
    name: &'static str,
    sections: u8,
    parse: Handler,
}

#[rustfmt::skip]
const KEYWORDS: &[Keyword] = &[
    Keyword { name: "mode", sections: ALL, parse: mode },
    Keyword { name: "bind", sections: F | L, parse: bind },
    Keyword { name: "maxconn", sections: D | F | L, parse: maxconn },
    Keyword { name: "default_backend", sections: D | F | L, parse: default_backend },
    Keyword { name: "use_backend", sections: F | L, parse: use_backend },
    Keyword { name: "use-server", sections: B | L, parse: use_server },
    Keyword { name: "acl", sections: F | B | L, parse: acl },
    Keyword { name: "http-request", sections: F | B | L, parse: http_request },
    Keyword { name: "http-response", sections: F | B | L, parse: http_response },
    Keyword { name: "http-after-response", sections: F | B | L, parse: http_after_response },
    Keyword { name: "tcp-request", sections: F | B | L, parse: tcp_request },
    Keyword { name: "tcp-response", sections: B | L, parse: tcp_response },
    Keyword { name: "redirect", sections: F | B | L, parse: redirect },
    Keyword { name: "balance", sections: D | B | L, parse: balance },
    Keyword { name: "hash-type", sections: D | B | L, parse: hash_type },
    Keyword { name: "hash-balance-factor", sections: D | B | L, parse: hash_balance_factor },
    Keyword { name: "http-check", sections: D | B | L, parse: http_check },
    Keyword { name: "tcp-check", sections: D | B | L, parse: tcp_check },
    Keyword { name: "fullconn", sections: D | B | L, parse: fullconn },
    Keyword { name: "cookie", sections: D | B | L, parse: cookie },
    Keyword { name: "monitor-uri", sections: D | F | L, parse: monitor_uri },
    Keyword { name: "monitor", sections: F | L, parse: monitor },
    Keyword { name: "capture", sections: F | L, parse: capture },
    Keyword { name: "declare", sections: F | L, parse: declare },
    Keyword { name: "server", sections: B | L, parse: server },
    Keyword { name: "default-server", sections: D | B | L, parse: default_server },
    Keyword { name: "timeout", sections: ALL, parse: timeout },
    Keyword { name: "retries", sections: D | B | L, parse: retries },
    Keyword { name: "retry-on", sections: D | B | L, parse: retry_on },
    Keyword { name: "option", sections: ALL, parse: option },
    Keyword { name: "no", sections: ALL, parse: no_option },
    Keyword { name: "http-reuse", sections: D | B | L, parse: http_reuse },
    Keyword { name: "errorfile", sections: ALL, parse: errorfile },
    Keyword { name: "errorfiles", sections: ALL, parse: errorfiles },
    Keyword { name: "errorloc", sections: ALL, parse: errorloc::<302> },
    Keyword { name: "errorloc302", sections: ALL, parse: errorloc::<302> },
    Keyword { name: "errorloc303", sections: ALL, parse: errorloc::<303> },
    Keyword { name: "log", sections: ALL, parse: log },
    Keyword { name: "log-format", sections: D | F | L, parse: log_format },
    Keyword { name: "log-tag", sections: ALL, parse: log_tag },
    Keyword { name: "unique-id-format", sections: D | F | L, parse: unique_id_format },
    Keyword { name: "unique-id-header", sections: D | F | L, parse: unique_id_header },
];

fn bit(kind: ProxyKind) -> u8 {
    match kind {
        ProxyKind::Defaults => D,
        ProxyKind::Frontend => F,
        ProxyKind::Backend => B,
        ProxyKind::Listen => L,
    }
}

/// Applies one line of a proxy section. Warnings are pushed to `warnings`.
pub fn keyword(
    p: &mut Proxy,
    words: &[String],
    loc: &Location,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let kw = words[0].as_str();
    let section = p.kind.keyword();
    let Some(k) = KEYWORDS.iter().find(|k| k.name == kw) else {
        return Err(unsupported(kw, section));
    };
    if k.sections & bit(p.kind) == 0 {
        return Err(format!("'{kw}' is not allowed in a '{section}' section"));
    }
    (k.parse)(p, &words[1..], loc, warnings)
}

fn mode(p: &mut Proxy, args: &[String], _: &Location, _: &mut Vec<String>) -> Result<(), String> {
    p.mode = match one("mode", args)? {
        "tcp" => Mode::Tcp,
        "http" => Mode::Http,
        "health" => return Err("'mode health' was removed in HAProxy 2.4".into()),
        other => return Err(format!("'mode' expects 'tcp' or 'http', got '{other}'")),
    };
    Ok(())
}

fn maxconn(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.maxconn = Some(parse_uint("maxconn", one("maxconn", args)?)?);
    Ok(())
}

fn default_backend(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let name = one("default_backend", args)?;
    p.default_backend = Some(Named {
        name: name.into(),
        location: loc.clone(),
    });
    Ok(())
}

fn use_backend(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (words, cond) = split_condition(args);
    let target = match words {
        [name] if name.contains('%') => BackendTarget::Dynamic(LogFormat::parse(name, &read_file)?),
        [name] => BackendTarget::Static(name.clone()),
        _ => return Err("'use_backend' expects a backend name, then an optional condition".into()),
    };
    if let BackendTarget::Dynamic(lf) = &target {
        check_needs(lf.needs(), Needs::Request, "use_backend")?;
    }
    let cond = condition(p, cond, Needs::Request, "use_backend")?;
    p.rules.use_backend.push(UseBackend {
        target,
        cond,
        location: loc.clone(),
    });
    Ok(())
}

fn use_server(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (words, cond) = split_condition(args);
    let [server] = words else {
        return Err("'use-server' expects a server name, then an optional condition".into());
    };
    let cond = condition(p, cond, Needs::Request, "use-server")?;
    p.rules.use_server.push(UseServer {
        server: server.clone(),
        cond,
        location: loc.clone(),
    });
    Ok(())
}

fn acl(p: &mut Proxy, args: &[String], _: &Location, _: &mut Vec<String>) -> Result<(), String> {
    p.rules.acls.define(args, &read_file)
}

/// Parses an optional `if|unless ...` and checks its data is available at `phase`.
fn condition(
    p: &mut Proxy,
    words: Option<&[String]>,
    phase: Needs,
    what: &str,
) -> Result<Option<Condition>, String> {
    let Some(words) = words else { return Ok(None) };
    let c = Condition::parse(words, &mut p.rules.acls, &read_file)?;
    check_needs(c.needs(&p.rules.acls), phase, what)?;
    Ok(Some(c))
}

/// Refuses a fetch whose data does not exist yet where the rule runs.
fn check_needs(needs: Needs, phase: Needs, what: &str) -> Result<(), String> {
    if needs > phase {
        let data = match needs {
            Needs::Response => "the HTTP response",
            Needs::Request => "the HTTP request",
            Needs::Content => "buffered request contents",
            Needs::ResponseContent => "buffered response contents",
            Needs::Connection | Needs::Nothing => "the connection",
        };
        return Err(format!(
            "'{what}' uses a fetch that reads {data}, which is not available there"
        ));
    }
    Ok(())
}

fn http_rules(
    p: &mut Proxy,
    set: HttpRuleSet,
    args: &[String],
    loc: &Location,
) -> Result<(), String> {
    let (name, phase) = match set {
        HttpRuleSet::Request => ("http-request", Needs::Request),
        HttpRuleSet::Response => ("http-response", Needs::Response),
        HttpRuleSet::AfterResponse => ("http-after-response", Needs::Response),
    };
    let (words, cond) = split_condition(args);
    let action = match words.split_first() {
        Some((c, rest)) if c == "capture" && set != HttpRuleSet::AfterResponse => {
            let frontend = p.kind.has_frontend();
            let slots = match set {
                HttpRuleSet::Request => &mut p.captures.request,
                _ => &mut p.captures.response,
            };
            let declared = frontend.then_some(slots.len());
            capture_action(set, rest, slots, declared, &read_file)?
        }
        _ => http_action(set, words, &read_file)?,
    };
    check_needs(action.needs(), phase, name)?;
    let cond = condition(p, cond, phase, name)?;
    let rule = Rule {
        action,
        cond,
        location: loc.clone(),
    };
    match set {
        HttpRuleSet::Request => p.rules.http_request.push(rule),
        HttpRuleSet::Response => p.rules.http_response.push(rule),
        HttpRuleSet::AfterResponse => p.rules.http_after_response.push(rule),
    }
    Ok(())
}

fn http_request(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    http_rules(p, HttpRuleSet::Request, args, loc)
}

fn http_response(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    http_rules(p, HttpRuleSet::Response, args, loc)
}

fn http_after_response(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    http_rules(p, HttpRuleSet::AfterResponse, args, loc)
}

fn redirect(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (words, cond) = split_condition(args);
    let r = rules::action::redirect(words, &read_file)?;
    check_needs(r.target.needs(), Needs::Request, "redirect")?;
    let cond = condition(p, cond, Needs::Request, "redirect")?;
    p.rules.redirects.push(Rule {
        action: r,
        cond,
        location: loc.clone(),
    });
    Ok(())
}

fn tcp_request(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (kind, rest) = args
        .split_first()
        .ok_or("'tcp-request' expects 'connection', 'session', 'content' or 'inspect-delay'")?;
    let phase = match kind.as_str() {
        "inspect-delay" => {
            p.rules.inspect_delay = Some(parse_time(one("tcp-request inspect-delay", rest)?)?);
            return Ok(());
        }
        "connection" | "session" if p.kind == ProxyKind::Backend => {
            return Err(format!("'tcp-request {kind}' is not allowed in a backend"))
        }
        "connection" | "session" => Needs::Connection,
        "content" => Needs::Content,
        other => return Err(format!("'tcp-request' expects 'connection', 'session', 'content' or 'inspect-delay', got '{other}'")),
    };
    let what = format!("tcp-request {kind}");
    let (words, cond) = split_condition(rest);
    let action = tcp_action(words, &read_file)?;
    if matches!(action, TcpAction::ExpectProxy) && kind != "connection" {
        return Err("'expect-proxy' is only allowed in 'tcp-request connection'".into());
    }
    match &action {
        TcpAction::SetVar(_, s) => check_needs(s.needs(), phase, &what)?,
        TcpAction::SetVarFmt(_, lf) => check_needs(lf.needs(), phase, &what)?,
        _ => {}
    }
    let cond = condition(p, cond, phase, &what)?;
    let rule = Rule {
        action,
        cond,
        location: loc.clone(),
    };
    match kind.as_str() {
        "connection" => p.rules.tcp_connection.push(rule),
        "session" => p.rules.tcp_session.push(rule),
        _ => p.rules.tcp_content.push(rule),
    }
    Ok(())
}

fn tcp_response(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (kind, rest) = args
        .split_first()
        .ok_or("'tcp-response' expects 'content' or 'inspect-delay'")?;
    match kind.as_str() {
        "inspect-delay" => {
            let delay = parse_time(one("tcp-response inspect-delay", rest)?)?;
            p.rules.response_inspect_delay = Some(delay);
            return Ok(());
        }
        "content" => {}
        other => {
            return Err(format!(
                "'tcp-response' expects 'content' or 'inspect-delay', got '{other}'"
            ))
        }
    }
    let what = "tcp-response content";
    let (words, cond) = split_condition(rest);
    let action = tcp_action(words, &read_file)?;
    match &action {
        TcpAction::ExpectProxy => {
            return Err("'expect-proxy' is only allowed in 'tcp-request connection'".into())
        }
        TcpAction::SetVar(_, s) => check_needs(s.needs(), Needs::ResponseContent, what)?,
        TcpAction::SetVarFmt(_, lf) => check_needs(lf.needs(), Needs::ResponseContent, what)?,
        _ => {}
    }
    let cond = condition(p, cond, Needs::ResponseContent, what)?;
    p.rules.tcp_response.push(Rule {
        action,
        cond,
        location: loc.clone(),
    });
    Ok(())
}

fn balance(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (algo, opts) = args.split_first().ok_or("'balance' expects an algorithm")?;
    let no_opts = |name: &str| {
        if opts.is_empty() {
            Ok(())
        } else {
            Err(format!("'balance {name}' takes no argument"))
        }
    };
    p.balance = match algo.as_str() {
        "roundrobin" => no_opts("roundrobin").map(|_| Balance::RoundRobin)?,
        "static-rr" => no_opts("static-rr").map(|_| Balance::StaticRr)?,
        "uri" => Balance::Uri(uri_options(opts)?),
        "source" => no_opts("source").map(|_| Balance::Source)?,
        "url_param" => match opts {
            [name] => Balance::UrlParam(name.clone()),
            [_, check, ..] if check == "check_post" => {
                return Err("'balance url_param ... check_post' is not supported by percore yet (server selection, issue #4)".into())
            }
            _ => return Err("'balance url_param' expects a parameter name".into()),
        },
        a if a.starts_with("hdr(") && a.ends_with(')') && a.len() > 5 => {
            if !opts.is_empty() {
                return Err(format!("'balance {a} {}' is not supported by percore yet (server selection, issue #4)", opts.join(" ")));
            }
            Balance::Hdr(a[4..a.len() - 1].to_string())
        }
        "leastconn" => no_opts("leastconn").map(|_| Balance::LeastConn)?,
        "first" => no_opts("first").map(|_| Balance::First)?,
        "random" => no_opts("random").map(|_| Balance::Random(2))?,
        a if a.starts_with("random(") && a.ends_with(')') => {
            no_opts(a)?;
            let draws = a[7..a.len() - 1]
                .parse()
                .ok()
                .filter(|&n: &u32| n > 0)
                .ok_or_else(|| format!("'balance {a}': the number of draws must be a positive integer"))?;
            Balance::Random(draws)
        }
        "rdp-cookie" | "hash" => {
            return Err(format!(
                "'balance {algo}' is not supported by percore yet (server selection, issue #4)"
            ))
        }
        a if a.starts_with("hdr(") || a.starts_with("rdp-cookie(") => {
            return Err(format!(
                "'balance {a}' is not supported by percore yet (server selection, issue #4)"
            ))
        }
        other => return Err(format!("unknown balance algorithm '{other}'")),
    };
    Ok(())
}

/// The options of `balance uri`: `whole`, `len N`, `depth N`, `path-only`.
fn uri_options(opts: &[String]) -> Result<UriHash, String> {
    let mut u = UriHash::default();
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        let mut number = |what: &str| -> Result<u32, String> {
            let v = it
                .next()
                .ok_or_else(|| format!("'balance uri {what}' expects a number"))?;
            v.parse()
                .ok()
                .filter(|&n: &u32| n > 0)
                .ok_or_else(|| format!("'balance uri {what}' expects a positive number, got '{v}'"))
        };
        match o.as_str() {
            "whole" => u.whole = true,
            "path-only" => u.path_only = true,
            "len" => u.len = Some(number("len")?),
            "depth" => u.depth = Some(number("depth")?),
            other => return Err(format!("'balance uri': unknown option '{other}'")),
        }
    }
    Ok(u)
}

fn hash_type(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (method, rest) = args
        .split_first()
        .ok_or("'hash-type' expects map-based or consistent")?;
    let method = match method.as_str() {
        "map-based" => HashMethod::MapBased,
        "consistent" => HashMethod::Consistent,
        other => {
            return Err(format!(
                "'hash-type': unknown method '{other}' (expected map-based or consistent)"
            ))
        }
    };
    // As in HAProxy: a function, then a modifier; `consistent` alone means sdbm with
    // avalanche.
    let function = match rest.first().map(String::as_str) {
        None => HashFunction::Sdbm,
        Some("sdbm") => HashFunction::Sdbm,
        Some("djb2") => HashFunction::Djb2,
        Some("wt6") => HashFunction::Wt6,
        Some("crc32") => HashFunction::Crc32,
        Some("none") => HashFunction::None,
        Some(other) => {
            return Err(format!(
                "'hash-type': unknown function '{other}' (expected sdbm, djb2, wt6, crc32 or none)"
            ))
        }
    };
    let avalanche = match rest.get(1..).unwrap_or_default() {
        [] => rest.is_empty() && method == HashMethod::Consistent,
        [m] if m == "avalanche" => true,
        [m, ..] => {
            return Err(format!(
                "'hash-type': unknown modifier '{m}' (only 'avalanche' is known)"
            ))
        }
    };
    let h = HashType {
        method,
        function,
        avalanche,
    };
    p.hash_type = h;
    Ok(())
}

fn hash_balance_factor(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let v = one("hash-balance-factor", args)?;
    let factor: u32 = v
        .parse()
        .map_err(|_| format!("'hash-balance-factor' expects a percentage, got '{v}'"))?;
    if factor != 0 && factor <= 100 {
        return Err(format!(
            "'hash-balance-factor' must be 0 (off) or greater than 100, got {factor}"
        ));
    }
    p.hash_balance_factor = factor;
    Ok(())
}

fn timeout(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let (which, value) = match args {
        [w, v] => (w.as_str(), v.as_str()),
        _ => return Err("'timeout' expects a name and a value, as in 'timeout client 30s'".into()),
    };
    let d = parse_time(value).map_err(|e| format!("'timeout {which}': {e}"))?;
    let t = &mut p.timeouts;
    let (slot, needs_front) = match which {
        "connect" => (&mut t.connect, false),
        "client" => (&mut t.client, true),
        "server" => (&mut t.server, false),
        "http-request" => (&mut t.http_request, true),
        "http-keep-alive" => (&mut t.http_keep_alive, true),
        "client-fin" => (&mut t.client_fin, true),
        "server-fin" => (&mut t.server_fin, false),
        "tunnel" => (&mut t.tunnel, false),
        "queue" => (&mut t.queue, false),
        "check" => (&mut t.check, false),
        "tarpit" => (&mut t.tarpit, true),
        other => return Err(format!("unknown timeout '{other}'")),
    };
    *slot = Some(d);
    let applies = if needs_front {
        p.kind.has_frontend()
    } else {
        p.kind.has_backend()
    };
    if !applies && p.kind != ProxyKind::Defaults {
        warnings.push(format!(
            "'timeout {which}' is ignored in a '{}' section",
            p.kind.keyword()
        ));
    }
    Ok(())
}

fn retries(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.retries = parse_uint("retries", one("retries", args)?)?;
    Ok(())
}

/// `retry-on KEYWORD...`: replaces the whole set, as in HAProxy.
fn retry_on(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    if args.is_empty() {
        return Err("'retry-on' expects at least one keyword".into());
    }
    let mut r = RetryOn::NONE;
    for word in args {
        match word.as_str() {
            "none" if args.len() == 1 => {}
            "none" => return Err("'retry-on none' takes no other keyword".into()),
            "conn-failure" => r.conn_failure = true,
            "empty-response" => r.empty_response = true,
            "junk-response" => r.junk_response = true,
            "response-timeout" => r.response_timeout = true,
            "all-retryable-errors" => {
                r.conn_failure = true;
                r.empty_response = true;
                r.junk_response = true;
                r.response_timeout = true;
                for status in [500, 502, 503, 504] {
                    r.statuses |= RetryOn::bit(status).unwrap_or(0);
                }
            }
            "0rtt-rejected" => {
                return Err(
                    "'retry-on 0rtt-rejected' is not supported by percore yet (planned: TLS, issue #16)"
                        .into(),
                );
            }
            code => match code.parse().ok().and_then(RetryOn::bit) {
                Some(bit) => r.statuses |= bit,
                None => {
                    return Err(format!(
                        "'retry-on' expects none, conn-failure, empty-response, junk-response, response-timeout, all-retryable-errors or one of the statuses 401 403 404 408 425 500 501 502 503 504, got '{code}'"
                    ))
                }
            },
        }
    }
    p.retry_on = r;
    Ok(())
}

fn http_reuse(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.http_reuse = match one("http-reuse", args)? {
        "never" => HttpReuse::Never,
        "safe" => HttpReuse::Safe,
        "aggressive" => HttpReuse::Aggressive,
        "always" => HttpReuse::Always,
        other => {
            return Err(format!(
                "'http-reuse' expects never, safe, aggressive or always, got '{other}'"
            ))
        }
    };
    Ok(())
}

fn errorfile(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.errorfiles
        .push(ErrorPage::File(http_errors::errorfile(args)?));
    Ok(())
}

/// `errorloc`/`errorloc302` (`REDIRECT` 302) and `errorloc303` (303).
fn errorloc<const REDIRECT: u16>(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.errorfiles
        .push(ErrorPage::File(http_errors::errorloc(REDIRECT, args)?));
    Ok(())
}

fn errorfiles(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.errorfiles.push(http_errors::import(args, loc)?);
    Ok(())
}

fn option(p: &mut Proxy, args: &[String], _: &Location, _: &mut Vec<String>) -> Result<(), String> {
    set_option(p, args, true)
}

fn no_option(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    match args.split_first() {
        Some((o, rest)) if o == "option" => set_option(p, rest, false),
        Some((l, [])) if l == "log" => {
            p.logs.clear();
            Ok(())
        }
        _ => Err("'no' must be followed by 'option NAME' or 'log'".into()),
    }
}

fn log(p: &mut Proxy, args: &[String], _: &Location, _: &mut Vec<String>) -> Result<(), String> {
    p.logs.push(crate::log::log_line(args)?);
    Ok(())
}

fn log_format(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let text = one("log-format", args)?;
    let lf = LogFormat::parse_log(text, &read_file)?;
    p.traffic_log = Some(TrafficFormat::Custom(lf));
    Ok(())
}

fn unique_id_format(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let lf = LogFormat::parse_log(one("unique-id-format", args)?, &read_file)?;
    p.unique_id_format = (!lf.parts.is_empty()).then_some(lf);
    Ok(())
}

fn unique_id_header(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    if args.len() != 1 {
        return Err("'unique-id-header' takes one header name".into());
    }
    p.unique_id_header = Some(header_name(args.first())?);
    Ok(())
}

fn log_tag(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.log_tag = Some(one("log-tag", args)?.to_string());
    Ok(())
}

fn set_option(p: &mut Proxy, args: &[String], on: bool) -> Result<(), String> {
    let (name, rest) = args.split_first().ok_or("'option' expects a name")?;
    match name.as_str() {
        "httpchk" if on => {
            p.checks.kind = CheckType::Http;
            return option_httpchk(&mut p.checks.http, rest);
        }
        "tcp-check" if on => {
            no_args("option tcp-check", rest)?;
            p.checks.kind = CheckType::Tcp;
            return Ok(());
        }
        "httpchk" | "tcp-check" => {
            p.checks.kind = CheckType::Connect;
            return Ok(());
        }
        "httplog" | "tcplog" if on => {
            match rest {
                [] => {}
                [clf] if clf == "clf" => {
                    return Err(format!("'option {name} clf' is not supported by percore yet (planned: logs, stats and the runtime socket)"))
                }
                _ => return Err(format!("'option {name}' takes no argument but 'clf'")),
            }
            p.traffic_log = Some(if name == "httplog" {
                TrafficFormat::Http
            } else {
                TrafficFormat::Tcp
            });
            return Ok(());
        }
        "httplog" | "tcplog" => {
            no_args(&format!("no option {name}"), rest)?;
            p.traffic_log = None;
            return Ok(());
        }
        "log-health-checks" => {
            no_args("option log-health-checks", rest)?;
            p.checks.log = on;
            return Ok(());
        }
        _ => {}
    }
    let o = &mut p.options;
    let flag = |rest: &[String]| no_args(&format!("option {name}"), rest);
    match name.as_str() {
        "redispatch" => {
            let interval: i32 = match rest {
                [] => -1,
                [n] => n.parse().map_err(|_| {
                    format!("'option redispatch' expects an optional interval, got '{n}'")
                })?,
                _ => return Err("'option redispatch' takes at most an interval".into()),
            };
            o.redispatch = (on && interval != 0).then_some(interval);
        }
        "http-server-close" => {
            flag(rest)?;
            o.http_conn_mode = if on {
                HttpConnMode::ServerClose
            } else {
                HttpConnMode::KeepAlive
            };
        }
        "httpclose" => {
            flag(rest)?;
            o.http_conn_mode = if on {
                HttpConnMode::Close
            } else {
                HttpConnMode::KeepAlive
            };
        }
        "http-keep-alive" => {
            flag(rest)?;
            if on {
                o.http_conn_mode = HttpConnMode::KeepAlive;
            }
        }
        "forwardfor" if !on => o.forwardfor = None,
        "forwardfor" => {
            let mut ff = ForwardFor {
                except: None,
                header: "X-Forwarded-For".into(),
                if_none: false,
            };
            let mut it = rest.iter();
            while let Some(w) = it.next() {
                match w.as_str() {
                    "except" => {
                        ff.except = Some(IpNet::parse(
                            it.next().ok_or("'except' expects a network")?,
                        )?)
                    }
                    "header" => ff.header = header_name(it.next())?,
                    "if-none" => ff.if_none = true,
                    other => {
                        return Err(format!("'option forwardfor': unknown argument '{other}'"))
                    }
                }
            }
            o.forwardfor = Some(ff);
        }
        "originalto" if !on => o.originalto = None,
        "originalto" => {
            let mut ot = OriginalTo {
                except: None,
                header: "X-Original-To".into(),
            };
            let mut it = rest.iter();
            while let Some(w) = it.next() {
                match w.as_str() {
                    "except" => {
                        ot.except = Some(IpNet::parse(
                            it.next().ok_or("'except' expects a network")?,
                        )?)
                    }
                    "header" => ot.header = header_name(it.next())?,
                    other => {
                        return Err(format!("'option originalto': unknown argument '{other}'"))
                    }
                }
            }
            o.originalto = Some(ot);
        }
        "allbackups" => {
            flag(rest)?;
            o.allbackups = on;
        }
        "http-buffer-request" => {
            flag(rest)?;
            o.http_buffer_request = on;
        }
        "independent-streams" => {
            flag(rest)?;
            o.independent_streams = on;
        }
        "persist" => {
            flag(rest)?;
            o.persist = on;
        }
        "dontlognull" => {
            flag(rest)?;
            o.dontlognull = on;
        }
        "dontlog-normal" => {
            flag(rest)?;
            o.dontlog_normal = on;
        }
        "log-separate-errors" => {
            flag(rest)?;
            o.log_separate_errors = on;
        }
        "splice-auto" => {
            flag(rest)?;
            o.splice.auto = on;
        }
        "splice-request" => {
            flag(rest)?;
            o.splice.request = on;
        }
        "splice-response" => {
            flag(rest)?;
            o.splice.response = on;
        }
        other => {
            let full = format!("option {other}");
            return Err(match planned(&full) {
                Some(work) => format!("'{full}' is not supported by percore yet ({work})"),
                None => format!("unknown option '{other}'"),
            });
        }
    }
    Ok(())
}

fn http_check(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    http_check_line(&mut p.checks.http, args)
}

fn tcp_check(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    tcp_check_line(&mut p.checks.tcp, args)
}

fn capture(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.captures.add(args, false)
}

fn declare(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    match args.split_first() {
        Some((c, rest)) if c == "capture" => p.captures.add(rest, true),
        _ => Err("'declare' expects 'capture request|response len LENGTH'".into()),
    }
}

/// `monitor fail if|unless COND`.
fn monitor(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let (words, cond) = split_condition(args);
    if words != ["fail"] || cond.is_none() {
        return Err("'monitor' expects 'fail if|unless CONDITION'".into());
    }
    p.monitor_fail = condition(p, cond, Needs::Request, "monitor fail")?;
    Ok(())
}

fn fullconn(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    p.fullconn = Some(positive("backend", "fullconn", one("fullconn", args)?)?);
    Ok(())
}

fn monitor_uri(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let uri = one("monitor-uri", args)?;
    if !uri.starts_with('/') {
        return Err(format!(
            "'monitor-uri' expects a path starting with '/', got '{uri}'"
        ));
    }
    p.monitor_uri = Some(uri.to_string());
    Ok(())
}

fn cookie(p: &mut Proxy, args: &[String], _: &Location, _: &mut Vec<String>) -> Result<(), String> {
    let (name, opts) = args.split_first().ok_or("'cookie' expects a cookie name")?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
    {
        return Err(format!("'cookie': '{name}' is not a valid cookie name"));
    }
    let mut c = Cookie {
        name: name.clone(),
        mode: CookieMode::Insert,
        indirect: false,
        nocache: false,
        httponly: false,
        secure: false,
        domains: Vec::new(),
    };
    let mut mode = None;
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        match o.as_str() {
            "insert" => mode = Some(CookieMode::Insert),
            "prefix" => mode = Some(CookieMode::Prefix),
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "domain" => c.domains.push(
                it.next()
                    .ok_or("'cookie ... domain' expects a domain")?
                    .clone(),
            ),
            "rewrite" | "postonly" | "preserve" | "maxidle" | "maxlife" | "attr" | "dynamic" => {
                return Err(format!(
                    "'cookie ... {o}' is not supported by percore yet (server selection, issue #4)"
                ))
            }
            other => return Err(format!("'cookie': unknown option '{other}'")),
        }
    }
    c.mode =
        mode.ok_or("'cookie' needs a mode: insert or prefix (rewrite is not supported yet)")?;
    p.cookie = Some(c);
    Ok(())
}

fn header_name(w: Option<&String>) -> Result<String, String> {
    let name = w.ok_or("'header' expects a header name")?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
    {
        return Err(format!("'{name}' is not a valid header name"));
    }
    Ok(name.clone())
}

fn bind(p: &mut Proxy, args: &[String], loc: &Location, _: &mut Vec<String>) -> Result<(), String> {
    let (addrs, opts) = args.split_first().ok_or("'bind' expects an address")?;
    let mut template = Bind {
        addr: BindAddr::Fd(-1),
        accept_proxy: false,
        name: None,
        backlog: None,
        unix_mode: None,
        unix_user: None,
        unix_group: None,
        location: loc.clone(),
    };
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("bind option '{o}' expects a value"))
        };
        match o.as_str() {
            "accept-proxy" => template.accept_proxy = true,
            "name" => template.name = Some(value()?.clone()),
            "backlog" => template.backlog = Some(parse_uint("backlog", value()?)?),
            "mode" => {
                let v = value()?;
                template.unix_mode = Some(
                    u32::from_str_radix(v, 8)
                        .map_err(|_| format!("bind 'mode' expects an octal mode, got '{v}'"))?,
                );
            }
            "user" | "uid" => template.unix_user = Some(value()?.clone()),
            "group" | "gid" => template.unix_group = Some(value()?.clone()),
            other => {
                return Err(match planned(other) {
                    Some(work) => {
                        format!("bind option '{other}' is not supported by percore yet ({work})")
                    }
                    None => format!("unknown bind option '{other}'"),
                })
            }
        }
    }
    for addr in addrs.split(',') {
        let mut b = template.clone();
        b.addr = bind_addr(addr)?;
        p.binds.push(b);
    }
    Ok(())
}

/// Parses a bind address: `*:80`, `:80`, `1.2.3.4:80-90`, `:::80`, `ipv6@::1:80`,
/// `unix@/path`, `/path`, `fd@3`.
pub fn bind_addr(s: &str) -> Result<BindAddr, String> {
    if let Some(fd) = s.strip_prefix("fd@") {
        let n: i32 = fd
            .parse()
            .ok()
            .filter(|&n| n >= 0)
            .ok_or_else(|| format!("'{s}': 'fd@' expects a file descriptor number"))?;
        return Ok(BindAddr::Fd(n));
    }
    if let Some(path) = s.strip_prefix("unix@") {
        return Ok(BindAddr::Unix(path.into()));
    }
    if s.starts_with('/') {
        return Ok(BindAddr::Unix(s.into()));
    }
    if s.contains('@') && !s.starts_with("ipv4@") && !s.starts_with("ipv6@") {
        return Err(format!(
            "address family in '{s}' is not supported by percore yet"
        ));
    }
    let (host, ports) = split_host_port(s)?;
    let ports = ports.ok_or_else(|| format!("'{s}': a bind address needs a port"))?;
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (a, b),
        None => (ports, ports),
    };
    let port = |x: &str| {
        x.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("invalid port '{x}' in '{s}'"))
    };
    let (port, port_end) = (port(a)?, port(b)?);
    if port_end < port {
        return Err(format!("port range in '{s}' is reversed"));
    }
    let ip =
        match host {
            "" | "*" | "0.0.0.0" => None,
            h => Some(h.parse().map_err(|_| {
                format!("'{h}' is not an IP address (bind addresses must be numeric)")
            })?),
        };
    Ok(BindAddr::Inet { ip, port, port_end })
}

/// Splits `HOST:PORT` on the last colon, honouring `ipv4@`/`ipv6@` prefixes and `[v6]`.
pub(crate) fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    let s = s
        .strip_prefix("ipv4@")
        .or_else(|| s.strip_prefix("ipv6@"))
        .unwrap_or(s);
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in '{s}'"))?;
        return Ok((host, after.strip_prefix(':')));
    }
    match s.rfind(':') {
        Some(i) => Ok((&s[..i], Some(&s[i + 1..]))),
        None => Ok((s, None)),
    }
}

fn server(
    p: &mut Proxy,
    args: &[String],
    loc: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let [name, addr, opts @ ..] = args else {
        return Err("'server' expects a name and an address".into());
    };
    check_name(name).map_err(|e| format!("server name: {e}"))?;
    if let Some(other) = p.servers.iter().find(|s| &s.name == name) {
        return Err(format!(
            "server '{name}' is already declared at {}",
            other.location
        ));
    }
    let (host, port) = split_host_port(addr)?;
    if host.is_empty() || addr.starts_with('/') || addr.contains("@/") {
        return Err(format!(
            "server '{name}': address '{addr}' is not supported (expected HOST:PORT)"
        ));
    }
    let port: u16 = port
        .and_then(|x| x.parse().ok())
        .filter(|&x: &u16| x > 0)
        .ok_or_else(|| format!("server '{name}': '{addr}' needs a fixed port (port offsets and mapped ports are not supported yet)"))?;
    let mut options = p.default_server.clone();
    server_options(&mut options, opts, &format!("server '{name}'"))?;
    p.servers.push(Server {
        name: name.clone(),
        host: host.to_string(),
        port,
        options,
        location: loc.clone(),
    });
    Ok(())
}

fn default_server(
    p: &mut Proxy,
    args: &[String],
    _: &Location,
    _: &mut Vec<String>,
) -> Result<(), String> {
    let mut options = p.default_server.clone();
    server_options(&mut options, args, "default-server")?;
    p.default_server = options;
    Ok(())
}

/// A check interval: a time above zero.
fn check_time(what: &str, kw: &str, v: &str) -> Result<std::time::Duration, String> {
    let d = parse_time(v).map_err(|e| format!("{what}: '{kw}': {e}"))?;
    if d.is_zero() {
        return Err(format!("{what}: '{kw}' must be above zero"));
    }
    Ok(d)
}

/// An IP address option of a server line.
fn ip(what: &str, kw: &str, v: &str) -> Result<std::net::IpAddr, String> {
    v.parse()
        .map_err(|_| format!("{what}: '{kw}' expects an IP address, got '{v}'"))
}

/// A count of at least one.
fn positive(what: &str, kw: &str, v: &str) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|&n: &u32| n > 0)
        .ok_or_else(|| format!("{what}: '{kw}' expects a positive integer, got '{v}'"))
}

fn server_options(o: &mut ServerOptions, args: &[String], what: &str) -> Result<(), String> {
    let mut it = args.iter();
    while let Some(w) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{what}: '{w}' expects a value"))
        };
        match w.as_str() {
            "weight" => {
                let v: u32 = parse_uint("weight", value()?)?;
                if v > 256 {
                    return Err(format!(
                        "{what}: 'weight' must be between 0 and 256, got {v}"
                    ));
                }
                o.weight = v;
            }
            "maxconn" => o.maxconn = Some(parse_uint("maxconn", value()?)?),
            "maxqueue" => o.maxqueue = Some(parse_uint("maxqueue", value()?)?),
            "send-proxy" => o.send_proxy = Some(SendProxy::V1),
            "send-proxy-v2" => o.send_proxy = Some(SendProxy::V2),
            "no-send-proxy" | "no-send-proxy-v2" => o.send_proxy = None,
            "cookie" => o.cookie = Some(value()?.clone()),
            "backup" => o.backup = true,
            "no-backup" => o.backup = false,
            "disabled" => o.disabled = true,
            "enabled" => o.disabled = false,
            "id" => o.id = Some(positive(what, w, value()?)?),
            "check" => o.check.enabled = true,
            "no-check" => o.check.enabled = false,
            "inter" => o.check.inter = check_time(what, w, value()?)?,
            "fastinter" => o.check.fastinter = Some(check_time(what, w, value()?)?),
            "downinter" => o.check.downinter = Some(check_time(what, w, value()?)?),
            "rise" => o.check.rise = positive(what, w, value()?)?,
            "fall" => o.check.fall = positive(what, w, value()?)?,
            "port" => o.check.port = Some(parse_uint("port", value()?)?),
            "addr" => o.check.addr = Some(ip(what, w, value()?)?),
            "minconn" => o.minconn = Some(parse_uint("minconn", value()?)?),
            "pool-purge-delay" => {
                o.pool.purge_delay =
                    parse_time(value()?).map_err(|e| format!("{what}: '{w}': {e}"))?
            }
            "pool-max-conn" => {
                let v = value()?;
                o.pool.max_conn = match v.parse::<i64>() {
                    Ok(-1) => None,
                    Ok(n) if (0..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
                    _ => {
                        return Err(format!(
                            "{what}: '{w}' expects -1 (no limit) or a count, got '{v}'"
                        ))
                    }
                };
            }
            "pool-low-conn" => o.pool.low_conn = parse_uint(w, value()?)?,
            "slowstart" => {
                let d = parse_time(value()?).map_err(|e| format!("{what}: 'slowstart': {e}"))?;
                o.slowstart = (!d.is_zero()).then_some(d);
            }
            "track" => {
                let v = value()?;
                o.track = Some(match v.split_once('/') {
                    Some((b, s)) if !b.is_empty() && !s.is_empty() => Track {
                        backend: Some(b.to_string()),
                        server: s.to_string(),
                    },
                    None if !v.is_empty() => Track {
                        backend: None,
                        server: v.clone(),
                    },
                    _ => return Err(format!("{what}: 'track' expects [BACKEND/]SERVER, got '{v}'")),
                });
            }
            "observe" => {
                o.observe.layer = Some(match value()?.as_str() {
                    "layer4" => ObserveLayer::Layer4,
                    "layer7" => ObserveLayer::Layer7,
                    other => {
                        return Err(format!(
                            "{what}: 'observe' expects layer4 or layer7, got '{other}'"
                        ))
                    }
                })
            }
            "error-limit" => o.observe.error_limit = positive(what, w, value()?)?,
            "on-error" => {
                o.observe.on_error = match value()?.as_str() {
                    "fastinter" => OnError::Fastinter,
                    "fail-check" => OnError::FailCheck,
                    "sudden-death" => OnError::SuddenDeath,
                    "mark-down" => OnError::MarkDown,
                    other => {
                        return Err(format!(
                            "{what}: 'on-error' expects fastinter, fail-check, sudden-death or mark-down, got '{other}'"
                        ))
                    }
                }
            }
            "agent-check" => o.agent.enabled = true,
            "no-agent-check" => o.agent.enabled = false,
            "agent-port" => o.agent.port = Some(parse_uint("agent-port", value()?)?),
            "agent-addr" => o.agent.addr = Some(ip(what, w, value()?)?),
            "agent-inter" => o.agent.inter = Some(check_time(what, w, value()?)?),
            "agent-send" => o.agent.send = Some(value()?.clone()),
            other => {
                return Err(match planned(other) {
                    Some(work) => {
                        format!("{what}: '{other}' is not supported by percore yet ({work})")
                    }
                    None => format!("{what}: unknown keyword '{other}'"),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses() {
        assert_eq!(
            bind_addr("*:80").unwrap(),
            BindAddr::Inet {
                ip: None,
                port: 80,
                port_end: 80
            }
        );
        assert_eq!(
            bind_addr(":80").unwrap(),
            BindAddr::Inet {
                ip: None,
                port: 80,
                port_end: 80
            }
        );
        assert_eq!(
            bind_addr("127.0.0.1:8000-8010").unwrap(),
            BindAddr::Inet {
                ip: Some("127.0.0.1".parse().unwrap()),
                port: 8000,
                port_end: 8010
            }
        );
        assert_eq!(
            bind_addr(":::80").unwrap(),
            BindAddr::Inet {
                ip: Some("::".parse().unwrap()),
                port: 80,
                port_end: 80
            }
        );
        assert_eq!(
            bind_addr("ipv6@::1:80").unwrap(),
            BindAddr::Inet {
                ip: Some("::1".parse().unwrap()),
                port: 80,
                port_end: 80
            }
        );
        assert_eq!(
            bind_addr("unix@/tmp/s").unwrap(),
            BindAddr::Unix("/tmp/s".into())
        );
        assert_eq!(
            bind_addr("/tmp/s").unwrap(),
            BindAddr::Unix("/tmp/s".into())
        );
        assert_eq!(bind_addr("fd@3").unwrap(), BindAddr::Fd(3));
        assert!(bind_addr("127.0.0.1").is_err());
        assert!(bind_addr("127.0.0.1:0").is_err());
        assert!(bind_addr("host.example:80").is_err());
        assert!(bind_addr("abns@x").is_err());
        assert!(bind_addr("1.2.3.4:90-80").is_err());
    }
}
