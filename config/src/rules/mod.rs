//! HAProxy's rule language, compiled at load: sample expressions, ACLs, conditions,
//! log-format strings and the actions of each rule set. The dataplane evaluates these
//! types directly; nothing here is parsed again per request.

pub mod acl;
pub mod action;
pub mod capture;
pub mod condition;
pub mod logformat;
pub mod pattern;
pub mod sample;

use crate::error::Location;
use acl::Acls;
use action::{HttpAction, Redirect, TcpAction};
use condition::Condition;
use logformat::LogFormat;
use std::time::Duration;

/// Reads a file named in the configuration (pattern files, maps, reply bodies).
pub type FileReader<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Reads a file from the file system, relative to the working directory as HAProxy does.
pub fn read_file(path: &str) -> Result<String, String> {
    let bytes = crate::files::read_regular(path, crate::files::LIST_LIMIT)?;
    String::from_utf8(bytes).map_err(|_| format!("cannot read '{path}': not UTF-8 text"))
}

/// Helpers shared by the rule modules' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// A file reader for tests that name no file.
    pub fn no_files(f: &str) -> Result<String, String> {
        Err(format!("no file {f}"))
    }

    /// A configuration line's words, split on single spaces.
    pub fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }
}

/// One rule: an action, applied when its condition holds.
#[derive(Debug, Clone)]
pub struct Rule<A> {
    /// What the rule does.
    pub action: A,
    /// When (always without one).
    pub cond: Option<Condition>,
    /// The line it came from.
    pub location: Location,
}

/// Where a `use_backend` sends the request.
#[derive(Debug, Clone)]
pub enum BackendTarget {
    /// A backend named in the configuration.
    Static(String),
    /// A name built per request (`use_backend be_%[req.hdr(host)]`); an unknown name
    /// falls back to the default backend, as in HAProxy.
    Dynamic(LogFormat),
}

/// `use_backend TARGET [if|unless COND]`.
#[derive(Debug, Clone)]
pub struct UseBackend {
    /// The backend.
    pub target: BackendTarget,
    /// When.
    pub cond: Option<Condition>,
    /// The line it came from.
    pub location: Location,
}

/// `use-server NAME [if|unless COND]`.
#[derive(Debug, Clone)]
pub struct UseServer {
    /// The server's name in this backend.
    pub server: String,
    /// When.
    pub cond: Option<Condition>,
    /// The line it came from.
    pub location: Location,
}

/// A proxy's rules, each list in the order of its lines.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The ACLs conditions refer to.
    pub acls: Acls,
    /// `tcp-request connection`.
    pub tcp_connection: Vec<Rule<TcpAction>>,
    /// `tcp-request session`.
    pub tcp_session: Vec<Rule<TcpAction>>,
    /// `tcp-request content`.
    pub tcp_content: Vec<Rule<TcpAction>>,
    /// `tcp-request inspect-delay`.
    pub inspect_delay: Option<Duration>,
    /// `tcp-response content` (run in TCP mode).
    pub tcp_response: Vec<Rule<TcpAction>>,
    /// `tcp-response inspect-delay`.
    pub response_inspect_delay: Option<Duration>,
    /// `http-request`.
    pub http_request: Vec<Rule<HttpAction>>,
    /// `redirect` lines, evaluated after the `http-request` rules.
    pub redirects: Vec<Rule<Redirect>>,
    /// `http-response`.
    pub http_response: Vec<Rule<HttpAction>>,
    /// `http-after-response`.
    pub http_after_response: Vec<Rule<HttpAction>>,
    /// `use_backend` lines.
    pub use_backend: Vec<UseBackend>,
    /// `use-server` lines.
    pub use_server: Vec<UseServer>,
}

impl Rules {
    /// Whether the proxy has any HTTP rule (which needs HTTP mode).
    pub fn has_http(&self) -> bool {
        !(self.http_request.is_empty()
            && self.redirects.is_empty()
            && self.http_response.is_empty()
            && self.http_after_response.is_empty())
    }
}
