//! Arbitrary bytes as a response head, answering a GET and a HEAD: the parser refuses or
//! accepts, never panics, and the head it would send to the client is one it accepts
//! again, with the same status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_dataplane::http::head::{parse_request, parse_response, Limits};

const LIMITS: Limits = Limits {
    max_head: 15360,
    max_headers: 101,
};
/// Room for what the proxy adds: the head it sends may exceed the server's limits.
const SENT: Limits = Limits {
    max_head: 16384,
    max_headers: 104,
};

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    for request in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"HEAD / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ] {
        let Ok(Some(request)) = parse_request(request, LIMITS, &mut scratch) else {
            unreachable!("fixed requests parse");
        };
        let close = data.first().is_some_and(|b| b & 1 == 1);
        let mut out = Vec::new();
        let Ok(Some(info)) = parse_response(data, LIMITS, &request, close, &mut out) else {
            continue;
        };
        assert!(info.head_len <= data.len());
        let mut again = Vec::new();
        let reparsed = parse_response(&out, SENT, &request, close, &mut again);
        let Ok(Some(second)) = reparsed else {
            panic!(
                "sent head refused: {reparsed:?}\n{}",
                String::from_utf8_lossy(&out)
            );
        };
        assert_eq!(second.status, info.status);
    }
});
