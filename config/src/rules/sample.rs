//! Sample expressions: a fetch followed by converters, as in `req.hdr(host),lower`.
//! Parsed and type-checked at load, so a misspelt fetch, a wrong argument or a fetch
//! used where its data does not exist is refused by `percore -c` with the offending word.

use super::pattern::{MatchMethod, PatternList};
use super::FileReader;
use crate::model::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

/// The type of a sample, as HAProxy names them; it picks an ACL's default match method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleType {
    /// `bool`.
    Bool,
    /// `sint`: a signed 64-bit integer.
    Int,
    /// `ipv4` or `ipv6`.
    Ip,
    /// `str`.
    Str,
    /// `bin`: bytes.
    Bin,
    /// `any`: a variable, whose type is known only when it is read.
    Any,
}

impl SampleType {
    /// The match method an ACL uses on this type when none is given.
    pub fn default_match(self) -> Option<MatchMethod> {
        match self {
            SampleType::Bool => Some(MatchMethod::Bool),
            SampleType::Int => Some(MatchMethod::Int),
            SampleType::Ip => Some(MatchMethod::Ip),
            SampleType::Str => Some(MatchMethod::Str),
            SampleType::Bin => Some(MatchMethod::Bin),
            SampleType::Any => None,
        }
    }
}

/// Where a fetch finds its data, which decides the rule sets that may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Needs {
    /// Constants and the process: usable everywhere.
    Nothing,
    /// The client connection (addresses, frontend): from `tcp-request connection` on.
    Connection,
    /// Request contents buffered by `tcp-request inspect-delay`.
    Content,
    /// Response contents buffered by `tcp-response inspect-delay`.
    ResponseContent,
    /// The HTTP request: `http-request` rules and later.
    Request,
    /// The HTTP response: `http-response` rules only.
    Response,
}

/// Which message a header or cookie fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request.
    Request,
    /// The response.
    Response,
}

/// What a header fetch returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderForm {
    /// The value (`hdr`, `fhdr`).
    Value,
    /// How many values there are (`hdr_cnt`).
    Count,
    /// The value as an integer (`hdr_val`).
    Int,
    /// The value as an IP address (`hdr_ip`).
    Ip,
}

/// A variable's scope: how long it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VarScope {
    /// `sess`: the client connection.
    Sess,
    /// `txn`: one request and its response.
    Txn,
    /// `req`: the request processing only.
    Req,
    /// `res`: the response processing only.
    Res,
}

/// A variable name with its scope, as in `txn.partner`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarName {
    /// The scope before the dot.
    pub scope: VarScope,
    /// The name after it.
    pub name: Arc<str>,
}

impl VarName {
    /// Parses `SCOPE.NAME`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scope, name) = s.split_once('.').ok_or_else(|| {
            format!("variable '{s}' needs a scope: 'sess.', 'txn.', 'req.' or 'res.'")
        })?;
        let scope = match scope {
            "sess" => VarScope::Sess,
            "txn" => VarScope::Txn,
            "req" => VarScope::Req,
            "res" => VarScope::Res,
            "proc" => {
                return Err(format!(
                    "variable '{s}': the 'proc' scope is not supported by percore (each core keeps its own variables)"
                ))
            }
            other => return Err(format!("variable '{s}' has an unknown scope '{other}'")),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("invalid variable name '{s}'"));
        }
        Ok(Self {
            scope,
            name: name.into(),
        })
    }
}

