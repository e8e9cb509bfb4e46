//! Health-check settings of a backend: `option httpchk`, `http-check send|expect`,
//! `option tcp-check` with its `tcp-check` steps, and the expectations they share.

use crate::rules::pattern::{compile_regex, hex};
use regex::bytes::Regex;

/// Which protocol a backend's checks speak; the last `option httpchk` or `option
/// tcp-check` wins, as in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckType {
    /// A TCP connection that opens is a success.
    #[default]
    Connect,
    /// `option httpchk`: an HTTP request and its response.
    Http,
    /// `option tcp-check`: the `tcp-check` steps.
    Tcp,
}

/// A backend's health-check settings.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Which protocol the checks speak.
    pub kind: CheckType,
    /// The HTTP check: request and expectation.
    pub http: HttpCheck,
    /// `tcp-check` steps, in order.
    pub tcp: Vec<TcpCheckStep>,
    /// `option log-health-checks`: every check result change is reported, not only
    /// state changes.
    pub log: bool,
}

/// `option httpchk [METHOD] [URI] [VERSION]`, `http-check send` and `http-check expect`.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// Method (OPTIONS by default).
    pub method: String,
    /// Request target (`/` by default).
    pub uri: String,
    /// Version, possibly followed by header lines (`HTTP/1.0\r\nHost: x`).
    pub version: String,
    /// `http-check send hdr NAME VALUE` lines.
    pub headers: Vec<(String, String)>,
    /// `http-check send body STRING`.
    pub body: String,
    /// `http-check expect`; any 2xx or 3xx status passes without one.
    pub expect: Option<Expect>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        Self {
            method: "OPTIONS".into(),
            uri: "/".into(),
            version: "HTTP/1.0".into(),
            headers: Vec::new(),
            body: String::new(),
            expect: None,
        }
    }
}

/// One `tcp-check` step.
#[derive(Debug, Clone)]
pub enum TcpCheckStep {
    /// `tcp-check connect [port N]`: (re)connects, to another port if given.
    Connect {
        /// The port to connect to instead of the check port.
        port: Option<u16>,
    },
    /// `tcp-check send STRING` / `send-binary HEX`.
    Send(Vec<u8>),
    /// `tcp-check expect ...`.
    Expect(Expect),
}

/// `expect [!] MATCH PATTERN`: what a response must (or, negated, must not) contain.
#[derive(Debug, Clone)]
pub struct Expect {
    /// `!`: the check fails when the pattern matches.
    pub negate: bool,
    /// What is looked for.
    pub matcher: Matcher,
}

/// The kinds of `expect`.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// `status CODES`: a comma-separated list of codes and `LOW-HIGH` ranges.
    Status(Vec<(u16, u16)>),
    /// `rstatus REGEX` on the status code.
    Rstatus(Regex),
    /// `string S` (in an HTTP body or the bytes received) or `binary HEX`.
    Bytes(Vec<u8>),
    /// `rstring REGEX` / `rbinary REGEX`.
    Regex(Regex),
    /// `hdr name [-m METH] NAME [value [-m METH] VALUE]`, or `fhdr` (`full`: the
    /// value is not split at commas).
    Header {
        /// How the header name is matched (names compare case-insensitively).
        name: TextMatch,
        /// How a value must match, if at all.
        value: Option<TextMatch>,
        /// `fhdr`: the whole value is one value.
        full: bool,
    },
}

/// A string test of `hdr`'s `-m str|beg|end|sub|reg`.
#[derive(Debug, Clone)]
pub enum TextMatch {
    /// `str` (the default): equal.
    Exact(String),
    /// `beg`: starts with.
    Begins(String),
    /// `end`: ends with.
    Ends(String),
    /// `sub`: contains.
    Contains(String),
    /// `reg`: the regex matches.
    Regex(Regex),
}

