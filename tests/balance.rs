//! Server selection: the same key picks the same server in percore as in HAProxy (both
//! read the very same configuration file and serve the same requests), for map-based
//! `balance uri` with its options and hash functions, and for `static-rr`.

mod common;

use common::*;

/// A frontend and one backend whose `server` lines carry the given options.
fn config(port: u16, balance: &str, origins: &[(&str, &Origin, &str)]) -> String {
    let mut s = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n{balance}"
    );
    for (name, o, options) in origins {
        s.push_str(&format!("  server {name} {} {options}\n", o.addr));
    }
    s
}

/// What one request is: a path, a Host, and the local address to connect from.
#[derive(Clone)]
struct Req {
    path: String,
    host: String,
    from: std::net::Ipv4Addr,
}

/// The origin each request lands on, in order.
fn choices(port: u16, reqs: &[Req]) -> Vec<String> {
    reqs.iter()
        .map(|r| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket
                .bind(&std::net::SocketAddr::from((r.from, 0)).into())
                .unwrap();
            socket
                .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
                .unwrap();
            let mut s: std::net::TcpStream = socket.into();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            use std::io::Write;
            // One write: several small ones would wait on Nagle and delayed ACKs.
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                r.path, r.host
            );
            s.write_all(request.as_bytes()).unwrap();
            read_response(&mut s, false)
                .header("x-origin")
                .unwrap_or_default()
        })
        .collect()
}

fn reqs(paths: &[String]) -> Vec<Req> {
    paths
        .iter()
        .map(|p| Req {
            path: p.clone(),
            host: "test".into(),
            from: [127, 0, 0, 1].into(),
        })
        .collect()
}

fn agree(balance: &str, paths: &[String]) {
    agree_on(balance, &reqs(paths));
}

fn agree_on(balance: &str, paths: &[Req]) {
    agree_with_servers(
        balance,
        ["weight 1", "weight 2", "weight 3", "weight 2"],
        paths,
    );
}

/// Sends the same requests through haproxy and percore, both reading the same config
/// with four servers carrying `options`, and compares the servers they land on.
fn agree_with_servers(balance: &str, options: [&str; 4], paths: &[Req]) {
    require_haproxy();
    let origins = [origin("s0"), origin("s1"), origin("s2"), origin("s3")];
    let named: Vec<(&str, &Origin, &str)> = vec![
        ("s0", &origins[0], options[0]),
        ("s1", &origins[1], options[1]),
        ("s2", &origins[2], options[2]),
        ("s3", &origins[3], options[3]),
    ];
    let ha_port = free_port();
    let ha = Haproxy::start(&config(ha_port, balance, &named), ha_port);
    let expected = choices(ha_port, paths);
    drop(ha);
    let port = free_port();
    let _p = Percore::start(&config(port, balance, &named), port);
    let got = choices(port, paths);
    let used: std::collections::BTreeSet<&String> = expected.iter().collect();
    assert!(
        used.len() > 1,
        "the keys should spread over several servers: {expected:?}"
    );
    assert_eq!(
        got, expected,
        "percore and haproxy disagree for:\n{balance}"
    );
}

fn paths(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("/static/{}/img{}.png?v={}", i % 7, i * 7919 % 1000, i))
        .collect()
}

#[test]
fn uri_map_based_sdbm_agrees_with_haproxy() {
    agree("  balance uri\n", &paths(200));
}

#[test]
fn uri_whole_djb2_agrees_with_haproxy() {
    agree(
        "  balance uri whole\n  hash-type map-based djb2\n",
        &paths(200),
    );
}

/// Seven map slots (not a power of two, where a missing final multiplication in the
/// avalanche step would go unnoticed).
#[test]
fn uri_depth_len_avalanche_agrees_with_haproxy() {
    agree_with_servers(
        "  balance uri depth 2 len 40\n  hash-type map-based sdbm avalanche\n",
        ["weight 1", "weight 2", "weight 3", "weight 1"],
        &reqs(&paths(200)),
    );
}

#[test]
fn uri_consistent_agrees_with_haproxy() {
    agree("  balance uri\n  hash-type consistent\n", &paths(300));
}

#[test]
fn consistent_wt6_crc32_and_avalanche_agree_with_haproxy() {
    agree(
        "  balance uri whole\n  hash-type consistent wt6\n",
        &paths(200),
    );
    agree(
        "  balance uri\n  hash-type consistent crc32 avalanche\n",
        &paths(200),
    );
    agree("  balance uri\n  hash-type map-based wt6\n", &paths(200));
}

