//! A server's live state, shared by every executor: whether it is up (by its checks,
//! the server it tracks, or its agent), how warm it is after a slow start, the weight
//! and `maxconn` its agent asked for, and the consecutive errors live traffic saw.
//! Only atomics: the executor that owns a server's checks writes most of it, every
//! executor's balancer reads it, and a state change bumps the backend's epoch so that
//! each executor rebuilds its view on its next pick.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Sixteenths: the unit of effective weights (HAProxy's `BE_WEIGHT_SCALE`).
pub const WARM: u32 = 16;

/// The live state of one server.
#[derive(Debug)]
pub struct ServerState {
    /// The health checks' (or the tracked server's) verdict.
    pub up: AtomicBool,
    /// The agent's verdict: false after it said `down`, `fail`, `stopped` or `maint`.
    pub agent_up: AtomicBool,
    /// The agent said `drain`: only persistent traffic reaches the server.
    pub drain: AtomicBool,
    /// Slow-start progress in sixteenths of the full weight ([`WARM`]: done).
    pub warmth: AtomicU32,
    /// Weight the agent asked for, in percent of the configured weight.
    pub agent_percent: AtomicU32,
    /// `maxconn:N` from the agent (0: the configured one).
    pub agent_maxconn: AtomicU32,
    /// Consecutive failed checks while up (`observe ... on-error fail-check` adds one).
    pub failures: AtomicU32,
    /// Consecutive errors seen by live traffic (`observe`).
    pub errors: AtomicU32,
    /// `on-error fastinter` asked the checks to hurry.
    pub hurry: AtomicBool,
    /// When the server last came up, in milliseconds since `origin` (slow start).
    pub came_up_ms: AtomicU64,
    /// The reference for `came_up_ms`.
    origin: Instant,
}

impl ServerState {
    /// A server's state at start: up unless `disabled`, warm, at its full weight.
    pub fn new(up: bool) -> Self {
        Self {
            up: AtomicBool::new(up),
            agent_up: AtomicBool::new(true),
            drain: AtomicBool::new(false),
            warmth: AtomicU32::new(WARM),
            agent_percent: AtomicU32::new(100),
            agent_maxconn: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            errors: AtomicU32::new(0),
            hurry: AtomicBool::new(false),
            came_up_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Whether the server is operational: its checks and its agent both say up.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire) && self.agent_up.load(Ordering::Acquire)
    }

    /// The effective weight, in sixteenths, for a configured weight `weight`: the
    /// agent's percentage applies to the configured weight, then the slow-start ramp.
    /// 0 while draining.
    pub fn eweight(&self, weight: u32) -> u32 {
        if self.drain.load(Ordering::Relaxed) {
            return 0;
        }
        let user = (weight * self.agent_percent.load(Ordering::Relaxed) / 100).min(256);
        user * self.warmth.load(Ordering::Relaxed)
    }

    /// Records that the server just came up: with a slow start, it begins at 1/16 of
    /// its weight.
    pub fn mark_came_up(&self, slowstart: Option<Duration>) {
        self.came_up_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Release);
        let warmth = if slowstart.is_some() { 1 } else { WARM };
        self.warmth.store(warmth, Ordering::Release);
    }

    /// The slow-start progress now, in sixteenths, as HAProxy computes it:
    /// `(16 × elapsed + slowstart) / slowstart`, at most [`WARM`].
    pub fn warmth_now(&self, slowstart: Duration) -> u32 {
        let since = self.came_up_ms.load(Ordering::Acquire);
        let elapsed = (self.origin.elapsed().as_millis() as u64).saturating_sub(since);
        let total = slowstart.as_millis().max(1) as u64;
        ((u64::from(WARM) * elapsed + total) / total).min(u64::from(WARM)) as u32
    }

    /// The `maxconn` in force: the agent's if it set one, else `configured` lowered
    /// by `minconn` while the backend is below `fullconn` (HAProxy's dynamic
    /// maxconn), then scaled by the slow-start ramp (at least 1).
    pub fn maxconn_now(
        &self,
        configured: u32,
        minconn: u32,
        backend_conns: u32,
        fullconn: u32,
    ) -> u32 {
        let agent = self.agent_maxconn.load(Ordering::Relaxed);
        let max = if agent > 0 {
            agent
        } else if backend_conns >= fullconn || minconn >= configured {
            configured
        } else {
            minconn.max(
                (u64::from(backend_conns) * u64::from(configured) / u64::from(fullconn.max(1)))
                    as u32,
            )
        };
        let warmth = self.warmth.load(Ordering::Relaxed);
        if warmth < WARM {
            (max * warmth / WARM).max(1)
        } else {
            max
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_limits() {
        let s = ServerState::new(true);
        assert_eq!(s.eweight(10), 160);
        s.agent_percent.store(50, Ordering::Relaxed);
        assert_eq!(s.eweight(10), 80);
        s.mark_came_up(Some(Duration::from_secs(10)));
        assert_eq!(s.eweight(10), 5);
        assert_eq!(s.warmth_now(Duration::from_secs(10)), 1);
        assert_eq!(s.maxconn_now(100, 100, 0, 10), 6);
        s.warmth.store(WARM, Ordering::Relaxed);
        // minconn 10, maxconn 100, fullconn 1000: 10 until the backend carries 100.
        assert_eq!(s.maxconn_now(100, 10, 50, 1000), 10);
        assert_eq!(s.maxconn_now(100, 10, 500, 1000), 50);
        assert_eq!(s.maxconn_now(100, 10, 1000, 1000), 100);
        s.agent_maxconn.store(7, Ordering::Relaxed);
        assert_eq!(s.maxconn_now(100, 10, 1000, 1000), 7);
        s.drain.store(true, Ordering::Relaxed);
        assert_eq!(s.eweight(10), 0);
        assert!(s.is_up());
        s.agent_up.store(false, Ordering::Relaxed);
        assert!(!s.is_up());
    }
}
