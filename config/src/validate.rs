//! Checks that need the whole configuration: references between sections, modes that
//! must agree, frontends that cannot work.

use crate::error::Diagnostic;
use crate::model::{Config, Mode, Named, Proxy};

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
            for target in p.use_backend.iter().chain(&p.default_backend) {
                check_target(config, p, target, out);
            }
        }
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
