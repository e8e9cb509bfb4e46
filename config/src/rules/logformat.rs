//! Log-format strings: text with `%[expr]` samples and `%ci`-style aliases, used in
//! header values, redirect locations, `set-path /v2%[path]` and dynamic `use_backend`.
//! One implementation, shared with the traffic logs.

use super::sample::{Needs, Sample};
use super::FileReader;

/// One piece of a log-format string.
#[derive(Debug, Clone)]
pub enum LfPart {
    /// Literal bytes.
    Text(Box<[u8]>),
    /// A run of spaces: written as one space, and not after another separator or at
    /// the start (so that variables that write nothing leave no double space), as in
    /// HAProxy.
    Separator,
    /// A sample, rendered as text.
    Sample(Sample, LfFlags),
    /// A log variable (`%ci`, `%Tr`, `%tsc`, ...).
    Var(LogVar, LfFlags),
}

/// A parsed log-format string.
#[derive(Debug, Clone, Default)]
pub struct LogFormat {
    /// The pieces, in order.
    pub parts: Vec<LfPart>,
}

/// The `%{+Q,+X,+E}` flags of one variable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LfFlags {
    /// `Q`: strings are written in double quotes.
    pub quote: bool,
    /// `X`: numbers are written in hexadecimal.
    pub hex: bool,
    /// `E`: `"`, `\\` and `]` are escaped with a backslash (RFC 5424 structured data).
    pub escape: bool,
}

/// The log variables percore knows. Each has HAProxy's meaning; those that read the
/// transaction's timers and results exist only in traffic logs (see [`LogVar::log_only`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVar {
    /// `%ci`: client address.
    ClientIp,
    /// `%cp`: client port.
    ClientPort,
    /// `%fi`: address the client connected to.
    FrontendIp,
    /// `%fp`: port the client connected to.
    FrontendPort,
    /// `%f`, `%ft`: frontend name.
    Frontend,
    /// `%b`: backend name (the frontend's before a backend is chosen).
    Backend,
    /// `%s`: server name, `<NOSRV>` when none was reached.
    Server,
    /// `%si`: server address.
    ServerIp,
    /// `%sp`: server port.
    ServerPort,
    /// `%HM`: request method.
    Method,
    /// `%HU`: request URI, as received.
    Uri,
    /// `%HP`: request URI without its query string.
    UriPath,
    /// `%HPO`: the path alone (no scheme, authority or query).
    PathOnly,
    /// `%HQ`: the query string with its `?`.
    Query,
    /// `%HV`: HTTP version.
    Version,
    /// `%r`: the request line as received.
    RequestLine,
    /// `%ST`: status code.
    Status,
    /// `%pid`.
    Pid,
    /// `%H`: host name.
    Hostname,
    /// `%ac`: connections on the whole process.
    ActConn,
    /// `%fc`: connections on the frontend.
    FeConn,
    /// `%bc`: connections on the backend.
    BeConn,
    /// `%sc`: connections on the server.
    SrvConn,
    /// `%hr`: captured request headers, `{a|b}`.
    ReqHeaders,
    /// `%hrl`: captured request headers, one field each.
    ReqHeaderList,
    /// `%hs`: captured response headers, `{a|b}`.
    ResHeaders,
    /// `%hsl`: captured response headers, one field each.
    ResHeaderList,
    /// `%t`: accept date, local, `dd/Mon/yyyy:HH:MM:SS.mmm`.
    AcceptDate,
    /// `%T`: accept date, GMT, `dd/Mon/yyyy:HH:MM:SS +0000`.
    AcceptDateGmt,
    /// `%Tl`: accept date, local, with its offset.
    AcceptDateLocal,
    /// `%Ts`: accept date as a Unix timestamp.
    AcceptTimestamp,
    /// `%ms`: milliseconds of the accept date.
    AcceptMillis,
    /// `%tr`: request date, local, `dd/Mon/yyyy:HH:MM:SS.mmm`.
    RequestDate,
    /// `%trg`: request date, GMT.
    RequestDateGmt,
    /// `%trl`: request date, local, with its offset.
    RequestDateLocal,
    /// `%Th`: handshake time (PROXY header).
    Th,
    /// `%Ti`: idle time before the request.
    Ti,
    /// `%TR`: time to receive the request head.
    TR,
    /// `%Tq`: Th + Ti + TR.
    Tq,
    /// `%Tw`: time in queues.
    Tw,
    /// `%Tc`: time to connect to the server.
    Tc,
    /// `%Tr`: server response time (to the response head).
    Tr,
    /// `%Td`: data transfer time.
    Td,
    /// `%Ta`: active time of the request.
    Ta,
    /// `%Tt`: total time of the stream.
    Tt,
    /// `%Tu`: total time without the idle time.
    Tu,
    /// `%B`: bytes sent to the client.
    BytesOut,
    /// `%U`: bytes received from the client.
    BytesIn,
    /// `%CC`: captured request cookie.
    CapturedCookie,
    /// `%CS`: captured response cookie.
    CapturedSetCookie,
    /// `%ts`: termination state, two characters.
    TermState,
    /// `%tsc`: termination state and cookie state, four characters.
    TermStateCookie,
    /// `%rc`: connection retries (`+` first when redispatched).
    Retries,
    /// `%sq`: position in the server's queue.
    SrvQueue,
    /// `%bq`: position in the backend's queue.
    BeQueue,
    /// `%ID`: the request's unique id.
    UniqueId,
    /// `%rt`: the request's number in the process.
    RequestCounter,
}

