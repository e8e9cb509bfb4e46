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
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
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

/// percore with stderr captured line by line.
fn start_watched(config: &str, port: u16) -> (Child, mpsc::Receiver<String>) {
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
    (child, rx)
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
    let (mut child, rx) = start_watched(&cfg, port);
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
    let _ = child.kill();
    let _ = child.wait();
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
    let (mut child, rx) = start_watched(&cfg, port);
    wait_line(
        &rx,
        "Server be2/bad is DOWN, reason: Layer7 wrong status, info: \"HTTP/1.1 503",
        Duration::from_secs(3),
    );
    assert_eq!(get(port2, "/").status, 503, "no server left in be2");
    assert_eq!(get(port, "/").status, 200, "be's server passes its check");
    let _ = child.kill();
    let _ = child.wait();
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
    let (mut child, rx) = start_watched(&cfg, port);
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
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn monitor_uri_answers_without_a_server() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n  retries 0\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  monitor-uri /haproxycheck\n  default_backend be\n\nbackend be\n  server s {dead}\n"
    );
    let _p = Percore::start(&cfg, port);
    assert_eq!(get(port, "/haproxycheck").status, 200);
    assert_eq!(get(port, "/other").status, 503);
}
