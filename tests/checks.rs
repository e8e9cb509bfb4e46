//! Health checks end to end: a server that stops answering is taken out within
//! `fall x inter` and comes back after `rise` good checks; HTTP checks with an expected
//! status; state changes reported in HAProxy's words.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A tiny HTTP server that can be switched off (its port then refuses connections)
/// and on again.
struct Switchable {
    addr: SocketAddr,
    on: Arc<AtomicBool>,
}

impl Switchable {
    fn start(name: &'static str) -> Switchable {
        let addr = free_addr();
        let on = Arc::new(AtomicBool::new(true));
        let flag = on.clone();
        std::thread::spawn(move || loop {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let listener = TcpListener::bind(addr).unwrap();
            listener.set_nonblocking(true).unwrap();
            while flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        let body = format!("hello from {name}\n");
                        let _ = write!(s, "HTTP/1.1 200 OK\r\nX-Origin: {name}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Switchable { addr, on }
    }
}

/// A percore child that is killed when dropped, also when a test fails.
struct Watched(Child);

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// percore with stderr captured line by line.
fn start_watched(config: &str, port: u16) -> (Watched, mpsc::Receiver<String>) {
    let path = write_config(config);
    let mut child = Command::new(percore_bin())
        .args(["-d", "-f"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    wait_port(port);
    (Watched(child), rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let left = within
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("no line with {needle:?} within {within:?}"));
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line with {needle:?} within {within:?}"));
        if line.contains(needle) {
            return start.elapsed();
        }
    }
}

#[test]
fn a_silent_server_goes_down_then_comes_back() {
    let a = origin("a");
    let b = Switchable::start("b");
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 2\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n  retries 0\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n  default-server check inter 200ms rise 2 fall 2\n  server a {}\n  server b {}\n",
        a.addr, b.addr
    );
    let (_child, rx) = start_watched(&cfg, port);
    let seen: std::collections::BTreeSet<String> = (0..8)
        .map(|_| get(port, "/").header("x-origin").unwrap())
        .collect();
    assert_eq!(seen.len(), 2, "both servers serve at first: {seen:?}");

    b.on.store(false, Ordering::Relaxed);
    let took = wait_line(
        &rx,
        "Server be/b is DOWN, reason: Layer4 connection problem",
        Duration::from_secs(3),
    );
    assert!(
        took < Duration::from_millis(1500),
        "fall 2 x inter 200ms, took {took:?}"
    );
    for _ in 0..10 {
        assert_eq!(get(port, "/").header("x-origin").as_deref(), Some("a"));
    }

    b.on.store(true, Ordering::Relaxed);
    wait_line(
        &rx,
        "Server be/b is UP, reason: Layer4 check passed",
        Duration::from_secs(3),
    );
    let seen: std::collections::BTreeSet<String> = (0..8)
        .map(|_| get(port, "/").header("x-origin").unwrap())
        .collect();
    assert_eq!(seen.len(), 2, "b is back in rotation: {seen:?}");
}

#[test]
fn http_checks_expect_a_status() {
    let good = origin("good");
    let bad = origin("bad");
    let (port, port2) = (free_port(), free_port());
    let cfg = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  timeout check 500ms\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n  option httpchk GET /?status=200 HTTP/1.0\\r\\nHost:\\ checks.example\n  http-check expect status 200\n  server good {} check inter 150ms fall 2\n\nbackend be2\n  option httpchk GET /?status=503\n  server bad {} check inter 150ms fall 2\n\nfrontend fe2\n  bind 127.0.0.1:{}\n  default_backend be2\n",
        good.addr, bad.addr, port2
    );
    let (_child, rx) = start_watched(&cfg, port);
    wait_line(
        &rx,
        "Server be2/bad is DOWN, reason: Layer7 wrong status, info: \"HTTP/1.1 503",
        Duration::from_secs(3),
    );
    assert_eq!(get(port2, "/").status, 503, "no server left in be2");
    assert_eq!(get(port, "/").status, 200, "be's server passes its check");
}

#[test]
fn backups_take_over_when_actives_are_down() {
    let active = Switchable::start("active");
    let (b1, b2) = (origin("backup1"), origin("backup2"));
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n  retries 0\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n  default-server check inter 150ms rise 1 fall 1\n  server active {}\n  server b1 {} backup\n  server b2 {} backup\n  server off {} disabled\n",
        active.addr, b1.addr, b2.addr, b2.addr
    );
    let (_child, rx) = start_watched(&cfg, port);
    for _ in 0..4 {
        assert_eq!(get(port, "/").header("x-origin").as_deref(), Some("active"));
    }
    active.on.store(false, Ordering::Relaxed);
    wait_line(&rx, "Server be/active is DOWN", Duration::from_secs(3));
    // Without `option allbackups`, only the first backup serves.
    for _ in 0..4 {
        assert_eq!(
            get(port, "/").header("x-origin").as_deref(),
            Some("backup1")
        );
    }
}

#[test]
fn monitor_uri_answers_without_a_server() {
    let dead = free_addr();
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n  retries 0\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  monitor-uri /haproxycheck\n  default_backend be\n\nbackend be\n  server s {dead}\n"
    );
    let _p = Percore::start(&cfg, port);
    assert_eq!(get(port, "/haproxycheck").status, 200);
    assert_eq!(get(port, "/other").status, 503);
}

