//! TCP mode end to end: large payloads both ways with half-close, with and without
//! splice, and the PROXY protocol in and out.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::thread;

/// A server that, per connection, reads everything until the client half-closes,
/// answers "<bytes> <checksum>\n", then sends `download` bytes and closes. The first
/// `preamble` bytes it reads are returned through the channel (to check PROXY headers).
fn sink_server(download: u64) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let tx = tx.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                let (mut total, mut sum, mut first) = (0u64, 0u64, Vec::new());
                loop {
                    let n = conn.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    if first.len() < 256 {
                        first.extend_from_slice(&buf[..n.min(256 - first.len())]);
                    }
                    total += n as u64;
                    sum = buf[..n]
                        .iter()
                        .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
                }
                let _ = tx.send(first);
                let _ = conn.write_all(format!("{total} {sum}\n").as_bytes());
                let chunk = vec![7u8; 1 << 16];
                let mut left = download;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if conn.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    });
    (addr, rx)
}

fn tcp_config(port: u16, server: SocketAddr, backend_extra: &str, server_extra: &str) -> String {
    format!(
        "global\n  nbthread 1\n  maxpipes 16\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 20s\n  timeout server 20s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n{backend_extra}\n  server s {server}{server_extra}\n"
    )
}

fn relay_round_trip(port: u16, upload: u64, download: u64) {
    let mut s = connect(port);
    let mut pattern = vec![0u8; 1 << 16];
    for (i, b) in pattern.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let (mut left, mut sum) = (upload, 0u64);
    while left > 0 {
        let n = left.min(pattern.len() as u64) as usize;
        s.write_all(&pattern[..n]).unwrap();
        sum = pattern[..n]
            .iter()
            .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let line_end = reply
        .iter()
        .position(|&b| b == b'\n')
        .expect("summary line");
    assert_eq!(
        String::from_utf8_lossy(&reply[..line_end]),
        format!("{upload} {sum}")
    );
    assert_eq!((reply.len() - line_end - 1) as u64, download);
}

#[test]
fn large_payloads_with_copy() {
    let (server, _) = sink_server(64 << 20);
    let port = free_port();
    let _p = Percore::start(&tcp_config(port, server, "", ""), port);
    relay_round_trip(port, 64 << 20, 64 << 20);
}

#[test]
fn large_payloads_with_splice() {
    for options in [
        "  option splice-auto\n",
        "  option splice-request\n  option splice-response\n",
    ] {
        let (server, _) = sink_server(64 << 20);
        let port = free_port();
        let _p = Percore::start(&tcp_config(port, server, options, ""), port);
        relay_round_trip(port, 64 << 20, 64 << 20);
        // Pipes go back to the pool and serve the next connections.
        for _ in 0..5 {
            relay_round_trip(port, 1 << 20, 64 << 20);
        }
    }
}

#[test]
fn spliced_relay_survives_a_slow_reader() {
    let (server, _) = sink_server(32 << 20);
    let port = free_port();
    let _p = Percore::start(
        &tcp_config(port, server, "  option splice-response\n", ""),
        port,
    );
    let mut s = connect(port);
    s.write_all(b"up").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let started = std::time::Instant::now();
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
        if started.elapsed() < std::time::Duration::from_millis(500) {
            thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let sum = b"up"
        .iter()
        .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
    assert_eq!(got, format!("2 {sum}\n").len() + (32 << 20));
}

#[test]
fn send_proxy_v1_and_v2() {
    let (server, first) = sink_server(0);
    let port = free_port();
    let _p = Percore::start(&tcp_config(port, server, "", " send-proxy"), port);
    let mut s = connect(port);
    let client_port = s.local_addr().unwrap().port();
    s.write_all(b"hello").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let seen = with_payload(&first, b"hello");
    let expected = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {port}\r\nhello");
    assert_eq!(String::from_utf8_lossy(&seen), expected);

    let (server, first) = sink_server(0);
    let port = free_port();
    let _p2 = Percore::start(&tcp_config(port, server, "", " send-proxy-v2"), port);
    let mut s = connect(port);
    let client_port = s.local_addr().unwrap().port();
    s.write_all(b"x").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    s.read_to_end(&mut Vec::new()).unwrap();
    let seen = with_payload(&first, b"x");
    let mut expected = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0, 12,
        127, 0, 0, 1, 127, 0, 0, 1,
    ];
    expected.extend_from_slice(&client_port.to_be_bytes());
    expected.extend_from_slice(&port.to_be_bytes());
    expected.push(b'x');
    assert_eq!(seen, expected);
}

/// The first preamble that carries `payload` (the test harness's readiness probe also
/// reaches the server, with a header and no payload).
fn with_payload(rx: &std::sync::mpsc::Receiver<Vec<u8>>, payload: &[u8]) -> Vec<u8> {
    loop {
        let seen = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        if seen.ends_with(payload) {
            return seen;
        }
    }
}

fn accept_proxy_config(port: u16, origin: SocketAddr) -> String {
    format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port} accept-proxy\n  option forwardfor\n  default_backend be\n\nbackend be\n  server s {origin}\n"
    )
}

