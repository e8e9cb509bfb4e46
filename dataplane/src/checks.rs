//! Health checks, agent checks, slow start, tracking and `observe`. Each checked
//! server's checks (and agent) run on one executor (servers are shared out among
//! executors); a state change updates the server's shared [`ServerState`], the
//! servers that track it, and its backend's epoch, which every executor's balancer
//! sees on its next pick. Changes are reported on stderr in HAProxy's words, so
//! existing log watchers keep matching.
//!
//! [`ServerState`]: crate::health::ServerState

use crate::health::WARM;
use crate::http::message::{header_lines, trim};
use crate::io::Watchdog;
use crate::log::syslog::level;
use crate::plan::{Backend, BackendId, Plan, ServerPlan};
use compio::buf::{BufResult, IntoInner, IoBufMut};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use percore_config::check::{CheckType, Expect, HttpCheck, Matcher, TcpCheckStep};
use percore_config::{ObserveLayer, OnError};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most of a check response that is read (HAProxy reads up to `tune.bufsize`).
const RESPONSE_LIMIT: usize = 16384;

/// Why a check failed, worded as HAProxy words it.
struct Failure {
    reason: &'static str,
    info: String,
}

impl Failure {
    fn new(reason: &'static str, info: impl Into<String>) -> Self {
        Self {
            reason,
            info: info.into(),
        }
    }
}

/// A check's result: what passed, or why it failed.
type Outcome = Result<&'static str, Failure>;

/// Runs the health checks of server `s_id` of backend `be_id` forever.
pub async fn run(plan: Arc<Plan>, be_id: BackendId, s_id: usize) {
    let be = &plan.backends[be_id];
    let sp = &be.servers[s_id];
    let c = &sp.check;
    let target = SocketAddr::new(
        c.addr.unwrap_or(sp.addr.ip()),
        c.port.unwrap_or(sp.addr.port()),
    );
    let limit = be
        .settings
        .timeouts
        .check
        .or(be.settings.timeouts.connect)
        .unwrap_or(c.inter)
        .min(c.inter);
    let state = &sp.state;
    let mut successes = 0u32;
    let mut last_ok: Option<bool> = None;
    loop {
        let up = state.up.load(Ordering::Acquire);
        let failures = state.failures.load(Ordering::Acquire);
        let steady = if up { failures == 0 } else { successes == 0 };
        let pause = if state.hurry.load(Ordering::Acquire) || !steady {
            c.fastinter.unwrap_or(c.inter)
        } else if up {
            c.inter
        } else {
            c.downinter.unwrap_or(c.inter)
        };
        compio::time::sleep(pause).await;
        let started = Instant::now();
        let result = check_once(be, target, limit).await;
        let took = started.elapsed().as_millis();
        let up = state.up.load(Ordering::Acquire);
        if be.checks.log && last_ok != Some(result.is_ok()) {
            log_result(be, sp, &result, took, up, successes);
        }
        last_ok = Some(result.is_ok());
        match result {
            Ok(reason) => {
                successes += 1;
                state.failures.store(0, Ordering::Release);
                if !up && successes >= c.rise {
                    let why = format!("reason: {reason}, check duration: {took}ms");
                    set_up(&plan, be_id, s_id, true, &why);
                }
            }
            Err(f) => {
                successes = 0;
                let failures = state.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if up && failures >= c.fall {
                    let why = format!(
                        "reason: {}, info: \"{}\", check duration: {took}ms",
                        f.reason, f.info
                    );
                    set_up(&plan, be_id, s_id, false, &why);
                }
            }
        }
    }
}

/// `option log-health-checks`: a check result that differs from the previous one.
fn log_result(
    be: &Backend,
    sp: &ServerPlan,
    result: &Outcome,
    took: u128,
    up: bool,
    successes: u32,
) {
    let c = &sp.check;
    let (verdict, reason, info) = match result {
        Ok(reason) => ("succeeded", *reason, String::new()),
        Err(f) => ("failed", f.reason, format!(", info: \"{}\"", f.info)),
    };
    let status = if up {
        let left = c.fall - sp.state.failures.load(Ordering::Relaxed).min(c.fall);
        format!("{left}/{} UP", c.fall)
    } else {
        format!("{}/{} DOWN", successes.min(c.rise), c.rise)
    };
    let msg = format!(
        "Health check for server {}/{} {verdict}, reason: {reason}{info}, check duration: {took}ms, status: {status}.",
        be.name, sp.name
    );
    report(be, "WARNING", level::NOTICE, &msg);
}

