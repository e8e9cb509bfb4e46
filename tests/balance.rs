//! Server selection: the same key picks the same server in percore as in HAProxy (both
//! read the very same configuration file and serve the same requests), for map-based
//! `balance uri` with its options and hash functions, and for `static-rr`.

mod common;

use common::*;
use std::process::{Child, Command};

fn config(port: u16, balance: &str, origins: &[(&str, &Origin, u32)]) -> String {
    let mut s = format!(
        "global\n  nbthread 1\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\nbackend be\n{balance}"
    );
    for (name, o, weight) in origins {
        s.push_str(&format!("  server {name} {} weight {weight}\n", o.addr));
    }
    s
}

fn start_haproxy(cfg: &str, port: u16) -> Child {
    let path = write_config(cfg);
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .spawn()
        .expect("haproxy is installed by the test command");
    wait_port(port);
    child
}

/// The origin each path lands on, in order.
fn choices(port: u16, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| get(port, p).header("x-origin").unwrap_or_default())
        .collect()
}

fn agree(balance: &str, paths: &[String]) {
    assert!(
        have("haproxy"),
        "haproxy is required (the README's test command installs it)"
    );
    let origins = [origin("s0"), origin("s1"), origin("s2"), origin("s3")];
    let named: Vec<(&str, &Origin, u32)> = vec![
        ("s0", &origins[0], 1),
        ("s1", &origins[1], 2),
        ("s2", &origins[2], 3),
        ("s3", &origins[3], 2),
    ];
    let ha_port = free_port();
    let mut ha = start_haproxy(&config(ha_port, balance, &named), ha_port);
    let expected = choices(ha_port, paths);
    let _ = ha.kill();
    let _ = ha.wait();
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

#[test]
fn uri_depth_len_avalanche_agrees_with_haproxy() {
    agree(
        "  balance uri depth 2 len 40\n  hash-type map-based sdbm avalanche\n",
        &paths(200),
    );
}

#[test]
fn static_rr_agrees_with_haproxy() {
    let same: Vec<String> = (0..40).map(|i| format!("/n{i}")).collect();
    agree("  balance static-rr\n", &same);
}
