//! TCP mode: a bidirectional relay between client and server with half-close, the
//! tunnel/client/server/fin timeouts, and a zero-copy path through a pipe.
//!
//! Splicing is driven by readiness on the executor's own thread: non-blocking
//! `splice(2)` calls, and an io_uring poll when one would block. (io_uring's own splice
//! operation is not used: on sockets the kernel hands it to io-wq worker threads,
//! which breaks the one-thread-per-core model.) `option splice-request` /
//! `splice-response` splice from the first byte; `option splice-auto` copies until a
//! read fills the buffer, then switches to splicing for the rest of the transfer.

use crate::balance::source_hash;
use crate::connect::{connect, Attempts, Choice, Origin, Reuse, Wanted};
use crate::core::Core;
use crate::inspect::{inspect, Inspected};
use crate::io::{read_more, shutdown_write, write_range, IoFail, Watchdog};
use crate::log::record::{Cause, Phase, Record};
use crate::pipe::Pipe;
use crate::plan::{first_set, Backend, Frontend};
use crate::rules::http::{Env, TxnState};
use compio::driver::op::{Interest, PollOnce};
use compio::driver::ToSharedFd;
use compio::net::TcpStream;
use futures_util::future::{select, Either};
use percore_config::Balance;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

/// Most bytes moved by one splice.
const SPLICE_CHUNK: usize = 1 << 16;
/// Size of the copy buffer.
const COPY_BUFFER: usize = 16384;

/// When a direction splices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceMode {
    /// Always copy.
    Never,
    /// Copy until a read fills the buffer, then splice.
    Auto,
    /// Splice from the start.
    Always,
}

/// Relays a client connection to a server of `be`, then logs it. `pending` holds
/// client bytes already read (after a PROXY header); `accepted` is when the connection
/// was accepted and `txn` what its rules set. The backend's `tcp-response content`
/// rules see the server's first bytes before they are relayed.
pub async fn relay(
    core: &Core,
    fe: &Frontend,
    be_id: usize,
    client: TcpStream,
    pending: Vec<u8>,
    (origin, accepted): (Origin, Instant),
    txn: &mut TxnState,
) {
    let plan = core.plan.clone();
    let be: &Backend = &plan.backends[be_id];
    let mut rec = fe.log.records().then(|| {
        let mut rec = Record::new(accepted);
        rec.t_handshake = rec.now();
        // A TCP stream has no request, so its request time stays at -1: as in HAProxy,
        // `%Tw` is then one more than the queue time, and logs compare.
        rec
    });
    let mut attempts = Attempts::default();
    // Where the rules and the log line run, once the server is known.
    let env_with = |server: Option<usize>| Env {
        core,
        fe,
        be: Some(be),
        server,
    };
    let conclude =
        |rec: &mut Option<Record>, txn: &TxnState, attempts: &Attempts, end: (Cause, Phase)| {
            let Some(rec) = rec.as_mut() else { return };
            rec.note_attempts(attempts);
            rec.end(None, end.0, end.1);
            if fe.log.dontlognull && rec.is_null() {
                return;
            }
            let env = env_with(attempts.server);
            crate::log::traffic(&env.context(txn, &[], &[]), rec, txn.log_level);
        };
    let mut private = None;
    // In TCP mode a connection that gets no server is simply closed, as in HAProxy.
    let connecting = connect(
        core,
        &plan,
        be_id,
        Wanted {
            reuse: Reuse { shared: false },
            choice: source_key(be, origin).map_or(Choice::Balance, Choice::Hash),
            origin,
            avoid: None,
        },
        &mut private,
        &mut attempts,
    )
    .await;
    let server = match connecting {
        Ok(server) => server,
        Err(e) => {
            let end = attempts.end_of(&e);
            conclude(&mut rec, txn, &attempts, end);
            return;
        }
    };
    let server_stream = server.stream;
    let tunnel = be.settings.timeouts.tunnel;
    let splice = fe.settings.splice.union(be.settings.splice);
    if splice.any()
        && (set_nonblocking(client.as_raw_fd()).is_err()
            || set_nonblocking(server_stream.as_raw_fd()).is_err())
    {
        conclude(&mut rec, txn, &attempts, (Cause::Internal, Phase::Data));
        return;
    }
    let mode = |forced: bool| {
        if forced {
            SpliceMode::Always
        } else if splice.auto {
            SpliceMode::Auto
        } else {
            SpliceMode::Never
        }
    };
    let up = Side {
        idle: first_set(&[tunnel, fe.settings.timeouts.client]),
        fin: fe.settings.timeouts.client_fin,
        splice: mode(splice.request),
    };
    let down = Side {
        idle: first_set(&[tunnel, be.settings.timeouts.server]),
        fin: be.settings.timeouts.server_fin,
        splice: mode(splice.response),
    };
    let pending_len = pending.len() as u64;
    let env = env_with(attempts.server);
    let bufsize = plan.tune.bufsize;
    let first = if be.rules.tcp_response.is_empty() {
        ServerFirst::Read(Vec::new())
    } else {
        let set = Inspected::response(&be.rules);
        ServerFirst::Inspected(Box::pin(inspect(
            &server_stream,
            Vec::new(),
            set,
            &env,
            &mut *txn,
            bufsize,
        )))
    };
    let outcome = pump(&client, &server_stream, (pending, first), (up, down), core).await;
    if let Some(rec) = rec.as_mut() {
        rec.bytes_in = outcome.up.max(pending_len);
        rec.bytes_out = outcome.down;
    }
    let cause = outcome.cause.unwrap_or(Cause::Normal);
    let phase = if outcome.cause.is_some() {
        Phase::Data
    } else {
        Phase::Done
    };
    // Logged once the server slot is given back, as in HAProxy.
    drop(server.slot);
    conclude(&mut rec, txn, &attempts, (cause, phase));
}

