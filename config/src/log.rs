//! Log targets: the `log` lines of `global` and of proxies (`log global`, `no log`,
//! `log ADDR [len N] [format F] FACILITY [LEVEL [MINLEVEL]]`), and which format a
//! proxy's traffic logs take (`option httplog`, `option tcplog`, `log-format`).

use crate::proxy::split_host_port;
use crate::rules::logformat::LogFormat;
use crate::rules::FileReader;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Where a `log` line sends its messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogAddr {
    /// A syslog server over UDP (port 514 when none is given).
    Udp(SocketAddr),
    /// A local syslog socket (`/dev/log`): UNIX datagrams.
    Unix(PathBuf),
    /// The process's standard output (`stdout`, `fd@1`).
    Stdout,
    /// The process's standard error (`stderr`, `fd@2`).
    Stderr,
}

/// The header a message gets, as `log ... format F` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyslogFormat {
    /// `<PRI>Mmm dd hh:mm:ss [host ]tag[pid]: ` (the default).
    Rfc3164,
    /// `<PRI>1 ISO-TIME host tag pid - - `.
    Rfc5424,
    /// Like rfc3164 without the host name.
    Local,
    /// `<PRI>` with the facility.
    Priority,
    /// `<LEVEL>` only.
    Short,
    /// `<LEVEL>ISO-TIME `.
    Timed,
    /// `ISO-TIME `.
    Iso,
    /// Nothing: the message alone.
    Raw,
}

/// One `log` target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogTarget {
    /// Where messages go.
    pub addr: LogAddr,
    /// `len N`: messages are cut to this many bytes, header included (default 1024).
    pub max_len: usize,
    /// `format F`.
    pub format: SyslogFormat,
    /// The syslog facility number (`local0` is 16).
    pub facility: u8,
    /// Messages less severe than this level are not sent (0 emerg … 7 debug).
    pub level: u8,
    /// Messages more severe than this level are sent at this level (`minlevel`).
    pub minlevel: u8,
}

/// A proxy's `log` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// `log global`: the `global` section's targets.
    Global,
    /// A target of its own.
    Target(LogTarget),
}

/// The format of a proxy's traffic logs.
#[derive(Debug, Clone)]
pub enum TrafficFormat {
    /// `option httplog`.
    Http,
    /// `option tcplog`.
    Tcp,
    /// `log-format STRING`.
    Custom(LogFormat),
}

/// HAProxy's `option httplog` format.
pub const HTTP_LOG_FORMAT: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";

/// HAProxy's `option tcplog` format.
pub const TCP_LOG_FORMAT: &str =
    "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq";

impl TrafficFormat {
    /// The format as a parsed string; `tcp_mode` turns `option httplog` into
    /// `option tcplog`, as HAProxy does for TCP frontends.
    pub fn compile(&self, tcp_mode: bool) -> LogFormat {
        let text = match self {
            TrafficFormat::Custom(lf) => return lf.clone(),
            TrafficFormat::Http if !tcp_mode => HTTP_LOG_FORMAT,
            TrafficFormat::Http | TrafficFormat::Tcp => TCP_LOG_FORMAT,
        };
        let no_files: FileReader<'_> = &|name| Err(format!("no file '{name}' here"));
        LogFormat::parse_log(text, no_files).expect("the built-in log formats parse")
    }
}

/// Syslog facility names, in number order.
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Syslog level names, in number order (0 is the most severe).
pub const LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The number of a level name.
pub fn level(name: &str) -> Result<u8, String> {
    LEVELS
        .iter()
        .position(|l| *l == name)
        .map(|i| i as u8)
        .ok_or_else(|| {
            format!(
                "unknown log level '{name}' (expected one of {})",
                LEVELS.join(", ")
            )
        })
}

/// What `set-log-level` makes of the transaction's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `silent`: no line.
    Silent,
    /// The line goes out at this level.
    Level(u8),
}

impl LogLevel {
    /// Parses `silent` or a level name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "silent" => Ok(LogLevel::Silent),
            other => level(other).map(LogLevel::Level),
        }
    }
}

/// Parses the arguments of a `log` line (after the keyword).
pub fn log_line(args: &[String]) -> Result<LogLine, String> {
    match args {
        [] => Err("'log' expects 'global' or a target and a facility".into()),
        [g] if g == "global" => Ok(LogLine::Global),
        [g, ..] if g == "global" => Err("'log global' takes no other argument".into()),
        [addr, rest @ ..] => Ok(LogLine::Target(target(addr, rest)?)),
    }
}