/// A sample fetch with its arguments.
#[derive(Debug, Clone)]
pub enum Fetch {
    /// `always_true`, `always_false`, `bool(B)`.
    Bool(bool),
    /// `int(N)`.
    Int(i64),
    /// `str(S)`.
    Str(Arc<[u8]>),
    /// `ipv4(A)`, `ipv6(A)`.
    Ip(IpAddr),
    /// `env(NAME)`: read once at load.
    Env(Option<Arc<[u8]>>),
    /// `rand([RANGE])`: uniform in `0..RANGE` (`0..2^32` without).
    Rand(Option<u64>),
    /// `date([OFFSET])`: seconds since the epoch, plus the offset.
    Date(i64),
    /// `src`.
    Src,
    /// `src_port`.
    SrcPort,
    /// `dst`.
    Dst,
    /// `dst_port`.
    DstPort,
    /// `fe_name`.
    FeName,
    /// `fe_id`.
    FeId,
    /// `be_name`: the backend chosen so far (the frontend before a switch).
    BeName,
    /// `be_id`.
    BeId,
    /// `srv_name`: the server that took the request.
    SrvName,
    /// `srv_id`.
    SrvId,
    /// `nbsrv([BACKEND])`: usable servers.
    Nbsrv(Option<String>),
    /// `be_conn([BACKEND])`: connections on the backend's servers now.
    BeConn(Option<String>),
    /// `connslots([BACKEND])`: free connection and queue slots.
    Connslots(Option<String>),
    /// `queue([BACKEND])`: requests waiting for a server.
    Queue(Option<String>),
    /// `avg_queue([BACKEND])`: the queue divided by the usable servers.
    AvgQueue(Option<String>),
    /// `srv_is_up([BACKEND/]SERVER)`.
    SrvIsUp(Option<String>, String),
    /// `method`.
    Method,
    /// `path`: the target up to `?`, without scheme and authority.
    Path,
    /// `pathq`: the path with its query string.
    Pathq,
    /// `query`: after the `?`.
    Query,
    /// `url`: the request target as received.
    Url,
    /// `base`: the Host header followed by the path.
    Base,
    /// `req.ver`: "1.0" or "1.1".
    ReqVer,
    /// `res.ver`.
    ResVer,
    /// `req.proto_http`: the request was parsed as HTTP.
    ProtoHttp,
    /// `url_param([NAME[,DELIM]])`, `urlp_val([NAME[,DELIM]])`.
    UrlParam {
        /// The parameter, or the first one.
        name: Option<String>,
        /// `DELIM`: also starts the parameters (like `?`) and ends a value (like `&`
        /// and `;`).
        delim: Option<u8>,
        /// `urlp_val`: as an integer.
        int: bool,
    },
    /// `hdr`, `fhdr`, `hdr_cnt`, `hdr_val`, `hdr_ip` and their `res.` forms.
    Header {
        /// Request or response.
        side: Side,
        /// The header; every header when absent.
        name: Option<String>,
        /// `OCC`: 1 is the first value, -1 the last; absent: all values in an ACL, the
        /// last one elsewhere.
        occ: Option<i64>,
        /// `fhdr`: commas do not separate values.
        full: bool,
        /// What is returned.
        form: HeaderForm,
    },
    /// `cook(NAME)`, `cook_cnt`, `cook_val` and their `res.` forms.
    Cookie {
        /// Request (`Cookie`) or response (`Set-Cookie`).
        side: Side,
        /// The cookie; the first one when absent.
        name: Option<String>,
        /// What is returned.
        form: HeaderForm,
    },
    /// `status`.
    Status,
    /// `capture.req.hdr(N)`: request capture slot N.
    CapturedRequest(usize),
    /// `unique-id`: the request's id from `unique-id-format`.
    UniqueId,
    /// `capture.res.hdr(N)`: response capture slot N.
    CapturedResponse(usize),
    /// `var(NAME[,DEFAULT])`.
    Var(VarName, Option<Arc<[u8]>>),
    /// `req.len`: request bytes buffered so far.
    ReqLen,
    /// `req.payload(OFFSET,LENGTH)`; a length of 0 takes the rest of the buffer.
    ReqPayload(usize, usize),
    /// `res.len`: response bytes buffered so far (`tcp-response` rules).
    ResLen,
    /// `res.payload(OFFSET,LENGTH)`.
    ResPayload(usize, usize),
    /// `fc_pp_authority`, `fc_pp_unique_id`, `fc_pp_tlv(TYPE)`: a TLV of the PROXY
    /// protocol v2 header the connection came with.
    ProxyTlv(u8),
    /// `req.body`: the request body buffered by `option http-buffer-request`
    /// (de-chunked).
    ReqBody,
    /// `req.body_len`: its length.
    ReqBodyLen,
    /// `req.ssl_sni`, `req.ssl_alpn`, `req.ssl_hello_type`: a field of the TLS
    /// ClientHello at the start of the request buffer (TCP content inspection).
    ClientHello(HelloField),
}

/// What `ClientHello` fetches from a TLS ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloField {
    /// `req.ssl_sni`: the server name.
    Sni,
    /// `req.ssl_alpn`: the protocols offered (every one in an ACL, the first elsewhere).
    Alpn,
    /// `req.ssl_hello_type`: 1 once a complete ClientHello is buffered.
    Type,
}

impl Fetch {
    /// The type of the sample.
    pub fn output(&self) -> SampleType {
        use Fetch::*;
        match self {
            Bool(_) | ProtoHttp => SampleType::Bool,
            Int(_)
            | ReqBodyLen
            | ResLen
            | Rand(_)
            | Date(_)
            | SrcPort
            | DstPort
            | FeId
            | BeId
            | SrvId
            | Nbsrv(_)
            | BeConn(_)
            | Connslots(_)
            | Queue(_)
            | AvgQueue(_)
            | Status
            | ReqLen
            | ClientHello(HelloField::Type) => SampleType::Int,
            SrvIsUp(..) => SampleType::Bool,
            Ip(_) | Src | Dst => SampleType::Ip,
            Str(_)
            | Env(_)
            | FeName
            | BeName
            | SrvName
            | Method
            | Path
            | Pathq
            | Query
            | Url
            | Base
            | ReqVer
            | ResVer
            | CapturedRequest(_)
            | CapturedResponse(_)
            | UniqueId
            | ClientHello(HelloField::Sni | HelloField::Alpn) => SampleType::Str,
            UrlParam { int, .. } => {
                if *int {
                    SampleType::Int
                } else {
                    SampleType::Str
                }
            }
            Header { form, .. } | Cookie { form, .. } => match form {
                HeaderForm::Value => SampleType::Str,
                HeaderForm::Count | HeaderForm::Int => SampleType::Int,
                HeaderForm::Ip => SampleType::Ip,
            },
            Var(..) => SampleType::Any,
            ReqPayload(..) | ResPayload(..) | ReqBody => SampleType::Bin,
            ProxyTlv(_) => SampleType::Str,
        }
    }