/// A backend config with the given backend lines, one frontend on `port`.
fn backend_config(port: u16, nbthread: u32, backend: &str) -> String {
    format!(
        "global\n  nbthread {nbthread}\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n  timeout check 500ms\n  retries 0\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n{backend}"
    )
}

fn origins_of(port: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| get(port, "/").header("x-origin").unwrap_or_default())
        .collect()
}

/// Slow start: a server back from DOWN starts at 1/16 of its weight and reaches its
/// full share once `slowstart` has passed.
#[test]
fn slow_start_ramps_a_returning_server() {
    let a = origin("a");
    let b = Switchable::start("b");
    let port = free_port();
    let cfg = backend_config(
        port,
        1,
        &format!(
            "  default-server check inter 100ms rise 1 fall 1 slowstart 3s\n  server a {}\n  server b {}\n",
            a.addr, b.addr
        ),
    );
    let (_child, rx) = start_watched(&cfg, port);
    b.on.store(false, Ordering::Relaxed);
    wait_line(&rx, "Server be/b is DOWN", Duration::from_secs(3));
    b.on.store(true, Ordering::Relaxed);
    wait_line(&rx, "Server be/b is UP", Duration::from_secs(3));
    let early = origins_of(port, 64).iter().filter(|o| *o == "b").count();
    assert!(early <= 12, "b took {early} of 64 right after coming back");
    std::thread::sleep(Duration::from_millis(3300));
    let late = origins_of(port, 64).iter().filter(|o| *o == "b").count();
    assert!((26..=38).contains(&late), "b took {late} of 64 once warm");
}

/// `track`: a server that tracks another goes down and up with it, and is reported
/// "via" the tracked server.
#[test]
fn a_tracking_server_follows_the_tracked_one() {
    let b = Switchable::start("b");
    let (port, port2) = (free_port(), free_port());
    let cfg = format!(
        "{}\nbackend be2\n  server t {} track be/b\n\nfrontend fe2\n  bind 127.0.0.1:{port2}\n  default_backend be2\n",
        backend_config(
            port,
            2,
            &format!("  server b {} check inter 100ms rise 1 fall 1\n", b.addr)
        ),
        b.addr
    );
    let (_child, rx) = start_watched(&cfg, port);
    assert_eq!(get(port2, "/").status, 200);
    b.on.store(false, Ordering::Relaxed);
    wait_line(&rx, "Server be2/t is DOWN via be/b", Duration::from_secs(3));
    assert_eq!(get(port2, "/").status, 503, "the tracker is down too");
    b.on.store(true, Ordering::Relaxed);
    wait_line(&rx, "Server be2/t is UP via be/b", Duration::from_secs(3));
    assert_eq!(get(port2, "/").status, 200);
}

/// Runs percore with one server `o`, checked every 100 ms under the backend lines
/// `checks`: if `passes`, the server still serves after a few checks; otherwise it is
/// reported with a line containing `down`.
fn assert_check(o: &Origin, checks: &str, passes: bool, down: &str) {
    let port = free_port();
    let cfg = backend_config(
        port,
        1,
        &format!(
            "{checks}\n  server s {} check inter 100ms rise 1 fall 1\n",
            o.addr
        ),
    );
    let (_child, rx) = start_watched(&cfg, port);
    if passes {
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(get(port, "/").status, 200, "{checks} should pass");
    } else {
        wait_line(&rx, down, Duration::from_secs(3));
    }
}

/// `http-check expect` on the body, a header, and negated.
#[test]
fn http_check_expectations() {
    let o = origin("good");
    let cases = [
        ("rstring hel+o\\ from", true),
        ("string nothing-like-this", false),
        ("! string hello", false),
        ("hdr name x-origin value good", true),
        ("hdr name -m beg x-or value -m sub xyz", false),
        ("status 200-299", true),
        ("! rstatus ^2", false),
    ];
    for (expect, passes) in cases {
        let checks = format!("  option httpchk GET /\n  http-check expect {expect}");
        assert_check(&o, &checks, passes, "Server be/s is DOWN");
    }
}

/// `option tcp-check`: send and expect steps, a passing and a failing sequence.
#[test]
fn tcp_check_sequences() {
    let o = origin("tcp");
    for (steps, passes) in [
        ("  tcp-check send GET\\ /\\ HTTP/1.0\\r\\n\\r\\n\n  tcp-check expect string X-Origin:\\ tcp\n", true),
        ("  tcp-check send GET\\ /\\ HTTP/1.0\\r\\n\\r\\n\n  tcp-check expect rstring ^HTTP/1\\.1\\ 5\n", false),
        ("  tcp-check connect\n  tcp-check send-binary 474554202f20485454502f312e300d0a0d0a\n  tcp-check expect binary 58", true),
    ] {
        assert_check(
            &o,
            &format!("  option tcp-check\n{steps}"),
            passes,
            "Server be/s is DOWN, reason: Layer7 invalid response, info: \"TCPCHK did not match content at step 2\"",
        );
    }
}

