//! Server connections: each one counted while it is open, and the idle ones kept per
//! executor and per server for later requests, owned by one core and never locked.
//!
//! The keeping policy is HAProxy's: a core always keeps one idle connection to a server,
//! and more only while the process uses few descriptors and the connections open to
//! the server stay within what recent load needed; every `pool-purge-delay` half of the
//! excess is closed. `pool-max-conn` bounds a server's idle connections in the process.
//! This module never waits: it takes, keeps and closes at once.

use crate::fds::{self, Budget};
use crate::plan::{Plan, ServerPlan};
use compio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long an idle server connection is kept.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// Connections idle for less than this are reused without a liveness check (one
/// syscall saved per request); a bodiless request that meets one the server has
/// closed is retried on a fresh connection, others get a 502 as with HAProxy.
pub const TRUSTED_IDLE: Duration = Duration::from_secs(1);
/// The most idle connections kept per server on one executor, whatever the policy
/// allows.
pub const MAX_IDLE_PER_SERVER: usize = 256;

/// A server, as (backend index, server index).
pub type ServerKey = (usize, usize);

/// An open connection to a server, counted in [`fds::in_use`] until it is dropped.
#[derive(Debug)]
pub struct ServerStream {
    stream: TcpStream,
    _counted: fds::Counted,
}

impl ServerStream {
    /// A connection just opened.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            _counted: fds::Counted::open(),
        }
    }

    /// Closes the connection with a reset (see [`crate::io::discard`]).
    pub fn discard(self) {
        crate::io::discard(self.stream);
    }
}

impl Deref for ServerStream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

/// A server connection waiting for its next request.
struct Idle {
    stream: ServerStream,
    /// When it became idle.
    since: Instant,
}

/// How many of this core's connections to a server serve a request now, the most
/// seen since the last purge, and the estimate of the need made of them.
#[derive(Debug, Default)]
pub struct Uses {
    used: Cell<u32>,
    max_used: Cell<u32>,
    /// HAProxy's estimate of the connections the server needs: raised at once to what
    /// is in use, lowered at each purge towards the most that were in use.
    est_need: Cell<u32>,
}

impl Uses {
    /// A request took a connection to the server.
    pub fn take(&self) {
        let used = self.used.get() + 1;
        self.used.set(used);
        self.max_used.set(self.max_used.get().max(used));
        self.est_need.set(self.est_need.get().max(used));
    }

    /// A request gave its connection back.
    pub fn give_back(&self) {
        self.used.set(self.used.get().saturating_sub(1));
    }
}

/// One server's idle connections on this core, and what the policy tracks of it.
#[derive(Default)]
struct ServerIdle {
    /// Oldest first: taking uses the newest, purging closes the oldest.
    idle: RefCell<VecDeque<Idle>>,
    uses: Uses,
    /// The next purge, while the server has idle connections.
    purge_at: Cell<Option<Instant>>,
}

/// One executor's server connections that wait for a request, by backend then server
/// (plain indexing, no hashing on the request path).
pub struct Pool {
    servers: Vec<Vec<ServerIdle>>,
    budget: Budget,
}

impl Pool {
    /// An empty pool for backends with these numbers of servers, keeping within
    /// `budget`.
    pub fn new(servers_per_backend: impl Iterator<Item = usize>, budget: Budget) -> Self {
        Self {
            servers: servers_per_backend
                .map(|n| (0..n).map(|_| ServerIdle::default()).collect())
                .collect(),
            budget,
        }
    }

    /// The descriptor thresholds this pool keeps under.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// What the policy counts of this core's use of `key`.
    pub fn uses(&self, key: ServerKey) -> &Uses {
        &self.servers[key.0][key.1].uses
    }

    /// Takes the most recently used live connection to `key`, dropping stale ones.
    pub fn take(&self, key: ServerKey, sp: &ServerPlan) -> Option<ServerStream> {
        let mut list = self.servers.get(key.0)?.get(key.1)?.idle.borrow_mut();
        while let Some(idle) = list.pop_back() {
            left_pool(sp);
            let age = idle.since.elapsed();
            if age < TRUSTED_IDLE || (age < IDLE_LIMIT && !crate::io::looks_closed(&idle.stream)) {
                return Some(idle.stream);
            }
            idle.stream.discard();
        }
        None
    }

