//! Traffic and event logs, received on a real UDP syslog socket: seeds 11 and 13,
//! HAProxy's own lines for the same traffic, custom formats and the log options.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

/// A syslog server: a UDP socket on a free port.
struct Syslog {
    socket: UdpSocket,
}

impl Syslog {
    fn start() -> Syslog {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Syslog { socket }
    }

    fn addr(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    /// The next datagram, within `limit`.
    fn next(&self, limit: Duration) -> Option<String> {
        let until = Instant::now() + limit;
        let mut buf = [0u8; 65536];
        while Instant::now() < until {
            if let Ok(n) = self.socket.recv(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    }

    /// The next datagram whose message contains `needle`, skipping others.
    fn find(&self, needle: &str) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Some(d) = self.next(Duration::from_millis(200)) {
                if d.contains(needle) {
                    return d;
                }
            }
        }
        panic!("no log line containing {needle:?}");
    }

    /// Asserts that nothing more arrives for a while.
    fn quiet(&self) {
        if let Some(d) = self.next(Duration::from_millis(400)) {
            panic!("unexpected log line {d:?}");
        }
    }
}

/// The message of a syslog datagram: what follows the `tag[pid]: ` header.
fn message(datagram: &str) -> &str {
    let at = datagram.find("]: ").expect("an rfc3164 header") + 3;
    datagram[at..].trim_end_matches('\n')
}

/// Seed 13: each site's traffic goes to its own backend with its own cookie, unknown
/// hosts to the default backend, and every request is logged in HAProxy's httplog
/// format with the captured Host.
#[test]
fn seed_13_logs_each_site_and_the_unknown_hosts() {
    let names = ["s1a", "s1b", "s2a", "s2b", "da", "db"];
    let origins: Vec<_> = names.iter().map(|n| origin(n)).collect();
    let syslog = Syslog::start();
    let port = free_port();
    let mut text = seed_text("13-name-based-vhosts.cfg")
        .replace("127.0.0.1:10080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:10514", &syslog.addr());
    for (seed_port, o) in [19001, 19002, 19011, 19012, 19021, 19022]
        .iter()
        .zip(&origins)
    {
        text = text.replace(&format!("127.0.0.1:{seed_port}"), &o.addr.to_string());
    }
    let _p = Percore::start(&text, port);

    let site1 = request(port, &req("/a?x=1", "www.site1.com"));
    assert!(site1.header("x-origin").unwrap().starts_with("s1"));
    assert!(site1
        .header("set-cookie")
        .unwrap()
        .starts_with("SERVERID=s"));
    let line = syslog.find("\"GET /a?x=1 HTTP/1.1\"");
    assert!(line.starts_with("<134>"), "local0.info: {line}");
    let m = message(&line);
    let f: Vec<&str> = m.split(' ').collect();
    assert!(f[0].starts_with("127.0.0.1:"), "{m}");
    assert!(
        f[1].starts_with('[') && f[1].len() == 26,
        "request date: {m}"
    );
    assert_eq!(f[2], "ft_websites", "{m}");
    assert!(f[3].starts_with("bk_site1/srv"), "{m}");
    assert_eq!(f[4].split('/').count(), 5, "TR/Tw/Tc/Tr/Ta: {m}");
    assert_eq!(f[5], "200", "{m}");
    assert!(f[6].parse::<u64>().unwrap() > 0, "bytes: {m}");
    assert_eq!(&f[7..10], ["-", "-", "--NI"], "{m}");
    assert_eq!(f[10].split('/').count(), 5, "{m}");
    assert_eq!(f[11], "0/0", "{m}");
    assert_eq!(f[12], "{www.site1.com}", "{m}");

    let r = request(port, &req("/b", "site2.ie"));
    assert!(r.header("x-origin").unwrap().starts_with("s2"));
    let m = message(&syslog.find("\"GET /b HTTP/1.1\"")).to_string();
    assert!(m.contains(" bk_site2/srv"), "{m}");
    assert!(m.contains(" {site2.ie} "), "{m}");

    let r = request(port, &req("/c", "unknown.example"));
    assert!(r.header("x-origin").unwrap().starts_with('d'));
    assert!(r.header("set-cookie").is_none());
    let m = message(&syslog.find("\"GET /c HTTP/1.1\"")).to_string();
    assert!(m.contains(" bk_default/srv"), "{m}");
    assert!(
        m.contains(" ---- "),
        "no cookie in the default backend: {m}"
    );
    assert!(m.contains(" {unknown.example} "), "{m}");
}

fn req(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// A mail server that expects a PROXY v1 header, then speaks a little SMTP. Returns
/// its port and what it received.
fn smtp_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    // Every connection gets a server; the one that says QUIT reports what it got
    // (waiting for the proxy's port also opens a connection here).
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut proxy = String::new();
                r.read_line(&mut proxy).unwrap();
                let mut w = s;
                let _ = w.write_all(b"220 mail.example ESMTP\r\n");
                let mut cmd = String::new();
                if r.read_line(&mut cmd).is_ok() && cmd == "QUIT\r\n" {
                    let _ = w.write_all(b"221 bye\r\n");
                    let _ = tx.send(format!("{proxy}{cmd}"));
                }
            });
        }
    });
    (port, rx)
}

