//! HTTP mode end to end: the real binary, real sockets, origins from percore-bench.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn seed_01_alternates_between_two_origins() {
    let (a, b) = (origin("apache1"), origin("apache2"));
    let port = free_port();
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/seed-configs/01-basic-roundrobin.cfg"
    ))
    .unwrap();
    let config = seed
        .replace("  daemon\n", "  nbthread 1\n")
        .replace("*:10080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:19001", &a.addr.to_string())
        .replace("127.0.0.1:19002", &b.addr.to_string());
    let _p = Percore::start(&config, port);
    let names: Vec<String> = (0..6)
        .map(|_| get(port, "/").header("x-origin").unwrap())
        .collect();
    assert_eq!(
        names,
        ["apache1", "apache2", "apache1", "apache2", "apache1", "apache2"]
    );
}

#[test]
fn weights_are_honoured() {
    let (a, b) = (origin("a"), origin("b"));
    let port = free_port();
    let mut config = http_config(port, "", "  balance roundrobin", &[]);
    config.push_str(&format!(
        "  server a {} weight 3\n  server b {} weight 1\n",
        a.addr, b.addr
    ));
    let _p = Percore::start(&config, port);
    let mut s = connect(port);
    let mut count_a = 0;
    for _ in 0..40 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        if read_response(&mut s, false).header("x-origin").unwrap() == "a" {
            count_a += 1;
        }
    }
    assert_eq!(count_a, 30);
}

#[test]
fn keep_alive_is_reused_on_both_sides() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let mut s = connect(port);
    for i in 0..50 {
        s.write_all(format!("GET /?n={i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.status, 200);
        assert!(r.header("connection").is_none(), "{}", r.head);
    }
    // Pipelined requests on the same client connection.
    s.write_all(b"GET /?p=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /?p=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    assert_eq!(read_response(&mut s, false).status, 200);
    assert_eq!(
        o.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        52
    );
    let conns = o
        .stats
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(conns <= 2, "52 requests took {conns} server connections");
    // A second client reuses the idle server connection (http-reuse safe, later request).
    let mut s2 = connect(port);
    for _ in 0..2 {
        s2.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s2, false).status, 200);
    }
    assert!(
        o.stats
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 3
    );
}

/// An idle connection is set aside after a short grace period and made whole again by
/// its next request: what the session keeps (its variables) survives, the keep-alive
/// timeout still closes it silently, and a new connection that stays silent still gets
/// its 408.
#[test]
fn idle_connections_keep_their_session_and_time_out() {
    let o = origin("o");
    let port = free_port();
    let backend = "  http-request set-var(sess.n) req.hdr(x-n) if { req.hdr(x-n) -m found }\n  \
                   http-response set-header x-n %[var(sess.n)]\n";
    let config = http_config(
        port,
        "  timeout http-request 400ms\n  timeout http-keep-alive 700ms\n",
        backend,
        &[o.addr],
    );
    let _p = Percore::start(&config, port);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nx-n: 7\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.header("x-n").as_deref(), Some("7"), "{}", r.head);
    for _ in 0..2 {
        // Past the grace period (the buffers are given back), within the keep-alive.
        std::thread::sleep(Duration::from_millis(350));
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-n").as_deref(), Some("7"), "{}", r.head);
    }
    let idle = Instant::now();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "an idle connection is closed silently");
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    let mut silent = connect(port);
    let start = Instant::now();
    assert_eq!(read_response(&mut silent, false).status, 408);
    assert!(start.elapsed() >= Duration::from_millis(350));
}

/// A server connection percore does not keep after a complete response is closed with
/// a reset, as HAProxy closes it: no TIME_WAIT socket is left on percore's side.
#[test]
fn unkept_server_connections_are_reset() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let port = free_port();
    let config = http_config(port, "  option http-server-close\n", "", &[addr]);
    let _p = Percore::start(&config, port);
    let serving = std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(c.read(&mut byte).unwrap(), 1);
            head.push(byte[0]);
        }
        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        let mut rest = [0u8; 16];
        c.read(&mut rest)
    });
    assert_eq!(get(port, "/").status, 200);
    let after = serving.join().unwrap();
    assert!(
        matches!(&after, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the server saw {after:?} instead of a reset"
    );
}