/// Reports a backend event on stderr, with HAProxy's prefix, and to the backend's
/// `log` targets.
fn report(be: &Backend, severity: &str, level: u8, msg: &str) {
    let pid = std::process::id();
    eprintln!(
        "[{severity}]{:pad$}({pid}) : {msg}",
        "",
        pad = 9 - severity.len()
    );
    crate::log::event(be, level, msg);
}

/// Sets the health verdict of a server, and through it of the servers that track it;
/// reports the change, starts a slow start when the server comes up. Returns
/// whether anything changed (another executor may have made the same change first).
pub fn set_up(plan: &Arc<Plan>, be_id: BackendId, s_id: usize, up: bool, why: &str) -> bool {
    let sp = &plan.backends[be_id].servers[s_id];
    let before = sp.is_up();
    if sp.state.up.swap(up, Ordering::AcqRel) == up {
        return false;
    }
    sp.state.failures.store(0, Ordering::Release);
    sp.state.errors.store(0, Ordering::Release);
    sp.state.hurry.store(false, Ordering::Release);
    operational_change(plan, be_id, s_id, before, why);
    true
}

/// After a change to a server's health or agent verdict (it was operational if
/// `before`): starts the slow start when it came up, bumps the epoch, reports the
/// change, and carries it to the servers tracking this one (a tracker has no trackers
/// of its own: chains were resolved to their end at load).
fn operational_change(plan: &Arc<Plan>, be_id: BackendId, s_id: usize, before: bool, why: &str) {
    let be = &plan.backends[be_id];
    let sp = &be.servers[s_id];
    let now = sp.is_up();
    if now && !before {
        start_slow_start(plan, be_id, s_id);
    }
    be.epoch.fetch_add(1, Ordering::AcqRel);
    if now == before {
        return;
    }
    announce(be, sp, now, why);
    for &(tb, ts) in &sp.trackers {
        let tracker = &plan.backends[tb].servers[ts];
        let was = tracker.is_up();
        if tracker.state.up.swap(now, Ordering::AcqRel) != now {
            let via = format!("via {}/{}", be.name, sp.name);
            operational_change(plan, tb, ts, was, &via);
        }
    }
}

/// Reports a server going up or down as HAProxy words it.
fn announce(be: &Backend, sp: &ServerPlan, up: bool, why: &str) {
    let active = be
        .servers
        .iter()
        .filter(|s| !s.backup && s.usable())
        .count();
    let backup = be.servers.iter().filter(|s| s.backup && s.usable()).count();
    let queued = be.queued();
    let sep = if why.starts_with("via") { " " } else { ", " };
    if up {
        let msg = format!(
            "Server {}/{} is UP{sep}{why}. {active} active and {backup} backup servers online. 0 sessions requeued, {queued} total in queue.",
            be.name, sp.name
        );
        report(be, "WARNING", level::NOTICE, &msg);
    } else {
        let inflight = sp.inflight.load(Ordering::Relaxed);
        let msg = format!(
            "Server {}/{} is DOWN{sep}{why}. {active} active and {backup} backup servers left. {inflight} sessions active, 0 requeued, {queued} remaining in queue.",
            be.name, sp.name
        );
        report(be, "WARNING", level::ALERT, &msg);
        if active + backup == 0 {
            let msg = format!("backend '{}' has no server available!", be.name);
            report(be, "ALERT", level::EMERG, &msg);
        }
    }
}

/// With `slowstart`, ramps the server's weight (and `maxconn`) from 1/16 to full,
/// in steps of at least a second, as HAProxy does; the ramp stops if the server goes
/// down or comes up again meanwhile.
fn start_slow_start(plan: &Arc<Plan>, be_id: BackendId, s_id: usize) {
    let sp = &plan.backends[be_id].servers[s_id];
    sp.state.mark_came_up(sp.slowstart);
    let Some(slowstart) = sp.slowstart else {
        return;
    };
    let plan = plan.clone();
    let started = sp.state.came_up_ms.load(Ordering::Acquire);
    compio::runtime::spawn(async move {
        let be = &plan.backends[be_id];
        let state = &be.servers[s_id].state;
        let step = (slowstart / 20).max(Duration::from_secs(1));
        loop {
            compio::time::sleep(step).await;
            if !state.is_up() || state.came_up_ms.load(Ordering::Acquire) != started {
                return;
            }
            let warmth = state.warmth_now(slowstart);
            state.warmth.store(warmth, Ordering::Release);
            be.epoch.fetch_add(1, Ordering::AcqRel);
            if warmth >= WARM {
                return;
            }
        }
    })
    .detach();
}

