//! Cookie persistence on rewritten heads: finding, removing and un-prefixing the
//! persistence cookie in requests, inserting or prefixing it in responses. Pure
//! functions over head bytes; they run only for backends with a `cookie` line.

/// Replaces or removes header lines: `edit` gets each header line (without CRLF) and
/// returns `None` to keep it, `Some(empty)` to drop it, or `Some(line)` to replace it.
fn edit_lines(head: &mut Vec<u8>, mut edit: impl FnMut(&[u8]) -> Option<Vec<u8>>) {
    let mut out = Vec::with_capacity(head.len() + 64);
    let mut lines = head.split(|&c| c == b'\n').peekable();
    if let Some(start) = lines.next() {
        out.extend_from_slice(start);
        out.push(b'\n');
    }
    while let Some(line) = lines.next() {
        if lines.peek().is_none() {
            break;
        }
        let bare = line.strip_suffix(b"\r").unwrap_or(line);
        if bare.is_empty() {
            out.extend_from_slice(b"\r\n");
            break;
        }
        match edit(bare) {
            None => {
                out.extend_from_slice(bare);
                out.extend_from_slice(b"\r\n");
            }
            Some(new) if new.is_empty() => {}
            Some(new) => {
                out.extend_from_slice(&new);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    *head = out;
}

fn header_value<'l>(line: &'l [u8], name: &str) -> Option<&'l [u8]> {
    let colon = line.iter().position(|&c| c == b':')?;
    line[..colon]
        .eq_ignore_ascii_case(name.as_bytes())
        .then(|| line[colon + 1..].trim_ascii())
}

/// Handles the persistence cookie `name` in a request head. With `unprefix` (prefix
/// mode), `name=SRV~value` becomes `name=value`; with `strip` (insert + indirect), the
/// cookie is removed. Returns the server cookie value the client presented.
pub fn take_from_request(
    head: &mut Vec<u8>,
    name: &str,
    strip: bool,
    unprefix: bool,
) -> Option<String> {
    let mut found: Option<String> = None;
    edit_lines(head, |line| {
        let value = header_value(line, "cookie")?;
        let mut changed = false;
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for pair in value.split(|&c| c == b';') {
            let pair = pair.trim_ascii();
            let is_ours = pair
                .strip_prefix(name.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="));
            match is_ours {
                Some(v) if found.is_none() => {
                    let v = String::from_utf8_lossy(v).into_owned();
                    if unprefix {
                        match v.split_once('~') {
                            Some((server, rest)) => {
                                found = Some(server.to_string());
                                kept.push(format!("{name}={rest}").into_bytes());
                                changed = true;
                            }
                            None => kept.push(pair.to_vec()),
                        }
                    } else {
                        found = Some(v);
                        if strip {
                            changed = true;
                        } else {
                            kept.push(pair.to_vec());
                        }
                    }
                }
                _ => kept.push(pair.to_vec()),
            }
        }
        if !changed {
            return None;
        }
        if kept.is_empty() {
            return Some(Vec::new());
        }
        let mut line = b"Cookie: ".to_vec();
        line.extend_from_slice(&kept.join(&b"; "[..]));
        Some(line)
    });
    found
}

/// Adds `Set-Cookie` (insert mode) and, with `nocache`, `Cache-Control: private`.
pub fn insert_into_response(head: &mut Vec<u8>, set_cookie: &str, nocache: bool) {
    let end = head.len().saturating_sub(2);
    let mut extra = format!("Set-Cookie: {set_cookie}\r\n");
    if nocache {
        extra.push_str("Cache-Control: private\r\n");
    }
    head.splice(end..end, extra.into_bytes());
}

/// Prefixes the server's own `name` cookie in `Set-Cookie` headers with `server~`.
pub fn prefix_in_response(head: &mut Vec<u8>, name: &str, server: &str, nocache: bool) {
    let mut prefixed = false;
    edit_lines(head, |line| {
        let value = header_value(line, "set-cookie")?;
        let rest = value.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        prefixed = true;
        let mut new = format!("Set-Cookie: {name}={server}~").into_bytes();
        new.extend_from_slice(rest);
        Some(new)
    });
    if prefixed && nocache {
        let end = head.len().saturating_sub(2);
        head.splice(end..end, b"Cache-Control: private\r\n".iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let mut h = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; SERVERID=s2; b=2\r\n\r\n".to_vec();
        assert_eq!(
            take_from_request(&mut h, "SERVERID", true, false).as_deref(),
            Some("s2")
        );
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=2\r\n\r\n");
        let mut h = b"GET / HTTP/1.1\r\nCookie: SERVERID=s2\r\n\r\n".to_vec();
        assert_eq!(
            take_from_request(&mut h, "SERVERID", true, false).as_deref(),
            Some("s2")
        );
        assert_eq!(h, b"GET / HTTP/1.1\r\n\r\n");
        let mut h = b"GET / HTTP/1.1\r\nCookie: JSESSIONID=t1~foo\r\n\r\n".to_vec();
        assert_eq!(
            take_from_request(&mut h, "JSESSIONID", false, true).as_deref(),
            Some("t1")
        );
        assert_eq!(h, b"GET / HTTP/1.1\r\nCookie: JSESSIONID=foo\r\n\r\n");
        let mut h = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(take_from_request(&mut h, "SERVERID", true, false), None);
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn responses() {
        let mut h = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        insert_into_response(&mut h, "SERVERID=s1; path=/", true);
        assert_eq!(h, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: SERVERID=s1; path=/\r\nCache-Control: private\r\n\r\n");
        let mut h = b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=foo; Path=/\r\n\r\n".to_vec();
        prefix_in_response(&mut h, "JSESSIONID", "t1", false);
        assert_eq!(
            h,
            b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=t1~foo; Path=/\r\n\r\n"
        );
    }
}