/// The hash of `balance source`; other algorithms need HTTP and use round-robin here.
fn source_key(be: &Backend, origin: Origin) -> Option<u32> {
    matches!(be.balance, Balance::Source).then(|| source_hash(origin.src.ip(), be.hash_type))
}

/// Relays an upgraded HTTP connection (websocket) until both sides are done, with
/// `timeout tunnel` (or the client and server timeouts) as the idle limit.
pub async fn tunnel(
    client: &TcpStream,
    server: &TcpStream,
    client_pending: Vec<u8>,
    server_pending: Vec<u8>,
    client_idle: Option<Duration>,
    server_idle: Option<Duration>,
    core: &Core,
) {
    let side = |idle| Side {
        idle,
        fin: None,
        splice: SpliceMode::Never,
    };
    pump(
        client,
        server,
        (client_pending, ServerFirst::Read(server_pending)),
        (side(client_idle), side(server_idle)),
        core,
    )
    .await;
}

/// What a relay moved, and who ended it when it did not end cleanly.
struct Outcome {
    /// Bytes from the client to the server.
    up: u64,
    /// Bytes from the server to the client.
    down: u64,
    /// Who cut the relay, for the logs.
    cause: Option<Cause>,
}

/// A failure of one direction: which of its sockets failed.
enum Failure {
    /// Reading from the source.
    Read(IoFail),
    /// Writing to the destination.
    Write(IoFail),
    /// A `tcp-response content` rule rejected the connection.
    Rejected,
}

/// How one direction behaves: its idle limit, the fin timeout of the side it reads
/// from, and whether it splices.
struct Side {
    idle: Option<Duration>,
    fin: Option<Duration>,
    splice: SpliceMode,
}

/// Moves data both ways until both directions are done; `pending` holds bytes already
/// read from the client and from the server, `sides` the client-to-server and
/// server-to-client behaviour. The directions share their activity clock, so a long
/// transfer one way keeps the other alive.
/// What the server's side of a relay sends the client first.
enum ServerFirst<'a> {
    /// Bytes already read from the server.
    Read(Vec<u8>),
    /// The server's first bytes as `tcp-response content` rules let them through
    /// (`None`: a rule rejected the connection).
    Inspected(Pin<Box<dyn Future<Output = Option<Vec<u8>>> + 'a>>),
}

