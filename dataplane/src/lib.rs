//! percore's dataplane: the configuration compiled into a [`plan::Plan`] and run on one
//! compio (io_uring) runtime per core, each with its own listeners, connection pools and
//! state. Nothing on the request path is locked; cores share only the read-only plan
//! and a few atomic counters for process-wide limits.

pub mod balance;
pub mod checks;
pub mod connect;
pub mod core;
pub mod fds;
pub mod health;
pub mod http;
pub mod idle;
pub mod inspect;
pub mod io;
pub mod listener;
pub mod log;
pub mod pipe;
pub mod plan;
pub mod pool;
pub mod prometheus;
pub mod proxy_protocol;
pub mod ring;
pub mod rules;
pub mod runtime;
pub mod stream;
pub mod tcp;
