//! Bodies in either direction: one loop that reads from one side and writes to the
//! other, following the framing, with each side's inactivity timeout. Never looks at
//! a head.

use crate::connect::Slot;
use crate::http::body::{Framing, FramingError};
use crate::io::{deadline, read_more_refreshed, write_range, Activity, IoFail, Watchdog};
use crate::log::record::Cause;
use compio::net::TcpStream;
use percore_config::rules::sample::Side;
use std::time::Duration;

/// Why a body could not be forwarded whole.
#[derive(Debug)]
pub(super) enum BodyFail {
    /// Invalid chunked encoding.
    Framing,
    /// The sender closed before the end, or a socket failed or timed out: says which
    /// side and how, as the logs tell it.
    Io(Cut),
}

/// Which side of a body transfer failed, and whether by a timeout.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cut {
    /// Reading from the sender.
    Read { timeout: bool },
    /// Writing to the receiver.
    Write { timeout: bool },
}

impl Cut {
    /// Who the logs blame, for a body going the way of `message`.
    pub(super) fn cause(self, message: Side) -> Cause {
        let (read, timeout) = match self {
            Cut::Read { timeout } => (true, timeout),
            Cut::Write { timeout } => (false, timeout),
        };
        // The client's side is where the request is read from and the response written.
        let client = read == (message == Side::Request);
        Cause::of_failure(client, timeout)
    }
}

impl From<FramingError> for BodyFail {
    fn from(_: FramingError) -> Self {
        BodyFail::Framing
    }
}

/// The two sides of an exchange, and when each was last written to.
#[derive(Clone, Copy)]
pub(super) struct Sides<'s> {
    pub(super) client: &'s TcpStream,
    pub(super) server: &'s TcpStream,
    /// Response bytes written to the client.
    pub(super) to_client: &'s Activity,
    /// Request bytes written to the server.
    pub(super) to_server: &'s Activity,
}

/// One direction of a body: read from one side, written to the other, each with its
/// inactivity timeout.
pub(super) struct Leg<'s> {
    from: &'s TcpStream,
    to: &'s TcpStream,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Marked at each write to `to`.
    wrote_to: &'s Activity,
    /// The writes to `from` (by the other direction), which refresh the read timeout.
    wrote_from: &'s Activity,
}

impl<'s> Leg<'s> {
    /// The request body's way, client to server.
    pub(super) fn upload(
        sides: Sides<'s>,
        (client, server): (Option<Duration>, Option<Duration>),
    ) -> Self {
        Self {
            from: sides.client,
            to: sides.server,
            read_timeout: client,
            write_timeout: server,
            wrote_to: sides.to_server,
            wrote_from: sides.to_client,
        }
    }

    /// The response body's way, server to client.
    pub(super) fn download(
        sides: Sides<'s>,
        (client, server): (Option<Duration>, Option<Duration>),
    ) -> Self {
        Self {
            from: sides.server,
            to: sides.client,
            read_timeout: server,
            write_timeout: client,
            wrote_to: sides.to_client,
            wrote_from: sides.to_server,
        }
    }
}

/// Forwards one body along `leg`, starting with the bytes already in `buf`; leaves in
/// `buf` whatever follows the body (a pipelined request).
/// `moved` counts the bytes written. A response's server `slot` is given back once its
/// last bytes are read, before they are sent.
pub(super) async fn forward_body(
    leg: Leg<'_>,
    buf: &mut Vec<u8>,
    framing: &mut Framing,
    wd: &mut Watchdog,
    moved: &mut u64,
    slot: Option<&Slot<'_>>,
) -> Result<(), BodyFail> {
    let Leg {
        from,
        to,
        read_timeout,
        write_timeout,
        wrote_to,
        wrote_from,
    } = leg;
    let refresh = read_timeout.map(|t| (wrote_from, t));
    loop {
        if !buf.is_empty() {
            let n = framing.advance(buf, buf.len())?;
            if let (true, Some(slot)) = (framing.is_done(), slot) {
                slot.release();
            }
            if n > 0 {
                let (res, b) = write_range(
                    to,
                    std::mem::take(buf),
                    0..n,
                    wd.until(deadline(write_timeout)),
                )
                .await;
                *buf = b;
                res.map_err(|e| {
                    BodyFail::Io(Cut::Write {
                        timeout: matches!(e, IoFail::Timeout),
                    })
                })?;
                *moved += n as u64;
                wrote_to.mark();
                buf.drain(..n);
            }
        }
        if framing.is_done() {
            return Ok(());
        }
        // A chunk-size or trailer line is only consumed whole: room for the rest of it.
        if buf.len() == buf.capacity() {
            buf.reserve(crate::http::body::LINE_LIMIT);
        }
        let (res, b) = read_more_refreshed(
            from,
            std::mem::take(buf),
            wd.until(deadline(read_timeout)),
            refresh,
        )
        .await;
        *buf = b;
        match res {
            Ok(0) if *framing == Framing::UntilClose => return Ok(()),
            Ok(0) | Err(IoFail::Io(_)) => return Err(BodyFail::Io(Cut::Read { timeout: false })),
            Err(IoFail::Timeout) => return Err(BodyFail::Io(Cut::Read { timeout: true })),
            Ok(_) => {}
        }
    }
}