/// Relays both directions until both have ended. `pending` holds the client bytes
/// already read, and what the server's side sends first.
async fn pump(
    client: &TcpStream,
    server: &TcpStream,
    pending: (Vec<u8>, ServerFirst<'_>),
    sides: (Side, Side),
    core: &Core,
) -> Outcome {
    let activity = Cell::new(Instant::now());
    let fin_limit = Cell::new(None);
    let direction = |from, to, side: Side| Direction {
        from,
        to,
        idle: side.idle,
        fin: side.fin,
        activity: &activity,
        fin_limit: &fin_limit,
        splice: side.splice,
        moved: Cell::new(0),
    };
    let up = direction(client, server, sides.0);
    let down = direction(server, client, sides.1);
    let downstream = async {
        let first = match pending.1 {
            ServerFirst::Read(bytes) => bytes,
            ServerFirst::Inspected(gate) => gate.await.ok_or(Failure::Rejected)?,
        };
        down.run(first, core).await
    };
    let upstream = up.run(pending.0, core);
    let (a, b) = match select(pin!(upstream), pin!(downstream)).await {
        // A rejected response ends the relay at once, the client's side included.
        Either::Right((b @ Err(Failure::Rejected), _)) => (Ok(()), b),
        Either::Right((b, upstream)) => (upstream.await, b),
        Either::Left((a, downstream)) => (a, downstream.await),
    };
    // A read failing on the client side, or a write failing towards it, is the client's
    // doing; likewise for the server.
    let blame = |r: Result<(), Failure>, from_client: bool| match r {
        Ok(()) => None,
        Err(Failure::Read(e)) => Some(Cause::of_failure(from_client, matches!(e, IoFail::Timeout))),
        Err(Failure::Write(e)) => Some(Cause::of_failure(
            !from_client,
            matches!(e, IoFail::Timeout),
        )),
        Err(Failure::Rejected) => Some(Cause::Proxy),
    };
    Outcome {
        up: up.moved.get(),
        down: down.moved.get(),
        cause: blame(a, true).or(blame(b, false)),
    }
}

/// One direction of the relay.
struct Direction<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    idle: Option<Duration>,
    /// The fin timeout of the side this direction reads from: once it has closed, the
    /// other direction is bounded by it (`timeout client-fin` / `timeout server-fin`).
    fin: Option<Duration>,
    activity: &'a Cell<Instant>,
    /// Set by the first direction to finish: the limit the remaining one runs under.
    fin_limit: &'a Cell<Option<Duration>>,
    splice: SpliceMode,
    /// Bytes written to the destination.
    moved: Cell<u64>,
}

/// How the copy loop ended.
enum CopyEnd {
    /// The source closed its side.
    Eof,
    /// A read filled the buffer: switch to splicing.
    Large,
}