    /// Where the fetch's data comes from.
    pub fn needs(&self) -> Needs {
        use Fetch::*;
        match self {
            Bool(_)
            | Int(_)
            | Str(_)
            | Ip(_)
            | Env(_)
            | Rand(_)
            | Date(_)
            | Nbsrv(Some(_))
            | BeConn(Some(_))
            | Connslots(Some(_))
            | Queue(Some(_))
            | AvgQueue(Some(_))
            | SrvIsUp(Some(_), _)
            | Var(..) => Needs::Nothing,
            Src
            | SrcPort
            | Dst
            | DstPort
            | FeName
            | FeId
            | BeName
            | BeId
            | Nbsrv(None)
            | BeConn(None)
            | Connslots(None)
            | Queue(None)
            | AvgQueue(None)
            | SrvIsUp(None, _) => Needs::Connection,
            ReqLen | ReqPayload(..) | ClientHello(_) => Needs::Content,
            ResLen | ResPayload(..) => Needs::ResponseContent,
            CapturedRequest(_) | UniqueId | ReqBody | ReqBodyLen => Needs::Request,
            ProxyTlv(_) => Needs::Connection,
            CapturedResponse(_) => Needs::Response,
            Method | Path | Pathq | Query | Url | Base | ReqVer | ProtoHttp | UrlParam { .. } => {
                Needs::Request
            }
            Header { side, .. } | Cookie { side, .. } => match side {
                Side::Request => Needs::Request,
                Side::Response => Needs::Response,
            },
            SrvName | SrvId | Status | ResVer => Needs::Response,
        }
    }

    /// Whether an ACL tries every value of this fetch (every header occurrence), as
    /// HAProxy does for header fetches without an occurrence.
    pub fn multi_valued(&self) -> bool {
        matches!(
            self,
            Fetch::Header {
                occ: None,
                form: HeaderForm::Value | HeaderForm::Int | HeaderForm::Ip,
                ..
            } | Fetch::ClientHello(HelloField::Alpn)
        )
    }
}

/// An integer argument: a constant or a variable read when the converter runs.
#[derive(Debug, Clone)]
pub enum IntArg {
    /// A number.
    Const(i64),
    /// A variable holding one.
    Var(VarName),
}

/// Arithmetic converters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// `add`.
    Add,
    /// `sub`.
    Sub,
    /// `mul`.
    Mul,
    /// `div` (0 when dividing by zero, as HAProxy).
    Div,
    /// `mod`.
    Mod,
    /// `and`.
    And,
    /// `or`.
    Or,
    /// `xor`.
    Xor,
}

/// Hash converters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashConv {
    /// `crc32`.
    Crc32,
    /// `djb2`.
    Djb2,
    /// `sdbm`.
    Sdbm,
    /// `wt6`.
    Wt6,
}

/// A converter applied to a sample.
#[derive(Debug, Clone)]
pub enum Converter {
    /// `lower`.
    Lower,
    /// `upper`.
    Upper,
    /// `length`.
    Length,
    /// `bytes(OFFSET[,LENGTH])`.
    Bytes(IntArg, Option<IntArg>),
    /// `field(INDEX,DELIMITERS[,COUNT])`: fields keep empty ones between delimiters.
    Field {
        /// 1-based; negative counts from the end.
        index: i64,
        /// Any of these bytes separates fields.
        delimiters: Vec<u8>,
        /// How many fields to return (0: all from `index`).
        count: i64,
    },
    /// `word(INDEX,DELIMITERS[,COUNT])`: like `field`, skipping empty words.
    Word {
        /// 1-based; negative counts from the end.
        index: i64,
        /// Any of these bytes separates words.
        delimiters: Vec<u8>,
        /// How many words to return (0: all from `index`).
        count: i64,
    },
    /// `regsub(REGEX,SUBST[,FLAGS])`.
    Regsub {
        /// The compiled regex (`i` flag applied).
        regex: regex::bytes::Regex,
        /// Replacement with `\N` back-references.
        subst: Arc<[u8]>,
        /// `g` flag: every match, not only the first.
        global: bool,
    },
    /// `ipmask(MASK4[,MASK6])`.
    Ipmask(u8, Option<u8>),
    /// `add`, `sub`, ... with their operand.
    Arith(Arith, IntArg),
    /// `neg`.
    Neg,
    /// `not`: 1 when the input is 0.
    Not,
    /// `bool`: 1 when the input is not 0.
    Bool,
    /// `base64`.
    Base64,
    /// `b64dec`.
    B64dec,
    /// `url_dec([in_form])`: `+` becomes a space after a `?`, or everywhere when
    /// `in_form` is set (the input is a form or a query string).
    UrlDec { in_form: bool },
    /// `hex`.
    Hex,
    /// `crc32`, `djb2`, `sdbm`, `wt6`, with `avalanche` when given 1.
    Hash(HashConv, bool),
    /// `xxh3([SEED])`.
    Xxh3(u64),
    /// `json([INPUT-CODE])`: escapes a string for a JSON document.
    Json(JsonInput),
    /// `ltime(FORMAT[,OFFSET])` (`local` true) and `utime(FORMAT[,OFFSET])`: a date
    /// since the epoch, formatted by `strftime(3)`.
    Strftime {
        /// The `strftime` format, NUL-terminated.
        format: Arc<std::ffi::CStr>,
        /// Seconds added to the date first.
        offset: i64,
        /// Local time rather than UTC.
        local: bool,
    },
    /// `http_date([OFFSET][,UNIT])`: a date since the epoch as an HTTP date.
    HttpDate {
        /// Added to the date first, in the date's unit.
        offset: i64,
        /// Units per second of the date: 1 (`s`), 1000 (`ms`) or 1 000 000 (`us`).
        per_second: i64,
    },
    /// `concat([START][,VAR][,END])`.
    Concat(Arc<[u8]>, Option<VarName>, Arc<[u8]>),
    /// `map_*(FILE[,DEFAULT])`: looks the sample up in a map file loaded at start.
    Map {
        /// The map's keys (with their match method) and values.
        map: Arc<PatternList>,
        /// What the values are converted to.
        output: SampleType,
        /// Returned when no key matches.
        default: Option<Arc<[u8]>>,
        /// `map_regm`: `\N` in a value stands for the matching key's capture N.
        substitute: bool,
    },
}

