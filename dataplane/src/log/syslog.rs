//! Sending messages to `log` targets with a syslog header: UDP, a local UNIX socket
//! (`/dev/log`), standard output or error. A message goes out in one non-blocking
//! datagram (or one `write`); when the socket cannot take it, it is dropped and
//! counted, as HAProxy does, rather than delaying traffic.

use super::time::Clock;
use percore_config::log::{LogAddr, LogTarget, SyslogFormat};
use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::RawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// Syslog levels percore emits.
pub mod level {
    /// A backend has no server left.
    pub const EMERG: u8 = 0;
    /// A server went down.
    pub const ALERT: u8 = 1;
    /// An error (with `option log-separate-errors`).
    pub const ERR: u8 = 3;
    /// A server came up, a check changed.
    pub const NOTICE: u8 = 5;
    /// Traffic.
    pub const INFO: u8 = 6;
}

/// One opened `log` target. Shared by the proxies and executors that use it: sending a
/// datagram needs no lock in percore (the kernel serializes on its socket).
#[derive(Debug)]
pub struct Sink {
    target: LogTarget,
    dest: Dest,
    /// Messages the socket could not take.
    pub dropped: AtomicU64,
}

#[derive(Debug)]
enum Dest {
    Udp(UdpSocket),
    Unix(UnixDatagram),
    Stdout,
    Stderr,
}

impl Sink {
    /// Opens a target's socket.
    pub fn open(target: &LogTarget) -> std::io::Result<Self> {
        let dest = match &target.addr {
            LogAddr::Udp(addr) => {
                let local: std::net::SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(local)?;
                s.set_nonblocking(true)?;
                Dest::Udp(s)
            }
            LogAddr::Unix(_) => {
                let s = UnixDatagram::unbound()?;
                s.set_nonblocking(true)?;
                Dest::Unix(s)
            }
            LogAddr::Stdout => Dest::Stdout,
            LogAddr::Stderr => Dest::Stderr,
        };
        Ok(Self {
            target: target.clone(),
            dest,
            dropped: AtomicU64::new(0),
        })
    }

