//! Arbitrary bytes as a request head: the parser refuses or accepts, never panics, and
//! what it would forward (edited by `finish_request` and the header editor) is itself
//! a head it accepts, with the same framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_dataplane::http::head::{finish_request, parse_request, Limits, RequestEdits};
use percore_dataplane::http::message::{append_header, remove_header};

const LIMITS: Limits = Limits {
    max_head: 15360,
    max_headers: 101,
};
/// Room for what the proxy adds: the head it forwards may exceed the client's limits.
const FORWARDED: Limits = Limits {
    max_head: 16384,
    max_headers: 108,
};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let Ok(Some(info)) = parse_request(data, LIMITS, &mut out) else {
        return;
    };
    assert!(info.head_len <= data.len());
    let edits = RequestEdits {
        forwarded_for: Some((
            "X-Forwarded-For",
            [127, 0, 0, 1].into(),
            data.len() % 2 == 0,
        )),
        original_to: Some(("X-Original-To", [10, 0, 0, 1].into())),
        close_server: data.len() % 3 == 0,
    };
    finish_request(&mut out, &info, edits);
    remove_header(&mut out, "x-drop");
    append_header(&mut out, b"X-Added", b"1");
    let mut again = Vec::new();
    let reparsed = parse_request(&out, FORWARDED, &mut again);
    let Ok(Some(second)) = reparsed else {
        panic!(
            "forwarded head refused: {reparsed:?}\n{}",
            String::from_utf8_lossy(&out)
        );
    };
    assert_eq!(second.framing, info.framing);
    assert_eq!(second.head_len, out.len());
});