/// Explicit ids place servers on the ring (the others take the lowest free ids, as in
/// HAProxy), and a disabled server's keys go to its neighbours on the ring only.
#[test]
fn consistent_with_ids_and_a_disabled_server_agrees_with_haproxy() {
    agree_with_servers(
        "  balance uri\n  hash-type consistent\n",
        [
            "weight 1 id 3",
            "weight 2",
            "weight 3 disabled",
            "weight 2 id 1",
        ],
        &reqs(&paths(300)),
    );
}

#[test]
fn source_consistent_agrees_with_haproxy() {
    let reqs: Vec<Req> = (0..120)
        .map(|i| Req {
            path: "/".into(),
            host: "test".into(),
            from: [127, 0, (i % 5) as u8, (i * 41 % 250 + 1) as u8].into(),
        })
        .collect();
    agree_on("  balance source\n  hash-type consistent\n", &reqs);
}

#[test]
fn static_rr_agrees_with_haproxy() {
    let same: Vec<String> = (0..40).map(|i| format!("/n{i}")).collect();
    agree("  balance static-rr\n", &same);
}

#[test]
fn url_param_agrees_with_haproxy() {
    let paths: Vec<String> = (0..200)
        .map(|i| format!("/images.php?size=big&id={}&x=1", i * 31 % 997))
        .collect();
    agree("  balance url_param id\n", &paths);
}

#[test]
fn hdr_host_agrees_with_haproxy() {
    let reqs: Vec<Req> = (0..150)
        .map(|i| Req {
            path: "/".into(),
            host: format!("site{}.example", i * 13 % 101),
            from: [127, 0, 0, 1].into(),
        })
        .collect();
    agree_on("  balance hdr(host)\n", &reqs);
}

#[test]
fn source_agrees_with_haproxy() {
    let reqs: Vec<Req> = (0..120)
        .map(|i| Req {
            path: "/".into(),
            host: "test".into(),
            from: [127, 0, (i % 7) as u8, (i * 37 % 250 + 1) as u8].into(),
        })
        .collect();
    agree_on("  balance source\n", &reqs);
    agree_on(
        "  balance source\n  hash-type map-based sdbm avalanche\n",
        &reqs,
    );
}

#[test]
fn missing_url_param_falls_back_to_round_robin() {
    let origins = [origin("a"), origin("b")];
    let port = free_port();
    let named: Vec<(&str, &Origin, &str)> = vec![("a", &origins[0], ""), ("b", &origins[1], "")];
    let _p = Percore::start(&config(port, "  balance url_param id\n", &named), port);
    let seen: std::collections::BTreeSet<String> = (0..6)
        .map(|_| get(port, "/no-param").header("x-origin").unwrap())
        .collect();
    assert_eq!(seen.len(), 2, "round-robin over both servers");
}

/// Seed 04: plain TCP, every connection from one source address lands on the same server.
#[test]
fn seed_04_source_affinity_in_tcp_mode() {
    let (a, b) = (origin("exim1"), origin("exim2"));
    let port = free_port();
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/seed-configs/04-smtp-source.cfg"
    ))
    .unwrap();
    let config = seed
        .replace("defaults\n", "global\n  nbthread 1\n\ndefaults\n")
        .replace("*:10025", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:19025", &a.addr.to_string())
        .replace("127.0.0.1:19026", &b.addr.to_string());
    let _p = Percore::start(&config, port);
    let mut by_source = std::collections::BTreeMap::new();
    for i in 0..40u8 {
        let from: std::net::Ipv4Addr = [127, 0, 1, i % 8 + 1].into();
        let got = choices(
            port,
            &[Req {
                path: "/".into(),
                host: "mail".into(),
                from,
            }],
        )
        .remove(0);
        let first = by_source.entry(from).or_insert_with(|| got.clone());
        assert_eq!(*first, got, "{from} moved between servers");
    }
    let servers: std::collections::BTreeSet<&String> = by_source.values().collect();
    assert_eq!(
        servers.len(),
        2,
        "sources spread over both servers: {by_source:?}"
    );
}

fn two_servers(balance: &str, extra: &str) -> (Percore, u16, Origin, Origin) {
    let (a, b) = (origin("a"), origin("b"));
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 2\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n{balance}  server a {} {extra}\n  server b {} {extra}\n",
        a.addr, b.addr
    );
    let p = Percore::start(&cfg, port);
    (p, port, a, b)
}

