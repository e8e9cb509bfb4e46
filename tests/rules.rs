//! The rules engine end to end: seeds 07 and 12, the routing half of seed 14, and each
//! family of fetches, converters and actions, through the real binary and origins that
//! echo what they received.

mod common;

use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// The request head an echoing origin received.
fn echoed(port: u16, raw: &str) -> (Response, String) {
    let r = request(port, raw);
    let text = r.text();
    (r, text)
}

fn req(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

#[test]
fn seed_07_static_split_strips_the_prefix() {
    let (a1, a2, t1, t2) = (
        origin("apache1"),
        origin("apache2"),
        origin("tomcat1"),
        origin("tomcat2"),
    );
    let port = free_port();
    let text = seed_text("07-l7-static-split.cfg")
        .replace("*:10080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:19001", &a1.addr.to_string())
        .replace("127.0.0.1:19002", &a2.addr.to_string())
        .replace("127.0.0.1:19011", &t1.addr.to_string())
        .replace("127.0.0.1:19012", &t2.addr.to_string());
    let _p = Percore::start(&text, port);
    let (r, head) = echoed(port, &req("/static/css/site.css?echo=1", "x"));
    assert!(
        r.header("x-origin").unwrap().starts_with("apache"),
        "{}",
        r.head
    );
    assert!(
        head.starts_with("GET /css/site.css?echo=1 HTTP/1.1"),
        "{head}"
    );
    let r = get(port, "/img/42.png");
    assert!(r.header("x-origin").unwrap().starts_with("apache"));
    let r = get(port, "/img/x.png");
    assert!(r.header("x-origin").unwrap().starts_with("tomcat"));
    let r = get(port, "/app");
    assert!(r.header("x-origin").unwrap().starts_with("tomcat"));
    assert!(r
        .header("set-cookie")
        .unwrap()
        .starts_with("SERVERID=tomcat"));
}

#[test]
fn seed_12_proxy_chain_feeds_acls_and_forwarded_for() {
    let app = origin("app");
    let (port, lb1, lb2) = (free_port(), free_port(), free_port());
    let text = seed_text("12-proxy-protocol-chain.cfg")
        .replace("127.0.0.1:10080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:10180", &format!("127.0.0.1:{lb1}"))
        .replace("127.0.0.1:10181", &format!("127.0.0.1:{lb2}"))
        .replace("127.0.0.1:19001", &app.addr.to_string());
    let _p = Percore::start(&text, port);
    wait_port(lb1);
    // Through the DMZ hop (v1 or v2 on the second hop), the client is 127.0.0.1.
    for _ in 0..2 {
        let (r, head) = echoed(port, &req("/?echo=1", "x"));
        assert_eq!(r.status, 200);
        assert!(head.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{head}");
    }
    // A client in the blocked range, as the PROXY header says, is denied.
    let mut s = connect(lb1);
    s.write_all(b"PROXY TCP4 192.0.2.9 127.0.0.1 5000 80\r\n")
        .unwrap();
    s.write_all(req("/", "x").as_bytes()).unwrap();
    assert_eq!(read_response(&mut s, false).status, 403);
    let mut s = connect(lb1);
    s.write_all(b"PROXY TCP4 198.51.100.7 127.0.0.1 5000 80\r\n")
        .unwrap();
    s.write_all(req("/?echo=1", "x").as_bytes()).unwrap();
    let r = read_response(&mut s, false);
    assert!(
        r.text().contains("X-Forwarded-For: 198.51.100.7\r\n"),
        "{}",
        r.text()
    );
}

/// Seed 14's routing, without the TLS and DNS parts (which belong to later issues):
/// allow-list, per-partner routing, prefix strip, Host rewrite, canary, dated switch,
/// and a partner's spent `maxconn` answered at once.
fn egress(port: u16, allowed: &str, switch_at: i64, servers: [&Origin; 4]) -> String {
    format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 5m\n  timeout server 30s\n  timeout queue 1ms\n  retries 3\n\n\
frontend egress\n  bind 127.0.0.1:{port}\n\
  acl app_myback src {allowed}\n\
  acl to_example_high path_beg /myback/prod/example/prod/www/high/\n\
  acl to_example_low path_beg /myback/prod/example/prod/www/low/\n\
  acl after_dc_switch date() ge {switch_at}\n\
  http-request deny deny_status 403 unless app_myback\n\
  use_backend example_dc2_high if to_example_high after_dc_switch\n\
  use_backend example_high if to_example_high\n\
  use_backend example_low if to_example_low\n\n\
backend example_high\n  timeout server 10s\n\
  http-request replace-path /myback/prod/example/prod/www/high(/.*) \\1\n\
  http-request set-path /v2%[path] if {{ rand(100) lt 10 }}\n\
  http-request set-header Host www.example.com\n\
  server www {} maxconn 20\n\n\
backend example_low\n\
  http-request replace-path /myback/prod/example/prod/www/low(/.*) \\1\n\
  http-request set-header Host www.example.com\n\
  server www {} maxconn 1\n\n\
backend example_dc2_high\n\
  http-request replace-path /myback/prod/example/prod/www/high(/.*) \\1\n\
  http-request set-header Host www.example.com\n\
  server www {}\n\n\
backend unused\n  server www {}\n",
        servers[0].addr, servers[1].addr, servers[2].addr, servers[3].addr
    )
}

#[test]
fn seed_14_routing_half() {
    let (high, low, dc2, unused) = (
        origin("high"),
        origin("low"),
        origin("dc2"),
        origin("unused"),
    );
    let port = free_port();
    let future = 4_000_000_000;
    let _p = Percore::start(
        &egress(port, "127.0.0.0/8", future, [&high, &low, &dc2, &unused]),
        port,
    );
    // Routing, prefix strip and Host rewrite.
    let (r, head) = echoed(
        port,
        &req("/myback/prod/example/prod/www/low/api/x?echo=1", "egress"),
    );
    assert_eq!(r.header("x-origin").unwrap(), "low");
    assert!(head.starts_with("GET /api/x?echo=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Host: www.example.com\r\n"), "{head}");
    assert!(!head.contains("egress"), "{head}");
    // No route: no default backend, 503.
    assert_eq!(get(port, "/elsewhere").status, 503);
    // The canary: about 10% of requests get /v2 in front of their path.
    let n = 1000;
    let mut canary = 0;
    for _ in 0..n {
        let (r, head) = echoed(
            port,
            &req("/myback/prod/example/prod/www/high/q?echo=1", "e"),
        );
        assert_eq!(r.header("x-origin").unwrap(), "high");
        if head.starts_with("GET /v2/q?echo=1 ") {
            canary += 1;
        } else {
            assert!(head.starts_with("GET /q?echo=1 "), "{head}");
        }
    }
    assert!(
        (60..=140).contains(&canary),
        "{canary} of {n} went to the canary"
    );
    // A partner's spent maxconn is answered at once (timeout queue 1ms), not queued.
    let slow =
        std::thread::spawn(move || get(port, "/myback/prod/example/prod/www/low/slow?delay=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(get(port, "/myback/prod/example/prod/www/low/x").status, 503);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(slow.join().unwrap().status, 200);
}

#[test]
fn seed_14_dated_switch_and_allow_list() {
    let (high, low, dc2, unused) = (
        origin("high"),
        origin("low"),
        origin("dc2"),
        origin("unused"),
    );
    let port = free_port();
    let past = 1_700_000_000;
    let _p = Percore::start(
        &egress(port, "127.0.0.0/8", past, [&high, &low, &dc2, &unused]),
        port,
    );
    for _ in 0..20 {
        let r = get(port, "/myback/prod/example/prod/www/high/q");
        assert_eq!(r.header("x-origin").unwrap(), "dc2");
    }
    drop(_p);
    let port = free_port();
    let _p = Percore::start(
        &egress(port, "10.0.0.0/8", past, [&high, &low, &dc2, &unused]),
        port,
    );
    let r = get(port, "/myback/prod/example/prod/www/low/x");
    assert_eq!(r.status, 403);
    assert_eq!(
        high.stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
            + low
                .stats
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

fn start_with(frontend: &str, backend: &str, o: &Origin) -> (Percore, u16) {
    start_bound("127.0.0.1", frontend, backend, o)
}

/// Like [`start_with`], the frontend bound to `host` (empty: every address).
fn start_bound(host: &str, frontend: &str, backend: &str, o: &Origin) -> (Percore, u16) {
    let port = free_port();
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\nfrontend fe\n  bind {host}:{port}\n{frontend}\n  default_backend be\n\nbackend be\n{backend}\n  server s0 {}\n",
        o.addr
    );
    (Percore::start(&text, port), port)
}

#[test]
fn header_and_uri_actions() {
    let o = origin("o");
    let (_p, port) = start_with(
        "  http-request set-var(txn.site) req.hdr(host),lower,field(1,:)\n\
  http-request set-header X-Site %[var(txn.site)]\n\
  http-request set-var-fmt(txn.who) \"%[src]-%[method]\"\n\
  http-request set-header X-Who %[var(txn.who)]\n\
  http-request add-header X-Added a\n\
  http-request add-header X-Added b\n\
  http-request del-header X-Secret\n\
  http-request replace-header X-Tok ^bearer\\ (.*)$ token=\\1\n\
  http-request replace-value X-List ^v(.)$ w\\1\n\
  http-request set-query echo=1&q=%[url_param(id)]&m=%[method] if { url_param(id) -m found }\n\
  http-request set-method POST if { path /post-me }",
        "  http-request set-header X-Backend %[be_name]/%[fe_name]\n\
  http-response set-header X-Resp %[status]\n\
  http-response del-header X-Conn\n\
  http-after-response add-header X-After yes",
        &o,
    );
    let (r, head) = echoed(
        port,
        "GET /p?echo=1&id=7 HTTP/1.1\r\nHost: WWW.Site.Com:8080\r\nX-Secret: s\r\nX-Tok: bearer abc\r\nX-List: v1, v2,x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(
        head.starts_with("GET /p?echo=1&q=7&m=GET HTTP/1.1\r\n"),
        "{head}"
    );
    for want in [
        "X-Site: www.site.com\r\n",
        "X-Added: a\r\nX-Added: b\r\n",
        "X-Tok: token=abc\r\n",
        "X-List: w1, w2,x\r\n",
        "X-Backend: be/fe\r\n",
        "X-Who: 127.0.0.1-GET\r\n",
    ] {
        assert!(head.contains(want), "no {want:?} in {head}");
    }
    assert!(!head.contains("X-Secret"), "{head}");
    assert_eq!(r.header("x-resp").as_deref(), Some("200"));
    assert_eq!(r.header("x-after").as_deref(), Some("yes"));
    assert!(r.header("x-conn").is_none(), "{}", r.head);
    let (_, head) = echoed(port, &req("/post-me?echo=1", "x"));
    assert!(head.starts_with("POST /post-me?echo=1 "), "{head}");
}

#[test]
fn deny_return_redirect_and_status() {
    let o = origin("o");
    let (_p, port) = start_with(
        "  acl admin path_beg -i /admin\n\
  acl ok_src src 127.0.0.1 ::1\n\
  http-request deny deny_status 429 if admin ok_src { hdr_cnt(x-flood) gt 0 }\n\
  http-request deny if admin\n\
  http-request reject if { path /reject }\n\
  http-request return status 200 content-type text/plain lf-string \"hello %[req.hdr(user-agent)]\" hdr X-Local yes if { path /hello }\n\
  http-request redirect scheme https code 301 if { hdr(host) -m beg secure. }\n\
  redirect prefix /new drop-query if { path_beg /old }\n\
  http-request redirect location /moved/%[query] if { path /loc }",
        "  http-response deny if { status 500 }\n\
  http-response set-status 202 reason Taken if { res.hdr(x-origin) o }",
        &o,
    );
    // reject: closed with no answer.
    let mut s = connect(port);
    s.write_all(req("/reject", "x").as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert_eq!(
        request(
            port,
            "GET /ADMIN/x HTTP/1.1\r\nHost: x\r\nX-Flood: 1\r\nConnection: close\r\n\r\n"
        )
        .status,
        429
    );
    let r = get(port, "/admin");
    assert_eq!(r.status, 403);
    assert_eq!(
        o.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // `return` keeps the connection: two answers on one connection.
    let mut s = connect(port);
    for _ in 0..2 {
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello t/1");
        assert_eq!(r.header("x-local").as_deref(), Some("yes"));
        assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    }
    let r = request(
        port,
        "GET /a?b HTTP/1.1\r\nHost: secure.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://secure.example/a?b")
    );
    let r = get(port, "/old/page?x=1");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location").as_deref(), Some("/new/old/page"));
    let r = get(port, "/loc?abc");
    assert_eq!(r.header("location").as_deref(), Some("/moved/abc"));
    let r = get(port, "/");
    assert_eq!(r.status, 202);
    assert!(r.head.starts_with("HTTP/1.1 202 Taken\r\n"), "{}", r.head);
    assert_eq!(get(port, "/?status=500").status, 502);
}

#[test]
fn dynamic_use_backend_maps_and_use_server() {
    let (a, b, d, s2) = (
        origin("a"),
        origin("b"),
        origin("default"),
        origin("second"),
    );
    let port = free_port();
    let map = temp_path("hosts.map");
    std::fs::write(&map, "# host to backend\napi.example be_a\nexample be_b\n").unwrap();
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n\
  use_backend %[req.hdr(host),lower,map_dom({})] if {{ req.hdr(host) -m found }} !{{ path /direct }}\n\
  use_backend be_%[req.hdr(x-be)] if {{ path /direct }}\n\
  default_backend be_default\n\n\
backend be_a\n  server a {}\n\
backend be_b\n  use-server second if {{ url_param(s) 2 }}\n  server b {}\n  server second {}\n\
backend be_default\n  server d {}\n",
        map.display(), a.addr, b.addr, s2.addr, d.addr
    );
    let _p = Percore::start(&text, port);
    let origin_of = |raw: String| request(port, &raw).header("x-origin").unwrap();
    assert_eq!(origin_of(req("/", "API.example")), "a");
    assert_eq!(origin_of(req("/", "www.example")), "b");
    assert_eq!(origin_of(req("/?s=2", "www.example")), "second");
    assert_eq!(origin_of(req("/", "other.org")), "default");
    let direct = |be: &str| {
        format!("GET /direct HTTP/1.1\r\nHost: x\r\nX-Be: {be}\r\nConnection: close\r\n\r\n")
    };
    assert_eq!(origin_of(direct("a")), "a");
    assert_eq!(origin_of(direct("nosuch")), "default");
}

#[test]
fn tcp_request_connection_rules_and_tcp_switching() {
    let (a, b) = (origin("a"), origin("b"));
    let (port, port2, tport) = (free_port(), free_port(), free_port());
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend web\n  mode http\n  bind 127.0.0.1:{port}\n  tcp-request connection reject if {{ src 127.0.0.0/8 }} {{ dst_port {port} }}\n  default_backend ha\n\
frontend web2\n  mode http\n  bind 127.0.0.1:{port2}\n  use_backend hb if {{ path /x }}\n  default_backend ha\n\
backend hb\n  mode http\n  tcp-request content reject if TRUE\n  server a {}\n\
frontend raw\n  mode tcp\n  bind 127.0.0.1:{tport}\n  tcp-request connection set-var(sess.low) src_port,and(1)\n  use_backend ta if {{ var(sess.low) -m int 0 }}\n  default_backend tb\n\
backend ha\n  mode http\n  server a {}\n\
backend ta\n  mode tcp\n  server a {}\n\
backend tb\n  mode tcp\n  server b {}\n",
        a.addr, a.addr, a.addr, b.addr
    );
    let _p = Percore::start(&text, tport);
    // A backend's `tcp-request content reject` closes an HTTP request's connection.
    wait_port(port2);
    assert_eq!(get(port2, "/").status, 200);
    let mut s = connect(port2);
    s.write_all(req("/x", "x").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let n = std::io::Read::read_to_end(&mut s, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf));
    // Rejected at accept: the connection closes with no answer.
    let mut s = connect(port);
    s.write_all(req("/", "x").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let n = std::io::Read::read_to_end(&mut s, &mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    // Even source ports go to a, odd ones to b.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let mut s = connect(tport);
        let even = s.local_addr().unwrap().port().is_multiple_of(2);
        s.write_all(req("/", "x").as_bytes()).unwrap();
        let r = read_response(&mut s, false);
        let want = if even { "a" } else { "b" };
        assert_eq!(r.header("x-origin").unwrap(), want);
        seen.insert(want);
    }
    assert!(!seen.is_empty());
}

/// `capture request|response header`, `declare capture` and the `capture` actions:
/// slots in declaration order, values cut to the slot's length, read back with
/// `capture.req.hdr(N)` and `capture.res.hdr(N)`.
#[test]
fn header_captures() {
    let o = origin("origin-name");
    let (_p, port) = start_with(
        "  capture request header Host len 5\n\
  declare capture request len 10\n\
  capture request header User-Agent len 64\n\
  capture response header X-Origin len 6\n\
  declare capture response len 2\n\
  http-request capture path,upper len 3\n\
  http-request set-header X-Cap %[capture.req.hdr(0)]/%[capture.req.hdr(1)]/%[capture.req.hdr(2)]/%[capture.req.hdr(3)]\n\
  http-response capture status id 1\n\
  http-response set-header X-Res-Cap %[capture.res.hdr(0)]/%[capture.res.hdr(1)]",
        "",
        &o,
    );
    let (r, seen) = echoed(
        port,
        "GET /abcdef?echo=1 HTTP/1.1\r\nHost: first.example\r\nUser-Agent: a\r\nUser-Agent: curl/8\r\nConnection: close\r\n\r\n",
    );
    assert!(seen.contains("X-Cap: first//curl/8//AB\r\n"), "{seen}");
    assert_eq!(r.header("x-res-cap").as_deref(), Some("origin/20"));
}

/// `json`, `http_date`, `utime` and `ltime` in header values.
#[test]
fn text_and_date_converters() {
    let o = origin("o");
    let (_p, port) = start_with(
        "  http-request set-header X-Json %[req.hdr(x-in),json(utf8s)]\n\
  http-request set-header X-Date %[int(784111777),http_date]\n\
  http-request set-header X-Expires %[int(784111777000),http_date(3600000,ms)]\n\
  http-request set-header X-Utc %[int(1796551200),utime(%Y-%m-%dT%H:%M:%S)]\n\
  http-request set-header X-Year %[date,ltime(%Y)]",
        "",
        &o,
    );
    let (_, head) = echoed(
        port,
        "GET /?echo=1 HTTP/1.1\r\nHost: x\r\nX-In: say \"hi\" / caf\u{e9}\r\nConnection: close\r\n\r\n",
    );
    for want in [
        "X-Json: say \\\"hi\\\" \\/ caf\\u00e9\r\n",
        "X-Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
        "X-Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\n",
        "X-Utc: 2026-12-06T10:00:00\r\n",
        "X-Year: 20",
    ] {
        assert!(head.contains(want), "no {want:?} in {head}");
    }
}

/// `auth` answers 401 with the realm (the proxy's name by default); `set-dst` changes
/// what `dst` and `X-Original-To` see.
#[test]
fn auth_and_set_dst() {
    let o = origin("o");
    let (_p, port) = start_with(
        "  option originalto\n\
  http-request auth realm Staff\\ only if { path_beg /staff }\n\
  http-request set-dst str(192.0.2.44) if { path_beg /moved }\n\
  http-request set-header X-Dst %[dst]",
        "  http-request auth if { path_beg /admin }",
        &o,
    );
    let r = get(port, "/staff/x");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Basic realm=\"Staff only\"")
    );
    let r = get(port, "/admin");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Basic realm=\"be\"")
    );
    let (_, head) = echoed(port, &req("/moved?echo=1", "x"));
    assert!(head.contains("X-Dst: 192.0.2.44\r\n"), "{head}");
    assert!(head.contains("X-Original-To: 192.0.2.44\r\n"), "{head}");
    let (_, head) = echoed(port, &req("/stay?echo=1", "x"));
    assert!(head.contains("X-Dst: 127.0.0.1\r\n"), "{head}");
}

