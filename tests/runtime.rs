//! The runtime around the proxy paths: bind kinds, limits and queues, pinning,
//! daemon mode and pidfile, listen sections.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn base(extra_global: &str, frontend: &str, backend: &str) -> String {
    format!(
        "global\n  nbthread 1\n{extra_global}\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\nfrontend fe\n{frontend}  default_backend be\n\nbackend be\n{backend}"
    )
}

#[test]
fn unix_ipv6_and_port_range_binds() {
    let o = origin("o");
    let port = free_port();
    let sock = temp_path("sock");
    let v6 = free_port();
    let frontend = format!(
        "  bind 127.0.0.1:{port}\n  bind unix@{} mode 600\n  bind ipv6@::1:{v6}\n",
        sock.display()
    );
    let _p = Percore::start(
        &base("", &frontend, &format!("  server s {}\n", o.addr)),
        port,
    );
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut s6 = std::net::TcpStream::connect(("::1", v6)).unwrap();
    s6.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s6.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn inherited_fd_bind() {
    let o = origin("o");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    use std::os::fd::AsRawFd;
    let fd = listener.as_raw_fd();
    // Make the descriptor inheritable and hand it over as fd@N.
    // SAFETY: clearing FD_CLOEXEC on our own open descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let cfg = write_config(&base(
        "",
        &format!("  bind fd@{fd}\n"),
        &format!("  server s {}\n", o.addr),
    ));
    let mut child = std::process::Command::new(percore_bin())
        .args(["-d", "-f"])
        .arg(&cfg)
        .spawn()
        .unwrap();
    drop(listener);
    let r = get(port, "/");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status, 200);
}

#[test]
fn listen_section_serves_its_own_servers() {
    let o = origin("listened");
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 1\n\nlisten both\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n  bind 127.0.0.1:{port}\n  server s {}\n",
        o.addr
    );
    let _p = Percore::start(&cfg, port);
    assert_eq!(
        get(port, "/").header("x-origin").as_deref(),
        Some("listened")
    );
}

#[test]
fn frontend_maxconn_pauses_accepting() {
    let o = origin("o");
    let port = free_port();
    let _p = Percore::start(
        &base(
            "",
            &format!("  bind 127.0.0.1:{port}\n  maxconn 1\n"),
            &format!("  server s {}\n", o.addr),
        ),
        port,
    );
    std::thread::sleep(Duration::from_millis(100));
    let mut first = connect(port);
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut first, false).status, 200);
    // The second connection is accepted by the kernel but not served while the first lives.
    let mut second = connect(port);
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut byte = [0u8];
    assert!(second.read(&mut byte).is_err(), "served beyond maxconn");
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let start = Instant::now();
    assert_eq!(read_response(&mut second, false).status, 200);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn server_maxconn_queues_then_503() {
    let o = origin("o");
    let port = free_port();
    let backend = format!(
        "  timeout queue 300ms\n  server s {} maxconn 1 maxqueue 1\n",
        o.addr
    );
    let _p = Percore::start(
        &base("", &format!("  bind 127.0.0.1:{port}\n"), &backend),
        port,
    );
    let slow =
        |delay: u64| std::thread::spawn(move || get(port, &format!("/?delay={delay}")).status);
    // One in flight, one queued past its 300 ms: 503.
    let a = slow(1000);
    std::thread::sleep(Duration::from_millis(100));
    let b = slow(0);
    assert_eq!(b.join().unwrap(), 503);
    // One in flight, one queued, a third refused at once (queue full): 503 quickly.
    let c = slow(0);
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    assert_eq!(get(port, "/").status, 503);
    assert!(start.elapsed() < Duration::from_millis(250));
    let _ = c.join();
    assert_eq!(a.join().unwrap(), 200);
    // A queued request that gets a slot in time is served.
    let a = slow(100);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(get(port, "/").status, 200);
    assert_eq!(a.join().unwrap(), 200);
}

#[test]
fn threads_are_pinned_per_cpu_map() {
    let o = origin("o");
    let port = free_port();
    let cfg = base(
        "  nbthread 2\n  cpu-map auto:1/1-2 0-1\n",
        &format!("  bind 127.0.0.1:{port}\n"),
        &format!("  server s {}\n", o.addr),
    )
    .replacen("  nbthread 1\n", "", 1);
    let p = Percore::start(&cfg, port);
    let mut cpus = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", p.child.id())).unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap();
        if comm.starts_with("percore-") {
            let status = std::fs::read_to_string(path.join("status")).unwrap();
            let list = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_string();
            cpus.push((comm.trim().to_string(), list));
        }
    }
    cpus.sort();
    assert_eq!(
        cpus,
        [
            ("percore-0".to_string(), "0".to_string()),
            ("percore-1".to_string(), "1".to_string())
        ]
    );
    for _ in 0..20 {
        assert_eq!(get(port, "/").status, 200);
    }
}

#[test]
fn daemon_mode_writes_the_pidfile() {
    let o = origin("o");
    let port = free_port();
    let pidfile = temp_path("pid");
    let cfg = write_config(&base(
        "  daemon\n",
        &format!("  bind 127.0.0.1:{port}\n"),
        &format!("  server s {}\n", o.addr),
    ));
    let status = std::process::Command::new(percore_bin())
        .args(["-f", cfg.to_str().unwrap(), "-p", pidfile.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_port(port);
    let r = get(port, "/");
    // SAFETY: stopping the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(r.status, 200);

    // A bind that fails is reported by the parent, which exits 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let cfg = write_config(&base(
        "  daemon\n",
        &format!("  bind 127.0.0.1:{busy}\n"),
        &format!("  server s {}\n", o.addr),
    ));
    let out = std::process::Command::new(percore_bin())
        .args(["-f", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot bind"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn idle_client_is_closed_after_timeout_client() {
    let o = origin("o");
    let port = free_port();
    let cfg = base(
        "",
        &format!("  bind 127.0.0.1:{port}\n  timeout http-keep-alive 200ms\n"),
        &format!("  server s {}\n", o.addr),
    );
    let _p = Percore::start(&cfg, port);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    let start = Instant::now();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "closed silently");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn server_maxconn_holds_across_executors() {
    let o = origin("o");
    let port = free_port();
    let cfg = base(
        "",
        &format!("  bind 127.0.0.1:{port}\n"),
        &format!("  timeout queue 10s\n  server s {} maxconn 2\n", o.addr),
    )
    .replacen("  nbthread 1\n", "  nbthread 2\n", 1);
    let _p = Percore::start(&cfg, port);
    let clients: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || get(port, "/?delay=40").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    let peak = o.stats.peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        peak <= 2,
        "the server saw {peak} requests at once with maxconn 2 over two executors"
    );
    assert!(peak >= 1);
}