impl TextMatch {
    /// Whether `text` passes; `icase` compares ASCII letters case-insensitively.
    pub fn matches(&self, text: &[u8], icase: bool) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if icase {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            TextMatch::Exact(s) => eq(text, s.as_bytes()),
            TextMatch::Begins(s) => text.len() >= s.len() && eq(&text[..s.len()], s.as_bytes()),
            TextMatch::Ends(s) => {
                text.len() >= s.len() && eq(&text[text.len() - s.len()..], s.as_bytes())
            }
            TextMatch::Contains(s) => {
                s.is_empty() || text.windows(s.len()).any(|w| eq(w, s.as_bytes()))
            }
            TextMatch::Regex(r) => r.is_match(text),
        }
    }
}

/// Parses the words after `expect`; `http` selects the HTTP matches (`status`,
/// `rstatus`, `string`, `rstring`, `hdr`, `fhdr`), otherwise the TCP ones (`string`,
/// `rstring`, `binary`, `rbinary`).
pub fn parse_expect(args: &[String], http: bool) -> Result<Expect, String> {
    let what = if http {
        "http-check expect"
    } else {
        "tcp-check expect"
    };
    let mut words = args;
    // `comment MSG` only names the rule in reports; accepted and dropped.
    while let [first, _, rest @ ..] = words {
        if first != "comment" {
            break;
        }
        words = rest;
    }
    let mut negate = false;
    if let Some((first, rest)) = words.split_first() {
        if first == "!" {
            negate = true;
            words = rest;
        } else if let Some(m) = first.strip_prefix('!') {
            negate = true;
            let mut owned = vec![m.to_string()];
            owned.extend_from_slice(rest);
            return parse_match(&owned, http, what).map(|matcher| Expect { negate, matcher });
        }
    }
    parse_match(words, http, what).map(|matcher| Expect { negate, matcher })
}

fn parse_match(words: &[String], http: bool, what: &str) -> Result<Matcher, String> {
    let (kind, rest) = words
        .split_first()
        .ok_or_else(|| format!("'{what}' expects a match and a pattern"))?;
    let pattern = || -> Result<&String, String> {
        match rest {
            [p] => Ok(p),
            [] => Err(format!("'{what} {kind}' expects a pattern")),
            [_, extra, ..] => Err(format!(
                "'{what} {kind}': unexpected '{extra}' after the pattern"
            )),
        }
    };
    match (kind.as_str(), http) {
        ("status", true) => status_list(pattern()?).map(Matcher::Status),
        ("rstatus", true) => Ok(Matcher::Rstatus(compile_regex(pattern()?, false)?)),
        ("string", _) => Ok(Matcher::Bytes(pattern()?.as_bytes().to_vec())),
        ("rstring", _) => Ok(Matcher::Regex(compile_regex(pattern()?, false)?)),
        ("binary", false) => hex(pattern()?).map(Matcher::Bytes),
        ("rbinary", false) => Ok(Matcher::Regex(compile_regex(pattern()?, false)?)),
        ("hdr" | "fhdr", true) => header_match(rest, kind == "fhdr", what),
        (other, _) => Err(match other {
            "string-lf" | "binary-lf" | "custom" => {
                format!("'{what} {other}' is not supported by percore")
            }
            "min-recv" | "ok-status" | "error-status" | "tout-status" | "on-success"
            | "on-error" | "status-code" => {
                format!("'{what}': option '{other}' is not supported by percore")
            }
            _ => format!("'{what}': unknown match '{other}'"),
        }),
    }
}

/// `status 200,301-308`.
fn status_list(s: &str) -> Result<Vec<(u16, u16)>, String> {
    s.split(',')
        .map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(lo), Ok(hi)) if (100..600).contains(&lo) && (lo..600).contains(&hi) => {
                    Ok((lo, hi))
                }
                _ => Err(format!("'expect status': invalid status list '{s}'")),
            }
        })
        .collect()
}

