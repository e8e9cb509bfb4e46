//! Getting a server connection for a request: pick a server, take a server slot
//! (`maxconn`, waiting in the queue up to `timeout queue`), reuse an idle connection or
//! connect, retry and redispatch as `retries` and `option redispatch` say, and send the
//! PROXY protocol header a server asks for.

use crate::balance;
use crate::checks::Observed;
use crate::core::Core;
use crate::io::{write_all, Deadline, IoFail};
use crate::log::record::{Cause, Phase};
use crate::plan::{Backend, BackendId, ServerPlan};
use crate::pool::{ServerKey, ServerStream, Uses};
use crate::proxy_protocol;
use compio::net::TcpStream;
use percore_config::{Balance, HashMethod, SendProxy};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Why no server connection could be had; each maps to 503 in HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The backend has no usable server.
    #[error("no server available")]
    NoServer,
    /// Every attempt failed.
    #[error("connection to server failed")]
    Failed,
    /// The server's queue is full.
    #[error("queue full")]
    QueueFull,
    /// The request waited longer than `timeout queue`.
    #[error("queue timeout")]
    QueueTimeout,
}

/// A taken server slot, given back by [`Slot::release`] or when dropped. It counts in
/// the server's in-flight requests (all executors) and in this core's use of the
/// server (what its idle pool estimates the need from).
pub struct Slot<'p> {
    server: &'p ServerPlan,
    uses: &'p Uses,
    /// Not yet given back.
    held: Cell<bool>,
}

impl<'p> Slot<'p> {
    fn taken(server: &'p ServerPlan, uses: &'p Uses) -> Self {
        uses.take();
        Self {
            server,
            uses,
            held: Cell::new(true),
        }
    }

    /// Gives the slot back as soon as the server has sent its whole response, before
    /// the client is sent the last of it: a client that reads its response and sends
    /// its next request at once then finds the server free, on any executor. The
    /// connection still counts in this core's use of the server until the slot is
    /// dropped, once the connection is back in the idle pool or closed, as HAProxy
    /// counts a connection used until it joins an idle list: otherwise the pool's
    /// estimate of the need misses the connections between the two, and keeps too few.
    pub fn release(&self) {
        if self.held.replace(false) {
            self.server.inflight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.release();
        self.uses.give_back();
    }
}

/// A server connection ready for a request.
pub struct ServerConn<'p> {
    /// The connection.
    pub stream: ServerStream,
    /// Which server it goes to.
    pub key: ServerKey,
    /// It carried requests before (a failure before any response byte may be retried).
    pub reused: bool,
    /// The server slot this request holds.
    pub slot: Slot<'p>,
}

/// How the server is chosen for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// By the backend's algorithm.
    Balance,
    /// By this hash, on the server map (hashing algorithms).
    Hash(u32),
    /// This server (persistence).
    Server(usize),
}

/// How idle connections may be used for this request.
#[derive(Debug, Clone, Copy)]
pub struct Reuse {
    /// Idle connections of other clients may be taken.
    pub shared: bool,
}

/// The client's addresses, for PROXY headers.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// Client address.
    pub src: SocketAddr,
    /// Address the client connected to.
    pub dst: SocketAddr,
}

/// What a request asks of its server connection.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// Which idle connections it may take.
    pub reuse: Reuse,
    /// How its server is chosen.
    pub choice: Choice,
    /// Its client's addresses (for PROXY headers).
    pub origin: Origin,
    /// A server to avoid, when others can take the request (the one a retried request
    /// failed on).
    pub avoid: Option<usize>,
}

/// What getting a server connection went through, for the logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempts {
    /// When the request had its server slot (left the queue).
    pub slot_at: Option<Instant>,
    /// When the connection was ready.
    pub ready_at: Option<Instant>,
    /// The server last tried.
    pub server: Option<usize>,
    /// Connection retries.
    pub retries: u32,
    /// The last retry went to another server.
    pub redispatched: bool,
    /// The last attempt timed out (rather than being refused).
    pub timed_out: bool,
    /// How many requests were queued on the server when this one joined them.
    pub queue_pos: u32,
}

impl Attempts {
    /// How many retries `be`'s `retries` still allows the request: connection and
    /// response retries count against the same number, as in HAProxy.
    pub fn retries_left(&self, be: &Backend) -> u32 {
        be.retries.saturating_sub(self.retries)
    }

    /// How a failure `e` to get a connection ends the transaction, for the logs.
    pub fn end_of(&self, e: &ConnectError) -> (Cause, Phase) {
        match e {
            ConnectError::QueueFull | ConnectError::QueueTimeout => {
                (Cause::ServerTimeout, Phase::Queue)
            }
            ConnectError::Failed if self.timed_out => (Cause::ServerTimeout, Phase::Connect),
            ConnectError::Failed | ConnectError::NoServer => (Cause::ServerAbort, Phase::Connect),
        }
    }
}

