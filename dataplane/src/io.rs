//! Owned-buffer socket I/O with deadlines, the way compio wants it: buffers move into
//! the kernel operation and come back with the result. A deadline that fires cancels
//! the operation; its buffer is then gone, which is fine because the caller closes.

use compio::buf::{BufResult, IntoInner, IoBuf, IoBufMut};
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;
use std::io;
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

/// A point in time after which an I/O step is abandoned; `None` waits forever.
pub type Deadline = Option<Instant>;

/// The deadline `d` from now, when `d` is set.
pub fn deadline(d: Option<Duration>) -> Deadline {
    d.map(|d| Instant::now() + d)
}

/// Runs `f`, giving up at `deadline`.
pub async fn with_deadline<T>(
    deadline: Deadline,
    f: impl std::future::Future<Output = T>,
) -> Result<T, IoFail> {
    match deadline {
        Some(at) => compio::time::timeout_at(at, f)
            .await
            .map_err(|_| IoFail::Timeout),
        None => Ok(f.await),
    }
}

/// Reads more bytes after the ones already in `buf`, into its spare capacity (which the
/// caller keeps non-empty). Returns how many arrived; 0 means end of stream.
pub async fn read_more(
    s: &TcpStream,
    buf: Vec<u8>,
    at: Deadline,
) -> (Result<usize, IoFail>, Vec<u8>) {
    let mut r = s;
    let cap = buf.capacity();
    match with_deadline(at, r.read(buf.uninit())).await {
        Ok(BufResult(res, b)) => (res.map_err(IoFail::from), b.into_inner()),
        Err(e) => (Err(e), Vec::with_capacity(cap)),
    }
}

/// Waits until `s` has something to read (or is closed), holding no buffer meanwhile.
pub async fn wait_readable(s: &TcpStream, at: Deadline) -> Result<(), IoFail> {
    use compio::driver::op::{Interest, PollOnce};
    use compio::driver::ToSharedFd;
    let op = PollOnce::new(s.to_shared_fd(), Interest::Readable);
    with_deadline(at, compio::runtime::submit(op)).await?.0?;
    Ok(())
}

/// Writes `buf[range]` entirely.
pub async fn write_range(
    s: &TcpStream,
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
    at: Deadline,
) -> (Result<(), IoFail>, Vec<u8>) {
    let mut w = s;
    let cap = buf.capacity();
    match with_deadline(at, w.write_all(buf.slice(range))).await {
        Ok(BufResult(res, b)) => (res.map_err(IoFail::from), b.into_inner()),
        Err(e) => (Err(e), Vec::with_capacity(cap)),
    }
}

/// Writes a whole buffer.
pub async fn write_all<B: IoBuf>(s: &TcpStream, buf: B, at: Deadline) -> Result<B, IoFail> {
    let mut w = s;
    let BufResult(res, b) = with_deadline(at, w.write_all(buf)).await?;
    res?;
    Ok(b)
}

/// Half-closes the write side, telling the peer no more data comes.
pub async fn shutdown_write(s: &TcpStream) {
    let mut w = s;
    let _ = w.shutdown().await;
}

/// Whether an idle pooled connection was closed by its peer (or has unexpected data).
/// One non-blocking `recv(MSG_PEEK)`: cheaper than a failed request.
pub fn looks_closed(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // SAFETY: a valid fd and a one-byte buffer on the stack.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
    } else {
        true
    }
}

/// Discards what a client still sends, for a moment, so that the error response
/// written before is not destroyed by a reset when the socket closes.
pub async fn linger(s: &TcpStream) {
    shutdown_write(s).await;
    let until = Instant::now() + Duration::from_millis(500);
    let mut buf = Vec::with_capacity(4096);
    let mut drained = 0usize;
    while drained < 1 << 20 {
        buf.clear();
        let (res, b) = read_more(s, buf, Some(until)).await;
        buf = b;
        match res {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}