/// What live traffic saw of a server, for `observe`.
#[derive(Debug, Clone, Copy)]
pub enum Observed {
    /// A connection opened, or (layer 7) a valid response arrived.
    Fine,
    /// The connection failed or timed out.
    ConnectError,
    /// The response was invalid, timed out, or had a 5xx status other than 501/505.
    ResponseError,
}

/// Records what live traffic saw of server `s_id` of backend `be_id`, when the server
/// is observed at that layer; after `error-limit` consecutive errors applies
/// `on-error`. Called by any executor.
pub fn observe(plan: &Arc<Plan>, be_id: BackendId, s_id: usize, seen: Observed) {
    let sp = &plan.backends[be_id].servers[s_id];
    let Some(layer) = sp.observe.layer else {
        return;
    };
    let state = &sp.state;
    let what = match seen {
        Observed::Fine => {
            state.errors.store(0, Ordering::Relaxed);
            return;
        }
        Observed::ResponseError if layer == ObserveLayer::Layer4 => return,
        Observed::ResponseError => "invalid or 5xx response",
        Observed::ConnectError => "L4 unsuccessful connection",
    };
    let errors = state.errors.fetch_add(1, Ordering::AcqRel) + 1;
    if errors < sp.observe.error_limit || !state.up.load(Ordering::Acquire) {
        return;
    }
    state.errors.store(0, Ordering::Release);
    state.hurry.store(true, Ordering::Release);
    let why = format!(
        "reason: Health analyze, info: \"Detected {errors} consecutive errors, last one was: {what}\""
    );
    let fall = sp.check.fall;
    match sp.observe.on_error {
        OnError::Fastinter => {}
        OnError::FailCheck => {
            if state.failures.fetch_add(1, Ordering::AcqRel) + 1 >= fall {
                set_up(plan, be_id, s_id, false, &why);
            }
        }
        OnError::SuddenDeath => {
            state
                .failures
                .fetch_max(fall.saturating_sub(1), Ordering::AcqRel);
            if fall <= 1 {
                set_up(plan, be_id, s_id, false, &why);
            }
        }
        OnError::MarkDown => {
            set_up(plan, be_id, s_id, false, &why);
        }
    }
}

/// One check, in the backend's check protocol.
async fn check_once(be: &Backend, target: SocketAddr, limit: Duration) -> Outcome {
    let mut wd = Watchdog::default();
    wd.until(Some(Instant::now() + limit));
    match be.checks.kind {
        CheckType::Connect => connect(&mut wd, target)
            .await
            .map(|_| "Layer4 check passed"),
        CheckType::Http => {
            let stream = connect(&mut wd, target).await?;
            http_check(&mut wd, &stream, &be.checks.http).await
        }
        CheckType::Tcp => tcp_check(&mut wd, target, &be.checks.tcp).await,
    }
}

async fn connect(wd: &mut Watchdog, target: SocketAddr) -> Result<TcpStream, Failure> {
    match wd.run(TcpStream::connect(target)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Failure::new("Layer4 connection problem", e.to_string())),
        Err(_) => Err(Failure::new("Layer4 timeout", "")),
    }
}

async fn send(wd: &mut Watchdog, stream: &TcpStream, bytes: Vec<u8>) -> Result<(), Failure> {
    let mut w = stream;
    match wd.run(w.write_all(bytes)).await {
        Ok(BufResult(Ok(_), _)) => Ok(()),
        _ => Err(Failure::new(
            "Layer4 connection problem",
            "cannot send the check request",
        )),
    }
}

/// Reads more of a response into `buf`; `Ok(false)` once the peer closed or the
/// limit is reached.
async fn receive(
    wd: &mut Watchdog,
    stream: &TcpStream,
    buf: &mut Vec<u8>,
) -> Result<bool, Failure> {
    if buf.len() >= RESPONSE_LIMIT {
        return Ok(false);
    }
    buf.reserve(RESPONSE_LIMIT - buf.len());
    let mut r = stream;
    match wd.run(r.read(std::mem::take(buf).uninit())).await {
        Ok(BufResult(Ok(n), b)) => {
            *buf = b.into_inner();
            Ok(n > 0)
        }
        Ok(BufResult(Err(e), b)) => {
            *buf = b.into_inner();
            Err(Failure::new("Layer4 connection problem", e.to_string()))
        }
        Err(_) => Err(Failure::new("Layer7 timeout", "")),
    }
}