/// On a wildcard bind, `dst` is the address the client reached (asked of the kernel per
/// connection); on an address bind it is that address.
#[test]
fn dst_on_a_wildcard_bind_is_the_address_reached() {
    use std::io::Write;
    let o = origin("o");
    let (_p, port) = start_bound(
        "",
        "  http-request set-header X-Dst %[dst]:%[dst_port]",
        "",
        &o,
    );
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let mut s = std::net::TcpStream::connect((ip, port)).unwrap();
        s.write_all(req("/?echo=1", "x").as_bytes()).unwrap();
        let head = read_response(&mut s, false).text();
        assert!(head.contains(&format!("X-Dst: {ip}:{port}\r\n")), "{head}");
    }
}

/// `unique-id-format` (HAProxy's own example, in hexadecimal), `unique-id-header`,
/// the `unique-id` fetch and `%rt` numbering requests.
#[test]
fn unique_ids() {
    let o = origin("o");
    let (p, port) = start_with(
        "  unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid\n\
  unique-id-header X-Unique-ID\n\
  http-response set-header X-Id %[unique-id]",
        "",
        &o,
    );
    let (r1, head) = echoed(port, &req("/?echo=1", "x"));
    let id = r1.header("x-id").unwrap();
    assert!(head.contains(&format!("X-Unique-ID: {id}\r\n")), "{head}");
    // 127.0.0.1 is 7F000001; the frontend's port, in hex, follows the client's.
    assert!(id.starts_with("7F000001:"), "{id}");
    assert!(id.contains(&format!("_7F000001:{port:04X}_")), "{id}");
    let pid = id.rsplit(':').next().unwrap();
    assert_eq!(u32::from_str_radix(pid, 16).unwrap(), p.child.id(), "{id}");
    let number = |id: &str| {
        let rt = id.rsplit('_').next().unwrap().split(':').next().unwrap();
        u64::from_str_radix(rt, 16).unwrap()
    };
    let r2 = get(port, "/");
    let id2 = r2.header("x-id").unwrap();
    assert_ne!(id, id2);
    assert_eq!(number(&id2), number(&id) + 1, "{id} then {id2}");
}

