//! TCP content inspection: `tcp-request content` rules over the client's first bytes
//! and `tcp-response content` rules over the server's, waiting for more bytes while a
//! rule is undecided, up to the proxy's inspect-delay, as HAProxy does.

use crate::io::{read_more, wait_readable, Watchdog};
use crate::rules::http::{Env, TxnState};
use crate::rules::{run_tcp, Content, TcpVerdict};
use compio::net::TcpStream;
use percore_config::rules::acl::Acls;
use percore_config::rules::action::TcpAction;
use percore_config::rules::sample::Side;
use percore_config::rules::{Rule, Rules};
use std::time::{Duration, Instant};

/// A proxy's content rules for one direction.
#[derive(Clone, Copy)]
pub struct Inspected<'a> {
    /// The rules.
    pub rules: &'a [Rule<TcpAction>],
    /// The ACLs they use.
    pub acls: &'a Acls,
    /// How long they may wait for bytes; without one they decide at once.
    pub delay: Option<Duration>,
    /// Whose bytes they read.
    pub side: Side,
}

impl<'a> Inspected<'a> {
    /// `tcp-request content` and `tcp-request inspect-delay`.
    pub fn request(rules: &'a Rules) -> Self {
        Inspected {
            rules: &rules.tcp_content,
            acls: &rules.acls,
            delay: rules.inspect_delay,
            side: Side::Request,
        }
    }

    /// `tcp-response content` and `tcp-response inspect-delay`.
    pub fn response(rules: &'a Rules) -> Self {
        Inspected {
            rules: &rules.tcp_response,
            acls: &rules.acls,
            delay: rules.response_inspect_delay,
            side: Side::Response,
        }
    }
}

/// Runs `set` over the bytes `peer` sends (after those already in `buf`). While a rule
/// is undecided, waits for more; when the delay runs out, the buffer fills or the peer
/// closes, decides on what came. Returns the bytes read, or `None` when a rule rejects
/// the connection or reading fails.
pub async fn inspect(
    peer: &TcpStream,
    mut buf: Vec<u8>,
    set: Inspected<'_>,
    env: &Env<'_>,
    txn: &mut TxnState,
    bufsize: usize,
) -> Option<Vec<u8>> {
    let mut until = Watchdog::default();
    until.until(set.delay.map(|d| Instant::now() + d));
    let mut last = set.delay.is_none();
    let mut from = 0;
    loop {
        let content = Content {
            bytes: &buf,
            last: last || buf.len() >= bufsize,
            side: set.side,
        };
        match run_tcp(set.rules, set.acls, env, txn, content, from) {
            TcpVerdict::Accept => return Some(buf),
            TcpVerdict::Reject => return None,
            TcpVerdict::Wait(rule) => from = rule,
        }
        if wait_readable(peer, &mut until).await.is_err() {
            // The delay expired: one last evaluation on what is there.
            last = true;
            continue;
        }
        buf.reserve_exact(bufsize - buf.len());
        let (res, b) = read_more(peer, buf, &mut Watchdog::default()).await;
        buf = b;
        match res {
            Ok(0) => last = true,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}
