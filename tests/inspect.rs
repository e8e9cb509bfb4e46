//! TCP content inspection end to end: `tcp-request inspect-delay` with `req.len`,
//! `req.payload` and the TLS ClientHello fetches (`req.ssl_sni`, `req.ssl_alpn`,
//! `req.ssl_hello_type`), through the real binary and plain TCP servers that answer
//! with their name and the bytes they received.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A TCP server on a free port that runs `each` on every connection, in a thread
/// of its own.
fn server(each: impl Fn(TcpStream) + Send + Copy + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || each(s));
        }
    });
    addr
}

/// A TCP server that reads what a client sends within 300 ms, then answers
/// `NAME:BYTES` and closes.
fn tag_server(name: &'static str) -> SocketAddr {
    server(move |mut s| {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let _ = s.write_all(format!("{name}:{}", got.len()).as_bytes());
    })
}

/// A TLS 1.2 ClientHello record, with a server name and ALPN protocols when given.
fn client_hello(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    fn u16be(n: usize) -> [u8; 2] {
        (n as u16).to_be_bytes()
    }
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let mut list = vec![0u8];
        list.extend(u16be(name.len()));
        list.extend(name.as_bytes());
        ext.extend([0, 0]);
        ext.extend(u16be(list.len() + 2));
        ext.extend(u16be(list.len()));
        ext.extend(list);
    }
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend(p.as_bytes());
        }
        ext.extend([0, 16]);
        ext.extend(u16be(list.len() + 2));
        ext.extend(u16be(list.len()));
        ext.extend(list);
    }
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend([0, 2, 0xc0, 0x2f]);
    body.extend([1, 0]);
    body.extend(u16be(ext.len()));
    body.extend(ext);
    let mut hs = vec![1, 0];
    hs.extend(u16be(body.len()));
    hs.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend(u16be(hs.len()));
    record.extend(hs);
    record
}

/// Sends `parts` with a pause between them, then returns what the server answered.
fn exchange(port: u16, parts: &[&[u8]], pause: Duration) -> String {
    let mut s = connect(port);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        s.write_all(part).unwrap();
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn client_hello_routing_waits_for_the_whole_hello() {
    let (a, b, c) = (tag_server("a"), tag_server("b"), tag_server("c"));
    let port = free_port();
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend tls\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 600ms\n  tcp-request content accept if {{ req.ssl_hello_type 1 }}\n\
  use_backend ba if {{ req.ssl_sni -i a.example }}\n  use_backend bb if {{ req_ssl_sni b.example }} || {{ req.ssl_alpn h2 }}\n  default_backend bc\n\
backend ba\n  server s {a}\n\
backend bb\n  server s {b}\n\
backend bc\n  server s {c}\n"
    );
    let _p = Percore::start(&text, port);
    let pause = Duration::from_millis(150);
    // A hello split in two: the rules wait for the second part, and the server gets
    // every byte.
    let hello = client_hello(Some("A.example"), &[]);
    let (head, tail) = hello.split_at(20);
    assert_eq!(
        exchange(port, &[head, tail], pause),
        format!("a:{}", hello.len())
    );
    // The second ALPN protocol offered matches too.
    let hello = client_hello(None, &["http/1.1", "h2"]);
    assert_eq!(
        exchange(port, &[&hello], pause),
        format!("b:{}", hello.len())
    );
    let hello = client_hello(Some("b.example"), &["http/1.1"]);
    assert_eq!(
        exchange(port, &[&hello], pause),
        format!("b:{}", hello.len())
    );
    let hello = client_hello(Some("other.example"), &["http/1.1"]);
    assert_eq!(
        exchange(port, &[&hello], pause),
        format!("c:{}", hello.len())
    );
    // Not TLS: decided at once, the default backend.
    let start = Instant::now();
    assert_eq!(exchange(port, &[b"GET / HTTP/1.0\r\n\r\n"], pause), "c:18");
    assert!(start.elapsed() < Duration::from_millis(550));
    // Half a hello, then silence: the delay runs out and the default backend gets it.
    let start = Instant::now();
    assert_eq!(exchange(port, &[head], pause), "c:20");
    assert!(start.elapsed() >= Duration::from_millis(600));
}

#[test]
fn req_len_and_payload_wait_for_bytes() {
    let a = tag_server("a");
    let port = free_port();
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend raw\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 500ms\n\
  tcp-request content reject if {{ req.payload(0,4) -m bin 51554954 }}\n\
  tcp-request content accept if {{ req.len ge 10 }}\n  tcp-request content reject\n  default_backend ba\n\
backend ba\n  server s {a}\n"
    );
    let _p = Percore::start(&text, port);
    let pause = Duration::from_millis(150);
    // Ten bytes in two parts: accepted once the second part is in.
    assert_eq!(exchange(port, &[b"hello", b"world"], pause), "a:10");
    // Five bytes and silence: rejected when the delay runs out.
    let start = Instant::now();
    assert_eq!(exchange(port, &[b"hello"], pause), "");
    assert!(start.elapsed() >= Duration::from_millis(500));
    // "QUIT" in two parts: the first rule waits for its four bytes, then rejects.
    assert_eq!(exchange(port, &[b"QU", b"IT and more"], pause), "");
    // Five bytes and a close: the rules decide at once on what came.
    let mut s = connect(port);
    s.write_all(b"short").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let start = Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert_eq!(answer, "");
    assert!(start.elapsed() < Duration::from_millis(400));
}

/// A server that speaks first: `banner` in two parts 150 ms apart, then `250 ` and the
/// line the client sent.
fn banner_server(banner: &'static str) -> SocketAddr {
    server(move |mut s| {
        let (a, b) = banner.split_at(2);
        let _ = s.write_all(a.as_bytes());
        std::thread::sleep(Duration::from_millis(150));
        let _ = s.write_all(b.as_bytes());
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = s.read(&mut byte) {
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        let _ = s.write_all(b"250 ");
        let _ = s.write_all(&line);
    })
}

#[test]
fn tcp_response_rules_see_the_server_first_bytes() {
    let (good, bad, quiet) = (
        banner_server("220 ready\r\n"),
        banner_server("500 go away\r\n"),
        tag_server("q"),
    );
    let (port, bport, qport) = (free_port(), free_port(), free_port());
    let backend = "  tcp-response inspect-delay 2s\n  tcp-response content reject if { res.payload(0,3) -m bin 353030 }\n  tcp-response content accept if { res.len ge 4 }\n";
    let text = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\n\
frontend good\n  bind 127.0.0.1:{port}\n  default_backend good\n\
frontend bad\n  bind 127.0.0.1:{bport}\n  default_backend bad\n\
frontend quiet\n  bind 127.0.0.1:{qport}\n  default_backend quiet\n\
backend good\n{backend}  server s {good}\n\
backend bad\n{backend}  server s {bad}\n\
backend quiet\n{backend}  server s {quiet}\n"
    );
    let _p = Percore::start(&text, port);
    // The banner arrives in two parts: the rules wait for the second, and the
    // client's line, sent meanwhile, still reaches the server.
    assert_eq!(
        exchange(port, &[b"HELO x\r\n"], Duration::ZERO),
        "220 ready\r\n250 HELO x\r\n"
    );
    // A banner the rules reject: the client gets nothing.
    assert_eq!(exchange(bport, &[b"HELO x\r\n"], Duration::ZERO), "");
    // A server that waits for the client: the client's bytes are relayed while the
    // response side waits.
    assert_eq!(exchange(qport, &[b"ping"], Duration::ZERO), "q:4");
}