/// Log variable names (a name is the whole run of letters and digits after `%`).
const VARS: &[(&str, LogVar)] = &[
    ("ci", LogVar::ClientIp),
    ("cp", LogVar::ClientPort),
    ("fi", LogVar::FrontendIp),
    ("fp", LogVar::FrontendPort),
    ("ft", LogVar::Frontend),
    ("f", LogVar::Frontend),
    ("b", LogVar::Backend),
    ("si", LogVar::ServerIp),
    ("sp", LogVar::ServerPort),
    ("s", LogVar::Server),
    ("HM", LogVar::Method),
    ("HU", LogVar::Uri),
    ("HPO", LogVar::PathOnly),
    ("HP", LogVar::UriPath),
    ("HQ", LogVar::Query),
    ("HV", LogVar::Version),
    ("r", LogVar::RequestLine),
    ("ST", LogVar::Status),
    ("pid", LogVar::Pid),
    ("H", LogVar::Hostname),
    ("ac", LogVar::ActConn),
    ("fc", LogVar::FeConn),
    ("bc", LogVar::BeConn),
    ("sc", LogVar::SrvConn),
    ("hrl", LogVar::ReqHeaderList),
    ("hr", LogVar::ReqHeaders),
    ("hsl", LogVar::ResHeaderList),
    ("hs", LogVar::ResHeaders),
    ("t", LogVar::AcceptDate),
    ("T", LogVar::AcceptDateGmt),
    ("Tl", LogVar::AcceptDateLocal),
    ("Ts", LogVar::AcceptTimestamp),
    ("ms", LogVar::AcceptMillis),
    ("tr", LogVar::RequestDate),
    ("trg", LogVar::RequestDateGmt),
    ("trl", LogVar::RequestDateLocal),
    ("Th", LogVar::Th),
    ("Ti", LogVar::Ti),
    ("TR", LogVar::TR),
    ("Tq", LogVar::Tq),
    ("Tw", LogVar::Tw),
    ("Tc", LogVar::Tc),
    ("Tr", LogVar::Tr),
    ("Td", LogVar::Td),
    ("Ta", LogVar::Ta),
    ("Tt", LogVar::Tt),
    ("Tu", LogVar::Tu),
    ("B", LogVar::BytesOut),
    ("U", LogVar::BytesIn),
    ("CC", LogVar::CapturedCookie),
    ("CS", LogVar::CapturedSetCookie),
    ("ts", LogVar::TermState),
    ("tsc", LogVar::TermStateCookie),
    ("rc", LogVar::Retries),
    ("sq", LogVar::SrvQueue),
    ("bq", LogVar::BeQueue),
    ("ID", LogVar::UniqueId),
    ("rt", LogVar::RequestCounter),
];

/// Variables HAProxy has that percore does not produce yet, with the work that brings them.
const PLANNED_VARS: &[(&str, &str)] = &[
    ("sslc", "planned: TLS"),
    ("sslv", "planned: TLS"),
    ("bi", "planned: logs, stats and the runtime socket"),
    ("bp", "planned: logs, stats and the runtime socket"),
    ("lc", "planned: logs, stats and the runtime socket"),
];

impl LogVar {
    /// Whether the variable reads what only a finished transaction knows (timers,
    /// byte counts, termination state): such variables exist in traffic logs only.
    pub fn log_only(self) -> bool {
        use LogVar::*;
        !matches!(
            self,
            ClientIp
                | ClientPort
                | FrontendIp
                | FrontendPort
                | Frontend
                | Backend
                | Server
                | ServerIp
                | ServerPort
                | Method
                | Uri
                | UriPath
                | PathOnly
                | Query
                | Version
                | RequestLine
                | Status
                | Pid
                | Hostname
                | ActConn
                | FeConn
                | BeConn
                | SrvConn
                | ReqHeaders
                | ReqHeaderList
                | ResHeaders
                | ResHeaderList
                | UniqueId
                | RequestCounter
        )
    }

