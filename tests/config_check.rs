//! `percore -c` on the seed configurations and on broken ones: valid files pass, each
//! refused file is named with its line and keyword, and nothing panics.

mod common;

use common::{percore_bin, require_haproxy, run_percore, write_config};

use std::path::{Path, PathBuf};

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seed-configs")
}

fn seeds() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(seeds_dir())
        .expect("../shared/seed-configs is beside the checkout")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    v.sort();
    v
}

fn check(path: &Path) -> (i32, String, String) {
    let out = std::process::Command::new(common::percore_bin())
        .args(["-c", "-f", path.to_str().unwrap()])
        .env("PORT", "10080")
        .output()
        .unwrap();
    (
        out.status
            .code()
            .expect("exited, not killed by a signal (no panic abort)"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The seeds percore runs today (each has an end-to-end test of its header's claim).
const SUPPORTED_SEEDS: &[&str] = &[
    "01-basic-roundrobin.cfg",
    "02-cookie-insert.cfg",
    "03-cookie-prefix.cfg",
    "04-smtp-source.cfg",
    "07-l7-static-split.cfg",
    "11-smtp-proxy-protocol.cfg",
    "12-proxy-protocol-chain.cfg",
    "13-name-based-vhosts.cfg",
];

#[test]
fn supported_seeds_are_valid() {
    for name in SUPPORTED_SEEDS {
        let (code, stdout, stderr) = check(&seeds_dir().join(name));
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stdout.contains("Configuration file is valid"));
    }
}

#[test]
fn other_seeds_name_the_first_unsupported_keyword_with_file_and_line() {
    let seeds = seeds();
    assert!(seeds.len() >= 15);
    for seed in seeds
        .iter()
        .filter(|p| !SUPPORTED_SEEDS.iter().any(|s| p.ends_with(s)))
    {
        let (code, _, stderr) = check(seed);
        assert_eq!(
            code,
            1,
            "{} should be refused for now:\n{stderr}",
            seed.display()
        );
        let first = stderr.lines().find(|l| l.starts_with("[ALERT]")).unwrap();
        let marker = format!("parsing [{}:", seed.display());
        let at = first
            .find(&marker)
            .unwrap_or_else(|| panic!("no file:line in {first:?}"));
        let rest = &first[at + marker.len()..];
        let line: usize = rest[..rest.find(']').unwrap()].parse().unwrap();
        let text = std::fs::read_to_string(seed).unwrap();
        let source = text.lines().nth(line - 1).unwrap();
        let quoted = first
            .split('\'')
            .nth(1)
            .unwrap_or_else(|| panic!("no quoted keyword in {first:?}"));
        let keyword = quoted.split(' ').next().unwrap();
        assert!(!keyword.is_empty(), "{first:?}");
        assert!(
            source.contains(keyword),
            "{first:?} does not match line {line}: {source:?}"
        );
    }
}

#[test]
fn broken_configs_are_refused_with_line_numbers() {
    let cases: &[(&str, &str)] = &[
        (
            "frontend f\n  bind :1\n  bogus-keyword 1\n",
            ":3] : unknown keyword 'bogus-keyword' in 'frontend' section",
        ),
        (
            "defaults\n  timeout client 10x\n",
            ":2] : 'timeout client': unknown time unit 'x'",
        ),
        (
            "frontend f\n  bind :1\n  default_backend nope\n",
            ":3] : frontend 'f': unable to find required backend 'nope'",
        ),
        (
            "backend b\n  server s 127.0.0.1:80 source 10.0.0.1\n",
            ":2] : server 's': 'source' is not supported by percore yet",
        ),
        (
            "backend b\n  server s 127.0.0.1:80 track c/x\nbackend c\n  server y 127.0.0.1:81 check\n",
            ":2] : backend 'b': server 's': 'track': unable to find required server 'x' in backend 'c'",
        ),
        (
            "backend b\n  server s 127.0.0.1:80 track t\n  server t 127.0.0.1:81\n",
            ":2] : backend 'b': server 's': unable to use b/t for tracking as it does not have any check nor agent enabled",
        ),
        (
            "backend b\n  server s 127.0.0.1:80 agent-check\n",
            ":2] : backend 'b': server 's': 'agent-check' needs an 'agent-port'",
        ),
        (
            "backend b\n  http-check expect rstring (\n",
            ":2] : invalid regex '('",
        ),
        (
            "frontend f\n  bind :1\n  tcp-request content expect-proxy layer4\n",
            ":3] : 'expect-proxy' is only allowed in 'tcp-request connection'",
        ),
        (
            "frontend f\n  bind :1\n  http-request set-header X %[fc_pp_tlv(BOGUS)]\n",
            "'fc_pp_tlv' expects a TLV type (0-255 or a name such as AUTHORITY), got 'BOGUS'",
        ),
        (
            "backend b\n  mode http\n  tcp-response content reject\n",
            ":3] : backend 'b': 'tcp-response content' runs in TCP mode only in percore",
        ),
        (
            "backend b\n  tcp-request content reject if { res.len gt 0 }\n",
            "'tcp-request content' uses a fetch that reads buffered response contents, which is not available there",
        ),
        (
            "frontend f\n  bind :1\n  http-request set-var(txn.x,ifexists) str(1)\n",
            ":3] : 'set-var(txn.x,ifexists)': set-var conditions are not supported by percore yet",
        ),
        (
            "backend b\n  errorfiles nope 503\n",
            ":2] : backend 'b': 'errorfiles' names unknown http-errors section 'nope'",
        ),
        (
            "backend b\n  http-request return status 503 errorfiles nope\n",
            ":2] : backend 'b': 'errorfiles' names unknown http-errors section 'nope'",
        ),
        (
            "http-errors site\n  errorfile 999 /dev/null\n",
            ":2] : 'errorfile': status code '999' cannot be customized",
        ),
        (
            "http-errors site\n  errorloc 503 /x\n",
            ":2] : unknown keyword 'errorloc' in 'http-errors' section",
        ),
        (
            "global\n  log 127.0.0.1:514 local9\n",
            ":2] : unknown log facility 'local9'",
        ),
        (
            "frontend f\n  bind :1\n  log-format \"%ci %Tx\"\n",
            ":3] : unknown log-format variable '%Tx'",
        ),
        (
            "frontend f\n  bind :1\n  http-request set-header X-T %Tr\n",
            ":3] : log-format variable '%Tr' is only available in traffic logs ('log-format'), not in rules",
        ),
        (
            "backend b\n  http-request capture path len 4\n",
            ":2] : 'capture ... len' declares a slot: only in a frontend's http-request rules",
        ),
        (
            "frontend f\n  bind :1\n  http-response capture status id 0\n",
            ":3] : 'capture': no capture slot 0 is declared (yet)",
        ),
        (
            "backend b\n  tcp-check expect status 200\n",
            ":2] : 'tcp-check expect': unknown match 'status'",
        ),
        (
            "backend b\n  hash-type consistent avalanche\n",
            ":2] : 'hash-type': unknown function 'avalanche'",
        ),
        (
            "backend b\n  hash-balance-factor 90\n",
            ":2] : 'hash-balance-factor' must be 0 (off) or greater than 100",
        ),
        (
            "backend b\n  server a 127.0.0.1:80 id 4\n  server b 127.0.0.1:81 id 4\n",
            ":3] : backend 'b': server 'b' has the same id (4) as server 'a'",
        ),
        (
            "backend b\n  balance rdp-cookie\n",
            ":2] : 'balance rdp-cookie' is not supported by percore yet",
        ),
        (
            "frontend f\n  bind :1\n  acl x nosuch /\n",
            ":3] : unknown fetch method 'nosuch'",
        ),
        (
            "frontend f\n  bind :1\n  acl x path,nosuch /\n",
            ":3] : unknown converter 'nosuch'",
        ),
        (
            "frontend f\n  bind :1\n  acl x path_reg (\n",
            ":3] : invalid regex '('",
        ),
        (
            "frontend f\n  bind :1\n  use_backend b if nosuch\nbackend b\n",
            ":3] : no such ACL: 'nosuch'",
        ),
        (
            "frontend f\n  bind :1\n  http-request set-header X %[path\n",
            ":3] : missing ']'",
        ),
        (
            "frontend f\n  bind :1\n  http-request bogus\n",
            ":3] : unknown action 'bogus'",
        ),
        (
            "frontend f\n  bind :1\n  http-request deny if { status 200 }\n",
            ":3] : 'http-request' uses a fetch that reads the HTTP response",
        ),
        (
            "frontend f\n  bind :1\n  tcp-request connection reject if { path / }\n",
            ":3] : 'tcp-request connection' uses a fetch that reads the HTTP request",
        ),
        (
            "global\n  bind :1\n",
            ":2] : unknown keyword 'bind' in 'global' section",
        ),
        (
            "backend b\n  bind :1\n",
            ":2] : 'bind' is not allowed in a 'backend' section",
        ),
        ("frontend f\n", ":1] : frontend 'f' has no 'bind' line"),
        (
            "frontend f\n  bind 'unterminated\n",
            ":2] : unmatched single quote",
        ),
        (".if defined(X\n.endif\n", ":1] : missing ')'"),
        (".if 1\n", ":1] : '.if' block is not closed"),
        (".alert stop here\n", ":1] : stop here"),
        (
            "backend b\n  server s 127.0.0.1:80\n  server s 127.0.0.1:81\n",
            ":3] : server 's' is already declared at",
        ),
    ];
    for (text, expected) in cases {
        let path = write_config(text);
        let (code, _, stderr) = check(&path);
        assert_eq!(code, 1, "{text:?} should be refused");
        assert!(
            stderr.contains(expected),
            "for {text:?}, expected {expected:?} in:\n{stderr}"
        );
        assert!(stderr.contains(&format!("parsing [{}:", path.display())));
    }
}

#[test]
fn conditions_environment_and_several_files() {
    let a = write_config(
        "global\n  nbthread 1\n.if version_atleast(2.4) && !defined(PERCORE_TEST_UNSET)\ndefaults\n  mode http\n.elif 1\n  this-is-never-parsed\n.else\n  nor-this\n.endif\n.if streq(\"${PERCORE_TEST_UNSET-x}\",x)\n.warning env default works\n.endif\n",
    );
    let dir = common::temp_path("dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("b.cfg"), "backend be\n  server s 127.0.0.1:9\n").unwrap();
    std::fs::write(
        dir.join("a.cfg"),
        "frontend fe\n  bind 127.0.0.1:\"${PERCORE_TEST_PORT}\"\n  default_backend be\n",
    )
    .unwrap();
    std::fs::write(dir.join("ignored.txt"), "garbage\n").unwrap();
    let out = std::process::Command::new(common::percore_bin())
        .args(["-c", "-f", a.to_str().unwrap(), "-f", dir.to_str().unwrap()])
        .env("PERCORE_TEST_PORT", "10099")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("[WARNING]") && stderr.contains("env default works"),
        "{stderr}"
    );
}

#[test]
fn command_line() {
    let v = run_percore(&["-v"]);
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("percore version"));
    assert_eq!(
        run_percore(&["-cc", "version_atleast(2.0)"]).status.code(),
        Some(0)
    );
    assert_eq!(
        run_percore(&["-cc", "feature(NOPE)"]).status.code(),
        Some(1)
    );
    let sf = run_percore(&["-f", "x.cfg", "-sf", "1"]);
    assert_eq!(sf.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&sf.stderr).contains("not supported yet"));
    let none = run_percore(&[]);
    assert_eq!(none.status.code(), Some(1));
    let missing = run_percore(&["-c", "-f", "/nonexistent/percore.cfg"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/percore.cfg"));
}

#[test]
fn never_panics_on_mangled_seeds() {
    // Every prefix cut and every line dropped from every seed: refused or accepted,
    // never a crash.
    for seed in seeds() {
        let text = std::fs::read_to_string(&seed).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut variants: Vec<String> = (0..lines.len())
            .map(|drop| {
                lines
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != drop)
                    .map(|(_, l)| *l)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        variants.push(text.chars().rev().collect());
        variants.push(text.replace(' ', "\""));
        for v in variants {
            let path = write_config(&v);
            let (code, _, _) = check(&path);
            assert!(code == 0 || code == 1);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `-cc` reads its expression as an `.if` line is read, quotes, escapes and
/// variables processed, as haproxy does (#17).
#[test]
fn condition_expressions_are_read_as_if_lines_as_in_haproxy() {
    require_haproxy();
    let cases = [
        ("streq(foo,'foo')", Some(0)),
        ("streq(foo,\"bar\")", Some(1)),
        ("strneq(\"$PERCORE_CC_TEST\",x)", Some(0)),
        ("streq(\"${PERCORE_CC_TEST}\",set)", Some(0)),
        ("defined(PERCORE_CC_TEST) && version_atleast(2.4)", Some(0)),
    ];
    for (expr, expected) in cases {
        let ours = std::process::Command::new(percore_bin())
            .args(["-cc", expr])
            .env("PERCORE_CC_TEST", "set")
            .output()
            .unwrap();
        let theirs = std::process::Command::new("haproxy")
            .args(["-cc", expr])
            .env("PERCORE_CC_TEST", "set")
            .output()
            .unwrap();
        assert_eq!(theirs.status.code(), expected, "haproxy -cc {expr}");
        assert_eq!(ours.status.code(), expected, "percore -cc {expr}");
    }
}
