//! Owned-buffer socket I/O with deadlines, the way compio wants it: buffers move into
//! the kernel operation and come back with the result. A deadline that fires cancels
//! the operation; its buffer is then gone, which is fine because the caller closes.

use compio::buf::{BufResult, IntoInner, IoBuf, IoBufMut};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Why an I/O step failed.
#[derive(Debug, thiserror::Error)]
pub enum IoFail {
    /// The deadline passed first.
    #[error("timed out")]
    Timeout,
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl IoFail {
    /// Whether the process (or the system) has no descriptor left for a new socket.
    pub fn out_of_descriptors(&self) -> bool {
        matches!(self, IoFail::Io(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
    }
}

/// A point in time after which an I/O step is abandoned; `None` waits forever.
pub type Deadline = Option<Instant>;

/// The deadline `d` from now, when `d` is set.
pub fn deadline(d: Option<Duration>) -> Deadline {
    d.map(|d| Instant::now() + d)
}

/// A deadline for a sequence of I/O steps, backed by one lazily re-armed timer. Moving
/// the deadline later (as every successful step does) costs nothing; the timer is only
/// replaced when it fires before the current deadline or would fire after it. One
/// timer per connection side instead of one per operation: timers live in a B-tree,
/// and arming and cancelling one per read and write was a measurable share of a
/// request's cost.
#[derive(Default)]
pub struct Watchdog {
    deadline: Deadline,
    timer: Option<ArmedTimer>,
}

/// A timer future, the instant it fires at, and the waker it was last polled with.
struct ArmedTimer {
    at: Instant,
    sleep: Pin<Box<dyn Future<Output = ()>>>,
    /// Polling the timer looks its entry up in the runtime's B-tree (5% of a keep-alive
    /// request's instructions when every step polled it): it is polled again only when
    /// its instant has come or another task waits on it.
    registered: Option<Waker>,
}

impl ArmedTimer {
    fn new(at: Instant) -> Self {
        Self {
            at,
            sleep: Box::pin(compio::time::sleep_until(at)),
            registered: None,
        }
    }

    /// Whether the timer fired, polling it only when it may have.
    fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        let waker = cx.waker();
        if self.registered.as_ref().is_some_and(|w| w.will_wake(waker)) && Instant::now() < self.at
        {
            return false;
        }
        self.registered = Some(waker.clone());
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

impl Watchdog {
    /// Sets the deadline of the next steps; `None` waits forever.
    pub fn until(&mut self, at: Deadline) -> &mut Self {
        self.deadline = at;
        self
    }

    /// Runs `f`, giving up at the deadline.
    pub fn run<F: Future>(&mut self, f: F) -> Guarded<'_, F> {
        self.run_refreshed(f, None)
    }

    /// Runs `f`, giving up at the deadline unless `refresh` says the socket was written
    /// to since: then the deadline moves to that write plus the timeout, and `f` goes on
    /// (it is never cancelled and started again, so no byte it read is lost).
    pub fn run_refreshed<'w, F: Future>(
        &'w mut self,
        f: F,
        refresh: Refresh<'w>,
    ) -> Guarded<'w, F> {
        Guarded {
            f,
            wd: self,
            refresh,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future run under a [`Watchdog`]'s deadline. Written by hand rather than as an
    /// async function: one of those holds its argument twice (as received and as
    /// pinned), and every read and write of a connection is one of these.
    pub struct Guarded<'w, F> {
        #[pin]
        f: F,
        wd: &'w mut Watchdog,
        refresh: Refresh<'w>,
    }
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, IoFail>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut f = this.f;
        let wd = this.wd;
        loop {
            let Some(deadline) = wd.deadline else {
                return f.poll(cx).map(Ok);
            };
            if wd.timer.as_ref().is_none_or(|t| t.at > deadline) {
                wd.timer = Some(ArmedTimer::new(deadline));
            }
            if let Poll::Ready(out) = f.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            let Some(timer) = wd.timer.as_mut() else {
                unreachable!("armed just above");
            };
            if !timer.fired(cx) {
                return Poll::Pending;
            }
            wd.timer = None;
            let later = this
                .refresh
                .and_then(|(written, timeout)| written.plus(timeout));
            let until = later.map_or(deadline, |later| later.max(deadline));
            if Instant::now() >= until {
                return Poll::Ready(Err(IoFail::Timeout));
            }
            wd.deadline = Some(until);
        }
    }
}

/// When data last went out on a socket. As HAProxy does (unless `option
/// independent-streams`), writing to a side refreshes the timeout of reading from it:
/// a server taking a long upload is not timed out for not answering yet, nor is a
/// client reading a long response for not sending.
#[derive(Debug)]
pub struct Activity {
    last: Cell<Option<Instant>>,
    /// Whether a read's timeout follows these writes (otherwise they are not timed).
    watched: bool,
}

impl Activity {
    /// The writes to one side, `watched` when they refresh the reads from it.
    pub fn new(watched: bool) -> Self {
        Self {
            last: Cell::new(None),
            watched,
        }
    }

    /// Data was just written.
    pub fn mark(&self) {
        if self.watched {
            self.last.set(Some(Instant::now()));
        }
    }

    /// `timeout` after the last write, if there was one.
    fn plus(&self, timeout: Duration) -> Deadline {
        self.last.get().map(|at| at + timeout)
    }
}

/// What may move a read's deadline later: the writes to the same socket, and the read
/// timeout counted from the last of them.
pub type Refresh<'a> = Option<(&'a Activity, Duration)>;

/// Reads more bytes after the ones already in `buf`, into its spare capacity (which the
/// caller keeps non-empty). Returns how many arrived; 0 means end of stream.
pub async fn read_more(
    s: &TcpStream,
    buf: Vec<u8>,
    wd: &mut Watchdog,
) -> (Result<usize, IoFail>, Vec<u8>) {
    read_more_refreshed(s, buf, wd, None).await
}

