//! The rules engine at run time: evaluates the conditions, samples and log-format strings
//! that the configuration compiled, against one connection and its current messages.
//! Nothing is parsed per request; values borrow from the message buffers where they can.

pub mod capture;
pub mod convert;
pub mod fetch;
pub mod hello;
pub mod http;
pub mod matching;
pub mod value;
pub mod vars;

use crate::core::Core;
use crate::log::record::Record;
use crate::plan::{Backend, BackendId, Frontend, SwitchTarget};
use percore_config::rules::acl::{Acl, Acls};
use percore_config::rules::action::TcpAction;
use percore_config::rules::condition::Condition;
use percore_config::rules::logformat::{LfPart, LogFormat};
use percore_config::rules::sample::{Sample, Side};
use percore_config::rules::Rule;
use std::cell::Cell;
use std::net::SocketAddr;
use value::Value;
use vars::Vars;

/// What fetches can see at one point of a connection's life.
pub struct Context<'a> {
    /// The executor (random numbers, the plan).
    pub core: &'a Core,
    /// The frontend the client came through.
    pub fe: &'a Frontend,
    /// The backend chosen so far.
    pub be: Option<&'a Backend>,
    /// The server that took the request, once there is one.
    pub server: Option<usize>,
    /// The client's address (as `set-src` left it).
    pub src: SocketAddr,
    /// The address the client connected to.
    pub dst: SocketAddr,
    /// The request head (empty before there is one).
    pub req: &'a [u8],
    /// The response head (empty before there is one).
    pub res: &'a [u8],
    /// The connection's variables.
    pub vars: &'a Vars,
    /// The transaction's capture slots.
    pub captured: &'a capture::Captured,
    /// Request bytes buffered for content inspection.
    pub payload: &'a [u8],
    /// Response bytes buffered for `tcp-response` inspection.
    pub res_payload: &'a [u8],
    /// The request body, when `option http-buffer-request` waited for it.
    pub body: &'a [u8],
    /// The connection's PROXY protocol v2 TLVs.
    pub proxy_tlvs: &'a [(u8, Vec<u8>)],
    /// No more request bytes will be waited for (no inspect-delay, or it expired, or
    /// the buffer is full, or the client closed).
    pub payload_final: bool,
    /// Set by a fetch whose answer may change once more bytes arrive (HAProxy's
    /// "may change"): a condition that fails on it is undecided, not false.
    pub may_change: Cell<bool>,
    /// The request's id (`unique-id`, `%ID`).
    pub unique_id: &'a [u8],
    /// The request's number in the process (`%rt`).
    pub request_number: u64,
}

/// The value of a sample expression, converters applied.
pub fn sample<'a>(s: &'a Sample, cx: &Context<'a>) -> Option<Value<'a>> {
    let mut v = fetch::fetch(&s.fetch, cx)?;
    for c in &s.converters {
        v = convert::convert(c, v, cx)?;
    }
    Some(v)
}

/// A condition's outcome while request bytes may still arrive: HAProxy's three-valued
/// logic, where an undecided test makes the rules wait for more data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Truth {
    /// The test failed and more data would not change that.
    False,
    /// The test failed on data that may still change.
    Undecided,
    /// The test passed.
    True,
}

impl Truth {
    fn not(self) -> Truth {
        match self {
            Truth::False => Truth::True,
            Truth::Undecided => Truth::Undecided,
            Truth::True => Truth::False,
        }
    }
}

/// Whether an ACL is true: any of its tests matches (any value of a multi-valued fetch).
fn acl_truth(acl: &Acl, cx: &Context<'_>) -> Truth {
    let mut outcome = Truth::False;
    for t in &acl.tests {
        cx.may_change.set(false);
        let matched = fetch::any_value(&t.sample.fetch, cx, |mut v| {
            for c in &t.sample.converters {
                match convert::convert(c, v, cx) {
                    Some(next) => v = next,
                    None => return false,
                }
            }
            matching::find(&t.patterns, &v).is_some()
        });
        if matched {
            return Truth::True;
        }
        if cx.may_change.get() && !cx.payload_final {
            outcome = Truth::Undecided;
        }
    }
    outcome
}

/// The outcome of a rule's condition (true when there is none).
pub fn truth(cond: &Option<Condition>, acls: &Acls, cx: &Context<'_>) -> Truth {
    let Some(c) = cond else { return Truth::True };
    let mut any = Truth::False;
    for group in &c.any_of {
        let mut all = Truth::True;
        for t in group {
            let mut v = acl_truth(&acls.list[t.acl], cx);
            if t.negated {
                v = v.not();
            }
            if v != Truth::True {
                all = v;
                break;
            }
        }
        any = any.max(all);
        if any == Truth::True {
            break;
        }
    }
    if c.unless {
        any.not()
    } else {
        any
    }
}

/// Whether a rule applies: no condition, or one that holds.
pub fn holds(cond: &Option<Condition>, acls: &Acls, cx: &Context<'_>) -> bool {
    truth(cond, acls, cx) == Truth::True
}

/// Renders a log-format string used by a rule into `out` (cleared first). A missing
/// or empty sample writes nothing, as in HAProxy's header values (a log line writes
/// `-`).
pub fn render(lf: &LogFormat, cx: &Context<'_>, out: &mut Vec<u8>) {
    render_parts(lf, cx, None, out)
}

