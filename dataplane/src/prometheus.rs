//! The `prometheus-exporter` service (`http-request use-service prometheus-exporter`):
//! the gauges percore keeps so far, under HAProxy's metric names and labels, so that
//! existing dashboards find them. The stats work adds the counters (totals, bytes,
//! errors, timings) as percore starts keeping them.

use crate::core::Core;
use crate::plan::ServerPlan;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// The sections of the output, as `scope=` selects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    Frontend,
    Backend,
    Server,
}

/// A server's state as the exporter labels it (HAProxy's five, of which percore has
/// these three so far).
const STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// The metrics page for a request whose path and query are `target`.
pub fn render(core: &Core, target: &[u8]) -> Vec<u8> {
    let scopes = scopes(target);
    let wanted = |s: Scope| scopes.as_ref().is_none_or(|list| list.contains(&s));
    let plan = &core.plan;
    let mut out = String::new();
    if wanted(Scope::Global) {
        let conns = core.process_conns.load(Ordering::Relaxed);
        let max = plan.maxconn;
        let pipes = plan.maxpipes;
        gauge(
            &mut out,
            "process_current_connections",
            "Client connections open now.",
            [("", conns.to_string())],
        );
        gauge(
            &mut out,
            "process_max_connections",
            "The process's connection limit (maxconn).",
            [("", max.to_string())],
        );
        gauge(
            &mut out,
            "process_max_pipes",
            "The most splice pipes the process may use (maxpipes).",
            [("", pipes.to_string())],
        );
    }
    if wanted(Scope::Frontend) {
        let fes = &plan.frontends;
        gauge(
            &mut out,
            "frontend_current_sessions",
            "Client connections open on the frontend now.",
            fes.iter().map(|f| {
                (
                    proxy_label(&f.name),
                    f.conns.load(Ordering::Relaxed).to_string(),
                )
            }),
        );
        gauge(
            &mut out,
            "frontend_limit_sessions",
            "The frontend's connection limit (maxconn; 0: none).",
            fes.iter()
                .map(|f| (proxy_label(&f.name), f.maxconn.unwrap_or(0).to_string())),
        );
    }
    if wanted(Scope::Backend) {
        let bes = &plan.backends;
        gauge(
            &mut out,
            "backend_current_queue",
            "Requests waiting for a server of the backend now.",
            bes.iter()
                .map(|b| (proxy_label(&b.name), b.queued().to_string())),
        );
        gauge(
            &mut out,
            "backend_current_sessions",
            "Requests on the backend's servers now.",
            bes.iter()
                .map(|b| (proxy_label(&b.name), b.conns().to_string())),
        );
        let count = |backup: bool| {
            bes.iter().map(move |b| {
                let n = b
                    .servers
                    .iter()
                    .filter(|s| s.backup == backup && s.usable())
                    .count();
                (proxy_label(&b.name), n.to_string())
            })
        };
        gauge(
            &mut out,
            "backend_active_servers",
            "Active servers taking traffic now.",
            count(false),
        );
        gauge(
            &mut out,
            "backend_backup_servers",
            "Backup servers able to take traffic now.",
            count(true),
        );
    }
    if wanted(Scope::Server) {
        let servers = || {
            plan.backends.iter().flat_map(|b| {
                b.servers.iter().map(move |s| {
                    (
                        format!(
                            "proxy=\"{}\",server=\"{}\"",
                            escape(&b.name),
                            escape(&s.name)
                        ),
                        s,
                    )
                })
            })
        };
        // One sample per server, labelled with its proxy and name.
        let per_server = |value: fn(&ServerPlan) -> String| {
            servers().map(move |(l, s)| (format!("{{{l}}}"), value(s)))
        };
        gauge(
            &mut out,
            "server_current_queue",
            "Requests waiting for the server now.",
            per_server(|s| s.queued.load(Ordering::Relaxed).to_string()),
        );
        gauge(
            &mut out,
            "server_current_sessions",
            "Requests on the server now.",
            per_server(|s| s.inflight.load(Ordering::Relaxed).to_string()),
        );
        gauge(
            &mut out,
            "server_weight",
            "The server's effective weight now.",
            per_server(|s| s.eweight().div_ceil(16).to_string()),
        );
        let status = servers().flat_map(|(l, s)| {
            let state = match (s.is_up(), s.state.drain.load(Ordering::Relaxed)) {
                (true, true) => "DRAIN",
                (true, false) => "UP",
                (false, _) => "DOWN",
            };
            STATES.map(|st| {
                (
                    format!("{{{l},state=\"{st}\"}}"),
                    u8::from(st == state).to_string(),
                )
            })
        });
        gauge(
            &mut out,
            "server_status",
            "The server's state: 1 for the current one.",
            status,
        );
    }
    out.into_bytes()
}

/// Writes one metric family: its help and type lines, then a sample per label set.
fn gauge(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (impl AsRef<str>, String)>,
) {
    let _ = writeln!(
        out,
        "# HELP haproxy_{name} {help}\n# TYPE haproxy_{name} gauge"
    );
    for (labels, value) in samples {
        let _ = writeln!(out, "haproxy_{name}{} {value}", labels.as_ref());
    }
}

/// The label set naming a frontend or backend.
fn proxy_label(name: &str) -> String {
    format!("{{proxy=\"{}\"}}", escape(name))
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The scopes `scope=` parameters select; `None` for all (no parameter, or `*`).
fn scopes(target: &[u8]) -> Option<Vec<Scope>> {
    let query = target.splitn(2, |&c| c == b'?').nth(1)?;
    let mut list = Vec::new();
    let mut any = false;
    for pair in query.split(|&c| c == b'&') {
        let Some(value) = pair.strip_prefix(b"scope=") else {
            continue;
        };
        any = true;
        match value {
            b"*" => return None,
            b"" => list.clear(),
            b"global" => list.push(Scope::Global),
            b"frontend" => list.push(Scope::Frontend),
            b"backend" => list.push(Scope::Backend),
            b"server" => list.push(Scope::Server),
            _ => {}
        }
    }
    any.then_some(list)
}