#[test]
fn server_close_and_httpclose_modes() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(
        &http_config(port, "  option http-server-close\n", "", &[o.addr]),
        port,
    );
    let mut s = connect(port);
    for _ in 0..5 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).status, 200);
    }
    assert_eq!(
        o.stats
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );

    let port2 = free_port();
    let _p2 = Percore::start(
        &http_config(port2, "  option httpclose\n", "", &[o.addr]),
        port2,
    );
    let mut s = connect(port2);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "the client connection is closed"
    );
}

#[test]
fn http10_clients() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert!(r.head.starts_with("HTTP/1.0 200"), "{}", r.head);
    assert_eq!(r.header("connection").as_deref(), Some("keep-alive"));
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
}

#[test]
fn chunked_bodies_both_ways() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let mut s = connect(port);
    s.write_all(
        b"POST /?chunked=1&size=100000 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    for _ in 0..10 {
        s.write_all(b"400\r\n").unwrap();
        s.write_all(&[b'y'; 0x400]).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\nX-Trailer: 1\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    let framed_len = 10 * (b"400\r\n".len() + 0x400 + 2) + b"0\r\nX-Trailer: 1\r\n\r\n".len();
    assert_eq!(
        r.header("x-req-body").as_deref(),
        Some(&*framed_len.to_string())
    );
    assert_eq!(r.body.len(), 100000);
    // The connection is still usable afterwards.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
}

#[test]
fn expect_100_continue() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let mut s = connect(port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let interim = read_response(&mut s, false);
    assert_eq!(interim.status, 100);
    s.write_all(b"hello").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-req-body").as_deref(), Some("5"));
}

#[test]
fn one_gib_each_way_with_flat_memory() {
    let o = origin("o");
    let port = free_port();
    let p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let before = p.rss_kib();
    const GIB: u64 = 1 << 30;
    let mut s = connect(port);
    s.write_all(format!("GET /?size={GIB} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    let mut peak = before;
    while got < GIB {
        let n = s
            .read(&mut buf[..((GIB - got).min(1 << 20)) as usize])
            .unwrap();
        assert!(n > 0);
        got += n as u64;
        if got % (64 << 20) < n as u64 {
            peak = peak.max(p.rss_kib());
        }
    }
    s.write_all(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {GIB}\r\n\r\n").as_bytes())
        .unwrap();
    let chunk = vec![b'z'; 1 << 20];
    for i in 0..1024 {
        s.write_all(&chunk).unwrap();
        if i % 64 == 0 {
            peak = peak.max(p.rss_kib());
        }
    }
    let r = read_response(&mut s, false);
    assert_eq!(r.header("x-req-body").as_deref(), Some(&*GIB.to_string()));
    assert!(
        peak < before + 32 * 1024,
        "RSS grew from {before} KiB to {peak} KiB while streaming"
    );
}

#[test]
fn malformed_requests_get_400_and_limits_414_431() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let bad = [
        "GET / HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
        "NOT HTTP AT ALL\r\n\r\n",
    ];
    for raw in bad {
        assert_eq!(request(port, raw).status, 400, "{raw:?}");
    }
    let mut s = connect(port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status == 400 || r.status == 502, "{}", r.status);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20000));
    assert_eq!(request(port, &long_uri).status, 414);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: b\r\n".repeat(150)
    );
    assert_eq!(request(port, &many).status, 431);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(16000)
    );
    assert_eq!(request(port, &big).status, 431);
    assert_eq!(
        request(
            port,
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
        )
        .status,
        501
    );
    assert_eq!(
        o.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn timeouts_give_408_and_504() {
    let o = origin("o");
    let port = free_port();
    let config = http_config(
        port,
        "  timeout http-request 300ms\n",
        "  timeout server 300ms\n",
        &[o.addr],
    );
    let _p = Percore::start(&config, port);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    let start = Instant::now();
    assert_eq!(read_response(&mut s, false).status, 408);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(get(port, "/?delay=2000").status, 504);
    assert_eq!(get(port, "/?delay=10").status, 200);
}

#[test]
fn server_failures_give_502_and_503() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    assert_eq!(get(port, "/?noresp=1").status, 502);
    assert_eq!(get(port, "/?garbage=1").status, 502);

    let dead = free_addr();
    let port2 = free_port();
    let _p2 = Percore::start(&http_config(port2, "  retries 0\n", "", &[dead]), port2);
    let r = get(port2, "/");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("503"));
}