/// `option httpchk`: sends the request, reads the response (until the server closes,
/// as asked), and applies `http-check expect` or, without it, wants a 2xx or 3xx.
async fn http_check(wd: &mut Watchdog, stream: &TcpStream, http: &HttpCheck) -> Outcome {
    let mut request = format!("{} {} {}\r\n", http.method, http.uri, http.version);
    for (name, value) in &http.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !http.body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", http.body.len()));
    }
    request.push_str("Connection: close\r\n\r\n");
    request.push_str(&http.body);
    send(wd, stream, request.into_bytes()).await?;
    let mut buf = Vec::new();
    let head_request = http.method.eq_ignore_ascii_case("HEAD");
    while !response_complete(&buf, head_request) && receive(wd, stream, &mut buf).await? {}
    let head_end = head_end(&buf);
    let line_end = buf.iter().position(|&c| c == b'\n').unwrap_or(buf.len());
    let line = String::from_utf8_lossy(&buf[..line_end])
        .trim_end()
        .to_string();
    let status: Option<u16> = line.split(' ').nth(1).and_then(|s| s.parse().ok());
    let (Some(status), Some(head_end)) = (status, head_end) else {
        return Err(Failure::new("Layer7 invalid response", line));
    };
    let head = &buf[..head_end];
    let body = &buf[head_end..];
    let Some(expect) = &http.expect else {
        return if (200..400).contains(&status) {
            Ok("Layer7 check passed")
        } else {
            Err(Failure::new("Layer7 wrong status", line))
        };
    };
    let found = match &expect.matcher {
        Matcher::Status(ranges) => ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status)),
        Matcher::Rstatus(re) => re.is_match(status.to_string().as_bytes()),
        Matcher::Bytes(s) => contains(body, s),
        Matcher::Regex(re) => re.is_match(body),
        Matcher::Header { name, value, full } => header_lines(head).any(|h| {
            name.matches(&head[h.name.clone()], true)
                && value.as_ref().is_none_or(|v| {
                    let whole = &head[h.value.clone()];
                    if *full {
                        v.matches(whole, false)
                    } else {
                        whole
                            .split(|&c| c == b',')
                            .any(|p| v.matches(trim(p), false))
                    }
                })
        }),
    };
    if found != expect.negate {
        return Ok("Layer7 check passed");
    }
    Err(match &expect.matcher {
        Matcher::Status(_) | Matcher::Rstatus(_) => Failure::new("Layer7 wrong status", line),
        _ if expect.negate => {
            Failure::new("Layer7 invalid response", "HTTP check matched unexpectedly")
        }
        _ => Failure::new("Layer7 invalid response", "HTTP check did not match"),
    })
}

fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|p| p + 4)
}

