//! `capture request|response header NAME len N` and `declare capture request|response
//! len N`: per-transaction slots, numbered in declaration order, that keep a header's
//! value (for the logs, and for `capture.req.hdr(N)`/`capture.res.hdr(N)`).

/// A frontend's capture slots.
#[derive(Debug, Clone, Default)]
pub struct Captures {
    /// Request slots, by id.
    pub request: Vec<Capture>,
    /// Response slots, by id.
    pub response: Vec<Capture>,
}

/// One slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The header it keeps (the last occurrence); `None` for a `declare capture` slot.
    pub header: Option<String>,
    /// The most bytes kept; longer values are cut on the right.
    pub len: usize,
}

impl Captures {
    /// Parses the words after `capture` (`header` form) or `declare capture`
    /// (`declare`), adding a slot.
    pub fn add(&mut self, words: &[String], declare: bool) -> Result<(), String> {
        let (side, header, len) = match (declare, words) {
            (false, [side, h, name, l, n]) if h == "header" && l == "len" => {
                (side, Some(name.clone()), n)
            }
            (true, [side, l, n]) if l == "len" => (side, None, n),
            (false, [c, ..]) if c == "cookie" => {
                return Err("'capture cookie' is not supported by percore".into())
            }
            (false, _) => {
                return Err("'capture' expects 'request|response header NAME len LENGTH'".into())
            }
            (true, _) => {
                return Err("'declare capture' expects 'request|response len LENGTH'".into())
            }
        };
        let len: usize = len
            .parse()
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| format!("capture: 'len' expects a positive length, got '{len}'"))?;
        let slot = Capture { header, len };
        match side.as_str() {
            "request" => self.request.push(slot),
            "response" => self.response.push(slot),
            other => {
                return Err(format!(
                    "capture: expected request or response, got '{other}'"
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::words;

    #[test]
    fn slots_in_declaration_order() {
        let mut c = Captures::default();
        c.add(&words("request header Host len 64"), false).unwrap();
        c.add(&words("request len 10"), true).unwrap();
        c.add(&words("response header X-Origin len 8"), false)
            .unwrap();
        assert_eq!(c.request.len(), 2);
        assert_eq!(c.request[0].header.as_deref(), Some("Host"));
        assert_eq!(
            c.request[1],
            Capture {
                header: None,
                len: 10
            }
        );
        assert_eq!(c.response[0].len, 8);
        assert!(c.add(&words("request header Host len 0"), false).is_err());
        assert!(c.add(&words("cookie SID len 10"), false).is_err());
        assert!(c.add(&words("sideways len 10"), true).is_err());
    }
}
