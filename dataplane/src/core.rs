//! One executor's state: everything a core owns and nobody else touches. Lives in an
//! `Rc` on its thread; nothing here is locked.

use crate::balance::{RoundRobin, ServerMap};
use crate::fds::Budget;
use crate::health::WARM;
use crate::idle::IdleSet;
use crate::pipe::PipePool;
use crate::plan::{Backend, Plan};
use crate::pool::Pool;
use crate::ring::Ring;
use percore_config::{Balance, HashMethod};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A core's state.
pub struct Core {
    /// The shared, read-only plan.
    pub plan: Arc<Plan>,
    /// Round-robin cursors, one per backend.
    pub rr: RefCell<Vec<RoundRobin>>,
    /// This executor's view of each backend's usable servers.
    pub views: RefCell<Vec<View>>,
    /// `static-rr` positions in each backend's server map.
    pub map_cursor: RefCell<Vec<usize>>,
    /// Where each backend's `leastconn` scan starts (ties rotate).
    pub lc_cursor: RefCell<Vec<usize>>,
    /// State of the `random` balancer's generator.
    pub rng: Cell<u64>,
    /// Idle server connections, and this core's use of each server.
    pub pool: Pool,
    /// Pipes for splicing.
    pub pipes: RefCell<PipePool>,
    /// Client connections open on this core.
    pub active: Cell<usize>,
    /// Client connections open in the whole process (for global `maxconn`).
    pub process_conns: Arc<AtomicU32>,
    /// Where log lines and their datagrams are built.
    pub log_bufs: RefCell<(Vec<u8>, Vec<u8>)>,
    /// Response waits that hold a read buffer now (at most [`BUFFERED_WAITS`]).
    buffered_waits: Cell<usize>,
    /// HTTP client connections waiting for their next request.
    pub idle: IdleSet,
}

/// How many requests on one core may wait for their server's response with a read
/// buffer posted. Beyond it, a request waits for its server holding no buffer, as
/// HAProxy's all do, and takes one when the server speaks: thousands of slow
/// responses in flight then cost a few KiB each, not a buffer (`tune.bufsize`) each,
/// while ordinary loads keep the single posted read that waiting with a buffer
/// allows (waiting without one costs a poll and a `recv(2)`). 32 buffers are
/// 512 KiB per core at the default `tune.bufsize`.
pub const BUFFERED_WAITS: usize = 32;

/// A response wait that holds a read buffer; it counts against
/// [`BUFFERED_WAITS`] until the response's head has come.
pub struct BufferedWait<'a>(&'a Cell<usize>);

impl Drop for BufferedWait<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Core {
    /// A core's fresh state for `plan`, one of `executors` cores.
    pub fn new(plan: Arc<Plan>, process_conns: Arc<AtomicU32>, executors: usize) -> Self {
        let rr = plan
            .backends
            .iter()
            .map(|b| RoundRobin::new(b.servers.len()))
            .collect();
        let pipes = PipePool::new(plan.maxpipes.div_ceil(executors.max(1)), plan.tune.pipesize);
        let map_cursor = vec![0; plan.backends.len()];
        let views = plan.backends.iter().map(View::of).collect();
        let budget = Budget::new(&plan, crate::fds::maxsock(&plan, executors));
        let pool = Pool::new(plan.backends.iter().map(|b| b.servers.len()), budget);
        Self {
            plan,
            rr: RefCell::new(rr),
            views: RefCell::new(views),
            map_cursor: RefCell::new(map_cursor.clone()),
            lc_cursor: RefCell::new(map_cursor),
            rng: Cell::new(seed()),
            pool,
            pipes: RefCell::new(pipes),
            active: Cell::new(0),
            process_conns,
            log_bufs: RefCell::default(),
            buffered_waits: Cell::new(0),
            idle: IdleSet::default(),
        }
    }
}

impl Core {
    /// Leave to wait for a response with a read buffer, while fewer than
    /// [`BUFFERED_WAITS`] do on this core.
    pub fn buffered_wait(&self) -> Option<BufferedWait<'_>> {
        let n = self.buffered_waits.get();
        (n < BUFFERED_WAITS).then(|| {
            self.buffered_waits.set(n + 1);
            BufferedWait(&self.buffered_waits)
        })
    }

    /// Client connections open in the whole process.
    pub fn clients(&self) -> usize {
        self.process_conns.load(Ordering::Relaxed) as usize
    }

    /// The next number of this executor's xorshift generator (`rand()`, `random`).
    pub fn random(&self) -> u64 {
        let mut state = self.rng.get();
        let x = crate::balance::xorshift(&mut state);
        self.rng.set(state);
        x
    }
}

/// The servers of a backend that take traffic, as of a state epoch: effective weights
/// in sixteenths with down servers at 0, and HAProxy's server map (and hash ring) built
/// from them.
pub struct View {
    /// The backend's epoch this view was built at.
    pub epoch: u64,
    /// Effective weights.
    pub weights: Vec<u32>,
    /// The server map of those weights.
    pub map: ServerMap,
    /// The hash ring of those weights, with `hash-type consistent` (empty otherwise).
    pub ring: Ring,
}

impl View {
    /// The current view of `be`.
    pub fn of(be: &Backend) -> Self {
        let epoch = be.epoch.load(Ordering::Acquire);
        let active = be.servers.iter().any(|s| !s.backup && s.usable());
        // Backups take over only when no active server is left: all of them with
        // `option allbackups`, otherwise only the first usable one.
        let first_backup = be.servers.iter().position(|s| s.backup && s.usable());
        // HAProxy's static algorithms (`static-rr`, map-based hashing) ignore weight
        // changes (slow start, agent) while a server stays up.
        let fixed = be.balance == Balance::StaticRr
            || (be.hash_type.method == HashMethod::MapBased && be.balance.hashes());
        let weights: Vec<u32> = be
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let takes = s.usable()
                    && if active {
                        !s.backup
                    } else {
                        s.backup && (be.allbackups || Some(i) == first_backup)
                    };
                match (takes, fixed) {
                    (false, _) => 0,
                    (true, true) => s.weight * WARM,
                    (true, false) => s.eweight(),
                }
            })
            .collect();
        let map = ServerMap::new(&weights);
        let ring = match be.hash_type.method {
            HashMethod::Consistent => {
                let points: Vec<(u32, u32)> = be
                    .servers
                    .iter()
                    .map(|s| s.id)
                    .zip(weights.iter().copied())
                    .collect();
                Ring::new(&points)
            }
            HashMethod::MapBased => Ring::default(),
        };
        Self {
            epoch,
            weights,
            map,
            ring,
        }
    }

    /// Rebuilds the view when a server of `be` changed state since it was built.
    pub fn refresh(&mut self, be: &Backend) {
        if be.epoch.load(Ordering::Acquire) != self.epoch {
            *self = View::of(be);
        }
    }
}

/// A non-zero seed that differs between executors and runs.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let thread = std::thread::current().id();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&thread, &mut h);
    (nanos ^ std::hash::Hasher::finish(&h)) | 1
}