    /// Where the variable finds its data outside a log (for the rule sets that may use
    /// it).
    fn needs(self) -> Needs {
        use LogVar::*;
        match self {
            Method | Uri | UriPath | PathOnly | Query | Version | RequestLine | ReqHeaders
            | ReqHeaderList | UniqueId | RequestCounter => Needs::Request,
            Status | ResHeaders | ResHeaderList => Needs::Response,
            Pid | Hostname | ActConn => Needs::Nothing,
            _ => Needs::Connection,
        }
    }

    /// The variable's name, as written after `%`.
    pub fn name(self) -> &'static str {
        VARS.iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

impl LogFormat {
    /// Parses a log-format string used in a rule (a header value, a redirect target,
    /// a backend name): variables that exist only in traffic logs are refused.
    pub fn parse(text: &str, files: FileReader<'_>) -> Result<Self, String> {
        let lf = Self::parse_log(text, files)?;
        match lf.log_only_var() {
            Some(v) => Err(format!(
                "log-format variable '%{}' is only available in traffic logs ('log-format'), not in rules",
                v.name()
            )),
            None => Ok(lf),
        }
    }

    /// Parses the log-format string of traffic logs (`log-format`).
    pub fn parse_log(text: &str, files: FileReader<'_>) -> Result<Self, String> {
        let b = text.as_bytes();
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut global = LfFlags::default();
        let mut i = 0;
        let flush = |lit: &mut Vec<u8>, parts: &mut Vec<LfPart>| {
            if !lit.is_empty() {
                parts.push(LfPart::Text(std::mem::take(lit).into()));
            }
        };
        while i < b.len() {
            if b[i] == b' ' {
                flush(&mut lit, &mut parts);
                if !matches!(parts.last(), Some(LfPart::Separator)) {
                    parts.push(LfPart::Separator);
                }
                i += 1;
                continue;
            }
            if b[i] != b'%' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            i += 1;
            if b.get(i) == Some(&b'%') {
                lit.push(b'%');
                i += 1;
                continue;
            }
            let mut flags = global;
            if b.get(i) == Some(&b'{') {
                let end = text[i..]
                    .find('}')
                    .ok_or_else(|| format!("missing '}}' in log-format '{text}'"))?;
                flags = parse_flags(&text[i + 1..i + end], global)?;
                i += end + 1;
            }
            flush(&mut lit, &mut parts);
            if b.get(i) == Some(&b'[') {
                let end = closing_bracket(&b[i..])
                    .ok_or_else(|| format!("missing ']' in log-format '{text}'"))?;
                let expr = &text[i + 1..i + end];
                parts.push(LfPart::Sample(Sample::parse(expr, files)?, flags));
                i += end + 1;
                continue;
            }
            let len = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            let var = &text[i..i + len];
            i += len;
            if var == "o" {
                global = flags;
                continue;
            }
            match VARS.iter().find(|(name, _)| *name == var) {
                Some((_, v)) => parts.push(LfPart::Var(*v, flags)),
                None if var.is_empty() => {
                    return Err(format!("a '%' in log-format '{text}' is not followed by a variable (write '%%' for a percent sign)"))
                }
                None => {
                    return Err(match PLANNED_VARS.iter().find(|(name, _)| *name == var) {
                        Some((_, work)) => format!(
                            "log-format variable '%{var}' is not supported by percore yet ({work})"
                        ),
                        None => format!("unknown log-format variable '%{var}'"),
                    })
                }
            }
        }
        flush(&mut lit, &mut parts);
        Ok(Self { parts }.literal_folded())
    }

    /// A string without variables becomes one text, with its separators applied.
    fn literal_folded(self) -> Self {
        if self
            .parts
            .iter()
            .any(|p| matches!(p, LfPart::Sample(..) | LfPart::Var(..)))
        {
            return self;
        }
        let mut text = Vec::new();
        for p in &self.parts {
            match p {
                LfPart::Text(t) => text.extend_from_slice(t),
                LfPart::Separator if !text.is_empty() && !text.ends_with(b" ") => text.push(b' '),
                _ => {}
            }
        }
        Self {
            parts: vec![LfPart::Text(text.into())],
        }
    }

