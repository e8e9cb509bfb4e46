//! Reading and editing a head that percore has already parsed and rewritten: a start
//! line, then `Name: value` lines, each ending in CRLF, then an empty line. The rules
//! engine reads fetches from it and edits it in place (the buffer keeps its capacity, so
//! edits in steady state do not allocate).

use std::ops::Range;

/// The start line's three words: method, target, version (or version, status, reason).
pub fn start_line(head: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut words = first_line(head).splitn(3, |&c| c == b' ');
    let a = words.next().unwrap_or_default();
    let b = words.next().unwrap_or_default();
    let c = words.next().unwrap_or_default();
    (a, b, c)
}

/// The start line, without its CRLF (what `%r` logs).
pub fn first_line(head: &[u8]) -> &[u8] {
    &head[..line_end(head, 0)]
}

/// Where the line starting at `from` ends (the position of its CR).
fn line_end(head: &[u8], from: usize) -> usize {
    // Heads reaching here were validated: every line ends in CRLF.
    memchr::memchr(b'\r', &head[from..]).map_or(head.len(), |p| from + p)
}

/// One header line's position in the head.
#[derive(Debug, Clone)]
pub struct HeaderLine {
    /// The whole line, CRLF included.
    pub line: Range<usize>,
    /// The name.
    pub name: Range<usize>,
    /// The value, blanks trimmed.
    pub value: Range<usize>,
}

/// The header lines of `head`, in order.
pub fn header_lines(head: &[u8]) -> impl Iterator<Item = HeaderLine> + '_ {
    let mut at = line_end(head, 0) + 2;
    std::iter::from_fn(move || {
        if at >= head.len() {
            return None;
        }
        let end = line_end(head, at);
        if end == at {
            return None;
        }
        let colon = head[at..end].iter().position(|&c| c == b':')? + at;
        let mut vs = colon + 1;
        while vs < end && matches!(head[vs], b' ' | b'\t') {
            vs += 1;
        }
        let mut ve = end;
        while ve > vs && matches!(head[ve - 1], b' ' | b'\t') {
            ve -= 1;
        }
        let line = HeaderLine {
            line: at..end + 2,
            name: at..colon,
            value: vs..ve,
        };
        at = end + 2;
        Some(line)
    })
}

/// The values of header `name` (case-insensitive), in order; `split` separates
/// comma-separated values as `hdr()` does (`fhdr()` does not).
pub fn header_values<'h>(
    head: &'h [u8],
    name: Option<&'h str>,
    split: bool,
) -> impl Iterator<Item = &'h [u8]> + 'h {
    header_lines(head)
        .filter(move |h| {
            name.is_none_or(|n| head[h.name.clone()].eq_ignore_ascii_case(n.as_bytes()))
        })
        .flat_map(move |h| {
            let parts = if split { usize::MAX } else { 1 };
            head[h.value].splitn(parts, |&c| c == b',').map(trim)
        })
}

/// `s` without surrounding blanks.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Replaces `range` of the head with `with`.
pub fn splice(head: &mut Vec<u8>, range: Range<usize>, with: &[u8]) {
    head.splice(range, with.iter().copied());
}

/// Removes every header named `name`.
pub fn remove_header(head: &mut Vec<u8>, name: &str) {
    loop {
        let found =
            header_lines(head).find(|h| head[h.name.clone()].eq_ignore_ascii_case(name.as_bytes()));
        match found {
            Some(h) => drop(head.drain(h.line)),
            None => return,
        }
    }
}

/// Adds `name: value` as the last header.
pub fn append_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let at = head.len().saturating_sub(2);
    let line = name.iter().chain(b": ").chain(value).chain(b"\r\n");
    head.splice(at..at, line.copied());
}

/// The parts of a request target: the path starts after any scheme and authority.
pub struct Target<'t> {
    /// The whole target.
    pub uri: &'t [u8],
    /// Where the path starts in `uri`.
    pub path_start: usize,
    /// Where the `?` is, or the end.
    pub query_mark: usize,
}

impl<'t> Target<'t> {
    /// Splits a request target.
    pub fn of(uri: &'t [u8]) -> Self {
        let path_start = if uri.first() == Some(&b'/') || uri == b"*" {
            0
        } else {
            match uri.windows(3).position(|w| w == b"://") {
                Some(p) => uri[p + 3..]
                    .iter()
                    .position(|&c| c == b'/')
                    .map_or(uri.len(), |q| p + 3 + q),
                None => 0,
            }
        };
        let query_mark = uri[path_start..]
            .iter()
            .position(|&c| c == b'?')
            .map_or(uri.len(), |q| path_start + q);
        Self {
            uri,
            path_start,
            query_mark,
        }
    }

    /// The path without the query string.
    pub fn path(&self) -> &'t [u8] {
        &self.uri[self.path_start..self.query_mark]
    }

    /// The path with its query string.
    pub fn pathq(&self) -> &'t [u8] {
        &self.uri[self.path_start..]
    }

    /// The query string after `?`, if there is a `?`.
    pub fn query(&self) -> Option<&'t [u8]> {
        (self.query_mark < self.uri.len()).then(|| &self.uri[self.query_mark + 1..])
    }
}

/// The value of parameter `name` (the first parameter when `None`) in a query string
/// whose parameters end at any byte of `seps`.
pub fn query_param<'q>(query: &'q [u8], name: Option<&str>, seps: &[u8]) -> Option<&'q [u8]> {
    query.split(|c| seps.contains(c)).find_map(|pair| {
        let eq = pair.iter().position(|&c| c == b'=')?;
        name.is_none_or(|n| &pair[..eq] == n.as_bytes())
            .then_some(&pair[eq + 1..])
    })
}

/// Where the request target lies in the head.
pub fn target_range(head: &[u8]) -> Range<usize> {
    let (m, t, _) = start_line(head);
    let start = m.len() + 1;
    start..start + t.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET http://h/a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1, 2\r\nx-a:3 \r\n\r\n";

    #[test]
    fn reads_lines_and_values() {
        assert_eq!(start_line(HEAD).1, b"http://h/a/b?x=1");
        let v: Vec<_> = header_values(HEAD, Some("x-a"), true).collect();
        assert_eq!(v, vec![&b"1"[..], b"2", b"3"]);
        let v: Vec<_> = header_values(HEAD, Some("X-A"), false).collect();
        assert_eq!(v, vec![&b"1, 2"[..], b"3"]);
        let t = Target::of(start_line(HEAD).1);
        assert_eq!(t.path(), b"/a/b");
        assert_eq!(t.query(), Some(&b"x=1"[..]));
        assert_eq!(Target::of(b"/p").query(), None);
    }

    #[test]
    fn edits() {
        let mut h = HEAD.to_vec();
        remove_header(&mut h, "x-a");
        append_header(&mut h, b"Y", b"z");
        assert_eq!(
            h,
            b"GET http://h/a/b?x=1 HTTP/1.1\r\nHost: h\r\nY: z\r\n\r\n"
        );
        let r = target_range(&h);
        splice(&mut h, r, b"/n");
        assert_eq!(start_line(&h).1, b"/n");
    }
}