    fn send(&self, msg: &[u8]) {
        let sent = match (&self.dest, &self.target.addr) {
            (Dest::Udp(s), LogAddr::Udp(addr)) => s.send_to(msg, addr).is_ok(),
            (Dest::Unix(s), LogAddr::Unix(path)) => s.send_to(msg, path).is_ok(),
            (Dest::Stdout, _) => write_fd(1, msg),
            (Dest::Stderr, _) => write_fd(2, msg),
            _ => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One `write` of a whole message to a standard stream: no lock, and lines from
/// several executors do not interleave (pipes keep writes of a few KiB whole).
fn write_fd(fd: RawFd, msg: &[u8]) -> bool {
    // SAFETY: the pointer and length come from a live slice; fds 1 and 2 stay open for
    // the life of the process.
    let n = unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
    usize::try_from(n).is_ok_and(|n| n == msg.len())
}

/// What every syslog header of the process carries.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The tag (`log-tag`, or the program name).
    pub tag: String,
    /// `log-send-hostname`: the host name rfc3164 headers carry.
    pub send_hostname: Option<String>,
    /// The host name rfc5424 headers and `%H` carry.
    pub hostname: String,
    /// The process id.
    pub pid: u32,
}

/// A proxy's log targets and tag.
#[derive(Debug, Clone)]
pub struct Loggers {
    sinks: Vec<Arc<Sink>>,
    identity: Arc<Identity>,
}

impl Loggers {
    /// Loggers writing to `sinks` with headers from `identity`.
    pub fn new(sinks: Vec<Arc<Sink>>, identity: Arc<Identity>) -> Self {
        Self { sinks, identity }
    }

    /// Whether there is nowhere to send.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Sends `msg` at `level` to every target whose level lets it through. `scratch`
    /// is the buffer the datagram is built in.
    pub fn send(&self, level: u8, msg: &[u8], scratch: &mut Vec<u8>) {
        let id = &self.identity;
        if self.sinks.is_empty() {
            return;
        }
        let clock = Clock::local(SystemTime::now());
        for sink in &self.sinks {
            let t = &sink.target;
            if level > t.level {
                continue;
            }
            let level = level.max(t.minlevel);
            scratch.clear();
            header(t, level, &clock, id, scratch);
            let room = t.max_len.saturating_sub(scratch.len() + 1);
            scratch.extend_from_slice(&msg[..msg.len().min(room)]);
            scratch.push(b'\n');
            sink.send(scratch);
        }
    }
}

/// Writes the header `t`'s format asks for.
fn header(t: &LogTarget, level: u8, c: &Clock, id: &Identity, out: &mut Vec<u8>) {
    let prio = u64::from(t.facility) * 8 + u64::from(level);
    let mut num = itoa::Buffer::new();
    let mut angle = |n: u64, out: &mut Vec<u8>| {
        out.push(b'<');
        out.extend_from_slice(num.format(n).as_bytes());
        out.push(b'>');
    };
    match t.format {
        SyslogFormat::Rfc3164 | SyslogFormat::Local => {
            angle(prio, out);
            c.write_legacy(out);
            out.push(b' ');
            if let (SyslogFormat::Rfc3164, Some(host)) = (t.format, &id.send_hostname) {
                out.extend_from_slice(host.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(id.tag.as_bytes());
            out.push(b'[');
            out.extend_from_slice(itoa::Buffer::new().format(id.pid).as_bytes());
            out.extend_from_slice(b"]: ");
        }
        SyslogFormat::Rfc5424 => {
            angle(prio, out);
            out.extend_from_slice(b"1 ");
            c.write_iso(out);
            let _ = write!(out, " {} {} {} - - ", id.hostname, id.tag, id.pid);
        }
        SyslogFormat::Priority => angle(prio, out),
        SyslogFormat::Short => angle(u64::from(level), out),
        SyslogFormat::Timed => {
            angle(u64::from(level), out);
            c.write_iso(out);
            out.push(b' ');
        }
        SyslogFormat::Iso => {
            c.write_iso(out);
            out.push(b' ');
        }
        SyslogFormat::Raw => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use percore_config::log::LogAddr;

    fn target(format: SyslogFormat) -> LogTarget {
        LogTarget {
            addr: LogAddr::Stdout,
            max_len: 1024,
            format,
            facility: 16,
            level: 7,
            minlevel: 0,
        }
    }

    fn id(host: Option<&str>) -> Identity {
        Identity {
            tag: "percore".into(),
            send_hostname: host.map(String::from),
            hostname: "box".into(),
            pid: 42,
        }
    }

    fn head(format: SyslogFormat, host: Option<&str>) -> String {
        let clock = Clock {
            year: 2026,
            month: 10,
            day: 1,
            hour: 9,
            minute: 5,
            second: 7,
            millis: 12,
            offset_s: 3600,
        };
        let mut out = Vec::new();
        header(&target(format), 6, &clock, &id(host), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn headers_as_haproxy_writes_them() {
        assert_eq!(
            head(SyslogFormat::Rfc3164, None),
            "<134>Nov  1 09:05:07 percore[42]: "
        );
        assert_eq!(
            head(SyslogFormat::Rfc3164, Some("lb1")),
            "<134>Nov  1 09:05:07 lb1 percore[42]: "
        );
        assert_eq!(
            head(SyslogFormat::Local, Some("lb1")),
            "<134>Nov  1 09:05:07 percore[42]: "
        );
        assert_eq!(
            head(SyslogFormat::Rfc5424, None),
            "<134>1 2026-11-01T09:05:07.012000+01:00 box percore 42 - - "
        );
        assert_eq!(head(SyslogFormat::Priority, None), "<134>");
        assert_eq!(head(SyslogFormat::Short, None), "<6>");
        assert_eq!(
            head(SyslogFormat::Timed, None),
            "<6>2026-11-01T09:05:07.012000+01:00 "
        );
        assert_eq!(head(SyslogFormat::Raw, None), "");
    }
}