impl Converter {
    /// The type the converter produces.
    fn output(&self) -> SampleType {
        use Converter::*;
        match self {
            Lower
            | Upper
            | Field { .. }
            | Word { .. }
            | Regsub { .. }
            | Base64
            | UrlDec { .. }
            | Hex
            | Json(_)
            | Strftime { .. }
            | HttpDate { .. }
            | Concat(..) => SampleType::Str,
            Bytes(..) | B64dec => SampleType::Bin,
            Length | Arith(..) | Neg | Not | Hash(..) | Xxh3(_) => SampleType::Int,
            Bool => SampleType::Bool,
            Ipmask(..) => SampleType::Ip,
            Map { output, .. } => *output,
        }
    }
}

/// A fetch and its converters.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where the data comes from.
    pub fetch: Fetch,
    /// Applied in order.
    pub converters: Vec<Converter>,
    /// The type of the final value.
    pub output: SampleType,
}

impl Sample {
    /// Parses `fetch[(args)][,conv[(args)]]...`; `files` reads the map files named.
    pub fn parse(text: &str, files: FileReader<'_>) -> Result<Self, String> {
        let calls = split_top(text, b',')?;
        let (first, rest) = calls.split_first().ok_or("empty sample expression")?;
        let (name, args) = call(first)?;
        Self::with_converters(fetch(name, &args)?, rest, files)
    }

    /// A sample of `fetch` followed by the converters written in `calls`.
    pub fn with_converters(
        fetch: Fetch,
        calls: &[&str],
        files: FileReader<'_>,
    ) -> Result<Self, String> {
        let mut output = fetch.output();
        let mut converters = Vec::new();
        for c in calls {
            let (name, args) = call(c)?;
            let conv = converter(name, &args, files)?;
            output = conv.output();
            converters.push(conv);
        }
        Ok(Self {
            fetch,
            converters,
            output,
        })
    }

    /// Where the expression's data comes from.
    pub fn needs(&self) -> Needs {
        self.fetch.needs()
    }
}

/// Splits `text` on `sep` outside parentheses and quotes.
pub(crate) fn split_top(text: &str, sep: u8) -> Result<Vec<&str>, String> {
    let b = text.as_bytes();
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    let mut i = 0;
    let mut quote = None;
    while i < b.len() {
        let c = b[i];
        match (quote, c) {
            (_, b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'(') => depth += 1,
            (None, b')') => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced ')' in '{text}'"));
                }
            }
            (None, c) if c == sep && depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 || quote.is_some() {
        return Err(format!("missing ')' or quote in '{text}'"));
    }
    out.push(&text[start..]);
    Ok(out)
}

/// Splits `name(a,b)` into the name and its unquoted, unescaped arguments.
pub(crate) fn call(text: &str) -> Result<(&str, Vec<String>), String> {
    let Some(open) = text.find('(') else {
        check_word(text)?;
        return Ok((text, Vec::new()));
    };
    if !text.ends_with(')') {
        return Err(format!("missing ')' after the arguments of '{text}'"));
    }
    let name = &text[..open];
    check_word(name)?;
    let inner = &text[open + 1..text.len() - 1];
    if inner.is_empty() {
        return Ok((name, Vec::new()));
    }
    let args = split_top(inner, b',')?
        .into_iter()
        .map(unquote)
        .collect::<Vec<_>>();
    Ok((name, args))
}

fn check_word(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!("invalid fetch or converter name '{name}'"));
    }
    Ok(())
}

/// Removes one level of quotes and backslash escapes from an argument.
fn unquote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut chars = arg.chars();
    let mut quote = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            _ => out.push(c),
        }
    }
    out
}