fn header_match(words: &[String], full: bool, what: &str) -> Result<Matcher, String> {
    let mut it = words.iter().peekable();
    let mut part = |label: &str| -> Result<Option<TextMatch>, String> {
        match it.next() {
            None => return Ok(None),
            Some(w) if w == label => {}
            Some(w) if w.ends_with("-lf") => {
                return Err(format!("'{what} hdr {w}' is not supported by percore"))
            }
            Some(w) => return Err(format!("'{what} hdr': expected '{label}', got '{w}'")),
        }
        let mut method = "str";
        if it.peek().is_some_and(|w| *w == "-m") {
            it.next();
            method = it
                .next()
                .ok_or_else(|| format!("'{what} hdr': '-m' expects a method"))?;
        }
        let text = it
            .next()
            .ok_or_else(|| format!("'{what} hdr {label}' expects a pattern"))?
            .clone();
        Ok(Some(match method {
            "str" => TextMatch::Exact(text),
            "beg" => TextMatch::Begins(text),
            "end" => TextMatch::Ends(text),
            "sub" => TextMatch::Contains(text),
            "reg" => TextMatch::Regex(compile_regex(&text, label == "name")?),
            other => return Err(format!("'{what} hdr': unknown match method '{other}'")),
        }))
    };
    let name = part("name")?.ok_or_else(|| format!("'{what} hdr' expects 'name NAME'"))?;
    let value = part("value")?;
    if let Some(extra) = it.next() {
        return Err(format!("'{what} hdr': unexpected '{extra}'"));
    }
    Ok(Matcher::Header { name, value, full })
}

/// `option httpchk [METHOD] [URI] [VERSION]`: with one argument it is the URI; the
/// expectation and `http-check send` headers already given are kept.
pub fn option_httpchk(check: &mut HttpCheck, args: &[String]) -> Result<(), String> {
    let (method, uri, version) = match args {
        [] => ("OPTIONS", "/", "HTTP/1.0"),
        [uri] => ("OPTIONS", uri.as_str(), "HTTP/1.0"),
        [method, uri] => (method.as_str(), uri.as_str(), "HTTP/1.0"),
        [method, uri, version] => (method.as_str(), uri.as_str(), version.as_str()),
        _ => return Err("'option httpchk' expects at most a method, a URI and a version".into()),
    };
    if method.is_empty() || !method.bytes().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("'option httpchk': invalid method '{method}'"));
    }
    check.method = method.into();
    check.uri = uri.into();
    check.version = version.into();
    Ok(())
}

/// `http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]... [body S]` and
/// `http-check expect ...`; one `expect` per backend, as HAProxy's legacy form has it.
pub fn http_check_line(check: &mut HttpCheck, args: &[String]) -> Result<(), String> {
    let (verb, rest) = args
        .split_first()
        .ok_or("'http-check' expects 'send' or 'expect'")?;
    match verb.as_str() {
        "expect" => {
            if check.expect.is_some() {
                return Err(
                    "only one 'http-check expect' per backend is supported by percore".into(),
                );
            }
            check.expect = Some(parse_expect(rest, true)?);
            Ok(())
        }
        "send" => {
            let mut it = rest.iter();
            while let Some(w) = it.next() {
                let mut value = || {
                    it.next()
                        .cloned()
                        .ok_or_else(|| format!("'http-check send {w}' expects a value"))
                };
                match w.as_str() {
                    "meth" => check.method = value()?,
                    "uri" => check.uri = value()?,
                    "ver" => check.version = value()?,
                    "hdr" => {
                        let name = value()?;
                        let v = value()?;
                        check.headers.push((name, v));
                    }
                    "body" => check.body = value()?,
                    other => {
                        return Err(format!(
                            "'http-check send': option '{other}' is not supported by percore"
                        ))
                    }
                }
            }
            Ok(())
        }
        "connect" | "comment" | "disable-on-404" | "send-state" | "set-var" | "unset-var" => Err(
            format!("'http-check {verb}' is not supported by percore (server selection, issue #4)"),
        ),
        other => Err(format!("'http-check': unknown directive '{other}'")),
    }
}

