//! Phase 3, the server: persistence (cookie, `use-server`), the hash the balance
//! algorithm needs, getting a server connection and deciding where a retry goes.
//! Never reads or writes a byte of the request.

use super::Session;
use crate::balance::{hash, header_value, source_hash, uri_key, url_param};
use crate::connect::{connect, Choice, ConnectError, Retry, Reuse, ServerConn, Wanted};
use crate::core::Core;
use crate::http::cookie;
use crate::log::record::{ClientCookie, ServerCookie};
use crate::plan::Plan;
use crate::rules::holds;
use percore_config::{Balance, CookieMode};

/// What a response does with the persistence cookie.
pub(super) enum CookieEdit {
    /// Insert mode: add this `Set-Cookie` value.
    Insert { set: String, nocache: bool },
    /// Prefix mode: prefix the server's own cookie `name` with `server~`.
    Prefix {
        name: String,
        server: String,
        nocache: bool,
    },
}

impl<'a> Session<'a> {
    /// Finds (and, as the mode says, removes or un-prefixes) the persistence cookie in
    /// the request; returns the server value the client presented.
    pub(super) fn take_cookie(&mut self) -> Option<String> {
        let c = self.be.cookie.as_ref()?;
        let strip = c.mode == CookieMode::Insert && c.indirect;
        cookie::take_from_request(
            &mut self.req_head,
            &c.name,
            strip,
            c.mode == CookieMode::Prefix,
        )
    }

    /// The server a presented cookie designates, if it is up (even at weight 0, or
    /// down with `option persist`, as in HAProxy); otherwise the backend's algorithm
    /// decides.
    pub(super) fn choice(&self, presented: Option<&str>) -> Choice {
        if let Some(i) = self.use_server() {
            return Choice::Server(i);
        }
        let persisted = presented.and_then(|v| {
            self.be
                .servers
                .iter()
                .position(|s| s.cookie.as_deref() == Some(v) && (s.is_up() || self.be.persist))
        });
        match persisted {
            Some(i) => Choice::Server(i),
            None => self.request_hash().map_or(Choice::Balance, Choice::Hash),
        }
    }

    /// The server a `use-server` rule names, when its condition holds and the server
    /// is up (weight 0 included) or `option persist` is set, as in HAProxy.
    pub(super) fn use_server(&self) -> Option<usize> {
        let env = self.env();
        let cx = env.context(&self.txn, &self.req_head, &[]);
        self.be.use_server.iter().find_map(|(i, cond)| {
            let usable = self.be.servers[*i].is_up() || self.be.persist;
            (usable && holds(cond, &self.be.rules.acls, &cx)).then_some(*i)
        })
    }

    /// What the response to the current request must do with the persistence cookie,
    /// once server `s` was chosen.
    pub(super) fn cookie_edit_for(&self, s: usize, presented: Option<&str>) -> Option<CookieEdit> {
        let c = self.be.cookie.as_ref()?;
        let value = self.be.servers[s].cookie.clone()?;
        match c.mode {
            CookieMode::Insert if presented == Some(value.as_str()) => None,
            CookieMode::Insert => {
                let mut set = format!("{}={value}; path=/", c.name);
                for d in &c.domains {
                    set.push_str(&format!("; domain={d}"));
                }
                if c.httponly {
                    set.push_str("; HttpOnly");
                }
                if c.secure {
                    set.push_str("; Secure");
                }
                Some(CookieEdit::Insert {
                    set,
                    nocache: c.nocache,
                })
            }
            CookieMode::Prefix => Some(CookieEdit::Prefix {
                name: c.name.clone(),
                server: value,
                nocache: c.nocache,
            }),
        }
    }

    /// The hash that picks the server for the current request, for hashing algorithms;
    /// `None` means round-robin (also when a `url_param` or `hdr` key is absent, as in
    /// HAProxy).
    pub(super) fn request_hash(&self) -> Option<u32> {
        let ht = self.be.hash_type;
        match &self.be.balance {
            Balance::Uri(options) => Some(hash(uri_key(self.target(), options), ht)),
            Balance::Source => Some(source_hash(self.txn.src.ip(), ht)),
            Balance::UrlParam(name) => url_param(self.target(), name).map(|v| hash(v, ht)),
            Balance::Hdr(name) => header_value(&self.req_head, name).map(|v| hash(v, ht)),
            Balance::RoundRobin
            | Balance::StaticRr
            | Balance::LeastConn
            | Balance::First
            | Balance::Random(_) => None,
        }
    }

    /// Notes in the log record what the persistence cookie did.
    pub(super) fn note_cookies(&mut self, presented: Option<&str>, server: usize) {
        let Some(rec) = self.log.as_mut().filter(|_| self.be.cookie.is_some()) else {
            return;
        };
        rec.client_cookie = match presented {
            None => ClientCookie::None,
            Some(v) => match self
                .be
                .servers
                .iter()
                .position(|s| s.cookie.as_deref() == Some(v))
            {
                Some(i) if i == server => ClientCookie::Valid,
                Some(_) => ClientCookie::Down,
                None => ClientCookie::Invalid,
            },
        };
        rec.server_cookie = match &self.cookie_edit {
            Some(CookieEdit::Insert { .. }) => ServerCookie::Inserted,
            Some(CookieEdit::Prefix { .. }) => ServerCookie::Rewritten,
            None => ServerCookie::None,
        };
    }

    /// Gets a server connection for the current request, avoiding `avoid` when another
    /// server can take it.
    pub(super) async fn server(
        &mut self,
        reuse: Reuse,
        choice: Choice,
        avoid: Option<usize>,
    ) -> Result<ServerConn<'a>, ConnectError> {
        let core: &'a Core = self.core;
        let plan: &'a Plan = &core.plan;
        // Boxed, like the exchanges: connecting and queueing are large futures.
        let connecting = Box::pin(connect(
            core,
            plan,
            self.be_id,
            Wanted {
                reuse,
                choice,
                origin: self.origin,
                avoid,
            },
            &mut self.private,
            &mut self.attempts,
        ));
        connecting.await
    }

    /// Counts a retry of the current request, which failed on `server`, and says
    /// which server the next attempt avoids (the failed one, when `option redispatch`
    /// moves the retry, as for a failed connection).
    pub(super) fn retry_avoiding(&mut self, server: usize, choice: Choice) -> Option<usize> {
        self.attempts.retries += 1;
        let retry = Retry::after(self.be, self.attempts.retries, server, choice);
        let moves = retry.redispatches(self.be.redispatch, self.be.retries);
        self.attempts.redispatched = moves;
        moves.then_some(server)
    }
}