/// A PROXY protocol v2 TLV type, by number (0-255) or by its name in the
/// specification.
fn tlv_type(s: &str) -> Result<u8, String> {
    let named = [
        ("ALPN", 0x01),
        ("AUTHORITY", 0x02),
        ("CRC32C", 0x03),
        ("NOOP", 0x04),
        ("UNIQUE_ID", 0x05),
        ("SSL", 0x20),
        ("NETNS", 0x30),
    ];
    if let Some((_, t)) = named.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        return Ok(*t);
    }
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    };
    n.ok_or_else(|| {
        format!("'fc_pp_tlv' expects a TLV type (0-255 or a name such as AUTHORITY), got '{s}'")
    })
}

fn int_arg(what: &str, s: &str) -> Result<i64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{what}' expects an integer, got '{s}'"))
}

fn int_or_var(what: &str, s: &str) -> Result<IntArg, String> {
    match s.trim().parse() {
        Ok(n) => Ok(IntArg::Const(n)),
        Err(_) if s.contains('.') => Ok(IntArg::Var(VarName::parse(s)?)),
        Err(_) => Err(format!(
            "'{what}' expects an integer or a variable, got '{s}'"
        )),
    }
}

fn arity(name: &str, args: &[String], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        let want = match (min, max) {
            (0, 0) => "no argument".to_string(),
            (a, b) if a == b => format!("{a} argument(s)"),
            (a, b) => format!("{a} to {b} arguments"),
        };
        return Err(format!("'{name}' takes {want}, got {}", args.len()));
    }
    Ok(())
}

fn opt(args: &[String], i: usize) -> Option<String> {
    args.get(i).filter(|s| !s.is_empty()).cloned()
}

