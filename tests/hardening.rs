//! What hostile clients, broken servers and crowds found (#20), end to end: each test
//! shows one defect fixed, beside haproxy 2.6 on the same config where the right answer
//! is HAProxy's.

mod common;

use common::*;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Waits up to `limit` for `f` to hold, polling; whether it did.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !f() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Idle server connections must neither exhaust the descriptors nor stay open: under
/// the default `http-reuse safe` every client's first request opens a server connection,
/// and 400 one-request clients through `global maxconn 100` used to leave 252 idle ones
/// behind, then get 503 for good. As in haproxy, a core keeps about one, and the purge
/// closes the rest once the load is gone.
#[test]
fn idle_server_connections_neither_pile_up_nor_stay() {
    assert!(
        have("haproxy"),
        "haproxy is required (the README's test command installs it)"
    );
    let config = |port: u16, origin: &Origin| {
        format!(
            "global\n  maxconn 100\n  nbthread 2\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n  server s {} pool-purge-delay 1s\n",
            origin.addr
        )
    };
    let clients = |port: u16| -> Vec<u16> {
        (0..400)
            .map(|_| request(port, "GET / HTTP/1.1\r\nHost: test\r\n\r\n").status)
            .collect()
    };
    let (theirs, ours) = (origin("haproxy-side"), origin("percore-side"));
    let (hport, pport) = (free_port(), free_port());
    let _haproxy = Haproxy::start(&config(hport, &theirs), hport);
    let _percore = Percore::start(&config(pport, &ours), pport);
    for (name, port, origin) in [("haproxy", hport, &theirs), ("percore", pport, &ours)] {
        let statuses = clients(port);
        let refused = statuses.iter().filter(|&&s| s != 200).count();
        assert_eq!(refused, 0, "{name}: {refused} of 400 requests failed");
        // One idle connection per core at most is kept for a load of one client.
        let open = || origin.stats.open.load(Ordering::Relaxed);
        assert!(
            eventually(Duration::from_secs(1), || open() <= 2),
            "{name} keeps {} idle server connections after 400 one-request clients",
            open()
        );
        // Two purges (1 s apart) close what the last one still estimated as needed.
        assert!(
            eventually(Duration::from_secs(5), || open() == 0),
            "{name} still keeps {} idle server connections without load",
            open()
        );
    }
}

/// `pool-max-conn 0` keeps no idle connection; `pool-purge-delay 0` neither.
#[test]
fn pool_limits_of_zero_keep_no_idle_connection() {
    for option in ["pool-max-conn 0", "pool-purge-delay 0"] {
        let o = origin("capped");
        let port = free_port();
        let _percore = Percore::start(
            &http_config(port, "", &format!("  default-server {option}"), &[o.addr]),
            port,
        );
        for _ in 0..5 {
            assert_eq!(
                request(port, "GET / HTTP/1.1\r\nHost: test\r\n\r\n").status,
                200
            );
        }
        let open = || o.stats.open.load(Ordering::Relaxed);
        assert!(
            eventually(Duration::from_secs(1), || open() == 0),
            "with {option}, {} server connections stay open",
            open()
        );
    }
}

/// Sends a POST of `chunks` pieces of `piece` bytes, one every `pace`, and reads the
/// response.
fn paced_upload(
    port: u16,
    target: &str,
    (chunks, piece): (usize, usize),
    pace: Duration,
) -> Response {
    let mut s = connect(port);
    let len = chunks * piece;
    write!(
        s,
        "POST {target} HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    for _ in 0..chunks {
        std::thread::sleep(pace);
        s.write_all(&vec![b'u'; piece]).unwrap();
    }
    read_response(&mut s, false)
}

/// `timeout server` is inactivity on the server side, and writing the request body to
/// the server is activity: a 3 s upload through `timeout server 1s` completes, at 10 kB
/// or at one byte a step, as with haproxy. Once the body is sent, a server that keeps
/// silent past the timeout still gets 504.
#[test]
fn slow_uploads_outlive_timeout_server_as_in_haproxy() {
    assert!(
        have("haproxy"),
        "haproxy is required (the README's test command installs it)"
    );
    let o = origin("slow-upload");
    let config = |port: u16| {
        format!(
            "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 1s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n  server s {}\n",
            o.addr
        )
    };
    let (hport, pport) = (free_port(), free_port());
    let _haproxy = Haproxy::start(&config(hport), hport);
    let _percore = Percore::start(&config(pport), pport);
    let cases = |port: u16| {
        let bulk = paced_upload(port, "/", (30, 10_000), Duration::from_millis(100));
        let trickle = paced_upload(port, "/", (6, 1), Duration::from_millis(500));
        let silent = paced_upload(port, "/?delay=2500", (1, 10), Duration::ZERO);
        [bulk, trickle, silent].map(|r| (r.status, r.header("x-req-body")))
    };
    let theirs = std::thread::spawn(move || cases(hport));
    let ours = cases(pport);
    let theirs = theirs.join().unwrap();
    assert_eq!(
        theirs,
        [
            (200, Some("300000".into())),
            (200, Some("6".into())),
            (504, None)
        ],
        "haproxy"
    );
    assert_eq!(ours, theirs, "percore differs from haproxy");
}
