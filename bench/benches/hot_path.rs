//! Micro-benchmarks of what runs on the request path today: HTTP head parsing and
//! rewriting, server choice, and (off the path, but watched) configuration parsing.
//! `cargo bench -p percore-bench`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use percore_config::{HashMethod, HashType, UriHash};
use percore_dataplane::balance::{hash, least_conn, random, uri_key, RoundRobin, ServerMap};
use percore_dataplane::http::head::{
    finish_request, parse_request, parse_response, Limits, RequestEdits,
};
use percore_dataplane::ring::Ring;
use std::hint::black_box;
use std::path::Path;

const REQUEST: &[u8] = b"GET /api/v1/items?id=42&lang=en HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: session=0123456789abcdef; theme=dark\r\nUpgrade-Insecure-Requests: 1\r\nCache-Control: max-age=0\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: origin\r\nDate: Sat, 21 Nov 2026 12:00:00 GMT\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 5120\r\nCache-Control: private\r\nConnection: keep-alive\r\n\r\n";

fn heads(c: &mut Criterion) {
    let limits = Limits {
        max_head: 15360,
        max_headers: 101,
    };
    let edits = RequestEdits {
        forwarded_for: Some((
            "X-Forwarded-For",
            "192.0.2.7".parse().expect("static address"),
            false,
        )),
        original_to: None,
        close_server: false,
    };
    let mut out = Vec::with_capacity(1024);
    c.bench_function("http request head: parse + rewrite", |b| {
        b.iter(|| {
            let info = parse_request(black_box(REQUEST), limits, &mut out)
                .expect("valid request")
                .expect("complete");
            finish_request(&mut out, &info, edits);
        })
    });
    let request = parse_request(REQUEST, limits, &mut out)
        .expect("valid")
        .expect("complete");
    c.bench_function("http response head: parse + rewrite", |b| {
        b.iter(|| {
            parse_response(black_box(RESPONSE), limits, &request, false, &mut out)
                .expect("valid response")
        })
    });
}

fn server_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("server pick");
    for n in [10usize, 1000] {
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 4) as u32).collect();
        let loads: Vec<u32> = (0..n).map(|i| (i * 7 % 13) as u32).collect();
        let map = ServerMap::new(&weights);
        let mut rr = RoundRobin::new(n);
        group.bench_with_input(BenchmarkId::new("roundrobin", n), &weights, |b, w| {
            b.iter(|| rr.pick(black_box(w), None))
        });
        let mut cursor = 0;
        group.bench_with_input(BenchmarkId::new("static-rr", n), &map, |b, m| {
            b.iter(|| m.next(black_box(&mut cursor)))
        });
        let uri = UriHash::default();
        group.bench_with_input(BenchmarkId::new("uri (sdbm, map)", n), &map, |b, m| {
            b.iter(|| {
                m.get(hash(
                    uri_key(black_box(b"/static/img/logo.png?v=3"), &uri),
                    HashType::default(),
                ))
            })
        });
        let ids: Vec<(u32, u32)> = (1..).zip(weights.iter().map(|w| w * 16)).collect();
        let ring = Ring::new(&ids);
        let consistent = HashType {
            method: HashMethod::Consistent,
            avalanche: true,
            ..HashType::default()
        };
        group.bench_with_input(BenchmarkId::new("uri (consistent)", n), &ring, |b, r| {
            b.iter(|| {
                let key = uri_key(black_box(b"/static/img/logo.png?v=3"), &uri);
                r.get(hash(key, consistent), None, 0, |i| loads[i])
            })
        });
        group.bench_with_input(
            BenchmarkId::new("uri (consistent, balance factor 150)", n),
            &ring,
            |b, r| {
                b.iter(|| {
                    let key = uri_key(black_box(b"/static/img/logo.png?v=3"), &uri);
                    r.get(hash(key, consistent), None, 150, |i| loads[i])
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("leastconn", n), &weights, |b, w| {
            b.iter(|| least_conn(black_box(w), |i| loads[i], 3))
        });
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        group.bench_with_input(BenchmarkId::new("random(2)", n), &map, |b, m| {
            b.iter(|| random(m, 2, &mut rng, |i| loads[i]))
        });
    }
    group.finish();
}

fn config_parse(c: &mut Criterion) {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed-configs");
    let Ok(entries) = std::fs::read_dir(&seeds) else {
        eprintln!(
            "{} not found: skipping the config benchmark",
            seeds.display()
        );
        return;
    };
    let largest = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let Some(path) = largest else { return };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let env = |name: &str| (name == "PORT").then(|| "10080".to_string());
    c.bench_function(
        &format!(
            "config parse: {}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        |b| b.iter(|| percore_config::parse_str(&path, black_box(&text), &env).is_ok()),
    );
}

criterion_group!(benches, heads, server_pick, config_parse);
criterion_main!(benches);