/// Builds a fetch from its name and arguments.
pub fn fetch(name: &str, args: &[String]) -> Result<Fetch, String> {
    use Fetch::*;
    let none = |f: Fetch| arity(name, args, 0, 0).map(|_| f);
    let backend = |f: fn(Option<String>) -> Fetch| arity(name, args, 0, 1).map(|_| f(opt(args, 0)));
    let header = |side, full, form| {
        arity(name, args, 0, 2)?;
        let occ = match args.get(1) {
            Some(o) => Some(int_arg(name, o)?),
            None => None,
        };
        Ok(Header {
            side,
            name: opt(args, 0),
            occ,
            full,
            form,
        })
    };
    let cookie = |side, form| {
        arity(name, args, 0, 1)?;
        Ok(Cookie {
            side,
            name: opt(args, 0),
            form,
        })
    };
    let (rq, rs) = (Side::Request, Side::Response);
    match name {
        "always_true" => none(Bool(true)),
        "always_false" => none(Bool(false)),
        "bool" => {
            arity(name, args, 1, 1)?;
            Ok(Bool(int_arg(name, &args[0])? != 0))
        }
        "int" => {
            arity(name, args, 1, 1)?;
            Ok(Int(int_arg(name, &args[0])?))
        }
        "str" => {
            arity(name, args, 1, 1)?;
            Ok(Str(args[0].as_bytes().into()))
        }
        "ipv4" | "ipv6" => {
            arity(name, args, 1, 1)?;
            let ip: IpAddr = args[0]
                .parse()
                .map_err(|_| format!("'{name}' expects an address, got '{}'", args[0]))?;
            if (name == "ipv4") != ip.is_ipv4() {
                return Err(format!("'{}' is not an {name} address", args[0]));
            }
            Ok(Ip(ip))
        }
        "env" => {
            arity(name, args, 1, 1)?;
            Ok(Env(std::env::var(&args[0])
                .ok()
                .map(|v| v.as_bytes().into())))
        }
        "rand" => {
            arity(name, args, 0, 1)?;
            match args.first() {
                Some(r) => {
                    let r = int_arg(name, r)?;
                    if r <= 0 {
                        return Err(format!("'rand' range must be positive, got {r}"));
                    }
                    Ok(Rand(Some(r as u64)))
                }
                None => Ok(Rand(None)),
            }
        }
        "date" => {
            arity(name, args, 0, 2)?;
            let offset = match opt(args, 0) {
                Some(o) => int_arg(name, &o)?,
                None => 0,
            };
            match opt(args, 1).as_deref() {
                None | Some("s") => Ok(Date(offset)),
                Some(unit) => Err(format!(
                    "'date' unit '{unit}' is not supported by percore yet (only seconds)"
                )),
            }
        }
        "src" => none(Src),
        "src_port" => none(SrcPort),
        "dst" => none(Dst),
        "dst_port" => none(DstPort),
        "fe_name" => none(FeName),
        "fe_id" => none(FeId),
        "be_name" => none(BeName),
        "be_id" => none(BeId),
        "srv_name" => none(SrvName),
        "srv_id" => none(SrvId),
        "nbsrv" => backend(Nbsrv),
        "be_conn" => backend(BeConn),
        "connslots" => backend(Connslots),
        "queue" => backend(Queue),
        "avg_queue" => backend(AvgQueue),
        "srv_is_up" => {
            arity(name, args, 1, 1)?;
            Ok(match args[0].split_once('/') {
                Some((b, s)) => SrvIsUp(Some(b.into()), s.into()),
                None => SrvIsUp(None, args[0].clone()),
            })
        }
        "method" => none(Method),
        "path" => none(Path),
        "pathq" => none(Pathq),
        "query" => none(Query),
        "url" => none(Url),
        "base" => none(Base),
        "req.ver" | "req_ver" => none(ReqVer),
        "res.ver" | "resp_ver" => none(ResVer),
        "req.proto_http" | "req_proto_http" => none(ProtoHttp),
        "url_param" | "urlp" | "urlp_val" => {
            arity(name, args, 0, 2)?;
            let delim = match opt(args, 1).as_deref().map(str::as_bytes) {
                None => None,
                Some(&[d]) => Some(d),
                Some(_) => {
                    return Err(format!(
                        "'{name}' delimiter must be one character, got '{}'",
                        args[1]
                    ))
                }
            };
            Ok(UrlParam {
                name: opt(args, 0),
                delim,
                int: name == "urlp_val",
            })
        }
        "hdr" | "req.hdr" => header(rq, false, HeaderForm::Value),
        "fhdr" | "req.fhdr" => header(rq, true, HeaderForm::Value),
        "hdr_cnt" | "req.hdr_cnt" => header(rq, false, HeaderForm::Count),
        "req.fhdr_cnt" => header(rq, true, HeaderForm::Count),
        "hdr_val" | "req.hdr_val" => header(rq, false, HeaderForm::Int),
        "hdr_ip" | "req.hdr_ip" => header(rq, false, HeaderForm::Ip),
        "res.hdr" | "shdr" => header(rs, false, HeaderForm::Value),
        "res.fhdr" => header(rs, true, HeaderForm::Value),
        "res.hdr_cnt" | "shdr_cnt" => header(rs, false, HeaderForm::Count),
        "res.fhdr_cnt" => header(rs, true, HeaderForm::Count),
        "res.hdr_val" | "shdr_val" => header(rs, false, HeaderForm::Int),
        "res.hdr_ip" | "shdr_ip" => header(rs, false, HeaderForm::Ip),
        "cook" | "req.cook" => cookie(rq, HeaderForm::Value),
        "cook_cnt" | "req.cook_cnt" => cookie(rq, HeaderForm::Count),
        "cook_val" | "req.cook_val" => cookie(rq, HeaderForm::Int),
        "res.cook" | "scook" => cookie(rs, HeaderForm::Value),
        "res.cook_cnt" | "scook_cnt" => cookie(rs, HeaderForm::Count),
        "res.cook_val" | "scook_val" => cookie(rs, HeaderForm::Int),
        "status" => none(Status),
        "var" => {
            arity(name, args, 1, 2)?;
            Ok(Var(
                VarName::parse(&args[0])?,
                opt(args, 1).map(|d| d.as_bytes().into()),
            ))
        }
        "capture.req.hdr" | "capture.res.hdr" => {
            arity(name, args, 1, 1)?;
            let slot = usize::try_from(int_arg(name, &args[0])?)
                .map_err(|_| format!("'{name}' expects a slot number, got '{}'", args[0]))?;
            Ok(if name == "capture.req.hdr" {
                CapturedRequest(slot)
            } else {
                CapturedResponse(slot)
            })
        }
        "unique-id" => none(UniqueId),
        "req.len" | "req_len" => none(ReqLen),
        "res.len" => none(ResLen),
        "req.payload" | "res.payload" => {
            arity(name, args, 2, 2)?;
            let off = usize::try_from(int_arg(name, &args[0])?)
                .map_err(|_| format!("'{name}' offset must not be negative"))?;
            let len = usize::try_from(int_arg(name, &args[1])?)
                .map_err(|_| format!("'{name}' length must not be negative"))?;
            Ok(if name == "req.payload" {
                ReqPayload(off, len)
            } else {
                ResPayload(off, len)
            })
        }
        "fc_pp_authority" => none(ProxyTlv(0x02)),
        "fc_pp_unique_id" => none(ProxyTlv(0x05)),
        "fc_pp_tlv" => {
            arity(name, args, 1, 1)?;
            Ok(ProxyTlv(tlv_type(&args[0])?))
        }
        "req.body" => none(ReqBody),
        "req.body_len" => none(ReqBodyLen),
        "req.ssl_sni" | "req_ssl_sni" => none(ClientHello(HelloField::Sni)),
        "req.ssl_alpn" => none(ClientHello(HelloField::Alpn)),
        "req.ssl_hello_type" | "req_ssl_hello_type" => none(ClientHello(HelloField::Type)),
        other => Err(match crate::planned::planned_fetch(other) {
            Some(work) => format!("fetch '{other}' is not supported by percore yet ({work})"),
            None => format!("unknown fetch method '{other}'"),
        }),
    }
}