/// Seed 11: SMTP relayed in TCP mode with a PROXY header naming the real client, and
/// one tcplog line per connection.
#[test]
fn seed_11_relays_smtp_with_proxy_header_and_logs_it() {
    let (mail, received) = smtp_server();
    let syslog = Syslog::start();
    let port = free_port();
    let text = seed_text("11-smtp-proxy-protocol.cfg")
        .replace("127.0.0.1:10025", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:10514", &syslog.addr())
        .replace("127.0.0.1:19024", &format!("127.0.0.1:{mail}"));
    let _p = Percore::start(&text, port);
    let mut s = connect(port);
    let mut banner = [0u8; 24];
    s.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"220 mail.example ESMTP\r\n");
    s.write_all(b"QUIT\r\n").unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "221 bye\r\n");
    let client_port = s.local_addr().unwrap().port();
    let seen = received.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        seen.starts_with(&format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {port}\r\n"
        )),
        "{seen}"
    );
    assert!(seen.ends_with("QUIT\r\n"));
    drop(s);
    let m = message(&syslog.find(&format!("127.0.0.1:{client_port} "))).to_string();
    let f: Vec<&str> = m.split(' ').collect();
    assert_eq!(f[0], format!("127.0.0.1:{client_port}"), "{m}");
    assert_eq!(&f[2..4], ["ft_smtp", "bk_postfix/postfix"], "{m}");
    assert_eq!(f[4].split('/').count(), 3, "Tw/Tc/Tt: {m}");
    assert_eq!(f[5], "33", "bytes to the client: {m}");
    assert_eq!(f[6], "--", "{m}");
    assert_eq!(f.len(), 9, "{m}");
}

/// A log message with what varies between runs and proxies replaced: the client
/// port, dates, timers (a `-1` stays: it says a step was not reached), byte counts
/// (HAProxy counts its internal form of the response) and the process and frontend
/// connection counts.
fn normalized(m: &str, http: bool) -> String {
    let mut f: Vec<String> = m.split(' ').map(String::from).collect();
    f[0] = f[0].split(':').next().unwrap().to_string();
    f[1] = "[DATE]".into();
    f[4] = f[4]
        .split('/')
        .map(|t| if t == "-1" { "-1" } else { "N" })
        .collect::<Vec<_>>()
        .join("/");
    f[if http { 6 } else { 5 }] = "BYTES".into();
    // The process and frontend connection counts include the previous connection
    // when its close has not been processed yet, in either proxy: a race.
    let counts = if http { 10 } else { 7 };
    let mut c: Vec<String> = f[counts].split('/').map(String::from).collect();
    c[0] = "A".into();
    c[1] = "F".into();
    f[counts] = c.join("/");
    f.join(" ")
}