/// `option http-buffer-request`: the rules see the body (`req.body`, `req.body_len`,
/// de-chunked) even when it arrives after the head, the body still reaches the
/// server whole, and a client waiting for `100 Continue` gets it from percore.
#[test]
fn buffered_request_bodies() {
    let o = origin("o");
    let (_p, port) = start_with(
        "  option http-buffer-request\n  http-request deny if { req.body -m sub secret }\n  http-request set-header X-Body-Len %[req.body_len]\n  http-request set-header X-Body %[req.body]",
        "",
        &o,
    );
    let post = |head: &str, parts: &[&str]| {
        let mut s = connect(port);
        s.write_all(head.as_bytes()).unwrap();
        for part in parts {
            std::thread::sleep(Duration::from_millis(100));
            s.write_all(part.as_bytes()).unwrap();
        }
        read_response(&mut s, false)
    };
    let r = post(
        "POST /?echo=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: close\r\n\r\n",
        &["hello ", "secret"],
    );
    assert_eq!(r.status, 403);
    let r = post(
        "POST /?echo=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        &["3\r\nabc\r\n", "3\r\ndef\r\n0\r\n\r\n"],
    );
    assert_eq!(r.status, 200);
    let seen = r.text();
    assert!(seen.contains("X-Body-Len: 6\r\n"), "{seen}");
    assert!(seen.contains("X-Body: abcdef\r\n"), "{seen}");
    assert_eq!(r.header("x-req-body").as_deref(), Some("21"));
    // Expect: 100-continue: percore answers it, and the server sees no Expect.
    let mut s = connect(port);
    s.write_all(b"POST /?echo=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    std::io::Read::read_exact(&mut s, &mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"data").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("X-Body: data\r\n"), "{}", r.text());
    assert!(!r.text().to_lowercase().contains("expect:"), "{}", r.text());
    // Without a body, nothing is waited for.
    assert_eq!(get(port, "/").status, 200);
}

/// PROXY protocol v2 TLVs from a real haproxy (`send-proxy-v2 proxy-v2-options
/// unique-id`) reach `fc_pp_unique_id` and `fc_pp_tlv`; `tcp-request connection
/// expect-proxy layer4` reads the header only for the clients its condition selects,
/// and connection rules see the real address, not the header's.
#[test]
fn proxy_protocol_tlvs_and_expect_proxy() {
    let o = origin("o");
    let (port, hport) = (free_port(), free_port());
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  tcp-request connection expect-proxy layer4 if {{ src 127.0.0.1 }}\n\
  http-request set-header X-Id %[fc_pp_unique_id]\n  http-request set-header X-Tlv5 %[fc_pp_tlv(5)]\n  http-request set-header X-Authority %[fc_pp_authority]\n\
  http-request set-header X-Src %[src]\n  default_backend be\n\
backend be\n  server s {}\n",
        o.addr
    );
    let _p = Percore::start(&text, port);
    let _h = Haproxy::start(
        &format!(
            "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend hf\n  bind 127.0.0.1:{hport}\n  unique-id-format id-%[src_port]\n  default_backend hb\n\
backend hb\n  server p 127.0.0.1:{port} send-proxy-v2 proxy-v2-options unique-id\n"
        ),
        hport,
    );
    let mut s = connect(hport);
    let client_port = s.local_addr().unwrap().port();
    s.write_all(req("/?echo=1", "x").as_bytes()).unwrap();
    let r = read_response(&mut s, false);
    let seen = r.text();
    assert_eq!(r.status, 200, "{seen}");
    assert!(
        seen.contains(&format!("X-Id: id-{client_port}\r\n")),
        "{seen}"
    );
    assert!(
        seen.contains(&format!("X-Tlv5: id-{client_port}\r\n")),
        "{seen}"
    );
    // No authority TLV: nothing, as from haproxy (not `-`, which is for logs).
    assert!(seen.contains("X-Authority: \r\n"), "{seen}");
    assert!(seen.contains("X-Src: 127.0.0.1\r\n"), "{seen}");
    // From another address (127.0.0.2), no PROXY header is expected.
    let local = std::net::SocketAddr::from(([127, 0, 0, 2], 0));
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req("/?echo=1", "x").as_bytes()).unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("X-Src: 127.0.0.2\r\n"), "{}", r.text());
}

