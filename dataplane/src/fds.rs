//! What the process's file descriptors are spent on: the descriptor limit, computed as
//! HAProxy computes its `maxsock`, the thresholds the idle server pool keeps under
//! (`tune.pool-high-fd-ratio`, `tune.pool-low-fd-ratio`), and a count of the server
//! connections open now. It only counts; it never opens or closes anything.

use crate::plan::Plan;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Server connections open in the process: in use, kept by a client, or idle in a
/// pool. Changed once per connection opened or closed, never per request.
static SERVER_CONNS: AtomicUsize = AtomicUsize::new(0);

/// Descriptors HAProxy sets aside for what it does not count one by one.
const RESERVED: usize = 10;

/// The descriptors a process running `plan` on `executors` cores may need: both sides
/// of `maxconn` connections, two per pipe when anything splices, the listeners (each
/// executor has its own), the log sockets, a connection per check and agent, and each
/// executor's ring and wake-up descriptors. HAProxy sizes its limit the same way.
pub fn maxsock(plan: &Plan, executors: usize) -> usize {
    let listeners: usize = plan.frontends.iter().map(|f| f.binds.len()).sum();
    let checks: usize = plan
        .backends
        .iter()
        .flat_map(|b| &b.servers)
        .map(|s| usize::from(s.check.enabled) + usize::from(s.agent.enabled))
        .sum();
    // Pipes only count where something splices, as HAProxy counts them.
    let splices = plan.frontends.iter().any(|f| f.settings.splice.any())
        || plan.backends.iter().any(|b| b.settings.splice.any());
    let pipes = if splices { plan.maxpipes } else { 0 };
    RESERVED
        + 2 * plan.maxconn as usize
        + 2 * pipes
        + listeners * executors
        + plan.log_sockets
        + checks
        + 3 * executors
}

/// When the idle pool stops keeping connections, from the process's descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Descriptors in use beyond which no connection is kept idle, and a new server
    /// connection first closes an idle one (`tune.pool-high-fd-ratio`).
    pub high: usize,
    /// Descriptors in use beyond which a core keeps only the one idle connection per
    /// server it may always keep (`tune.pool-low-fd-ratio`).
    pub low: usize,
}

impl Budget {
    /// The thresholds for a limit of `maxsock` descriptors, rounded up as HAProxy does.
    pub fn new(plan: &Plan, maxsock: usize) -> Self {
        let share = |ratio: u32| (maxsock * ratio as usize).div_ceil(100);
        Self {
            high: share(plan.tune.pool_high_fd_ratio),
            low: share(plan.tune.pool_low_fd_ratio),
        }
    }
}

/// Descriptors in use by connections now: `clients` client connections and the
/// server connections open.
pub fn in_use(clients: usize) -> usize {
    clients + SERVER_CONNS.load(Ordering::Relaxed)
}

/// One open server connection, counted from its creation to its drop.
#[derive(Debug)]
pub struct Counted(());

impl Counted {
    /// Counts a server connection just opened.
    pub fn open() -> Self {
        SERVER_CONNS.fetch_add(1, Ordering::Relaxed);
        Counted(())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        SERVER_CONNS.fetch_sub(1, Ordering::Relaxed);
    }
}