    /// Gives back a connection whose request is complete (its slot not yet dropped, so
    /// that it still counts as used, as in HAProxy), keeping it for reuse if the policy
    /// allows, closing it otherwise. `clients` is the process's client connections, for
    /// the descriptors in use.
    pub fn put(&self, key: ServerKey, sp: &ServerPlan, stream: ServerStream, clients: usize) {
        let Some(server) = self.servers.get(key.0).and_then(|b| b.get(key.1)) else {
            return;
        };
        let mut list = server.idle.borrow_mut();
        let in_use = fds::in_use(clients);
        let used = server.uses.used.get();
        let kept = list.len() as u32;
        let within_need = || {
            in_use < self.budget.low
                && used + kept <= used.max(server.uses.est_need.get()) + sp.pool.low_conn
        };
        let keep = !sp.pool.purge_delay.is_zero()
            && in_use < self.budget.high
            && list.len() < MAX_IDLE_PER_SERVER
            && (list.is_empty() || within_need())
            && joined_pool(sp);
        if !keep {
            stream.discard();
            return;
        }
        let now = Instant::now();
        list.push_back(Idle { stream, since: now });
        if server.purge_at.get().is_none() {
            server.purge_at.set(Some(now + sp.pool.purge_delay));
        }
    }

    /// Closes one idle connection, to `key` if it has one, otherwise to any server,
    /// to make room for a new connection. Whether one was closed.
    pub fn close_one(&self, plan: &Plan, key: ServerKey) -> bool {
        let mine = std::iter::once(key);
        let all = self
            .servers
            .iter()
            .enumerate()
            .flat_map(|(b, s)| (0..s.len()).map(move |i| (b, i)));
        for k in mine.chain(all) {
            let Some(server) = self.servers.get(k.0).and_then(|b| b.get(k.1)) else {
                continue;
            };
            if let Some(oldest) = server.idle.borrow_mut().pop_front() {
                left_pool(&plan.backends[k.0].servers[k.1]);
                oldest.stream.discard();
                return true;
            }
        }
        false
    }

    /// Closes, for each server whose purge time has come, half of its idle connections
    /// beyond the most in use since the last purge (or the estimate of the need, when
    /// higher), and moves the estimate, as HAProxy's purge task does. Returns when the
    /// next purge is due, if any server has idle connections.
    pub fn purge(&self, plan: &Plan, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (b, servers) in self.servers.iter().enumerate() {
            for (s, server) in servers.iter().enumerate() {
                let Some(at) = server.purge_at.get() else {
                    continue;
                };
                let sp = &plan.backends[b].servers[s];
                if at <= now {
                    let mut list = server.idle.borrow_mut();
                    let used = server.uses.used.get();
                    let max_used = server.uses.max_used.get();
                    let est_need = &server.uses.est_need;
                    let need = max_used.max(est_need.get());
                    let exceed = (used + list.len() as u32).saturating_sub(need);
                    est_need.set(((est_need.get() + max_used) / 2).max(max_used));
                    server.uses.max_used.set(used);
                    for _ in 0..exceed.div_ceil(2) {
                        if let Some(oldest) = list.pop_front() {
                            left_pool(sp);
                            oldest.stream.discard();
                        }
                    }
                    server
                        .purge_at
                        .set((!list.is_empty()).then(|| now + sp.pool.purge_delay));
                }
                if let Some(at) = server.purge_at.get() {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        next
    }
}

/// Counts a connection into the server's idle connections of the process when
/// `pool-max-conn` bounds them; false when the bound is reached. (Without a bound the
/// count is not kept: no shared counter is touched per request.)
fn joined_pool(sp: &ServerPlan) -> bool {
    let Some(max) = sp.pool.max_conn else {
        return true;
    };
    sp.idle
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Counts a connection out of the server's idle connections (see [`joined_pool`]).
fn left_pool(sp: &ServerPlan) {
    if sp.pool.max_conn.is_some() {
        sp.idle.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one executor's purges for as long as the executor runs: sleeps until the next
/// purge is due, or for the shortest `pool-purge-delay` when none is (a connection
/// kept meanwhile is due no sooner than that).
pub async fn purge_loop(core: std::rc::Rc<crate::core::Core>) {
    let plan = core.plan.clone();
    let shortest = plan
        .backends
        .iter()
        .flat_map(|b| &b.servers)
        .map(|s| s.pool.purge_delay)
        .filter(|d| !d.is_zero())
        .min();
    let Some(shortest) = shortest else {
        return;
    };
    loop {
        let now = Instant::now();
        let next = core.pool.purge(&plan, now).unwrap_or(now + shortest);
        compio::time::sleep_until(next).await;
    }
}