/// `use-service prometheus-exporter` answers with HAProxy's metric names and labels;
/// `scope=` picks sections; a checked dead server is DOWN.
#[test]
fn prometheus_exporter_service() {
    let o = origin("o");
    let dead = free_port();
    let port = free_port();
    let text = format!(
        "global\n  nbthread 1\n  maxconn 500\n\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  maxconn 100\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n  default_backend be\n\
backend be\n  server live {} check inter 200ms\n  server gone 127.0.0.1:{dead} check inter 200ms fall 1\n",
        o.addr
    );
    let _p = Percore::start(&text, port);
    std::thread::sleep(Duration::from_millis(600));
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4")
    );
    let m = r.text();
    for line in [
        "# TYPE haproxy_process_max_connections gauge\n",
        "haproxy_process_max_connections 500\n",
        "haproxy_frontend_limit_sessions{proxy=\"fe\"} 100\n",
        "haproxy_frontend_current_sessions{proxy=\"fe\"} 1\n",
        "haproxy_backend_active_servers{proxy=\"be\"} 1\n",
        "haproxy_server_status{proxy=\"be\",server=\"live\",state=\"UP\"} 1\n",
        "haproxy_server_status{proxy=\"be\",server=\"gone\",state=\"DOWN\"} 1\n",
        "haproxy_server_status{proxy=\"be\",server=\"gone\",state=\"UP\"} 0\n",
    ] {
        assert!(m.contains(line), "{line} missing in:\n{m}");
    }
    let m = get(port, "/metrics?scope=server").text();
    assert!(m.contains("haproxy_server_current_sessions{"), "{m}");
    assert!(!m.contains("haproxy_frontend_"), "{m}");
    assert!(!m.contains("haproxy_process_"), "{m}");
    // Other paths still go to the backend.
    assert_eq!(get(port, "/").status, 200);
}

