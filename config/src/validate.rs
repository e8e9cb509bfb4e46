//! Checks that need the whole configuration: references between sections, modes that
//! must agree, frontends that cannot work.

use crate::error::{Diagnostic, Location};
use crate::http_errors::ErrorPage;
use crate::model::{Config, Mode, Named, Proxy, Server};
use crate::rules::action::{HttpAction, ReplyBody};
use crate::rules::sample::Fetch;
use crate::rules::BackendTarget;

/// Adds an alert for every cross-section problem in `config`.
pub fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for p in &config.proxies {
        if p.kind.has_frontend() && p.binds.is_empty() {
            out.push(Diagnostic::alert(
                &p.location,
                format!(
                    "{} '{}' has no 'bind' line; declare it as a backend if that was meant",
                    p.kind.keyword(),
                    p.name
                ),
            ));
        }
        if p.kind.has_frontend() {
            for u in &p.rules.use_backend {
                if let BackendTarget::Static(name) = &u.target {
                    let target = Named {
                        name: name.clone(),
                        location: u.location.clone(),
                    };
                    check_target(config, p, &target, out);
                }
            }
            if let Some(target) = &p.default_backend {
                check_target(config, p, target, out);
            }
        }
        for u in &p.rules.use_server {
            if !p.servers.iter().any(|s| s.name == u.server) {
                out.push(alert(
                    p,
                    &u.location,
                    format!("'use-server' names unknown server '{}'", u.server),
                ));
            }
        }
        for (i, s) in p.servers.iter().enumerate() {
            if let Some(e) = track_error(config, p, s) {
                out.push(alert(p, &s.location, format!("server '{}': {e}", s.name)));
            }
            if s.options.agent.enabled && s.options.agent.port.is_none() {
                let e = format!("server '{}': 'agent-check' needs an 'agent-port'", s.name);
                out.push(alert(p, &s.location, e));
            }
            let Some(id) = s.options.id else { continue };
            if let Some(first) = p.servers[..i].iter().find(|o| o.options.id == Some(id)) {
                let e = format!(
                    "server '{}' has the same id ({id}) as server '{}'",
                    s.name, first.name
                );
                out.push(alert(p, &s.location, e));
            }
        }
        let r = &p.rules;
        for rule in [&r.http_request, &r.http_response, &r.http_after_response]
            .into_iter()
            .flatten()
        {
            if let HttpAction::Reply { reply, .. } = &rule.action {
                if let ReplyBody::Imported(name) = &reply.body {
                    if config.http_errors(name).is_none() {
                        let e = format!("'errorfiles' names unknown http-errors section '{name}'");
                        out.push(alert(p, &rule.location, e));
                    }
                }
            }
        }
        for page in &p.errorfiles {
            if let ErrorPage::Import { section, .. } = page {
                if config.http_errors(&section.name).is_none() {
                    let e = format!(
                        "'errorfiles' names unknown http-errors section '{}'",
                        section.name
                    );
                    out.push(alert(p, &section.location, e));
                }
            }
        }
        for acl in &p.rules.acls.list {
            for t in &acl.tests {
                if let Some(be) = backend_argument(&t.sample.fetch) {
                    if config.backend(be).is_none() {
                        let e = format!("ACL '{}' names unknown backend '{be}'", acl.name);
                        out.push(alert(p, &p.location, e));
                    }
                }
            }
        }
        if p.mode == Mode::Http {
            if let Some(rule) = p.rules.tcp_response.first() {
                let e = "'tcp-response content' runs in TCP mode only in percore; in HTTP mode use 'http-response' rules".to_string();
                out.push(alert(p, &rule.location, e));
            }
        }
        if p.mode == Mode::Tcp && p.rules.has_http() {
            out.push(Diagnostic::warning(
                &p.location,
                format!(
                    "{} '{}' is in TCP mode: its HTTP rules are ignored (as in HAProxy)",
                    p.kind.keyword(),
                    p.name
                ),
            ));
        }
    }
}

/// An alert about section `p`, at `at`, prefixed with the section's kind and name.
fn alert(p: &Proxy, at: &Location, what: String) -> Diagnostic {
    Diagnostic::alert(at, format!("{} '{}': {what}", p.kind.keyword(), p.name))
}

/// Why server `s` of `p` cannot track what its `track` names: an unknown backend or
/// server, a server with neither checks nor agent at the end of the chain, or a loop.
fn track_error(config: &Config, p: &Proxy, s: &Server) -> Option<String> {
    s.options.track.as_ref()?;
    let mut at = (p, s);
    for _ in 0..=config.proxies.len() * 64 {
        let Some(t) = &at.1.options.track else {
            let o = &at.1.options;
            return (!o.check.enabled && !o.agent.enabled).then(|| {
                format!(
                    "unable to use {}/{} for tracking as it does not have any check nor agent enabled",
                    at.0.name, at.1.name
                )
            });
        };
        let be = match &t.backend {
            Some(name) => match config.backend(name) {
                Some(be) => be,
                None => return Some(format!("'track': unable to find required backend '{name}'")),
            },
            None => at.0,
        };
        let Some(next) = be.servers.iter().find(|x| x.name == t.server) else {
            return Some(format!(
                "'track': unable to find required server '{}' in backend '{}'",
                t.server, be.name
            ));
        };
        if std::ptr::eq(next, s) {
            return Some("'track' loops back to this server".into());
        }
        at = (be, next);
    }
    Some("'track' chain is too long or loops".into())
}

/// The backend a fetch names as its argument, if any.
fn backend_argument(f: &Fetch) -> Option<&str> {
    match f {
        Fetch::Nbsrv(b)
        | Fetch::BeConn(b)
        | Fetch::Connslots(b)
        | Fetch::Queue(b)
        | Fetch::AvgQueue(b)
        | Fetch::SrvIsUp(b, _) => b.as_deref(),
        _ => None,
    }
}

fn check_target(config: &Config, from: &Proxy, target: &Named, out: &mut Vec<Diagnostic>) {
    match config.backend(&target.name) {
        None => out.push(Diagnostic::alert(
            &target.location,
            format!(
                "{} '{}': unable to find required backend '{}'",
                from.kind.keyword(),
                from.name,
                target.name
            ),
        )),
        Some(be) if from.mode == Mode::Http && be.mode == Mode::Tcp => out.push(Diagnostic::alert(
            &target.location,
            format!(
                "{} '{}' is in HTTP mode but backend '{}' is in TCP mode",
                from.kind.keyword(),
                from.name,
                be.name
            ),
        )),
        Some(_) => {}
    }
}