fn target(addr: &str, mut rest: &[String]) -> Result<LogTarget, String> {
    let mut t = LogTarget {
        addr: log_addr(addr)?,
        max_len: 1024,
        format: SyslogFormat::Rfc3164,
        facility: 0,
        level: 7,
        minlevel: 0,
    };
    loop {
        match rest {
            [k, v, tail @ ..] if k == "len" => {
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|&n| (80..=65535).contains(&n))
                    .ok_or_else(|| format!("'len' expects a length from 80 to 65535, got '{v}'"))?;
                t.max_len = n;
                rest = tail;
            }
            [k, v, tail @ ..] if k == "format" => {
                t.format = match v.as_str() {
                    "rfc3164" => SyslogFormat::Rfc3164,
                    "rfc5424" => SyslogFormat::Rfc5424,
                    "local" => SyslogFormat::Local,
                    "priority" => SyslogFormat::Priority,
                    "short" => SyslogFormat::Short,
                    "timed" => SyslogFormat::Timed,
                    "iso" => SyslogFormat::Iso,
                    "raw" => SyslogFormat::Raw,
                    other => return Err(format!("unknown log format '{other}'")),
                };
                rest = tail;
            }
            [k, ..] if k == "sample" => {
                return Err("'log ... sample' is not supported by percore yet (planned: logs, stats and the runtime socket)".into())
            }
            _ => break,
        }
    }
    let (facility, levels) = rest
        .split_first()
        .ok_or("'log' expects a facility after the target")?;
    t.facility = FACILITIES
        .iter()
        .position(|f| f == facility)
        .ok_or_else(|| format!("unknown log facility '{facility}'"))? as u8;
    match levels {
        [] => {}
        [l] => t.level = level(l)?,
        [l, m] => {
            t.level = level(l)?;
            t.minlevel = level(m)?;
        }
        _ => {
            return Err(format!(
                "'log' takes at most a level and a minimum level after the facility, got '{}'",
                levels.join(" ")
            ))
        }
    }
    Ok(t)
}

/// Parses a log target address: `IP[:PORT]`, `udp@…`, `ipv4@…`, `ipv6@…`, `/path`,
/// `unix@/path`, `stdout`, `stderr`, `fd@1`, `fd@2`.
fn log_addr(s: &str) -> Result<LogAddr, String> {
    match s {
        "stdout" | "fd@1" => return Ok(LogAddr::Stdout),
        "stderr" | "fd@2" => return Ok(LogAddr::Stderr),
        _ => {}
    }
    if let Some(path) = s.strip_prefix("unix@") {
        return Ok(LogAddr::Unix(path.into()));
    }
    if s.starts_with('/') {
        return Ok(LogAddr::Unix(s.into()));
    }
    if s.starts_with("ring@") || s.starts_with("tcp@") || s.starts_with("tcp4@") {
        return Err(format!(
            "log target '{s}' is not supported by percore yet (planned: logs, stats and the runtime socket)"
        ));
    }
    let inet = ["udp@", "udp4@", "udp6@"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    if inet.contains('@') && !inet.starts_with("ipv4@") && !inet.starts_with("ipv6@") {
        return Err(format!("unknown log target address family in '{s}'"));
    }
    let (host, port) = split_host_port(inet)?;
    // A bare IPv6 address has colons but no port.
    let (host, port) = match (host.parse::<IpAddr>(), inet.parse::<IpAddr>()) {
        (Err(_), Ok(ip)) if !inet.starts_with('[') => return Ok(LogAddr::Udp((ip, 514).into())),
        _ => (host, port),
    };
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("log target '{s}' is not an IP address, a path, stdout or stderr"))?;
    let port = match port {
        None => 514,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("invalid port '{p}' in log target '{s}'"))?,
    };
    Ok(LogAddr::Udp((ip, port).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Result<LogLine, String> {
        let words: Vec<String> = s.split_whitespace().map(String::from).collect();
        log_line(&words)
    }

    fn target_of(s: &str) -> LogTarget {
        match line(s).unwrap() {
            LogLine::Target(t) => t,
            LogLine::Global => panic!("not a target"),
        }
    }

    #[test]
    fn targets_and_facilities() {
        let t = target_of("127.0.0.1:10514 local0");
        assert_eq!(t.addr, LogAddr::Udp("127.0.0.1:10514".parse().unwrap()));
        assert_eq!((t.facility, t.level, t.minlevel), (16, 7, 0));
        let t = target_of("10.0.0.1 len 2048 format rfc5424 local3 notice err");
        assert_eq!(t.addr, LogAddr::Udp("10.0.0.1:514".parse().unwrap()));
        assert_eq!((t.max_len, t.format), (2048, SyslogFormat::Rfc5424));
        assert_eq!((t.facility, t.level, t.minlevel), (19, 5, 3));
        assert_eq!(target_of("stdout format raw daemon").addr, LogAddr::Stdout);
        assert_eq!(
            target_of("/dev/log local0").addr,
            LogAddr::Unix("/dev/log".into())
        );
        assert_eq!(
            target_of("::1 user").addr,
            LogAddr::Udp("[::1]:514".parse().unwrap())
        );
        assert_eq!(
            target_of("udp@[::1]:5140 user").addr,
            LogAddr::Udp("[::1]:5140".parse().unwrap())
        );
        assert_eq!(line("global").unwrap(), LogLine::Global);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(line("127.0.0.1").unwrap_err().contains("facility"));
        assert!(line("127.0.0.1 local9").unwrap_err().contains("'local9'"));
        assert!(line("127.0.0.1 local0 loud")
            .unwrap_err()
            .contains("'loud'"));
        assert!(line("host.example local0")
            .unwrap_err()
            .contains("not an IP"));
        assert!(line("ring@buf local0")
            .unwrap_err()
            .contains("not supported"));
        assert!(line("1.2.3.4 len 10 local0").unwrap_err().contains("'len'"));
        assert!(line("global extra").is_err());
    }
}
