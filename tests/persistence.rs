//! Cookie persistence: seeds 02 (insert indirect nocache) and 03 (prefix) behaving as
//! their headers say, with health-checked servers.

mod common;

use common::*;

fn seed(name: &str, port: u16, servers: &[(&str, &Origin)]) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/../shared/seed-configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut text = text
        .replace("defaults\n", "global\n  nbthread 1\n\ndefaults\n")
        .replace("127.0.0.1:10080", &format!("127.0.0.1:{port}"));
    for (placeholder, o) in servers {
        text = text.replace(placeholder, &o.addr.to_string());
    }
    text
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

#[test]
fn seed_02_insert_indirect_nocache() {
    let (t1, t2) = (origin("tomcat1"), origin("tomcat2"));
    let port = free_port();
    let _p = Percore::start(
        &seed(
            "02-cookie-insert.cfg",
            port,
            &[("127.0.0.1:19001", &t1), ("127.0.0.1:19002", &t2)],
        ),
        port,
    );
    // First request: a cookie naming the server, and the response is uncacheable.
    let r = get(port, "/");
    let server = r.header("x-origin").unwrap();
    let set = r
        .header("set-cookie")
        .expect("a first response sets SERVERID");
    assert_eq!(cookie_pair(&set), format!("SERVERID={server}"));
    assert_eq!(r.header("cache-control").as_deref(), Some("private"));
    // Later requests carrying it stick to that server, get no new cookie, and the
    // origin never sees SERVERID (indirect).
    for _ in 0..6 {
        let r = request(port, &format!("GET /?echo=1 HTTP/1.1\r\nHost: x\r\nCookie: a=1; {}; b=2\r\nConnection: close\r\n\r\n", cookie_pair(&set)));
        assert_eq!(r.header("x-origin").as_deref(), Some(server.as_str()));
        assert!(r.header("set-cookie").is_none());
        let seen = r.text();
        assert!(!seen.contains("SERVERID"), "{seen}");
        assert!(seen.contains("Cookie: a=1; b=2\r\n"), "{seen}");
    }
    // A cookie for an unknown server is ignored and replaced.
    let r = request(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: SERVERID=nobody\r\nConnection: close\r\n\r\n",
    );
    assert!(r.header("set-cookie").is_some());
}

#[test]
fn seed_03_prefix() {
    let (t1, t2) = (origin("tomcat1"), origin("tomcat2"));
    let port = free_port();
    let _p = Percore::start(
        &seed(
            "03-cookie-prefix.cfg",
            port,
            &[("127.0.0.1:19001", &t1), ("127.0.0.1:19002", &t2)],
        ),
        port,
    );
    let r = get(port, "/?setcookie=JSESSIONID=foo");
    let server = r.header("x-origin").unwrap();
    let set = r.header("set-cookie").unwrap();
    assert_eq!(cookie_pair(&set), format!("JSESSIONID={server}~foo"));
    for _ in 0..6 {
        let r = request(
            port,
            &format!(
                "GET /?echo=1 HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nConnection: close\r\n\r\n",
                cookie_pair(&set)
            ),
        );
        assert_eq!(r.header("x-origin").as_deref(), Some(server.as_str()));
        assert!(
            r.text().contains("Cookie: JSESSIONID=foo\r\n"),
            "{}",
            r.text()
        );
    }
}

/// A weight-0 server takes only persistent traffic; a server that is down keeps its
/// persistent traffic with `option persist` and loses it without (as in HAProxy).
#[test]
fn weight_zero_and_option_persist() {
    let (a, w, b) = (origin("a"), origin("w"), origin("b"));
    let dead = free_port();
    for (persist, expected) in [("  option persist\n", "b"), ("", "a")] {
        let port = free_port();
        let cfg = format!(
            "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n{persist}  cookie SERVERID insert indirect\n  server a {} cookie a\n  server w {} cookie w weight 0\n  server b {} cookie b check port {dead} inter 100ms fall 1\n",
            a.addr, w.addr, b.addr
        );
        let _p = Percore::start(&cfg, port);
        std::thread::sleep(std::time::Duration::from_millis(400));
        let with = |server: &str| {
            request(
                port,
                &format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: SERVERID={server}\r\nConnection: close\r\n\r\n"),
            )
            .header("x-origin")
            .unwrap_or_default()
        };
        assert_eq!(
            with("w"),
            "w",
            "persistent traffic reaches a weight-0 server"
        );
        for _ in 0..4 {
            assert_eq!(get(port, "/").header("x-origin").as_deref(), Some("a"));
        }
        assert_eq!(with("b"), expected, "{persist:?}");
    }
}