/// Takes a slot on `server`, queueing up to `queue_deadline` when it is full.
async fn take_slot<'p>(
    be: &Backend,
    (server, uses): (&'p ServerPlan, &'p Uses),
    queue_deadline: Instant,
    trace: &mut Attempts,
) -> Result<Slot<'p>, ConnectError> {
    if server.maxconn.is_none() {
        server.inflight.fetch_add(1, Ordering::Relaxed);
        return Ok(Slot::taken(server, uses));
    }
    let mut queued = false;
    let result = loop {
        // Recomputed on each try: slow start, `minconn`/`fullconn` and the agent move it.
        let max = server.maxconn_now(be).unwrap_or(u32::MAX);
        let cur = server.inflight.load(Ordering::Relaxed);
        if cur < max
            && server
                .inflight
                .compare_exchange(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            break Ok(Slot::taken(server, uses));
        }
        if cur < max {
            continue;
        }
        if !queued {
            let waiting = server.queued.fetch_add(1, Ordering::Relaxed);
            trace.queue_pos = waiting + 1;
            queued = true;
            if server.maxqueue.is_some_and(|mq| waiting >= mq) {
                break Err(ConnectError::QueueFull);
            }
        }
        if Instant::now() >= queue_deadline {
            break Err(ConnectError::QueueTimeout);
        }
        // Slots are released by any executor; a short sleep re-checks without a lock.
        compio::time::sleep(Duration::from_millis(1)).await;
    };
    if queued {
        server.queued.fetch_sub(1, Ordering::Relaxed);
    }
    result
}

