//! A stable-toolchain stand-in for the fuzz target: many pseudo-random configurations
//! built from HAProxy's vocabulary and from raw bytes; the parser must never panic.

use std::path::Path;

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "fe",
    "be",
    "from",
    "bind",
    "server",
    "default-server",
    "mode",
    "http",
    "tcp",
    "timeout",
    "client",
    "connect",
    "server",
    "10s",
    "0",
    "99999999999999999999",
    "maxconn",
    "nbthread",
    "cpu-map",
    "auto:1/1-4",
    "0-3",
    "option",
    "no",
    "forwardfor",
    "except",
    "header",
    "redispatch",
    "splice-auto",
    "balance",
    "roundrobin",
    "weight",
    "256",
    "send-proxy",
    "accept-proxy",
    "default_backend",
    "use_backend",
    "if",
    "127.0.0.1:80",
    ":::80",
    "*:1-2",
    "unix@/x",
    "fd@3",
    "\"${PORT}\"",
    "'q'",
    "\"a b\"",
    "\\",
    "\\x4",
    "#",
    ".if",
    ".elif",
    ".else",
    ".endif",
    "defined(PORT)",
    "streq(a,b)",
    "version_atleast(2.4)",
    "(",
    ")",
    "&&",
    "||",
    "!",
    ".alert",
    "errorfile",
    "503",
    "/nonexistent",
    "peer",
    "nameserver",
    "hold",
    "valid",
    "tune.bufsize",
    "1k",
    "http-reuse",
    "always",
    "retries",
    "-1",
    "\t",
    "\u{e9}",
    "\"",
    "'",
    "${",
    "$",
];

#[test]
fn random_configurations_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let env = |name: &str| (name == "PORT").then(|| "8080".to_string());
    for _ in 0..5000 {
        let mut text = String::new();
        for _ in 0..(rng.next() % 12) {
            for _ in 0..(rng.next() % 7) {
                text.push_str(rng.pick(WORDS));
                text.push(if rng.next().is_multiple_of(5) {
                    '\t'
                } else {
                    ' '
                });
            }
            text.push('\n');
        }
        let _ = percore_config::parse_str(Path::new("random.cfg"), &text, &env);
    }
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..(rng.next() % 200)).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = percore_config::parse_str(Path::new("bytes.cfg"), &text, &env);
    }
}
