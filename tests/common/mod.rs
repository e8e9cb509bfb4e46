//! Shared helpers for the end-to-end tests: start the real `percore` binary on a
//! config with free ports, origins from `percore-bench`, and plain socket clients.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use percore_bench::origin::Origin;

/// The percore binary built for these tests.
pub fn percore_bin() -> &'static str {
    env!("CARGO_BIN_EXE_percore")
}

/// A seed configuration's text, on one executor (so that tests see its behaviour
/// without depending on how connections spread over cores).
pub fn seed_text(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../shared/seed-configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("defaults\n", "global\n  nbthread 1\n\ndefaults\n")
}

/// A local address nobody listens on right now: for a server that is down, or one a
/// test starts later. Never the same twice in one test process, and below the
/// kernel's ephemeral range: a port the kernel picked for `bind(0)` may be picked again
/// for another test's, and two processes that both set `SO_REUSEPORT` (percore, the
/// origins) would then share the listening port and each other's connections.
pub fn free_addr() -> SocketAddr {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static BAND: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    let Some((first, band)) = *BAND.get_or_init(port_band) else {
        return TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
    };
    // Test processes running side by side start at different places in the band.
    let start = std::process::id().wrapping_mul(7_919) % band;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) as u32;
        assert!(n < band, "no free port left outside the ephemeral range");
        let port = first + (start + n) % band;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// The first port and the number of ports `free_addr` hands out: below the kernel's
/// ephemeral range when there is room, else above it; `None` (the kernel picks) when
/// that range covers nearly every port.
fn port_band() -> Option<(u32, u32)> {
    // Above the ports the seed configs and tests name (placeholders they rewrite).
    const FIRST: u32 = 20_000;
    let range: Vec<u32> = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .map(|r| {
            r.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let (low, high) = match range[..] {
        [low, high] => (low, high),
        _ => (32_768, 60_999),
    };
    if low >= FIRST + 2_000 {
        Some((FIRST, low - FIRST))
    } else if high <= 63_535 {
        Some((high + 1, 65_535 - high))
    } else {
        None
    }
}

/// A port nobody listens on right now (see [`free_addr`]).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// Starts an origin on a free port.
pub fn origin(name: &str) -> Origin {
    Origin::start(name, "127.0.0.1:0".parse().unwrap()).unwrap()
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A unique path under the temporary directory.
pub fn temp_path(stem: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("percore-test-{}-{n}-{stem}", std::process::id()))
}

/// Writes `text` to a temporary config file.
pub fn write_config(text: &str) -> PathBuf {
    let path = temp_path("cfg");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `percore` with `args` to completion.
pub fn run_percore(args: &[&str]) -> Output {
    Command::new(percore_bin()).args(args).output().unwrap()
}

/// A running percore, killed when dropped.
pub struct Percore {
    pub child: Child,
    pub config: PathBuf,
}

impl Percore {
    /// Starts percore in the foreground on `config` and waits until `port` accepts.
    pub fn start(config: &str, port: u16) -> Percore {
        let path = write_config(config);
        let child = Command::new(percore_bin())
            .args(["-d", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let p = Percore {
            child,
            config: path,
        };
        wait_port(port);
        p
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Percore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Waits until something accepts on 127.0.0.1:`port`.
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects a client with generous timeouts.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (first occurrence, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `s` (Content-Length, chunked, or until close).
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert!(
            n > 0,
            "connection closed before a full response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut r = Response {
        status,
        head,
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return r;
    }
    if let Some(len) = r.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        s.read_exact(&mut body).unwrap();
        r.body = body;
    } else if r
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let size =
                usize::from_str_radix(std::str::from_utf8(&line).unwrap().trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            s.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            r.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        s.read_to_end(&mut r.body).unwrap();
    }
    r
}

/// Sends `raw` on a new connection and reads one response.
pub fn request(port: u16, raw: &str) -> Response {
    let mut s = connect(port);
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s, raw.starts_with("HEAD "))
}

/// A GET for `path` on a new connection.
pub fn get(port: u16, path: &str) -> Response {
    request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
}

/// A minimal HTTP config: one frontend on `port`, one backend with `servers`.
pub fn http_config(
    port: u16,
    extra_defaults: &str,
    extra_backend: &str,
    servers: &[SocketAddr],
) -> String {
    let mut s = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n{extra_defaults}\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n{extra_backend}\n"
    );
    for (i, a) in servers.iter().enumerate() {
        s.push_str(&format!("  server s{i} {a}\n"));
    }
    s
}

/// Fails the test unless haproxy is on the PATH: a test that compares percore with
/// haproxy must not pass without one (the README's test command installs it).
pub fn require_haproxy() {
    assert!(
        have("haproxy"),
        "haproxy is required (the README's test command installs it)"
    );
}

/// Whether a program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A running haproxy (Debian's 2.6, installed by the test command) on a config, killed
/// when dropped, also when the test fails.
pub struct Haproxy(pub Child);

impl Haproxy {
    /// Starts haproxy in the foreground on `config` and waits for `port`.
    pub fn start(config: &str, port: u16) -> Haproxy {
        let path = write_config(config);
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy is installed by the test command");
        wait_port(port);
        Haproxy(child)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
