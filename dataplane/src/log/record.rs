//! What a traffic log line reports of one transaction (an HTTP request, or a whole TCP
//! connection): HAProxy's timers, counts and termination state, filled in as the
//! transaction goes.

use crate::connect::Attempts;
use std::time::{Instant, SystemTime};

/// Who or what ended the transaction: the first character of `%ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    /// It ended normally (`-`).
    #[default]
    Normal,
    /// percore answered itself: redirect, return, monitor (`L`).
    Local,
    /// The client timed out (`c`).
    ClientTimeout,
    /// The client closed or reset the connection (`C`).
    ClientAbort,
    /// The server timed out (`s`).
    ServerTimeout,
    /// The server closed, reset or refused (`S`).
    ServerAbort,
    /// percore refused: invalid message, `deny`, a limit (`P`).
    Proxy,
    /// A resource ran out (`R`).
    Resource,
    /// An internal error (`I`).
    Internal,
}

impl Cause {
    /// Who ended a transfer that failed on the client's side or the server's, by a
    /// timeout or otherwise.
    pub fn of_failure(client: bool, timeout: bool) -> Cause {
        match (client, timeout) {
            (true, true) => Cause::ClientTimeout,
            (true, false) => Cause::ClientAbort,
            (false, true) => Cause::ServerTimeout,
            (false, false) => Cause::ServerAbort,
        }
    }

    fn code(self) -> u8 {
        match self {
            Cause::Normal => b'-',
            Cause::Local => b'L',
            Cause::ClientTimeout => b'c',
            Cause::ClientAbort => b'C',
            Cause::ServerTimeout => b's',
            Cause::ServerAbort => b'S',
            Cause::Proxy => b'P',
            Cause::Resource => b'R',
            Cause::Internal => b'I',
        }
    }
}

/// Where the transaction was when it ended: the second character of `%ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// It went to its end (`-`).
    #[default]
    Done,
    /// Waiting for the request (`R`).
    Request,
    /// In a server queue (`Q`).
    Queue,
    /// Connecting to the server (`C`).
    Connect,
    /// Waiting for the response head (`H`).
    Headers,
    /// Transferring data (`D`).
    Data,
    /// Sending the last data to the client (`L`).
    Last,
    /// Held by `tarpit` (`T`).
    Tarpit,
}

impl Phase {
    fn code(self) -> u8 {
        match self {
            Phase::Done => b'-',
            Phase::Request => b'R',
            Phase::Queue => b'Q',
            Phase::Connect => b'C',
            Phase::Headers => b'H',
            Phase::Data => b'D',
            Phase::Last => b'L',
            Phase::Tarpit => b'T',
        }
    }
}

/// What the client's persistence cookie did: the third character of `%tsc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCookie {
    /// The backend has no persistence cookie (`-`).
    #[default]
    Unused,
    /// The client presented none (`N`).
    None,
    /// It named no server of the backend (`I`).
    Invalid,
    /// It named a server that is down (`D`).
    Down,
    /// It named a server that took the request (`V`).
    Valid,
}

/// What percore did with the server's cookie: the fourth character of `%tsc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerCookie {
    /// The backend has no persistence cookie (`-`).
    #[default]
    Unused,
    /// Nothing was set (`N`).
    None,
    /// percore inserted its cookie (`I`).
    Inserted,
    /// The server's cookie was prefixed (`R`).
    Rewritten,
}

/// One transaction's log data. Times are milliseconds since the stream started, `-1`
/// for a step never reached, exactly as HAProxy keeps them: the log variables are
/// differences of these.
#[derive(Debug, Clone)]
pub struct Record {
    /// When the stream started: the accept, or the end of the previous request on a
    /// keep-alive connection.
    pub start: Instant,
    /// The same moment on the wall clock (`%t`).
    pub start_wall: SystemTime,
    /// The handshake (PROXY header) before the first request.
    pub t_handshake: i64,
    /// Idle time before the request's first byte.
    pub t_idle: i64,
    /// The request head was complete.
    pub t_request: i64,
    /// The request left the queue (had its server slot).
    pub t_queue: i64,
    /// The server connection was ready.
    pub t_connect: i64,
    /// The response head arrived.
    pub t_data: i64,
    /// The transaction ended.
    pub t_close: i64,
    /// The status sent to the client, when there was one.
    pub status: Option<u16>,
    /// Bytes received from the client.
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
    /// Who ended it.
    pub cause: Cause,
    /// Where it was when it ended.
    pub phase: Phase,
    /// The client's persistence cookie.
    pub client_cookie: ClientCookie,
    /// The persistence cookie percore set.
    pub server_cookie: ServerCookie,
    /// Connection retries.
    pub retries: u32,
    /// The request went to another server after failures.
    pub redispatched: bool,
    /// The server queue's length when the request joined it.
    pub srv_queue: u32,
    /// The request line as received (empty when there was no request).
    pub request_line: Vec<u8>,
}