/// Whether a check response is all there, so that the check need not wait for the
/// server to close: a complete head, then no body (a HEAD request, 1xx, 204, 304),
/// `Content-Length` bytes, or a chunked body's last chunk.
fn response_complete(buf: &[u8], head_request: bool) -> bool {
    let Some(end) = head_end(buf) else {
        return false;
    };
    let head = &buf[..end];
    let status = head.get(9..12).unwrap_or_default();
    if head_request || status.starts_with(b"1") || status == b"204" || status == b"304" {
        return true;
    }
    let body = &buf[end..];
    let value = |name: &str| {
        header_lines(head)
            .find(|h| head[h.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| &head[h.value])
    };
    if let Some(len) = value("content-length") {
        let len: usize = std::str::from_utf8(len)
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX);
        return body.len() >= len;
    }
    value("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case(b"chunked"))
        && body.ends_with(b"0\r\n\r\n")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// `option tcp-check`: runs the steps in order; a connection is opened first when the
/// steps do not start with `connect`.
async fn tcp_check(wd: &mut Watchdog, target: SocketAddr, steps: &[TcpCheckStep]) -> Outcome {
    let mut stream = None;
    if !matches!(steps.first(), Some(TcpCheckStep::Connect { .. })) {
        stream = Some(connect(wd, target).await?);
    }
    let mut buf = Vec::new();
    let mut layer7 = false;
    for (n, step) in steps.iter().enumerate() {
        let n = n + 1;
        match step {
            TcpCheckStep::Connect { port } => {
                let to = SocketAddr::new(target.ip(), port.unwrap_or(target.port()));
                stream = Some(connect(wd, to).await?);
                buf.clear();
            }
            TcpCheckStep::Send(bytes) => {
                let Some(s) = stream.as_ref() else { break };
                send(wd, s, bytes.clone()).await?;
            }
            TcpCheckStep::Expect(expect) => {
                let Some(s) = stream.as_ref() else { break };
                layer7 = true;
                expect_bytes(wd, s, &mut buf, expect, n).await?;
            }
        }
    }
    Ok(if layer7 {
        "Layer7 check passed"
    } else {
        "Layer4 check passed"
    })
}

/// `tcp-check expect`: reads until the pattern is found, or the peer closes or the
/// buffer is full (then the pattern is not there), or the check times out.
async fn expect_bytes(
    wd: &mut Watchdog,
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    expect: &Expect,
    step: usize,
) -> Result<(), Failure> {
    loop {
        let found = match &expect.matcher {
            Matcher::Bytes(s) => contains(buf, s),
            Matcher::Regex(re) => re.is_match(buf),
            _ => false,
        };
        let more = !found && receive(wd, stream, buf).await?;
        if found || !more {
            return if found != expect.negate {
                buf.clear();
                Ok(())
            } else {
                let how = if found { "matched" } else { "did not match" };
                Err(Failure::new(
                    "Layer7 invalid response",
                    format!("TCPCHK {how} content at step {step}"),
                ))
            };
        }
    }
}

/// Runs the agent checks of server `s_id` of backend `be_id` forever: connects to the
/// agent, sends `agent-send`, and applies the words of its one-line reply. An agent
/// that cannot be reached changes nothing (the health checks judge connectivity).
pub async fn run_agent(plan: Arc<Plan>, be_id: BackendId, s_id: usize) {
    let sp = &plan.backends[be_id].servers[s_id];
    let a = &sp.agent;
    let Some(port) = a.port else { return };
    let target = SocketAddr::new(a.addr.unwrap_or(sp.addr.ip()), port);
    let inter = a.inter.unwrap_or(sp.check.inter);
    loop {
        compio::time::sleep(inter).await;
        if let Ok(reply) = query_agent(target, a.send.as_deref(), inter).await {
            apply_agent(&plan, be_id, s_id, &reply);
        }
    }
}

async fn query_agent(
    target: SocketAddr,
    send_text: Option<&str>,
    limit: Duration,
) -> Result<String, Failure> {
    let mut wd = Watchdog::default();
    wd.until(Some(Instant::now() + limit));
    let stream = connect(&mut wd, target).await?;
    if let Some(text) = send_text {
        send(&mut wd, &stream, text.as_bytes().to_vec()).await?;
    }
    let mut buf = Vec::new();
    while !buf.contains(&b'\n') && receive(&mut wd, &stream, &mut buf).await? {}
    let line = buf.split(|&c| c == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .to_string())
}

/// Applies an agent's reply: `N%` (weight in percent of the configured one),
/// `maxconn:N`, `ready`, `drain`, `maint`, `up`, `down`, `fail`, `stopped`; words are
/// separated by blanks or commas, and `#` starts a description.
fn apply_agent(plan: &Arc<Plan>, be_id: BackendId, s_id: usize, reply: &str) {
    let be = &plan.backends[be_id];
    let sp = &be.servers[s_id];
    let state = &sp.state;
    let (words, description) = reply.split_once('#').unwrap_or((reply, ""));
    let before = sp.is_up();
    let weight_before = sp.eweight();
    let mut said_down = None;
    for word in words
        .split([' ', '\t', ','])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
    {
        if let Some(pct) = word.strip_suffix('%') {
            if let Ok(p) = pct.parse::<u32>() {
                state.agent_percent.store(p, Ordering::Release);
            }
        } else if let Some(n) = word.strip_prefix("maxconn:") {
            if let Ok(n) = n.parse::<u32>() {
                state.agent_maxconn.store(n, Ordering::Release);
            }
        } else {
            match word.as_str() {
                "ready" => {
                    state.drain.store(false, Ordering::Release);
                    state.agent_up.store(true, Ordering::Release);
                }
                "up" => state.agent_up.store(true, Ordering::Release),
                "drain" => state.drain.store(true, Ordering::Release),
                "maint" | "down" | "fail" | "stopped" => {
                    state.agent_up.store(false, Ordering::Release);
                    said_down = Some(word.clone());
                }
                _ => {}
            }
        }
    }
    if before != sp.is_up() {
        let why = match said_down {
            Some(word) => format!(
                "reason: Agent reports {word}, info: \"{}\"",
                description.trim()
            ),
            None => "reason: Agent reports up".to_string(),
        };
        operational_change(plan, be_id, s_id, before, &why);
    } else if weight_before != sp.eweight() {
        be.epoch.fetch_add(1, Ordering::AcqRel);
    }
}
