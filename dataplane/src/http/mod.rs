//! HTTP/1.x on the wire: head parsing and rewriting, body framing, and the responses
//! percore writes itself.

pub mod body;
pub mod cookie;
pub mod errors;
pub mod head;
pub mod message;
