//! Health checks. Each checked server's checks run on one executor (servers are shared
//! out among executors); a state change flips the server's `up` flag and bumps its
//! backend's epoch, which every executor's balancer sees on its next pick. Changes are
//! reported on stderr in HAProxy's words, so existing log watchers keep matching.

use crate::io::Watchdog;
use crate::plan::{Backend, Plan, ServerPlan};
use compio::buf::{BufResult, IntoInner, IoBufMut};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use percore_config::HttpCheck;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a check failed, worded as HAProxy words it.
struct Failure {
    reason: &'static str,
    info: String,
}

/// Runs the checks of server `s_id` of backend `be_id` forever.
pub async fn run(plan: Arc<Plan>, be_id: usize, s_id: usize) {
    let be = &plan.backends[be_id];
    let sp = &be.servers[s_id];
    let c = &sp.check;
    let target = SocketAddr::new(sp.addr.ip(), c.port.unwrap_or(sp.addr.port()));
    let limit = be
        .settings
        .timeouts
        .check
        .or(be.settings.timeouts.connect)
        .unwrap_or(c.inter)
        .min(c.inter);
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        let up = sp.up.load(Ordering::Acquire);
        let steady = if up { failures == 0 } else { successes == 0 };
        let pause = match (steady, up) {
            (true, true) => c.inter,
            (true, false) => c.downinter.unwrap_or(c.inter),
            (false, _) => c.fastinter.unwrap_or(c.inter),
        };
        compio::time::sleep(pause).await;
        let started = Instant::now();
        let result = check_once(target, be.httpchk.as_ref(), limit).await;
        let took = started.elapsed().as_millis();
        match result {
            Ok(()) => {
                successes += 1;
                failures = 0;
                if !up && successes >= c.rise {
                    set_state(be, sp, true);
                    let reason = if be.httpchk.is_some() {
                        "Layer7 check passed"
                    } else {
                        "Layer4 check passed"
                    };
                    eprintln!(
                        "[WARNING]  ({}) : Server {}/{} is UP, reason: {reason}, check duration: {took}ms. {} active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
                        std::process::id(), be.name, sp.name, be.usable_servers()
                    );
                }
            }
            Err(f) => {
                failures += 1;
                successes = 0;
                if up && failures >= c.fall {
                    set_state(be, sp, false);
                    eprintln!(
                        "[WARNING]  ({}) : Server {}/{} is DOWN, reason: {}, info: \"{}\", check duration: {took}ms. {} active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
                        std::process::id(), be.name, sp.name, f.reason, f.info, be.usable_servers()
                    );
                    if be.usable_servers() == 0 {
                        eprintln!(
                            "[ALERT]    ({}) : backend '{}' has no server available!",
                            std::process::id(),
                            be.name
                        );
                    }
                }
            }
        }
    }
}

fn set_state(be: &Backend, sp: &ServerPlan, up: bool) {
    sp.up.store(up, Ordering::Release);
    be.epoch.fetch_add(1, Ordering::AcqRel);
}

/// One check: a connection, and with `option httpchk` a request whose status must be
/// 2xx/3xx or one of `http-check expect status`.
async fn check_once(
    target: SocketAddr,
    http: Option<&HttpCheck>,
    limit: Duration,
) -> Result<(), Failure> {
    let mut wd = Watchdog::default();
    wd.until(Some(Instant::now() + limit));
    let l4 = |info: String| Failure {
        reason: "Layer4 connection problem",
        info,
    };
    let stream = match wd.run(TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(l4(e.to_string())),
        Err(_) => {
            return Err(Failure {
                reason: "Layer4 timeout",
                info: String::new(),
            })
        }
    };
    let Some(http) = http else { return Ok(()) };
    let request = format!(
        "{} {} {}\r\nConnection: close\r\n\r\n",
        http.method, http.uri, http.version
    );
    let mut w = &stream;
    let write = wd.run(w.write_all(request.into_bytes())).await;
    if !matches!(write, Ok(BufResult(Ok(_), _))) {
        return Err(l4("cannot send the check request".into()));
    }
    let mut buf = Vec::with_capacity(1024);
    while !buf.contains(&b'\n') && buf.len() < buf.capacity() {
        let mut r = &stream;
        match wd.run(r.read(buf.uninit())).await {
            Ok(BufResult(Ok(n), b)) if n > 0 => buf = b.into_inner(),
            Ok(_) => {
                return Err(Failure {
                    reason: "Layer7 invalid response",
                    info: "connection closed".into(),
                })
            }
            Err(_) => {
                return Err(Failure {
                    reason: "Layer7 timeout",
                    info: String::new(),
                })
            }
        }
    }
    let line =
        String::from_utf8_lossy(&buf[..buf.iter().position(|&c| c == b'\n').unwrap_or(buf.len())])
            .into_owned();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ok = if http.expect_status.is_empty() {
        (200..400).contains(&status)
    } else {
        http.expect_status.contains(&status)
    };
    if ok {
        Ok(())
    } else {
        Err(Failure {
            reason: "Layer7 wrong status",
            info: line.trim_end().to_string(),
        })
    }
}
