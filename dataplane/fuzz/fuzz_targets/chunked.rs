//! Arbitrary bytes as a chunked body, fed whole and in pieces as the proxy reads them
//! (either direction uses the same decoder): never a panic; the pieces forward exactly
//! what the whole does; what is forwarded is canonical (forwarding it again changes
//! nothing) and carries the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_dataplane::http::body::Framing;

/// Feeds `data` in pieces of `step` bytes, keeping what each call leaves unconsumed
/// in front of the next piece; returns the forwarded bytes and whether the body ended,
/// or `None` if it was refused.
fn forward(data: &[u8], step: usize) -> Option<(Vec<u8>, bool)> {
    let mut framing = Framing::chunked();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in data.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        let n = framing.advance(&mut buf, usize::MAX).ok()?;
        out.extend(buf.drain(..n));
        if framing.is_done() {
            return Some((out, true));
        }
    }
    Some((out, false))
}

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let whole = forward(data, data.len());
    let pieces = forward(data, usize::from(step % 16) + 1);
    match (&whole, &pieces) {
        (Some(w), Some(p)) if w.1 && p.1 => assert_eq!(w.0, p.0),
        (Some(_), Some(_)) | (None, None) => {}
        // A body refused whole may still be incomplete in pieces, never the reverse
        // for a complete body.
        (None, Some((_, done))) => assert!(!done, "pieces accepted a refused body"),
        (Some((_, done)), None) => assert!(!done, "pieces refused an accepted body"),
    }
    let Some((out, true)) = whole else {
        return;
    };
    let mut payload = Vec::new();
    assert!(Framing::chunked().payload(data, &mut payload).unwrap());
    let mut again = Vec::new();
    assert!(Framing::chunked().payload(&out, &mut again).unwrap());
    assert_eq!(payload, again);
    assert_eq!(forward(&out, out.len()), Some((out.clone(), true)));
});