#[test]
fn failed_connects_are_retried_on_another_server() {
    let live = origin("live");
    let dead = free_addr();
    let port = free_port();
    let config = http_config(
        port,
        "  retries 1\n  option redispatch\n",
        "",
        &[dead, live.addr],
    );
    let _p = Percore::start(&config, port);
    for _ in 0..4 {
        let r = get(port, "/");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-origin").as_deref(), Some("live"));
    }
}

#[test]
fn errorfile_replaces_the_builtin_body() {
    let dead = free_addr();
    let file = temp_path("503.http");
    std::fs::write(&file, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\nConnection: close\r\n\r\ncustom page\n").unwrap();
    let port = free_port();
    let config = http_config(
        port,
        &format!("  retries 0\n  errorfile 503 {}\n", file.display()),
        "",
        &[dead],
    );
    let _p = Percore::start(&config, port);
    assert_eq!(get(port, "/").text(), "custom page\n");
}

/// `errorfiles` imports an `http-errors` section declared after the proxy (all of it,
/// or the codes listed), later lines override earlier ones, `errorloc303` redirects,
/// an empty file closes without an answer, and replies take `errorfile FILE` and
/// `errorfiles NAME`.
#[test]
fn error_pages_from_sections_and_replies() {
    let o = origin("o");
    let dead = free_addr();
    let page = |status: u16, text: &str| {
        let file = temp_path(&format!("{status}.http"));
        let body = format!("{text}\n");
        std::fs::write(
            &file,
            format!(
                "HTTP/1.1 {status} Custom\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .unwrap();
        file.display().to_string()
    };
    let (site403, site503, other503) = (
        page(403, "site 403"),
        page(503, "site 503"),
        page(503, "other 503"),
    );
    let (teapot, empty) = (page(200, "from a file"), temp_path("empty.http"));
    std::fs::write(&empty, "").unwrap();
    let port = free_port();
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  errorfiles site\n  errorloc303 503 http://example.com/down\n  errorfile 404 {}\n  http-after-response set-header X-After yes\n\
  http-request deny if {{ path /deny }}\n  http-request deny deny_status 404 if {{ path /gone }}\n\
  http-request return status 503 errorfiles other if {{ path /other }}\n\
  http-request return status 200 errorfile {teapot} if {{ path /file }}\n\
  use_backend dead if {{ path /dead }}\n  use_backend only403 if {{ path /only403 }}\n  default_backend live\n\
backend live\n  server s {}\n\
backend dead\n  retries 0\n  server s {dead}\n\
backend only403\n  retries 0\n  errorfiles site 403\n  server s {dead}\n\
http-errors site\n  errorfile 403 {site403}\n  errorfile 503 {site503}\n\
http-errors other\n  errorfile 503 {other503}\n",
        empty.display(),
        o.addr
    );
    let _p = Percore::start(&text, port);
    let r = get(port, "/deny");
    assert_eq!((r.status, r.text().as_str()), (403, "site 403\n"));
    // The frontend's errorloc303, written after the import, wins for 503.
    let r = get(port, "/dead");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://example.com/down")
    );
    // http-after-response applies to percore's own pages too, as in HAProxy.
    assert_eq!(r.header("x-after").as_deref(), Some("yes"));
    // The backend imports only 403: its 503 is the frontend's.
    assert_eq!(get(port, "/only403").status, 303);
    let r = get(port, "/other");
    assert_eq!((r.status, r.text().as_str()), (503, "other 503\n"));
    let r = get(port, "/file");
    assert_eq!((r.status, r.text().as_str()), (200, "from a file\n"));
    assert_eq!(get(port, "/").status, 200);
    // An empty page: the connection closes with nothing written.
    let mut s = connect(port);
    s.write_all(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}

#[test]
fn forwardfor_originalto_and_hop_by_hop() {
    let o = origin("o");
    let port = free_port();
    let config = http_config(
        port,
        "  option forwardfor\n  option originalto\n",
        "",
        &[o.addr],
    );
    let _p = Percore::start(&config, port);
    let r = request(port, "GET /?echo=1 HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 1\r\nX-Kept: 2\r\n\r\n");
    let seen = r.text();
    assert!(seen.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{seen}");
    assert!(seen.contains("X-Original-To: 127.0.0.1\r\n"), "{seen}");
    assert!(seen.contains("X-Kept: 2\r\n"));
    assert!(
        !seen.contains("X-Secret") && !seen.contains("Keep-Alive"),
        "{seen}"
    );
}

#[test]
fn websocket_upgrade_becomes_a_tunnel() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(
        &http_config(port, "  timeout tunnel 5s\n", "", &[o.addr]),
        port,
    );
    let mut s = connect(port);
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade").as_deref(), Some("websocket"));
    s.write_all(b"ping through the tunnel").unwrap();
    let mut echo = [0u8; 23];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping through the tunnel");
}

#[test]
fn curl_sees_the_same() {
    if !have("curl") {
        panic!("curl is required (the README's test command installs it)");
    }
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &format!("http://127.0.0.1:{port}/?size=5000000&chunked=1"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 5000000");
}

#[test]
fn sigusr1_finishes_in_flight_requests_then_exits() {
    let o = origin("o");
    let port = free_port();
    let mut p = Percore::start(&http_config(port, "", "", &[o.addr]), port);
    let mut s = connect(port);
    s.write_all(b"GET /?delay=500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    p.signal(libc::SIGUSR1);
    assert_eq!(read_response(&mut s, false).status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "percore did not exit after SIGUSR1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// A soft stop closes the connections that wait for their next request at once, as
/// haproxy 2.6 does: the process exits without waiting for their clients' timeout.
#[test]
fn sigusr1_closes_idle_keep_alive_connections_as_in_haproxy() {
    require_haproxy();
    let o = origin("o");
    for proxy in ["haproxy", "percore"] {
        let port = free_port();
        let config = http_config(port, "", "", &[o.addr]);
        let (mut h, mut p);
        let child: &mut std::process::Child = if proxy == "haproxy" {
            h = Haproxy::start(&config, port);
            &mut h.0
        } else {
            p = Percore::start(&config, port);
            &mut p.child
        };
        let mut s = connect(port);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).status, 200, "{proxy}");
        // Past percore's grace period, so that the connection is idle, not busy.
        std::thread::sleep(Duration::from_millis(300));
        let asked = Instant::now();
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            matches!(s.read(&mut buf), Ok(0)),
            "{proxy} did not close the idle connection"
        );
        assert!(asked.elapsed() < Duration::from_secs(2), "{proxy}");
        let exited = Instant::now() + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < exited,
                "{proxy} did not exit after SIGUSR1"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A server that answers one request per connection with keep-alive, then closes the
/// connection 50 ms later without a word: the stale-pooled-connection case.
fn forgetful_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).unwrap_or(0) > 0 {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
                std::thread::sleep(Duration::from_millis(50));
            });
        }
    });
    addr
}

#[test]
fn a_stale_reused_connection_is_retried_on_a_fresh_one() {
    let server = forgetful_server();
    let port = free_port();
    let _p = Percore::start(
        &http_config(port, "", "  http-reuse always\n", &[server]),
        port,
    );
    for _ in 0..5 {
        let r = get(port, "/");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "ok");
        // Long enough for the server to drop the idle connection percore pooled.
        std::thread::sleep(Duration::from_millis(120));
    }
}

/// A response whose head and broken chunked body arrive in one read: nothing has
/// reached the client yet, so it gets a 502 (as from haproxy), and neither the head nor
/// any body byte passes.
#[test]
fn a_bad_chunk_read_with_the_head_gets_502() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let port = free_port();
    let _p = Percore::start(&http_config(port, "", "", &[addr]), port);
    std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        let mut buf = [0u8; 4096];
        if c.read(&mut buf).unwrap_or(0) > 0 {
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            );
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 502"), "got {text:?}");
    assert!(
        !text.contains("hello") && !text.contains("zz"),
        "got {text:?}"
    );
}