#[test]
fn leastconn_avoids_the_busy_server_across_executors() {
    let (_p, port, _a, _b) = two_servers("  balance leastconn\n", "");
    // Two slow requests occupy both servers once each, then a third slow one makes one
    // server busier; quick requests must all go to the other one.
    let slow = |d: u64| {
        std::thread::spawn(move || {
            get(port, &format!("/?delay={d}"))
                .header("x-origin")
                .unwrap()
        })
    };
    let first = slow(1500);
    std::thread::sleep(std::time::Duration::from_millis(150));
    let quick: Vec<String> = (0..6)
        .map(|_| get(port, "/").header("x-origin").unwrap())
        .collect();
    let busy = first.join().unwrap();
    assert!(
        quick.iter().all(|q| *q != busy),
        "{busy} was busy, quick requests went to {quick:?}"
    );
}

#[test]
fn first_fills_servers_in_order() {
    let (_p, port, _a, _b) = two_servers("  balance first\n", "maxconn 1");
    let names: Vec<String> = (0..5)
        .map(|_| get(port, "/").header("x-origin").unwrap())
        .collect();
    assert!(names.iter().all(|n| n == "a"), "{names:?}");
    let slow = std::thread::spawn(move || get(port, "/?delay=1000").header("x-origin").unwrap());
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(get(port, "/").header("x-origin").as_deref(), Some("b"));
    assert_eq!(slow.join().unwrap(), "a");
}

#[test]
fn random_follows_weights() {
    let (a, b) = (origin("a"), origin("b"));
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n  balance random(2)\n  server a {} weight 1\n  server b {} weight 3\n",
        a.addr, b.addr
    );
    let _p = Percore::start(&cfg, port);
    let mut s = connect(port);
    let mut b_count = 0;
    for _ in 0..2000 {
        use std::io::Write;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        if read_response(&mut s, false).header("x-origin").as_deref() == Some("b") {
            b_count += 1;
        }
    }
    // Sequential requests: every draw sees idle servers, so the weights decide: 75%.
    assert!(
        (1400..1600).contains(&b_count),
        "{b_count} of 2000 to the weight-3 server"
    );
}

/// `hash-balance-factor`: a key whose server already carries more than its share of the
/// backend's requests in flight goes on to the next server on the ring. Six concurrent
/// requests with one key: all on one server without the factor, on both with it.
#[test]
fn hash_balance_factor_bounds_a_busy_server() {
    for (factor, servers) in [("  hash-balance-factor 150\n", 2), ("", 1)] {
        let balance = format!("  balance url_param k\n  hash-type consistent\n{factor}");
        let (_p, port, _a, _b) = two_servers(&balance, "");
        let slow: Vec<_> = (0..6)
            .map(|_| {
                let t = std::thread::spawn(move || {
                    get(port, "/?k=same&delay=1000").header("x-origin").unwrap()
                });
                std::thread::sleep(std::time::Duration::from_millis(50));
                t
            })
            .collect();
        let used: std::collections::BTreeSet<String> =
            slow.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(used.len(), servers, "{factor:?}: {used:?}");
    }
}

/// Where `n` keep-alive requests land, counted per origin name.
fn spread(
    port: u16,
    n: usize,
    path: &dyn Fn(usize) -> String,
) -> std::collections::BTreeMap<String, usize> {
    use std::io::Write;
    let mut s = connect(port);
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..n {
        let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path(i));
        s.write_all(req.as_bytes()).unwrap();
        let origin = read_response(&mut s, false).header("x-origin").unwrap();
        *counts.entry(origin).or_insert(0) += 1;
    }
    counts
}

/// Over 10 000 requests, each weighted algorithm gives every server its weight's share
/// within 2 points (weights 1, 2, 3, 4).
#[test]
fn weighted_algorithms_follow_weights_over_10k_requests() {
    let origins = [origin("w1"), origin("w2"), origin("w3"), origin("w4")];
    for balance in ["roundrobin", "static-rr", "random", "random(2)"] {
        let port = free_port();
        let named: Vec<(&str, &Origin, &str)> = vec![
            ("w1", &origins[0], "weight 1"),
            ("w2", &origins[1], "weight 2"),
            ("w3", &origins[2], "weight 3"),
            ("w4", &origins[3], "weight 4"),
        ];
        let _p = Percore::start(
            &config(port, &format!("  balance {balance}\n"), &named),
            port,
        );
        let counts = spread(port, 10_000, &|_| "/".to_string());
        for (i, name) in ["w1", "w2", "w3", "w4"].iter().enumerate() {
            let share = counts.get(*name).copied().unwrap_or(0) as f64 / 10_000.0;
            let expected = (i + 1) as f64 / 10.0;
            assert!(
                (share - expected).abs() <= 0.02,
                "{balance}: {name} got {share:.4}, weight share {expected}: {counts:?}"
            );
        }
    }
}