/// [`read_more`], whose deadline `refresh` may move later.
pub async fn read_more_refreshed(
    s: &TcpStream,
    buf: Vec<u8>,
    wd: &mut Watchdog,
    refresh: Refresh<'_>,
) -> (Result<usize, IoFail>, Vec<u8>) {
    let mut r = s;
    let cap = buf.capacity();
    match wd.run_refreshed(r.read(buf.uninit()), refresh).await {
        Ok(BufResult(res, b)) => (res.map_err(IoFail::from), b.into_inner()),
        Err(e) => (Err(e), Vec::with_capacity(cap)),
    }
}

/// Waits until `s` has something to read (or is closed), holding no buffer meanwhile.
pub async fn wait_readable(s: &TcpStream, wd: &mut Watchdog) -> Result<(), IoFail> {
    use compio::driver::op::{Interest, PollOnce};
    use compio::driver::ToSharedFd;
    let op = PollOnce::new(s.to_shared_fd(), Interest::Readable);
    wd.run(compio::runtime::submit(op)).await?.0?;
    Ok(())
}

/// Waits, holding no buffer and no timer, until `s` has something to read or is
/// closed: what an idle client connection does (its deadline is kept apart, see
/// `idle::Clock`).
pub async fn readable(s: &TcpStream) -> Result<(), IoFail> {
    use compio::driver::op::{Interest, PollOnce};
    use compio::driver::ToSharedFd;
    let op = PollOnce::new(s.to_shared_fd(), Interest::Readable);
    compio::runtime::submit(op).await.0?;
    Ok(())
}

/// Writes `buf[range]` entirely.
pub async fn write_range(
    s: &TcpStream,
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
    wd: &mut Watchdog,
) -> (Result<(), IoFail>, Vec<u8>) {
    let mut w = s;
    let cap = buf.capacity();
    match wd.run(w.write_all(buf.slice(range))).await {
        Ok(BufResult(res, b)) => (res.map_err(IoFail::from), b.into_inner()),
        Err(e) => (Err(e), Vec::with_capacity(cap)),
    }
}

/// Writes a whole buffer.
pub async fn write_all<B: IoBuf>(s: &TcpStream, buf: B, wd: &mut Watchdog) -> Result<B, IoFail> {
    let mut w = s;
    let BufResult(res, b) = wd.run(w.write_all(buf)).await?;
    res?;
    Ok(b)
}

/// Half-closes the write side, telling the peer no more data comes. A plain
/// `shutdown(2)`: it never blocks on a TCP socket, while io_uring's shutdown op always
/// goes through a kernel worker thread (a wake-up and two context switches).
pub fn shutdown_write(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
}

/// Closes a server connection that has nothing in flight (its last response is
/// complete) with a reset instead of a FIN, as HAProxy does: the close then leaves no
/// TIME_WAIT socket behind, which new server connections would otherwise have to find
/// free ports around.
pub fn discard(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
}

/// Whether an idle pooled connection was closed by its peer (or has unexpected data).
/// One non-blocking `recv(MSG_PEEK)`: cheaper than a failed request.
pub fn looks_closed(s: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::uninit()];
    match socket2::SockRef::from(s).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

/// Reads what the socket already holds into `buf`'s spare capacity (which the caller
/// makes non-empty) without waiting: `Ok(None)` when nothing is there yet. A new
/// connection's request has usually arrived by the time the connection is accepted;
/// reading it at once saves waiting for it (HAProxy reads speculatively as well).
pub fn read_ready(s: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let sock = socket2::SockRef::from(s);
    match sock.recv_with_flags(buf.spare_capacity_mut(), libc::MSG_DONTWAIT) {
        Ok(n) => {
            // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Discards what a client still sends, for a moment, so that the error response
/// written before is not destroyed by a reset when the socket closes.
pub async fn linger(s: &TcpStream) {
    shutdown_write(s);
    let mut wd = Watchdog::default();
    wd.until(Some(Instant::now() + Duration::from_millis(500)));
    let mut buf = Vec::with_capacity(4096);
    let mut drained = 0usize;
    while drained < 1 << 20 {
        buf.clear();
        let (res, b) = read_more(s, buf, &mut wd).await;
        buf = b;
        match res {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_follows_a_moving_deadline() {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let mut wd = Watchdog::default();
                let start = Instant::now();
                // Each step finishes in time; the deadline moves later every step.
                for _ in 0..5 {
                    let at = Some(Instant::now() + Duration::from_millis(30));
                    let r = wd
                        .until(at)
                        .run(compio::time::sleep(Duration::from_millis(20)))
                        .await;
                    assert!(r.is_ok());
                }
                assert!(start.elapsed() >= Duration::from_millis(100));
                // A step longer than its deadline times out at the deadline.
                let at = Some(Instant::now() + Duration::from_millis(30));
                let t = Instant::now();
                let r = wd
                    .until(at)
                    .run(compio::time::sleep(Duration::from_secs(5)))
                    .await;
                assert!(matches!(r, Err(IoFail::Timeout)));
                assert!(t.elapsed() < Duration::from_secs(1));
                // An earlier deadline than the armed timer is honoured.
                let r = wd
                    .until(Some(Instant::now() + Duration::from_secs(60)))
                    .run(async {})
                    .await;
                assert!(r.is_ok());
                let t = Instant::now();
                let r = wd
                    .until(Some(Instant::now() + Duration::from_millis(20)))
                    .run(compio::time::sleep(Duration::from_secs(5)))
                    .await;
                assert!(matches!(r, Err(IoFail::Timeout)));
                assert!(t.elapsed() < Duration::from_secs(1));
            });
    }
}
