//! Criterion benchmark of the rules engine: a frontend with 50 rules (ACLs on path,
//! Host, source and method; header edits; a URI rewrite; backend switching), run on one
//! request head as the dataplane runs it.

use criterion::{criterion_group, criterion_main, Criterion};
use percore_config::rules::sample::Side;
use percore_dataplane::core::Core;
use percore_dataplane::plan::Plan;
use percore_dataplane::rules::http::{run, Env, Messages, TxnState};
use percore_dataplane::rules::switch_backend;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

const REQUEST: &[u8] = b"GET /api/v1/users/42?id=7&debug=0 HTTP/1.1\r\nHost: www.site1.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nCookie: SERVERID=s1; lang=en\r\nX-Request-Id: abc\r\n\r\n";

/// 10 ACLs, 40 `http-request` rules and 10 `use_backend` lines.
fn config() -> String {
    let mut fe = String::from("frontend fe\n  bind 127.0.0.1:1\n");
    let acls = [
        "acl api path_beg /api/",
        "acl static path_end .css .js .png",
        "acl site1 hdr_sub(host) -i site1.com site1.eu",
        "acl site2 hdr_dom(host) -i site2.com",
        "acl lan src 10.0.0.0/8 192.168.0.0/16 127.0.0.0/8",
        "acl get method GET HEAD",
        "acl debug url_param(debug) 1",
        "acl legacy path_reg ^/img/[0-9]+\\.(png|jpg)$",
        "acl ua_bot req.hdr(user-agent) -m sub -i bot crawler spider",
        "acl has_cookie req.cook(SERVERID) -m found",
    ];
    for a in acls {
        fe.push_str(&format!("  {a}\n"));
    }
    for i in 0..10 {
        fe.push_str(&format!(
            "  http-request set-header X-Site{i} %[req.hdr(host),lower] if site1 api\n"
        ));
        fe.push_str(&format!(
            "  http-request add-header X-Lan{i} 1 if lan !ua_bot\n"
        ));
        fe.push_str(&format!(
            "  http-request del-header X-Never{i} if debug || static\n"
        ));
        fe.push_str(&format!(
            "  http-request set-var(txn.v{i}) path,field(3,/) if get has_cookie\n"
        ));
    }
    for i in 0..9 {
        fe.push_str(&format!(
            "  use_backend b{i} if site2 {{ path_beg /p{i}/ }}\n"
        ));
    }
    fe.push_str("  use_backend b9 if site1 api\n  default_backend b0\n");
    for i in 0..10 {
        fe.push_str(&format!(
            "backend b{i}\n  server s 127.0.0.1:{}\n",
            1000 + i
        ));
    }
    fe
}

fn rules(c: &mut Criterion) {
    let (config, _) =
        percore_config::parse_str(Path::new("bench.cfg"), &config(), &|_| None).expect("valid");
    let plan = Arc::new(Plan::compile(&config).expect("compiles"));
    let core = Core::new(plan.clone(), Arc::new(AtomicU32::new(0)), 1);
    let fe = &plan.frontends[0];
    let env = Env {
        core: &core,
        fe,
        be: None,
        server: None,
    };
    let mut st = TxnState::new(
        "127.0.0.1:5000".parse().expect("address"),
        "127.0.0.1:80".parse().expect("address"),
    );
    let mut req = Vec::with_capacity(4096);
    let mut res = Vec::new();
    c.bench_function("rules: 50-rule frontend, one request", |b| {
        b.iter(|| {
            req.clear();
            req.extend_from_slice(black_box(REQUEST));
            let mut msg = Messages {
                req: &mut req,
                res: &mut res,
                side: Side::Request,
            };
            let verdict = run(
                &fe.rules.http_request,
                &fe.rules.acls,
                &env,
                &mut st,
                &mut msg,
                &[],
            );
            let be = switch_backend(fe, &env.context(&st, &req, &[]));
            black_box((verdict, be))
        })
    });
}

criterion_group!(benches, rules);
criterion_main!(benches);