impl Direction<'_> {
    async fn run(&self, pending: Vec<u8>, core: &Core) -> Result<(), Failure> {
        let mut buf = pending;
        let wd = &mut Watchdog::default();
        if !buf.is_empty() {
            let len = buf.len();
            let (res, b) = write_range(self.to, buf, 0..len, wd.until(self.deadline())).await;
            buf = b;
            res.map_err(Failure::Write)?;
            self.count(len);
        }
        let result = match self.splice {
            SpliceMode::Always => self.splice_with_pool(core, wd).await,
            SpliceMode::Never | SpliceMode::Auto => match self.copy_loop(buf, wd).await {
                Ok(CopyEnd::Eof) => Ok(()),
                Ok(CopyEnd::Large) => self.splice_with_pool(core, wd).await,
                Err(e) => Err(e),
            },
        };
        if result.is_ok() {
            if self.fin.is_some() {
                self.fin_limit.set(self.fin);
            }
            shutdown_write(self.to);
        }
        result
    }

    fn count(&self, n: usize) {
        self.moved.set(self.moved.get() + n as u64);
    }

    /// The idle limit now: the configured one, or the fin timeout once a side closed.
    fn limit(&self) -> Option<Duration> {
        match (self.idle, self.fin_limit.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the relay has been idle in both directions for longer than the limit:
    /// a long download must not be cut because the client stays silent.
    fn expired(&self) -> bool {
        self.limit()
            .is_some_and(|idle| self.activity.get().elapsed() >= idle)
    }

    fn deadline(&self) -> Option<Instant> {
        self.limit().map(|idle| self.activity.get() + idle)
    }

    async fn copy_loop(&self, mut buf: Vec<u8>, wd: &mut Watchdog) -> Result<CopyEnd, Failure> {
        buf.clear();
        buf.reserve(COPY_BUFFER);
        loop {
            buf.clear();
            let (res, b) = read_more(self.from, buf, wd.until(self.deadline())).await;
            buf = b;
            let n = match res {
                Ok(0) => return Ok(CopyEnd::Eof),
                Ok(n) => n,
                Err(IoFail::Timeout) if !self.expired() => continue,
                Err(e) => return Err(Failure::Read(e)),
            };
            self.activity.set(Instant::now());
            let (res, b) = write_range(self.to, buf, 0..n, wd.until(self.deadline())).await;
            buf = b;
            res.map_err(Failure::Write)?;
            self.count(n);
            self.activity.set(Instant::now());
            if self.splice == SpliceMode::Auto && n == buf.capacity() {
                return Ok(CopyEnd::Large);
            }
        }
    }

    /// Splices through a pipe from the executor's pool, or copies when none is free.
    async fn splice_with_pool(&self, core: &Core, wd: &mut Watchdog) -> Result<(), Failure> {
        let Some(pipe) = core.pipes.borrow_mut().take() else {
            return self.copy_loop(Vec::new(), wd).await.map(|_| ());
        };
        let (result, empty) = self.splice_loop(&pipe, wd).await;
        core.pipes.borrow_mut().give_back(pipe, empty);
        result
    }

    /// Waits until `stream` is ready for `interest`, within the idle limit.
    async fn ready(
        &self,
        stream: &TcpStream,
        interest: Interest,
        wd: &mut Watchdog,
    ) -> Result<(), IoFail> {
        loop {
            let op = PollOnce::new(stream.to_shared_fd(), interest);
            match wd
                .until(self.deadline())
                .run(compio::runtime::submit(op))
                .await
            {
                Ok(r) => return r.0.map(|_| ()).map_err(IoFail::from),
                Err(_) if !self.expired() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves data socket -> pipe -> socket until the source closes. Returns the result
    /// and whether the pipe was left empty (reusable).
    async fn splice_loop(&self, pipe: &Pipe, wd: &mut Watchdog) -> (Result<(), Failure>, bool) {
        let (from, to) = (self.from.as_raw_fd(), self.to.as_raw_fd());
        let mut in_pipe = 0usize;
        loop {
            let eof = match splice(from, pipe.write.as_raw_fd(), SPLICE_CHUNK) {
                Ok(0) => true,
                Ok(n) => {
                    in_pipe += n;
                    self.activity.set(Instant::now());
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && in_pipe == 0 => {
                    if let Err(e) = self.ready(self.from, Interest::Readable, wd).await {
                        return (Err(Failure::Read(e)), true);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) => return (Err(Failure::Read(e.into())), in_pipe == 0),
            };
            while in_pipe > 0 {
                match splice(pipe.read.as_raw_fd(), to, in_pipe) {
                    Ok(m) => {
                        in_pipe -= m;
                        self.count(m);
                        self.activity.set(Instant::now());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = self.ready(self.to, Interest::Writable, wd).await {
                            return (Err(Failure::Write(e)), false);
                        }
                    }
                    Err(e) => return (Err(Failure::Write(e.into())), false),
                }
            }
            if eof {
                return (Ok(()), true);
            }
        }
    }
}

/// Puts a socket in non-blocking mode, which `splice(2)` needs on TCP sockets (it
/// honours the file's `O_NONBLOCK`, not `SPLICE_F_NONBLOCK`, on the socket side).
/// io_uring's send and receive operations are unaffected: they pass their own flags.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this relay owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One non-blocking `splice(2)` call between a socket and a pipe.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain system call on descriptors this direction owns; null offsets.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