/// Gets a connection to a server of backend `be_id` for one request.
pub async fn connect<'p>(
    core: &'p Core,
    plan: &'p crate::plan::Plan,
    be_id: BackendId,
    want: Wanted,
    private: &mut Option<(ServerKey, ServerStream)>,
    trace: &mut Attempts,
) -> Result<ServerConn<'p>, ConnectError> {
    let Wanted {
        reuse,
        choice,
        origin,
        avoid,
    } = want;
    let be: &Backend = &plan.backends[be_id];
    // A redispatch (`exclude`) moves to the next point of a consistent hash ring, as
    // in HAProxy; otherwise to the next server by round-robin: a map-based hash would
    // only pick the failed server again.
    let load = |i: usize| be.servers[i].inflight.load(Ordering::Relaxed);
    let pick = |exclude: Option<usize>| {
        let mut views = core.views.borrow_mut();
        let view = &mut views[be_id];
        view.refresh(be);
        match (exclude, choice, &be.balance) {
            (None, Choice::Server(i), _) => Some(i),
            (_, Choice::Hash(h), _) if be.hash_type.method == HashMethod::Consistent => {
                view.ring.get(h, exclude, be.hash_balance_factor, load)
            }
            (None, Choice::Hash(h), _) => view.map.get(h),
            (None, Choice::Balance, Balance::StaticRr) => {
                view.map.next(&mut core.map_cursor.borrow_mut()[be_id])
            }
            (None, Choice::Balance, Balance::LeastConn) => {
                let mut cursor = core.lc_cursor.borrow_mut();
                cursor[be_id] = cursor[be_id].wrapping_add(1);
                balance::least_conn(
                    &view.weights,
                    load,
                    cursor[be_id] % view.weights.len().max(1),
                )
            }
            (None, Choice::Balance, Balance::First) => {
                balance::first(&view.weights, |i| be.servers[i].maxconn_now(be), load)
            }
            (None, Choice::Balance, Balance::Random(draws)) => {
                let mut rng = core.rng.get();
                let pick = balance::random(&view.map, *draws, &mut rng, load);
                core.rng.set(rng);
                pick
            }
            _ => core.rr.borrow_mut()[be_id].pick(&view.weights, exclude),
        }
    };
    let mut server = avoid
        .and_then(|a| pick(Some(a)))
        .or_else(|| pick(None))
        .ok_or(ConnectError::NoServer)?;
    let connect_timeout = be.settings.timeouts.connect;
    let queue_deadline = Instant::now()
        + be.settings
            .timeouts
            .queue
            .or(connect_timeout)
            .unwrap_or(Duration::from_secs(5));
    let mut retries_left = if be.retry_on.conn_failure {
        trace.retries_left(be)
    } else {
        0
    };
    loop {
        let sp = &be.servers[server];
        let key = (be_id, server);
        trace.server = Some(server);
        let slot = take_slot(be, (sp, core.pool.uses(key)), queue_deadline, trace).await?;
        trace.slot_at = Some(Instant::now());
        if private.as_ref().is_some_and(|(k, _)| *k == key) {
            if let Some((_, stream)) = private.take() {
                if !crate::io::looks_closed(&stream) {
                    trace.ready_at = trace.slot_at;
                    return Ok(ServerConn {
                        stream,
                        key,
                        reused: true,
                        slot,
                    });
                }
            }
        }
        if reuse.shared && sp.send_proxy.is_none() {
            if let Some(stream) = core.pool.take(key, sp) {
                trace.ready_at = trace.slot_at;
                return Ok(ServerConn {
                    stream,
                    key,
                    reused: true,
                    slot,
                });
            }
        }
        // As in HAProxy: with many descriptors in use, a new connection first closes
        // an idle one.
        if crate::fds::in_use(core.clients()) > core.pool.budget().high {
            core.pool.close_one(plan, key);
        }
        let attempt: Deadline = connect_timeout.map(|d| Instant::now() + d);
        let mut opened = open(sp, attempt, origin).await;
        // Out of descriptors: an idle connection gives its own up, once.
        if opened.as_ref().is_err_and(IoFail::out_of_descriptors) && core.pool.close_one(plan, key)
        {
            opened = open(sp, attempt, origin).await;
        }
        let seen = match opened {
            Ok(_) => Observed::Fine,
            Err(_) => Observed::ConnectError,
        };
        crate::checks::observe(&core.plan, be_id, server, seen);
        trace.timed_out = matches!(opened, Err(IoFail::Timeout));
        match opened {
            Ok(stream) => {
                trace.ready_at = Some(Instant::now());
                return Ok(ServerConn {
                    stream,
                    key,
                    reused: false,
                    slot,
                });
            }
            Err(_) if retries_left == 0 => return Err(ConnectError::Failed),
            Err(_) => {
                drop(slot);
                retries_left -= 1;
                trace.retries += 1;
                let retry = Retry::after(be, trace.retries, server, choice);
                if retry.redispatches(be.redispatch, be.retries) {
                    let next = pick(Some(server)).unwrap_or(server);
                    trace.redispatched = next != server;
                    server = next;
                } else {
                    let pause = connect_timeout
                        .unwrap_or(Duration::from_secs(1))
                        .min(Duration::from_secs(1));
                    compio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// A retry about to be made, as HAProxy weighs it.
pub struct Retry {
    /// Which retry this is, from 1.
    number: u32,
    /// The server that failed is known to be down.
    server_down: bool,
    /// The request may go to any server and more than one can take it.
    free: bool,
}

impl Retry {
    /// The `number`th retry of a request to `be` that failed on `server`, chosen by
    /// `choice`.
    pub fn after(be: &Backend, number: u32, server: usize, choice: Choice) -> Self {
        Retry {
            number,
            server_down: !be.servers[server].is_up(),
            // Not bound to the server by persistence or a hash, and others can take the
            // request.
            free: choice == Choice::Balance
                && !matches!(be.balance, Balance::Random(_))
                && be
                    .servers
                    .iter()
                    .filter(|s| !s.backup && s.usable())
                    .count()
                    > 1,
        }
    }

    /// Whether the retry goes to another server at once, under `option redispatch
    /// INTERVAL` and `retries`, rather than waiting the turn-around (up to 1 s) and
    /// trying the same server again. As in HAProxy: at once when the server is down or
    /// the request is free to go elsewhere; otherwise on the retries the interval names.
    pub fn redispatches(&self, interval: Option<i32>, retries: u32) -> bool {
        let Some(interval) = interval else {
            return false;
        };
        let every = match interval {
            p if p > 0 => p.unsigned_abs(),
            n => (i64::from(retries) + 1 + i64::from(n)).max(1) as u32,
        };
        self.server_down || self.free || self.number.is_multiple_of(every)
    }
}

/// Opens a new connection to `sp` and sends its PROXY header.
async fn open(sp: &ServerPlan, at: Deadline, origin: Origin) -> Result<ServerStream, IoFail> {
    let connecting = TcpStream::connect(sp.addr);
    let stream = ServerStream::new(match at {
        Some(at) => compio::time::timeout_at(at, connecting)
            .await
            .map_err(|_| IoFail::Timeout)??,
        None => connecting.await?,
    });
    stream.set_nodelay(true)?;
    let header = match sp.send_proxy {
        Some(SendProxy::V1) => Some(proxy_protocol::encode_v1(origin.src, origin.dst)),
        Some(SendProxy::V2) => Some(proxy_protocol::encode_v2(Some((origin.src, origin.dst)))),
        None => None,
    };
    if let Some(h) = header {
        write_all(&stream, h, crate::io::Watchdog::default().until(at)).await?;
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::Retry;

    #[test]
    fn redispatch_intervals_as_in_haproxy() {
        let bound = |number| Retry {
            number,
            server_down: false,
            free: false,
        };
        let moves = |interval, retries| -> Vec<bool> {
            (1..=retries)
                .map(|n| bound(n).redispatches(interval, retries))
                .collect()
        };
        // The default moves on the last retry; -2 on the one before; 1 on each; 2 on
        // every second; off never.
        assert_eq!(moves(Some(-1), 3), [false, false, true]);
        assert_eq!(moves(Some(-2), 3), [false, true, false]);
        assert_eq!(moves(Some(1), 3), [true, true, true]);
        assert_eq!(moves(Some(2), 4), [false, true, false, true]);
        assert_eq!(moves(None, 3), [false, false, false]);
        // A request free to go elsewhere, or a server known down, moves at once.
        let free = Retry {
            number: 1,
            server_down: false,
            free: true,
        };
        assert!(free.redispatches(Some(-1), 3));
        assert!(!free.redispatches(None, 3));
    }
}