/// percore and HAProxy 2.6 write the same httplog and tcplog lines for the same
/// traffic: cookie states, `<NOSRV>`, termination codes, captures and quoting.
#[test]
fn httplog_and_tcplog_lines_match_haproxy() {
    require_haproxy();
    let o = origin("o");
    let dead = free_port();
    let syslog = Syslog::start();
    let config = |http: u16, tcp: u16| {
        format!(
            "global\n  log {log} local0\n\ndefaults\n  mode http\n  log global\n  option httplog\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  retries 0\n\n\
frontend fe\n  bind 127.0.0.1:{http}\n  capture request header host len 32\n  capture request header user-agent len 8\n  capture response header content-type len 20\n  http-request deny if {{ path_beg /deny }}\n  use_backend dead if {{ path_beg /dead }}\n  default_backend be\n\n\
backend be\n  cookie SRV insert indirect nocache\n  server s1 {o} cookie s1\n\n\
backend dead\n  server gone 127.0.0.1:{dead}\n\n\
listen tcp\n  mode tcp\n  option tcplog\n  bind 127.0.0.1:{tcp}\n  server s1 {o}\n",
            log = syslog.addr(),
            o = o.addr,
        )
    };
    let (p_http, p_tcp, h_http, h_tcp) = (free_port(), free_port(), free_port(), free_port());
    let haproxy = Haproxy::start(&config(h_http, h_tcp), h_http);
    let percore = Percore::start(&config(p_http, p_tcp), p_http);
    let traffic = |http: u16, tcp: u16| -> Vec<String> {
        let reqs = [
            "GET /first HTTP/1.1\r\nHost: a.example\r\nUser-Agent: curl/8.0.0\r\nConnection: close\r\n\r\n",
            "GET /again?x=%22 HTTP/1.1\r\nHost: a.example\r\nCookie: SRV=s1\r\nConnection: close\r\n\r\n",
            "GET /stale HTTP/1.1\r\nHost: b.example\r\nCookie: SRV=zz\r\nConnection: close\r\n\r\n",
            "GET /deny HTTP/1.1\r\nHost: c.example\r\nConnection: close\r\n\r\n",
            "GET /dead HTTP/1.1\r\nHost: d.example\r\nConnection: close\r\n\r\n",
            "GET /missing?status=404 HTTP/1.1\r\nHost: e.example\r\nConnection: close\r\n\r\n",
        ];
        let mut lines = Vec::new();
        for r in reqs {
            request(http, r);
            let path = r.split(' ').nth(1).unwrap();
            let line = syslog.find(&format!(" \"GET {path} "));
            lines.push(normalized(message(&line), true));
        }
        // A connection closed without a request.
        drop(connect(http));
        lines.push(normalized(message(&syslog.find("<BADREQ>")), true));
        let mut s = connect(tcp);
        s.write_all(b"GET /tcp HTTP/1.0\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        // The client closes its side too: the session ends now, not at `timeout client`
        // (which would race the wait for its log line).
        drop(s);
        lines.push(normalized(message(&syslog.find(" tcp tcp/")), false));
        lines
    };
    let theirs = traffic(h_http, h_tcp);
    let ours = traffic(p_http, p_tcp);
    drop(haproxy);
    drop(percore);
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(o, t, "percore's line, then haproxy's");
    }
    assert_eq!(ours.len(), 8);
}

/// Seed 14's log format: the URL as the application sent it (not as rewritten), the
/// backend and server used, the status, timers and termination state; samples and
/// `%{+Q}` in a custom format.
#[test]
fn log_format_keeps_the_original_url() {
    let o = origin("partner");
    let syslog = Syslog::start();
    let port = free_port();
    let cfg = format!(
        "global\n  log {log} local0\n\ndefaults\n  mode http\n  log global\n  log-format \"%ci %HM %HU %b/%s %ST %Tc/%Tr/%Ta %tsc %{{+Q}}[req.hdr(host),lower] %{{+Q}}HP %HQ\"\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  use_backend partner if {{ path_beg /myback/ }}\n\n\
backend partner\n  http-request replace-path /myback/prod(/.*) \\1\n  http-request set-header Host www.example.com\n  server www {o}\n",
        log = syslog.addr(),
        o = o.addr
    );
    let _p = Percore::start(&cfg, port);
    let r = request(
        port,
        &req("/myback/prod/v1/orders?id=7&echo=1", "App.Internal"),
    );
    assert!(
        r.text().contains("GET /v1/orders?id=7&echo=1 HTTP/1.1"),
        "{}",
        r.text()
    );
    let m = message(&syslog.find("/myback/")).to_string();
    let f: Vec<&str> = m.split(' ').collect();
    assert_eq!(
        &f[..3],
        ["127.0.0.1", "GET", "/myback/prod/v1/orders?id=7&echo=1"],
        "{m}"
    );
    assert_eq!(f[3], "partner/www", "{m}");
    assert_eq!(f[4], "200", "{m}");
    assert_eq!(f[5].split('/').count(), 3, "{m}");
    assert_eq!(f[6], "----", "{m}");
    assert_eq!(
        f[7], "\"www.example.com\"",
        "the header as the rules left it: {m}"
    );
    assert_eq!(f[8], "\"/myback/prod/v1/orders\"", "{m}");
    assert_eq!(f[9], "?id=7&echo=1", "{m}");
    // A request no backend takes: the frontend's name and <NOSRV>.
    request(port, &req("/elsewhere", "x"));
    let m = message(&syslog.find("/elsewhere")).to_string();
    assert!(m.contains(" fe/<NOSRV> 503 -1/-1/"), "{m}");
}