fn converter(name: &str, args: &[String], files: FileReader<'_>) -> Result<Converter, String> {
    use Converter::*;
    let none = |c: Converter| arity(name, args, 0, 0).map(|_| c);
    let hash = |h| {
        arity(name, args, 0, 1)?;
        let avalanche = match args.first() {
            Some(a) => int_arg(name, a)? != 0,
            None => false,
        };
        Ok(Hash(h, avalanche))
    };
    let arith = |op| {
        arity(name, args, 1, 1)?;
        Ok(Arith(op, int_or_var(name, &args[0])?))
    };
    let split = |word: bool| -> Result<Converter, String> {
        arity(name, args, 2, 3)?;
        let index = int_arg(name, &args[0])?;
        if index == 0 {
            return Err(format!("'{name}' index must not be 0"));
        }
        let count = match args.get(2) {
            Some(c) => int_arg(name, c)?,
            None => 1,
        };
        let delimiters = args[1].as_bytes().to_vec();
        if delimiters.is_empty() {
            return Err(format!("'{name}' needs at least one delimiter"));
        }
        Ok(if word {
            Word {
                index,
                delimiters,
                count,
            }
        } else {
            Field {
                index,
                delimiters,
                count,
            }
        })
    };
    match name {
        "lower" => none(Lower),
        "upper" => none(Upper),
        "length" => none(Length),
        "bytes" => {
            arity(name, args, 1, 2)?;
            Ok(Bytes(
                int_or_var(name, &args[0])?,
                args.get(1).map(|a| int_or_var(name, a)).transpose()?,
            ))
        }
        "field" => split(false),
        "word" => split(true),
        "regsub" => {
            arity(name, args, 2, 3)?;
            let flags = args.get(2).map(String::as_str).unwrap_or("");
            if let Some(f) = flags.chars().find(|c| !matches!(c, 'i' | 'g')) {
                return Err(format!("'regsub' flag '{f}' is unknown (only 'i' and 'g')"));
            }
            Ok(Regsub {
                regex: super::pattern::compile_regex(&args[0], flags.contains('i'))?,
                subst: args[1].as_bytes().into(),
                global: flags.contains('g'),
            })
        }
        "ipmask" => {
            arity(name, args, 1, 2)?;
            let v4 = IpNet::parse(&format!("0.0.0.0/{}", args[0]))
                .map_err(|_| format!("'ipmask' expects an IPv4 mask, got '{}'", args[0]))?;
            let v6 = match args.get(1) {
                Some(m) => Some(
                    m.parse::<u8>()
                        .ok()
                        .filter(|&m| m <= 128)
                        .ok_or_else(|| format!("'ipmask' expects an IPv6 prefix, got '{m}'"))?,
                ),
                None => None,
            };
            Ok(Ipmask(v4.prefix, v6))
        }
        "add" => arith(self::Arith::Add),
        "sub" => arith(self::Arith::Sub),
        "mul" => arith(self::Arith::Mul),
        "div" => arith(self::Arith::Div),
        "mod" => arith(self::Arith::Mod),
        "and" => arith(self::Arith::And),
        "or" => arith(self::Arith::Or),
        "xor" => arith(self::Arith::Xor),
        "neg" => none(Neg),
        "not" => none(Not),
        "bool" => none(Bool),
        "base64" => none(Base64),
        "b64dec" => none(B64dec),
        "url_dec" => {
            arity(name, args, 0, 1)?;
            let in_form = match args.first() {
                Some(a) => int_arg(name, a)? != 0,
                None => false,
            };
            Ok(UrlDec { in_form })
        }
        "hex" => none(Hex),
        "crc32" => hash(HashConv::Crc32),
        "djb2" => hash(HashConv::Djb2),
        "sdbm" => hash(HashConv::Sdbm),
        "wt6" => hash(HashConv::Wt6),
        "xxh3" => {
            arity(name, args, 0, 1)?;
            let seed = match args.first() {
                Some(s) => int_arg(name, s)? as u64,
                None => 0,
            };
            Ok(Xxh3(seed))
        }
        "concat" => {
            arity(name, args, 0, 3)?;
            let part = |i: usize| -> Arc<[u8]> {
                args.get(i).map(|s| s.as_bytes()).unwrap_or_default().into()
            };
            let var = opt(args, 1).map(|v| VarName::parse(&v)).transpose()?;
            Ok(Concat(part(0), var, part(2)))
        }
        map if map == "map" || map.starts_with("map_") => {
            arity(name, args, 1, 2)?;
            let (method, output) = map_kind(map)?;
            let text = files(&args[0])?;
            let list = PatternList::from_map(method, false, &text)
                .map_err(|e| format!("map file '{}': {e}", args[0]))?;
            Ok(Map {
                map: Arc::new(list),
                output,
                default: opt(args, 1).map(|d| d.as_bytes().into()),
                substitute: map.starts_with("map_regm"),
            })
        }
        "json" => {
            arity(name, args, 0, 1)?;
            Ok(Json(match args.first().map(String::as_str) {
                None | Some("ascii") => JsonInput::Ascii,
                Some("utf8") => JsonInput::Utf8 {
                    permissive: false,
                    silent: false,
                },
                Some("utf8s") => JsonInput::Utf8 {
                    permissive: false,
                    silent: true,
                },
                Some("utf8p") => JsonInput::Utf8 {
                    permissive: true,
                    silent: false,
                },
                Some("utf8ps") => JsonInput::Utf8 {
                    permissive: true,
                    silent: true,
                },
                Some(other) => {
                    return Err(format!(
                        "'json': unknown input code '{other}' (ascii, utf8, utf8s, utf8p, utf8ps)"
                    ))
                }
            }))
        }
        "ltime" | "utime" => {
            arity(name, args, 1, 2)?;
            let format = std::ffi::CString::new(args[0].as_str())
                .map_err(|_| format!("'{name}': the format contains a NUL byte"))?;
            let offset = match args.get(1) {
                Some(o) => int_arg(name, o)?,
                None => 0,
            };
            Ok(Strftime {
                format: format.into(),
                offset,
                local: name == "ltime",
            })
        }
        "http_date" => {
            arity(name, args, 0, 2)?;
            let offset = match opt(args, 0) {
                Some(o) => int_arg(name, &o)?,
                None => 0,
            };
            let per_second = match opt(args, 1).as_deref() {
                None | Some("s") => 1,
                Some("ms") => 1000,
                Some("us") => 1_000_000,
                Some(u) => return Err(format!("'http_date': unknown unit '{u}' (s, ms, us)")),
            };
            Ok(HttpDate { offset, per_second })
        }
        "set-var" | "sha1" | "sha2" | "aes_gcm_dec" | "digest" | "hmac" | "ub64dec" | "ub64enc"
        | "url_enc" | "strcmp" | "secure_memcmp" => Err(format!(
            "converter '{name}' is not supported by percore yet ({})",
            crate::planned::NOT_PLANNED
        )),
        other => Err(format!("unknown converter '{other}'")),
    }
}