/// Renders the log line of a finished transaction into `out` (cleared first).
pub fn render_log(lf: &LogFormat, cx: &Context<'_>, rec: &Record, out: &mut Vec<u8>) {
    render_parts(lf, cx, Some(rec), out)
}

fn render_parts(lf: &LogFormat, cx: &Context<'_>, rec: Option<&Record>, out: &mut Vec<u8>) {
    out.clear();
    // As in HAProxy, a separator is written only after something that wrote text.
    let mut after_space = true;
    for part in &lf.parts {
        let start = out.len();
        match part {
            LfPart::Text(t) => out.extend_from_slice(t),
            LfPart::Separator => {
                if !after_space {
                    out.push(b' ');
                    after_space = true;
                }
                continue;
            }
            LfPart::Sample(s, flags) => {
                if let Some(v) = sample(s, cx) {
                    v.write_to(out);
                }
                if out.len() == start {
                    // A log line shows a missing or empty sample as `-`; a header
                    // value, body or target gets nothing there, as from HAProxy (a
                    // quoted one still shows `""`).
                    if rec.is_some() || flags.quote {
                        crate::log::vars::text(None, *flags, out);
                    }
                } else if flags.quote || flags.escape {
                    let written = out.split_off(start);
                    crate::log::vars::text(Some(&written), *flags, out);
                }
            }
            LfPart::Var(v, flags) => crate::log::vars::write(*v, *flags, cx, rec, out),
        }
        if out.len() > start {
            after_space = false;
        }
    }
}

/// The bytes TCP content rules inspect.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    /// What the peer has sent so far.
    pub bytes: &'a [u8],
    /// Whether that is all the rules will get (see `Context::payload_final`).
    pub last: bool,
    /// The client's bytes (`tcp-request`) or the server's (`tcp-response`).
    pub side: Side,
}

impl Content<'_> {
    /// No bytes and no waiting: `tcp-request connection` and `session`, and rules
    /// without an inspect-delay.
    pub const NONE: Content<'static> = Content {
        bytes: &[],
        last: true,
        side: Side::Request,
    };
}

/// How a TCP rule set ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpVerdict {
    /// An `accept`, or the end of the rules: the connection goes on.
    Accept,
    /// A `reject`: the connection is closed.
    Reject,
    /// The rule at this index is undecided until more bytes arrive: run the set again
    /// from there when they do.
    Wait(usize),
}

/// Runs a TCP rule set (`tcp-request connection|session|content`) from rule `from`.
pub fn run_tcp(
    rules: &[Rule<TcpAction>],
    acls: &Acls,
    env: &http::Env<'_>,
    st: &mut http::TxnState,
    content: Content<'_>,
    from: usize,
) -> TcpVerdict {
    for (i, rule) in rules.iter().enumerate().skip(from) {
        let mut cx = env.context(st, &[], &[]);
        match content.side {
            Side::Request => cx.payload = content.bytes,
            Side::Response => cx.res_payload = content.bytes,
        }
        cx.payload_final = content.last;
        match truth(&rule.cond, acls, &cx) {
            Truth::True => {}
            Truth::False => continue,
            Truth::Undecided => return TcpVerdict::Wait(i),
        }
        match &rule.action {
            TcpAction::Accept => return TcpVerdict::Accept,
            TcpAction::Reject => return TcpVerdict::Reject,
            TcpAction::SetVar(name, s) => {
                if let Some(v) = sample(s, &cx).map(Value::into_owned) {
                    st.vars.set(name, v);
                }
            }
            TcpAction::SetVarFmt(name, lf) => {
                let mut text = Vec::new();
                render(lf, &cx, &mut text);
                st.vars.set(name, Value::Str(text.into()));
            }
            TcpAction::UnsetVar(name) => st.vars.unset(name),
            TcpAction::SetLogLevel(level) => st.log_level = Some(*level),
            TcpAction::ExpectProxy => st.expect_proxy = true,
        }
    }
    TcpVerdict::Accept
}

/// Whether a TCP rule set that reads no buffered bytes (`tcp-request connection` and
/// `session`, content rules in HTTP mode) rejects the connection.
pub fn rejects(
    rules: &[Rule<TcpAction>],
    acls: &Acls,
    env: &http::Env<'_>,
    st: &mut http::TxnState,
) -> bool {
    run_tcp(rules, acls, env, st, Content::NONE, 0) == TcpVerdict::Reject
}

/// The backend a request goes to: the first `use_backend` whose condition holds (a
/// dynamic name that names no backend falls back to the default, as in HAProxy), else
/// the default backend.
pub fn switch_backend(fe: &Frontend, cx: &Context<'_>) -> Option<BackendId> {
    let mut name = Vec::new();
    for s in &fe.switching {
        if !holds(&s.cond, &fe.rules.acls, cx) {
            continue;
        }
        match &s.target {
            SwitchTarget::Static(id) => return Some(*id),
            SwitchTarget::Dynamic(lf) => {
                render(lf, cx, &mut name);
                match cx.core.plan.backend_named(&name) {
                    Some(id) => return Some(id),
                    None => break,
                }
            }
        }
    }
    fe.default_backend
}