/// An agent that answers every connection with the current reply.
fn agent(reply: Arc<std::sync::Mutex<String>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().map_while(Result::ok) {
            let text = reply.lock().unwrap().clone();
            let _ = s.write_all(text.as_bytes());
        }
    });
    addr
}

/// `agent-check`: the agent takes the server down and up, and sets its weight.
#[test]
fn agent_check_sets_state_and_weight() {
    let (a, b) = (origin("a"), origin("b"));
    let reply = Arc::new(std::sync::Mutex::new("up 100%\n".to_string()));
    let agent_addr = agent(reply.clone());
    let port = free_port();
    let cfg = backend_config(
        port,
        1,
        &format!(
            "  server a {}\n  server b {} agent-check agent-port {} agent-inter 100ms\n",
            a.addr,
            b.addr,
            agent_addr.port()
        ),
    );
    let (_child, rx) = start_watched(&cfg, port);
    *reply.lock().unwrap() = "down #maintenance window\n".into();
    wait_line(
        &rx,
        "Server be/b is DOWN, reason: Agent reports down, info: \"maintenance window\"",
        Duration::from_secs(3),
    );
    assert!(origins_of(port, 10).iter().all(|o| o == "a"));
    *reply.lock().unwrap() = "up 300%\n".into();
    wait_line(&rx, "Server be/b is UP", Duration::from_secs(3));
    let to_b = origins_of(port, 40).iter().filter(|o| *o == "b").count();
    assert_eq!(to_b, 30, "weight 3 against 1");
    *reply.lock().unwrap() = "drain\n".into();
    std::thread::sleep(Duration::from_millis(400));
    assert!(origins_of(port, 10).iter().all(|o| o == "a"), "b drains");
}

/// `observe layer4` with `on-error mark-down`: live connection failures take a server
/// out before its (slow) checks would.
#[test]
fn observed_errors_mark_a_server_down() {
    let a = origin("a");
    let dead = free_addr();
    let port = free_port();
    let cfg = backend_config(
        port,
        2,
        &format!(
            "  option redispatch\n  retries 1\n  server a {}\n  server dead {dead} check inter 30s observe layer4 error-limit 2 on-error mark-down\n",
            a.addr
        ),
    );
    let (_child, rx) = start_watched(&cfg, port);
    for _ in 0..6 {
        get(port, "/");
    }
    wait_line(
        &rx,
        "Server be/dead is DOWN, reason: Health analyze, info: \"Detected 2 consecutive errors, last one was: L4 unsuccessful connection\"",
        Duration::from_secs(3),
    );
    assert!(origins_of(port, 6).iter().all(|o| o == "a"));
}

/// `monitor fail`: the monitor URI reports 503 while its condition holds.
#[test]
fn monitor_fail_follows_its_condition() {
    let b = Switchable::start("b");
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  monitor-uri /haproxycheck\n  monitor fail if {{ nbsrv(be) eq 0 }}\n  default_backend be\n\nbackend be\n  server b {} check inter 100ms rise 1 fall 1\n",
        b.addr
    );
    let (_child, rx) = start_watched(&cfg, port);
    assert_eq!(get(port, "/haproxycheck").status, 200);
    b.on.store(false, Ordering::Relaxed);
    wait_line(&rx, "Server be/b is DOWN", Duration::from_secs(3));
    assert_eq!(get(port, "/haproxycheck").status, 503);
}

/// `minconn` below `fullconn`: with one request in flight out of a `fullconn` of
/// 100, a server of `minconn 1 maxconn 10` takes no second one; without `minconn` it
/// does.
#[test]
fn minconn_limits_a_lightly_loaded_backend() {
    let o = origin("o");
    for (limits, second) in [("minconn 1 maxconn 10", 503), ("maxconn 10", 200)] {
        let port = free_port();
        let cfg = backend_config(
            port,
            1,
            &format!(
                "  fullconn 100\n  timeout queue 300ms\n  server s {} {limits}\n",
                o.addr
            ),
        );
        let _p = Percore::start(&cfg, port);
        let slow = std::thread::spawn(move || get(port, "/?delay=1000").status);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(get(port, "/").status, second, "{limits}");
        assert_eq!(slow.join().unwrap(), 200);
    }
}

/// `option log-health-checks`: each change of check result is reported.
#[test]
fn log_health_checks_reports_results() {
    let b = Switchable::start("b");
    let port = free_port();
    let cfg = backend_config(
        port,
        1,
        &format!(
            "  option log-health-checks\n  server b {} check inter 100ms rise 2 fall 3\n",
            b.addr
        ),
    );
    let (_child, rx) = start_watched(&cfg, port);
    wait_line(
        &rx,
        "Health check for server be/b succeeded, reason: Layer4 check passed",
        Duration::from_secs(3),
    );
    b.on.store(false, Ordering::Relaxed);
    wait_line(
        &rx,
        "Health check for server be/b failed, reason: Layer4 connection problem",
        Duration::from_secs(3),
    );
}