#[test]
fn accept_proxy_v1_and_v2_split_or_whole() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(&accept_proxy_config(port, o.addr), port);
    let req = "GET /?echo=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    let mut s = connect(port);
    s.write_all(format!("PROXY TCP4 192.0.2.9 10.0.0.1 4000 80\r\n{req}").as_bytes())
        .unwrap();
    assert!(read_response(&mut s, false)
        .text()
        .contains("X-Forwarded-For: 192.0.2.9\r\n"));

    // Split across two writes, 100 ms apart: accepted (HAProxy 2.6 resets here).
    let mut s = connect(port);
    s.write_all(b"PROXY TCP6 2001:db8::7 2001:db8::1 ").unwrap();
    s.flush().unwrap();
    thread::sleep(std::time::Duration::from_millis(100));
    s.write_all(format!("4000 80\r\n{req}").as_bytes()).unwrap();
    assert!(read_response(&mut s, false)
        .text()
        .contains("X-Forwarded-For: 2001:db8::7\r\n"));

    let mut v2 = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0, 12,
        198, 51, 100, 4, 10, 0, 0, 1, 0x0F, 0xA0, 0, 80,
    ];
    v2.extend_from_slice(req.as_bytes());
    let mut s = connect(port);
    s.write_all(&v2).unwrap();
    assert!(read_response(&mut s, false)
        .text()
        .contains("X-Forwarded-For: 198.51.100.4\r\n"));

    // No header, or a broken one: the connection is closed without an answer.
    for bad in [
        req.to_string(),
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".to_string() + req,
    ] {
        let mut s = connect(port);
        s.write_all(bad.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.is_empty(),
            "{bad:?} got {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn interop_with_haproxy_proxy_protocol() {
    require_haproxy();
    let o = origin("o");
    // haproxy -> percore: haproxy sends v2, percore accepts it.
    let percore_port = free_port();
    let _p = Percore::start(&accept_proxy_config(percore_port, o.addr), percore_port);
    let ha_port = free_port();
    let ha_cfg = temp_path("haproxy.cfg");
    std::fs::write(
        &ha_cfg,
        format!("defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend f\n  bind 127.0.0.1:{ha_port}\n  default_backend b\n\nbackend b\n  server p 127.0.0.1:{percore_port} send-proxy-v2\n"),
    )
    .unwrap();
    let mut ha = std::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&ha_cfg)
        .spawn()
        .unwrap();
    wait_port(ha_port);
    let r = get(ha_port, "/?echo=1");
    let _ = ha.kill();
    let _ = ha.wait();
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("X-Forwarded-For: 127.0.0.1\r\n"),
        "{}",
        r.text()
    );

    // percore -> haproxy: percore sends v1, haproxy accepts it and adds X-Forwarded-For.
    let ha_port = free_port();
    std::fs::write(
        &ha_cfg,
        format!("defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend f\n  bind 127.0.0.1:{ha_port} accept-proxy\n  option forwardfor\n  default_backend b\n\nbackend b\n  server o {}\n", o.addr),
    )
    .unwrap();
    let mut ha = std::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&ha_cfg)
        .spawn()
        .unwrap();
    wait_port(ha_port);
    let front = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{front}\n  default_backend be\n\nbackend be\n  server h 127.0.0.1:{ha_port} send-proxy\n"
    );
    let _p2 = Percore::start(&cfg, front);
    let r = get(front, "/?echo=1");
    let _ = ha.kill();
    let _ = ha.wait();
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 127.0.0.1"),
        "{}",
        r.text()
    );
}
