//! Arbitrary bytes as a PROXY protocol v1 or v2 header: never a panic, a header never
//! claims more bytes than it was given, and the same header parses from just its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_dataplane::proxy_protocol::{encode_v1, encode_v2, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, len))) = parse(data) else {
        return;
    };
    assert!(len <= data.len());
    assert_eq!(parse(&data[..len]), Ok(Some((header.clone(), len))));
    if let (Some(src), Some(dst)) = (header.src, header.dst) {
        if src.is_ipv4() == dst.is_ipv4() {
            for encoded in [encode_v1(src, dst), encode_v2(Some((src, dst)))] {
                let (back, n) = parse(&encoded).unwrap().unwrap();
                assert_eq!(
                    (back.src, back.dst, n),
                    (Some(src), Some(dst), encoded.len())
                );
            }
        }
    }
});