/// How `json` decodes its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonInput {
    /// `ascii`: each byte stands for itself; never fails.
    Ascii,
    /// `utf8`, `utf8s`, `utf8p`, `utf8ps`.
    Utf8 {
        /// `p`: overlong encodings are accepted (and written as what they encode).
        permissive: bool,
        /// `s`: characters in error are dropped instead of failing the conversion.
        silent: bool,
    },
}

/// `map`, `map_str`, `map_beg_int`, ...: the key match method and the value type.
fn map_kind(name: &str) -> Result<(MatchMethod, SampleType), String> {
    let mut parts = name.split('_').skip(1);
    let method = match parts.next() {
        None | Some("str") => MatchMethod::Str,
        Some("beg") => MatchMethod::Beg,
        Some("end") => MatchMethod::End,
        Some("sub") => MatchMethod::Sub,
        Some("dir") => MatchMethod::Dir,
        Some("dom") => MatchMethod::Dom,
        Some("reg") | Some("regm") => MatchMethod::Reg,
        Some("ip") => MatchMethod::Ip,
        Some("int") => MatchMethod::Int,
        Some(other) => return Err(format!("unknown map match '{other}' in '{name}'")),
    };
    let output = match parts.next() {
        None | Some("str") => SampleType::Str,
        Some("int") => SampleType::Int,
        Some("ip") => SampleType::Ip,
        Some(other) => return Err(format!("unknown map output '{other}' in '{name}'")),
    };
    if parts.next().is_some() {
        return Err(format!("unknown converter '{name}'"));
    }
    Ok((method, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::no_files;

    fn parse(s: &str) -> Result<Sample, String> {
        Sample::parse(s, &no_files)
    }

    #[test]
    fn fetch_and_converters() {
        let s = parse("req.hdr(host),lower,field(1,:)").unwrap();
        assert!(matches!(
            s.fetch,
            Fetch::Header {
                side: Side::Request,
                ..
            }
        ));
        assert_eq!(s.converters.len(), 2);
        assert_eq!(s.output, SampleType::Str);
        assert_eq!(parse("rand(100)").unwrap().output, SampleType::Int);
        assert_eq!(parse("src,ipmask(24)").unwrap().output, SampleType::Ip);
        assert_eq!(parse("path,length").unwrap().output, SampleType::Int);
    }

    #[test]
    fn regsub_arguments_keep_their_parentheses() {
        let s = parse(r#"path,regsub("^/(a|b)/",/x/,g)"#).unwrap();
        let Converter::Regsub { regex, global, .. } = &s.converters[0] else {
            panic!()
        };
        assert!(regex.is_match(b"/a/"));
        assert!(global);
    }

    #[test]
    fn errors_name_the_word() {
        assert!(parse("nosuch").unwrap_err().contains("'nosuch'"));
        assert!(parse("path,nosuch").unwrap_err().contains("'nosuch'"));
        assert!(parse("rand(x)").unwrap_err().contains("'x'"));
        assert!(parse("path(1)").unwrap_err().contains("'path'"));
        assert!(parse("hdr(host").is_err());
        assert!(parse("var(foo)").unwrap_err().contains("scope"));
        assert!(parse("url_param(id,ab)").unwrap_err().contains("'ab'"));
    }
}