/// `option dontlog-normal` keeps only errors, `option log-separate-errors` sends them
/// at level err, and `option dontlognull` hides connections that sent nothing.
#[test]
fn log_options_filter_and_raise_errors() {
    let o = origin("o");
    let syslog = Syslog::start();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  timeout http-request 300ms\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  log {log} local0\n  option httplog\n  option dontlog-normal\n  option log-separate-errors\n  option dontlognull\n  default_backend be\n\n\
backend be\n  server s1 {o}\n",
        log = syslog.addr(),
        o = o.addr
    );
    let _p = Percore::start(&cfg, port);
    assert_eq!(get(port, "/fine").status, 200);
    assert_eq!(get(port, "/bad?status=503").status, 503);
    let line = syslog.find("/bad?status=503");
    assert!(line.starts_with("<131>"), "local0.err: {line}");
    // A connection that sends nothing and times out is not logged.
    let s = connect(port);
    std::thread::sleep(Duration::from_millis(600));
    drop(s);
    syslog.quiet();
}

/// A frontend with log targets and no format logs HAProxy's "Connect from" line; a
/// backend's targets get its servers' state changes.
#[test]
fn connect_lines_and_server_state_changes() {
    let o = origin("o");
    let syslog = Syslog::start();
    let port = free_port();
    let dead = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  log {log} local1\n  timeout connect 200ms\n  timeout client 5s\n  timeout server 5s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\n\
backend be\n  server s1 {o}\n  server gone 127.0.0.1:{dead} check inter 100ms fall 1\n",
        log = syslog.addr(),
        o = o.addr
    );
    let _p = Percore::start(&cfg, port);
    let down = syslog.find("Server be/gone is DOWN");
    assert!(down.starts_with("<137>"), "local1.alert: {down}");
    get(port, "/");
    let line = syslog.find("Connect from");
    assert!(
        message(&line).starts_with("Connect from 127.0.0.1:"),
        "{line}"
    );
    assert!(message(&line).ends_with(&format!(" to 127.0.0.1:{port} (fe/HTTP)")));
}

/// `set-log-level` sends a transaction's line at another level, or not at all.
#[test]
fn set_log_level_changes_or_silences_the_line() {
    let o = origin("o");
    let syslog = Syslog::start();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  log {log} local0\n  option httplog\n  http-request set-log-level silent if {{ path /health }}\n  http-response set-log-level warning if {{ status 404 }}\n  default_backend be\n\n\
backend be\n  server s1 {o}\n",
        log = syslog.addr(),
        o = o.addr
    );
    let _p = Percore::start(&cfg, port);
    get(port, "/health");
    get(port, "/gone?status=404");
    let line = syslog.find("\"GET /");
    assert!(
        line.contains("/gone?status=404"),
        "/health is silent: {line}"
    );
    assert!(line.starts_with("<132>"), "local0.warning: {line}");
}

/// A `tcp-request content set-log-level` sets the level of every request's line on
/// the connection, its first included (the rules run again for each request).
#[test]
fn tcp_content_set_log_level_applies_to_each_request() {
    let o = origin("o");
    let syslog = Syslog::start();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\n\
frontend fe\n  bind 127.0.0.1:{port}\n  log {log} local0\n  option httplog\n  tcp-request content set-log-level warning\n  default_backend be\n\n\
backend be\n  server s1 {o}\n",
        log = syslog.addr(),
        o = o.addr
    );
    let _p = Percore::start(&cfg, port);
    let mut s = connect(port);
    for path in ["/first", "/second"] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(read_response(&mut s, false).status, 200);
        let line = syslog.find(&format!("\"GET {path} "));
        assert!(line.starts_with("<132>"), "local0.warning: {line}");
    }
}
