//! TCP mode: a bidirectional relay between client and server with half-close, the
//! tunnel/client/server/fin timeouts, and a zero-copy path through a pipe (`splice`)
//! when `option splice-*` asks for it and a pipe is free; plain copying otherwise.

use crate::connect::{connect, Origin, Reuse};
use crate::core::Core;
use crate::io::{read_more, shutdown_write, with_deadline, write_range, IoFail};
use crate::pipe::Pipe;
use crate::plan::{first_set, Backend, Frontend};
use compio::driver::op::Splice;
use compio::driver::ToSharedFd;
use compio::net::TcpStream;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Most bytes moved by one splice.
const SPLICE_CHUNK: usize = 1 << 16;

/// Relays a client connection to a server of `be`. `pending` holds client bytes
/// already read (after a PROXY header).
pub async fn relay(
    core: &Core,
    fe: &Frontend,
    be_id: usize,
    client: TcpStream,
    pending: Vec<u8>,
    origin: Origin,
) {
    let plan = core.plan.clone();
    let be: &Backend = &plan.backends[be_id];
    let mut private = None;
    // In TCP mode a connection that gets no server is simply closed, as in HAProxy.
    let Ok(server) = connect(
        core,
        &plan,
        be_id,
        Reuse { shared: false },
        &mut private,
        origin,
    )
    .await
    else {
        return;
    };
    let server_stream = server.stream;
    let tunnel = be.timeouts.tunnel;
    let client_idle = first_set(&[tunnel, fe.timeouts.client]);
    let server_idle = first_set(&[tunnel, be.timeouts.server]);
    let activity = Cell::new(Instant::now());
    let fin_limit = Cell::new(None);
    let splice_up = be.splice.request || be.splice.auto;
    let splice_down = be.splice.response || be.splice.auto;
    let up = Direction {
        from: &client,
        to: &server_stream,
        idle: client_idle,
        fin: fe.timeouts.client_fin,
        activity: &activity,
        fin_limit: &fin_limit,
    };
    let down = Direction {
        from: &server_stream,
        to: &client,
        idle: server_idle,
        fin: be.timeouts.server_fin,
        activity: &activity,
        fin_limit: &fin_limit,
    };
    let up_pipe = if splice_up {
        core.pipes.borrow_mut().take()
    } else {
        None
    };
    let down_pipe = if splice_down {
        core.pipes.borrow_mut().take()
    } else {
        None
    };
    let up_fut = up.run(pending, up_pipe, core);
    let down_fut = down.run(Vec::new(), down_pipe, core);
    futures_util::future::join(up_fut, down_fut).await;
    drop(server.slot);
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
    let activity = Cell::new(Instant::now());
    let fin_limit = Cell::new(None);
    let up = Direction {
        from: client,
        to: server,
        idle: client_idle,
        fin: None,
        activity: &activity,
        fin_limit: &fin_limit,
    };
    let down = Direction {
        from: server,
        to: client,
        idle: server_idle,
        fin: None,
        activity: &activity,
        fin_limit: &fin_limit,
    };
    futures_util::future::join(
        up.run(client_pending, None, core),
        down.run(server_pending, None, core),
    )
    .await;
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
}

impl Direction<'_> {
    async fn run(&self, pending: Vec<u8>, pipe: Option<Pipe>, core: &Core) {
        let mut buf = pending;
        if !buf.is_empty() {
            let len = buf.len();
            let (res, b) = write_range(self.to, buf, 0..len, None).await;
            buf = b;
            if res.is_err() {
                return;
            }
        }
        let result = match pipe {
            Some(pipe) => {
                let (res, empty) = self.splice_loop(&pipe).await;
                core.pipes.borrow_mut().give_back(pipe, empty);
                res
            }
            None => self.copy_loop(buf).await,
        };
        if result.is_ok() {
            if self.fin.is_some() {
                self.fin_limit.set(self.fin);
            }
            shutdown_write(self.to).await;
        }
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

    async fn copy_loop(&self, mut buf: Vec<u8>) -> Result<(), IoFail> {
        buf.clear();
        buf.reserve(16384);
        loop {
            buf.clear();
            let (res, b) = read_more(self.from, buf, self.deadline()).await;
            buf = b;
            let n = match res {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(IoFail::Timeout) if !self.expired() => continue,
                Err(e) => return Err(e),
            };
            self.activity.set(Instant::now());
            let (res, b) = write_range(self.to, buf, 0..n, self.deadline()).await;
            buf = b;
            res?;
            self.activity.set(Instant::now());
        }
    }

    /// Returns the result and whether the pipe was left empty.
    async fn splice_loop(&self, pipe: &Pipe) -> (Result<(), IoFail>, bool) {
        loop {
            let into_pipe = Splice::new(
                self.from.to_shared_fd(),
                -1,
                pipe.write.clone(),
                -1,
                SPLICE_CHUNK,
                libc::SPLICE_F_MOVE,
            );
            let n = match with_deadline(self.deadline(), compio::runtime::submit(into_pipe)).await {
                Ok(r) => match r.0 {
                    Ok(0) => return (Ok(()), true),
                    Ok(n) => n,
                    Err(e) => return (Err(e.into()), true),
                },
                Err(_) if !self.expired() => continue,
                Err(e) => return (Err(e), false),
            };
            self.activity.set(Instant::now());
            let mut left = n;
            while left > 0 {
                let out = Splice::new(
                    pipe.read.clone(),
                    -1,
                    self.to.to_shared_fd(),
                    -1,
                    left,
                    libc::SPLICE_F_MOVE,
                );
                match with_deadline(self.deadline(), compio::runtime::submit(out)).await {
                    Ok(r) => match r.0 {
                        Ok(0) => {
                            return (Err(IoFail::Io(std::io::ErrorKind::WriteZero.into())), false)
                        }
                        Ok(m) => left -= m,
                        Err(e) => return (Err(e.into()), false),
                    },
                    Err(e) => return (Err(e), false),
                }
            }
            self.activity.set(Instant::now());
        }
    }
}