    /// Whether the string uses `%rt` (requests are then numbered).
    pub fn counts_requests(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, LfPart::Var(LogVar::RequestCounter, _)))
    }

    /// Where the string's samples come from.
    pub fn needs(&self) -> Needs {
        self.parts
            .iter()
            .map(|p| match p {
                LfPart::Text(_) | LfPart::Separator => Needs::Nothing,
                LfPart::Sample(s, _) => s.needs(),
                LfPart::Var(v, _) => v.needs(),
            })
            .max()
            .unwrap_or(Needs::Nothing)
    }

    /// The first variable that exists only in traffic logs, if the string has one:
    /// such a string cannot be used in a rule.
    pub fn log_only_var(&self) -> Option<LogVar> {
        self.parts.iter().find_map(|p| match p {
            LfPart::Var(v, _) if v.log_only() => Some(*v),
            _ => None,
        })
    }

    /// The text when the string has no variable part.
    pub fn as_literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [LfPart::Text(t)] => Some(t),
            _ => None,
        }
    }
}

/// Parses the inside of `%{...}`: `+Q`, `-Q`, `+X`, `+E`, comma-separated.
fn parse_flags(s: &str, mut flags: LfFlags) -> Result<LfFlags, String> {
    for f in s.split(',') {
        let (on, name) = match f.as_bytes().first() {
            Some(b'+') => (true, &f[1..]),
            Some(b'-') => (false, &f[1..]),
            _ => return Err(format!("log-format flag '{f}' must start with '+' or '-'")),
        };
        match name {
            "Q" => flags.quote = on,
            "X" => flags.hex = on,
            "E" => flags.escape = on,
            other => return Err(format!("unknown log-format flag '{other}'")),
        }
    }
    Ok(flags)
}

/// The position of the `]` closing the `[` at `b[0]`, outside parentheses and quotes.
fn closing_bracket(b: &[u8]) -> Option<usize> {
    let (mut depth, mut quote, mut i) = (0i32, None, 1);
    while i < b.len() {
        match (quote, b[i]) {
            (_, b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'\'')) => quote = Some(c),
            (None, b'(') => depth += 1,
            (None, b')') => depth -= 1,
            (None, b']') if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::no_files;

    fn parse(s: &str) -> Result<LogFormat, String> {
        LogFormat::parse_log(s, &no_files)
    }

    #[test]
    fn text_samples_and_aliases() {
        let lf = parse("/v2%[path]").unwrap();
        assert_eq!(lf.parts.len(), 2);
        assert!(matches!(&lf.parts[0], LfPart::Text(t) if &**t == b"/v2"));
        let lf = parse("be_%[req.hdr(host),lower,regsub(\\.,_,g)]").unwrap();
        assert_eq!(lf.parts.len(), 2);
        assert_eq!(parse("%ci:%cp 100%%").unwrap().parts.len(), 5);
        assert_eq!(parse("plain").unwrap().as_literal(), Some(&b"plain"[..]));
        assert_eq!(parse("  a   b ").unwrap().as_literal(), Some(&b"a b "[..]));
    }

    #[test]
    fn flags_and_log_variables() {
        let lf = parse("%{+Q}r %{+Q,+X}o %Ts %{-Q}ci").unwrap();
        let quote = LfFlags {
            quote: true,
            ..LfFlags::default()
        };
        assert!(matches!(lf.parts[0], LfPart::Var(LogVar::RequestLine, f) if f == quote));
        assert!(matches!(lf.parts[2], LfPart::Var(LogVar::AcceptTimestamp, f) if f.quote && f.hex));
        assert!(matches!(lf.parts[4], LfPart::Var(LogVar::ClientIp, f) if !f.quote && f.hex));
        assert_eq!(lf.log_only_var(), Some(LogVar::AcceptTimestamp));
        assert_eq!(parse("%ci %HU").unwrap().log_only_var(), None);
        assert!(LogFormat::parse("%Ts", &no_files)
            .unwrap_err()
            .contains("only available in traffic logs"));
        let http = parse(crate::log::HTTP_LOG_FORMAT).unwrap();
        assert!(
            http.parts
                .iter()
                .filter(|p| matches!(p, LfPart::Var(..)))
                .count()
                > 20
        );
        assert!(parse(crate::log::TCP_LOG_FORMAT).is_ok());
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("%[path").unwrap_err().contains("']'"));
        assert!(parse("%[nosuch]").unwrap_err().contains("'nosuch'"));
        assert!(parse("%sslv").unwrap_err().contains("'%sslv'"));
        assert!(parse("%nosuch").unwrap_err().contains("'%nosuch'"));
        assert!(parse("%{+Z}r").unwrap_err().contains("'Z'"));
        assert!(parse("100%").is_err());
    }
}
