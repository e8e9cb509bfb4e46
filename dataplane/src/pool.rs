//! Idle server connections, per executor and per server: owned by one core, never
//! locked. A connection goes back here after a response that allows reuse and is taken
//! for a later request according to `http-reuse`.

use compio::net::TcpStream;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long an idle server connection is kept.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// Connections idle for less than this are reused without a liveness check (one
/// syscall saved per request); a bodiless request that meets one the server has
/// closed is retried on a fresh connection, others get a 502 as with HAProxy.
pub const TRUSTED_IDLE: Duration = Duration::from_secs(1);
/// The most idle connections kept per server on one executor.
pub const MAX_IDLE_PER_SERVER: usize = 256;

/// A server, as (backend index, server index).
pub type ServerKey = (usize, usize);

/// A server connection waiting for its next request.
pub struct Idle {
    /// The connection.
    pub stream: TcpStream,
    /// When it became idle.
    pub since: Instant,
}

/// One executor's idle connections, by backend then server (plain indexing, no hashing
/// on the request path). Each server's list is oldest first: taking uses the newest,
/// a full list drops the oldest, both in constant time.
pub struct Pool {
    idle: Vec<Vec<VecDeque<Idle>>>,
}

impl Pool {
    /// An empty pool for backends with these numbers of servers.
    pub fn new(servers_per_backend: impl Iterator<Item = usize>) -> Self {
        Self {
            idle: servers_per_backend
                .map(|n| (0..n).map(|_| VecDeque::new()).collect())
                .collect(),
        }
    }

    /// Takes the most recently used live connection to `key`, dropping stale ones.
    pub fn take(&mut self, key: ServerKey) -> Option<TcpStream> {
        let list = self.idle.get_mut(key.0)?.get_mut(key.1)?;
        while let Some(idle) = list.pop_back() {
            let age = idle.since.elapsed();
            if age < TRUSTED_IDLE || (age < IDLE_LIMIT && !crate::io::looks_closed(&idle.stream)) {
                return Some(idle.stream);
            }
            crate::io::discard(idle.stream);
        }
        None
    }

    /// Gives a connection back for reuse.
    pub fn put(&mut self, key: ServerKey, stream: TcpStream) {
        let Some(list) = self.idle.get_mut(key.0).and_then(|b| b.get_mut(key.1)) else {
            return;
        };
        if list.len() >= MAX_IDLE_PER_SERVER {
            if let Some(oldest) = list.pop_front() {
                crate::io::discard(oldest.stream);
            }
        }
        list.push_back(Idle {
            stream,
            since: Instant::now(),
        });
    }
}
