//! What one transaction's capture slots hold (`capture request|response header`,
//! `declare capture`), kept for the logs and for `capture.req.hdr(N)` /
//! `capture.res.hdr(N)`. A frontend without captures allocates nothing.

use crate::http::message::header_lines;
use percore_config::rules::capture::Capture;

/// The captured values of one transaction, by slot.
#[derive(Debug, Default)]
pub struct Captured {
    /// Request slots.
    pub request: Vec<Option<Vec<u8>>>,
    /// Response slots.
    pub response: Vec<Option<Vec<u8>>>,
}

impl Captured {
    /// Forgets the previous transaction's values.
    pub fn clear(&mut self) {
        self.request.clear();
        self.response.clear();
    }
}

/// Fills `out` with one value per slot: the last occurrence of the slot's header in
/// `head`, cut to the slot's length (a `declare capture` slot stays empty).
pub fn capture_headers(slots: &[Capture], head: &[u8], out: &mut Vec<Option<Vec<u8>>>) {
    out.clear();
    for slot in slots {
        let value = slot.header.as_ref().and_then(|name| {
            header_lines(head)
                .filter(|h| head[h.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
                .last()
                .map(|h| {
                    let v = &head[h.value];
                    v[..v.len().min(slot.len)].to_vec()
                })
        });
        out.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_occurrence_cut_to_length() {
        let slots = [
            Capture {
                header: Some("host".into()),
                len: 5,
            },
            Capture {
                header: None,
                len: 9,
            },
            Capture {
                header: Some("x-none".into()),
                len: 9,
            },
        ];
        let head = b"GET / HTTP/1.1\r\nHost: first.example\r\nHost: second.example\r\n\r\n";
        let mut out = Vec::new();
        capture_headers(&slots, head, &mut out);
        assert_eq!(out, [Some(b"secon".to_vec()), None, None]);
    }
}