/// `tcp-request content` rules in an HTTP frontend run for every request of a
/// keep-alive connection, as in HAProxy: the first request sees the transaction
/// variables they set when the connection came, and each later one sees them set
/// again (and the per-request counter shows the rules ran once per request).
#[test]
fn tcp_content_rules_run_for_each_request() {
    let o = origin("o");
    let (_p, port) = start_with(
        "  tcp-request content set-var(txn.seen) str(yes)\n\
  tcp-request content set-var(sess.runs) var(sess.runs,0),add(1)\n\
  http-after-response set-header X-Seen %[var(txn.seen)]\n\
  http-after-response set-header X-Runs %[var(sess.runs)]",
        "",
        &o,
    );
    let mut s = connect(port);
    for n in 1..=3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-seen").as_deref(), Some("yes"), "request {n}");
        assert_eq!(r.header("x-runs"), Some(n.to_string()), "request {n}");
    }
}

/// The `x-` header lines an echoing origin `o` received for each of `requests`,
/// through haproxy and then through percore, each started on the same configuration:
/// one frontend with `frontend`'s lines in front of `o`.
fn x_headers_through_both(frontend: &str, o: &Origin, requests: &[String]) -> [Vec<String>; 2] {
    require_haproxy();
    ["haproxy", "percore"].map(|name| {
        let port = free_port();
        let text = format!(
            "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n{frontend}  default_backend be\n\nbackend be\n  server s {}\n",
            o.addr
        );
        let (_h, _p);
        if name == "haproxy" {
            _h = Haproxy::start(&text, port);
        } else {
            _p = Percore::start(&text, port);
        }
        requests
            .iter()
            .flat_map(|raw| {
                let (_, head) = echoed(port, raw);
                head.lines()
                    .map(str::to_ascii_lowercase)
                    .filter(|l| l.starts_with("x-"))
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

/// Samples in header values answer as haproxy 2.6's do (#17): a missing or empty
/// sample writes nothing (not `-`, which is for log lines); `field` past the last
/// field has no sample while `word` has an empty one; `url_dec` turns `+` into a
/// space after the `?` (everywhere with `url_dec(1)`) and fails on a bad escape.
#[test]
fn samples_in_header_values_as_in_haproxy() {
    let o = origin("echo");
    let frontend = "  http-request set-header X-Missing \"%[req.hdr(nothere)]\"\n  http-request set-header X-Empty \"%[req.hdr(empty)]\"\n  http-request set-header X-Mixed \"a=%[req.hdr(nothere)];b\"\n  http-request set-header X-Field \"%[str(a:b),field(3,:)]\"\n  http-request set-header X-Field-Found found if { str(a:b),field(3,:) -m found }\n  http-request set-header X-Word-Found found if { str(a:b),word(3,:) -m found }\n  http-request set-header X-Url \"%[url,url_dec]\"\n  http-request set-header X-Url-Form \"%[url,url_dec(1)]\"\n  http-request set-header X-Url-Bad \"%[str(a%zz),url_dec]\"\n";
    let raw =
        "GET /p+q?echo=1&x=a+b%20c HTTP/1.1\r\nHost: t\r\nEmpty:\r\nConnection: close\r\n\r\n";
    let [theirs, ours] = x_headers_through_both(frontend, &o, &[raw.to_string()]);
    assert_eq!(ours, theirs, "percore, then haproxy");
    assert!(ours.contains(&"x-url: /p+q?echo=1&x=a b c".to_string()));
    assert!(ours.contains(&"x-word-found: found".to_string()));
}

/// `map_regm` puts the matching key's captures into the value (`\1`, `\2`), as
/// haproxy 2.6 does (#17); `map_reg` keeps the value as written.
#[test]
fn map_regm_substitutes_captures_as_in_haproxy() {
    let o = origin("echo");
    let map = temp_path("regm.map");
    std::fs::write(
        &map,
        "^/u/([a-z]+)/([0-9]+)$ user=\\1,id=\\2\n^/v/(.*)$ v=\\1\n",
    )
    .unwrap();
    let map = map.display();
    let frontend = format!(
        "  http-request set-header X-Regm \"%[path,map_regm({map},none)]\"\n  http-request set-header X-Reg \"%[path,map_reg({map},none)]\"\n"
    );
    let requests: Vec<String> = ["/u/bob/42?echo=1", "/v/x?echo=1", "/w?echo=1"]
        .iter()
        .map(|path| req(path, "t"))
        .collect();
    let [theirs, ours] = x_headers_through_both(&frontend, &o, &requests);
    assert_eq!(ours, theirs, "percore, then haproxy");
    assert!(
        ours.contains(&"x-regm: user=bob,id=42".to_string()),
        "{ours:?}"
    );
}

/// `option forwardfor` as haproxy 2.6 combines a frontend's and a backend's (#17):
/// either side asking adds the header, either side's `except` stops it, the
/// backend's header name wins, and `if-none` holds only when every side that asks
/// says it. Every pair of five settings, with and without an X-Forwarded-For
/// already in the request, against haproxy.
#[test]
fn forwardfor_combines_frontend_and_backend_as_in_haproxy() {
    require_haproxy();
    let o = origin("echo");
    let settings = [
        "",
        "  option forwardfor\n",
        "  option forwardfor if-none\n",
        "  option forwardfor except 127.0.0.0/8\n",
        "  option forwardfor header X-Real-IP\n",
    ];
    let mut seen = Vec::new();
    for name in ["haproxy", "percore"] {
        let ports: Vec<u16> = (0..settings.len()).map(|_| free_port()).collect();
        let mut text = String::from(
            "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n",
        );
        for (i, fe) in settings.iter().enumerate() {
            text.push_str(&format!(
                "\nfrontend fe{i}\n  bind 127.0.0.1:{}\n{fe}  use_backend be%[req.hdr(x-be)]\n",
                ports[i]
            ));
        }
        for (j, be) in settings.iter().enumerate() {
            text.push_str(&format!("\nbackend be{j}\n{be}  server s {}\n", o.addr));
        }
        let (_h, _p);
        if name == "haproxy" {
            _h = Haproxy::start(&text, ports[0]);
        } else {
            _p = Percore::start(&text, ports[0]);
        }
        let mut lines = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            wait_port(*port);
            for j in 0..settings.len() {
                for existing in ["", "X-Forwarded-For: 10.0.0.1\r\n"] {
                    let raw = format!(
                        "GET /?echo=1 HTTP/1.1\r\nHost: t\r\nX-Be: {j}\r\n{existing}Connection: close\r\n\r\n"
                    );
                    let (_, head) = echoed(*port, &raw);
                    let got: Vec<String> = head
                        .lines()
                        .map(str::to_ascii_lowercase)
                        .filter(|l| l.starts_with("x-forwarded-for") || l.starts_with("x-real-ip"))
                        .collect();
                    lines.push(format!("fe{i} be{j} {existing:?}: {got:?}"));
                }
            }
        }
        seen.push(lines);
    }
    for (theirs, ours) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(ours, theirs, "percore, then haproxy");
    }
}
