//! Logs: one line per finished transaction in the frontend's format (`option httplog`,
//! `option tcplog`, `log-format`), HAProxy's "Connect from" line when a frontend logs
//! without a format, and server state changes for the backends' targets, all sent
//! with a syslog header to the `log` targets.
//!
//! A line is built in the executor's own buffers and sent in one non-blocking
//! datagram: logging allocates nothing per request and never waits.

pub mod record;
pub mod syslog;
pub mod time;
pub mod vars;

use crate::core::Core;
use crate::plan::{Backend, Frontend};
use crate::rules::{render_log, Context};
use percore_config::log::LogLevel;
use percore_config::rules::logformat::LogFormat;
use record::Record;
use std::io::Write;
use std::net::SocketAddr;
use syslog::{level, Loggers};

/// How a frontend logs its traffic.
#[derive(Debug)]
pub struct TrafficLog {
    /// Where lines go.
    pub loggers: Loggers,
    /// The line format; without one, a frontend with targets logs HAProxy's "Connect
    /// from" line at each accept.
    pub format: Option<LogFormat>,
    /// `option dontlognull`.
    pub dontlognull: bool,
    /// `option dontlog-normal`.
    pub dontlog_normal: bool,
    /// `option log-separate-errors`.
    pub separate_errors: bool,
}

impl TrafficLog {
    /// Whether transactions must keep a [`Record`] for a log line.
    pub fn records(&self) -> bool {
        self.format.is_some() && !self.loggers.is_empty()
    }
}

/// Sends the log line of a finished transaction, if its frontend logs; `set` is what
/// a `set-log-level` rule made of it.
pub fn traffic(cx: &Context<'_>, rec: &Record, set: Option<LogLevel>) {
    let log = &cx.fe.log;
    let Some(format) = &log.format else { return };
    if log.loggers.is_empty() {
        return;
    }
    let error = rec.is_error();
    if log.dontlog_normal && !error {
        return;
    }
    let level = match set {
        Some(LogLevel::Silent) => return,
        Some(LogLevel::Level(l)) => l,
        None if error && log.separate_errors => level::ERR,
        None => level::INFO,
    };
    let mut bufs = cx.core.log_bufs.borrow_mut();
    let (line, scratch) = &mut *bufs;
    render_log(format, cx, rec, line);
    log.loggers.send(level, line, scratch);
}

/// HAProxy's line for a frontend that has `log` targets but no format.
pub fn connect_from(core: &Core, fe: &Frontend, src: SocketAddr, dst: SocketAddr) {
    if fe.log.format.is_some() || fe.log.loggers.is_empty() {
        return;
    }
    let mut bufs = core.log_bufs.borrow_mut();
    let (line, scratch) = &mut *bufs;
    line.clear();
    let mode = match fe.mode {
        percore_config::Mode::Http => "HTTP",
        percore_config::Mode::Tcp => "TCP",
    };
    let _ = write!(
        line,
        "Connect from {}:{} to {}:{} ({}/{mode})",
        src.ip(),
        src.port(),
        dst.ip(),
        dst.port(),
        fe.name
    );
    fe.log.loggers.send(level::INFO, line, scratch);
}

/// Sends an event of a backend (a server going up or down) to its targets.
pub fn event(be: &Backend, level: u8, msg: &str) {
    if !be.loggers.is_empty() {
        be.loggers.send(level, msg.as_bytes(), &mut Vec::new());
    }
}

/// The system's host name, for rfc5424 headers and `%H`.
pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the C library writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