/// `tcp-check connect|send|send-binary|expect|comment ...`.
pub fn tcp_check_line(steps: &mut Vec<TcpCheckStep>, args: &[String]) -> Result<(), String> {
    let (verb, rest) = args
        .split_first()
        .ok_or("'tcp-check' expects connect, send, send-binary or expect")?;
    let one = || -> Result<&String, String> {
        match rest {
            [v] => Ok(v),
            _ => Err(format!("'tcp-check {verb}' expects one argument")),
        }
    };
    let step = match verb.as_str() {
        "connect" => {
            let mut port = None;
            let mut it = rest.iter();
            while let Some(w) = it.next() {
                match w.as_str() {
                    "port" => {
                        let v = it.next().ok_or("'tcp-check connect port' expects a port")?;
                        port = Some(v.parse().map_err(|_| {
                            format!("'tcp-check connect port': invalid port '{v}'")
                        })?);
                    }
                    other => {
                        return Err(format!(
                            "'tcp-check connect': option '{other}' is not supported by percore"
                        ))
                    }
                }
            }
            TcpCheckStep::Connect { port }
        }
        "send" => TcpCheckStep::Send(one()?.as_bytes().to_vec()),
        "send-binary" => TcpCheckStep::Send(hex(one()?)?),
        "expect" => TcpCheckStep::Expect(parse_expect(rest, false)?),
        "comment" => return Ok(()),
        other => {
            return Err(format!(
                "'tcp-check {other}' is not supported by percore (server selection, issue #4)"
            ))
        }
    };
    steps.push(step);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn expectations() {
        let e = parse_expect(&words("! status 500-599,404"), true).unwrap();
        assert!(e.negate);
        assert!(matches!(&e.matcher, Matcher::Status(l) if l == &[(500, 599), (404, 404)]));
        let e = parse_expect(&words("!string oops"), true).unwrap();
        assert!(e.negate && matches!(e.matcher, Matcher::Bytes(_)));
        let e = parse_expect(&words("rstring [oO][kK]"), true).unwrap();
        assert!(!e.negate && matches!(e.matcher, Matcher::Regex(_)));
        let e = parse_expect(&words("hdr name -m beg x-st value ok"), true).unwrap();
        let Matcher::Header { name, value, .. } = e.matcher else {
            panic!()
        };
        assert!(name.matches(b"X-Status", true));
        assert!(value.unwrap().matches(b"ok", false));
        assert!(parse_expect(&words("binary 2b4f4b"), false).is_ok());
        assert!(parse_expect(&words("binary 2b4"), false).is_err());
        assert!(parse_expect(&words("status 200"), false).is_err());
        assert!(parse_expect(&words("status 99"), true).is_err());
        assert!(parse_expect(&words("rstring ("), true).is_err());
        assert!(parse_expect(&words("min-recv 3 string x"), true).is_err());
    }

    #[test]
    fn steps() {
        let mut steps = Vec::new();
        for line in [
            "connect port 6379",
            "send PING\\r\\n",
            "expect string +PONG",
            "comment ignored",
            "send-binary 0a0b",
        ] {
            tcp_check_line(&mut steps, &words(line)).unwrap();
        }
        assert_eq!(steps.len(), 4);
        assert!(matches!(
            steps[0],
            TcpCheckStep::Connect { port: Some(6379) }
        ));
        assert!(matches!(&steps[3], TcpCheckStep::Send(b) if b == &[10, 11]));
        let mut h = HttpCheck::default();
        http_check_line(
            &mut h,
            &words("send meth GET uri /health hdr Host a.example"),
        )
        .unwrap();
        assert_eq!((h.method.as_str(), h.uri.as_str()), ("GET", "/health"));
        assert_eq!(h.headers, [("Host".to_string(), "a.example".to_string())]);
        http_check_line(&mut h, &words("expect status 200")).unwrap();
        assert!(http_check_line(&mut h, &words("expect status 201")).is_err());
    }
}