impl Record {
    /// A record for a stream that started at `start`.
    pub fn new(start: Instant) -> Self {
        let wall = SystemTime::now()
            .checked_sub(start.elapsed())
            .unwrap_or_else(SystemTime::now);
        Self {
            start,
            start_wall: wall,
            t_handshake: 0,
            t_idle: -1,
            t_request: -1,
            t_queue: -1,
            t_connect: -1,
            t_data: -1,
            t_close: -1,
            status: None,
            bytes_in: 0,
            bytes_out: 0,
            cause: Cause::Normal,
            phase: Phase::Done,
            client_cookie: ClientCookie::Unused,
            server_cookie: ServerCookie::Unused,
            retries: 0,
            redispatched: false,
            srv_queue: 0,
            request_line: Vec::new(),
        }
    }

    /// Starts the record of the next request of a keep-alive connection (the request
    /// line's buffer is kept).
    pub fn restart(&mut self) {
        let mut line = std::mem::take(&mut self.request_line);
        line.clear();
        *self = Self::new(Instant::now());
        self.request_line = line;
    }

    /// Milliseconds from the stream's start to `at`.
    pub fn ms(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.start).as_millis() as i64
    }

    /// Milliseconds from the stream's start to now.
    pub fn now(&self) -> i64 {
        self.ms(Instant::now())
    }

    /// Notes what getting the server connection went through.
    pub fn note_attempts(&mut self, a: &Attempts) {
        self.retries = a.retries;
        self.redispatched = a.redispatched;
        self.srv_queue = a.queue_pos;
        if let Some(at) = a.slot_at {
            self.t_queue = self.ms(at);
        }
        if let Some(at) = a.ready_at {
            self.t_connect = self.ms(at);
        }
    }

    /// Notes the first byte of the request (once).
    pub fn request_began(&mut self) {
        if self.t_idle < 0 {
            self.t_idle = (self.now() - self.t_handshake).max(0);
        }
    }

    /// Notes the end of the transaction.
    pub fn end(&mut self, status: Option<u16>, cause: Cause, phase: Phase) {
        self.t_close = self.now();
        if status.is_some() {
            self.status = status;
        }
        self.cause = cause;
        self.phase = phase;
    }

    /// The two characters of `%ts`.
    pub fn term(&self) -> [u8; 2] {
        [self.cause.code(), self.phase.code()]
    }

    /// The two cookie characters of `%tsc`.
    pub fn cookies(&self) -> [u8; 2] {
        let client = match self.client_cookie {
            ClientCookie::Unused => b'-',
            ClientCookie::None => b'N',
            ClientCookie::Invalid => b'I',
            ClientCookie::Down => b'D',
            ClientCookie::Valid => b'V',
        };
        let server = match self.server_cookie {
            ServerCookie::Unused => b'-',
            ServerCookie::None => b'N',
            ServerCookie::Inserted => b'I',
            ServerCookie::Rewritten => b'R',
        };
        [client, server]
    }

    /// Whether HAProxy would count this as an error (logged at `err` with `option
    /// log-separate-errors`, and kept by `option dontlog-normal`): a redispatch, a
    /// retry, an abnormal end, or a 5xx status.
    pub fn is_error(&self) -> bool {
        self.redispatched
            || self.retries > 0
            || !matches!(self.cause, Cause::Normal | Cause::Local)
            || self.status.is_some_and(|s| s >= 500)
    }

    /// Whether nothing at all came from the client (`option dontlognull`).
    pub fn is_null(&self) -> bool {
        self.bytes_in == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_and_errors() {
        let mut r = Record::new(Instant::now());
        assert_eq!(&r.term(), b"--");
        assert_eq!(&r.cookies(), b"--");
        assert!(!r.is_error());
        r.end(Some(503), Cause::ServerAbort, Phase::Connect);
        assert_eq!(&r.term(), b"SC");
        assert!(r.is_error());
        r.restart();
        r.client_cookie = ClientCookie::None;
        r.server_cookie = ServerCookie::Inserted;
        assert_eq!(&r.cookies(), b"NI");
        r.end(Some(302), Cause::Local, Phase::Request);
        assert!(!r.is_error());
    }
}
