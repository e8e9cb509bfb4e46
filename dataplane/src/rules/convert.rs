//! Converters: transforming a sample (`lower`, `field`, `regsub`, `map_beg`, ...).
//! Borrowed values stay borrowed when the converter only selects a part of them.

use super::matching::find;
use super::value::Value;
use super::Context;
use crate::balance::{djb2, full_hash, sdbm, wt6};
use base64::Engine;
use percore_config::rules::pattern::Patterns;
use percore_config::rules::sample::{Arith, Converter, HashConv, IntArg, JsonInput, SampleType};
use std::borrow::Cow;
use std::net::IpAddr;

/// Applies `c` to `v`; `None` when the input does not suit the converter.
pub fn convert<'a>(c: &'a Converter, v: Value<'a>, cx: &Context<'a>) -> Option<Value<'a>> {
    use Converter::*;
    let int_arg = |a: &IntArg| match a {
        IntArg::Const(n) => Some(*n),
        IntArg::Var(name) => cx.vars.get(name)?.as_int(),
    };
    let owned = |b: Vec<u8>| Some(Value::Str(Cow::Owned(b)));
    match c {
        Lower => owned(bytes(v)?.to_ascii_lowercase()),
        Upper => owned(bytes(v)?.to_ascii_uppercase()),
        Length => Some(Value::Int(bytes(v)?.len() as i64)),
        Bytes(off, len) => {
            let b = bytes(v)?;
            let off = usize::try_from(int_arg(off)?).ok()?.min(b.len());
            let end = match len {
                Some(l) => off
                    .saturating_add(usize::try_from(int_arg(l)?).ok()?)
                    .min(b.len()),
                None => b.len(),
            };
            Some(Value::Bin(slice(b, off, end)))
        }
        Field {
            index,
            delimiters,
            count,
        } => pick(bytes(v)?, *index, delimiters, *count, false),
        Word {
            index,
            delimiters,
            count,
        } => pick(bytes(v)?, *index, delimiters, *count, true),
        Regsub {
            regex,
            subst,
            global,
        } => {
            let b = bytes(v)?;
            let mut out = Vec::with_capacity(b.len());
            let mut last = 0;
            for caps in regex.captures_iter(&b) {
                let m = caps.get(0)?;
                out.extend_from_slice(&b[last..m.start()]);
                expand(subst, &caps, &mut out);
                last = m.end();
                if !*global {
                    break;
                }
            }
            out.extend_from_slice(&b[last..]);
            owned(out)
        }
        Ipmask(v4, v6) => {
            let ip = v.as_ip()?;
            Some(Value::Ip(match ip {
                IpAddr::V4(a) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*v4)).unwrap_or(0);
                    IpAddr::V4((u32::from(a) & mask).into())
                }
                IpAddr::V6(a) => {
                    let bits = (*v6)?;
                    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                    IpAddr::V6((u128::from(a) & mask).into())
                }
            }))
        }
        Arith(op, arg) => {
            let (a, b) = (v.as_int()?, int_arg(arg)?);
            Some(Value::Int(match op {
                self::Arith::Add => a.wrapping_add(b),
                self::Arith::Sub => a.wrapping_sub(b),
                self::Arith::Mul => a.wrapping_mul(b),
                self::Arith::Div => a.checked_div(b).unwrap_or(0),
                self::Arith::Mod => a.checked_rem(b).unwrap_or(0),
                self::Arith::And => a & b,
                self::Arith::Or => a | b,
                self::Arith::Xor => a ^ b,
            }))
        }
        Neg => Some(Value::Int(v.as_int()?.wrapping_neg())),
        Not => Some(Value::Bool(v.as_int()? == 0)),
        Bool => Some(Value::Bool(v.as_int()? != 0)),
        Base64 => owned(
            base64::engine::general_purpose::STANDARD
                .encode(v.as_bytes())
                .into_bytes(),
        ),
        B64dec => Some(Value::Bin(Cow::Owned(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()?,
        ))),
        UrlDec { in_form } => url_decode(&v.as_bytes(), *in_form).and_then(owned),
        Hex => owned(hex::encode_upper(&*v.as_bytes()).into_bytes()),
        Hash(h, avalanche) => {
            let b = v.as_bytes();
            let raw = match h {
                HashConv::Crc32 => crc32fast::hash(&b),
                HashConv::Djb2 => djb2(&b),
                HashConv::Sdbm => sdbm(&b),
                HashConv::Wt6 => wt6(&b),
            };
            Some(Value::Int(i64::from(if *avalanche {
                full_hash(raw)
            } else {
                raw
            })))
        }
        Json(input) => owned(json(&bytes(v)?, *input)?),
        Strftime {
            format,
            offset,
            local,
        } => owned(strftime(format, v.as_int()?.checked_add(*offset)?, *local)?),
        HttpDate { offset, per_second } => {
            let secs = v.as_int()?.checked_add(*offset)?.div_euclid(*per_second);
            owned(http_date(secs)?)
        }
        Xxh3(seed) => Some(Value::Int(
            xxhash_rust::xxh3::xxh3_64_with_seed(&v.as_bytes(), *seed) as i64,
        )),
        Concat(start, var, end) => {
            let mut out = Vec::new();
            out.extend_from_slice(start);
            v.write_to(&mut out);
            if let Some(var) = var {
                if let Some(x) = cx.vars.get(var) {
                    x.write_to(&mut out);
                }
            }
            out.extend_from_slice(end);
            owned(out)
        }
        Map {
            map,
            output,
            default,
            substitute,
        } => {
            let found = find(map, &v);
            let value = match found {
                Some(i) => &map.values[i],
                None => default.as_ref()?,
            };
            // `map_regm`: the value's `\N` take the matching key's captures.
            let value = match (substitute, found, &map.patterns) {
                (true, Some(i), Patterns::Regexes(res)) => {
                    let subject = bytes(v)?;
                    let caps = res[i].captures(&subject)?;
                    let mut out = Vec::new();
                    expand(value, &caps, &mut out);
                    Value::Str(Cow::Owned(out))
                }
                _ => Value::str(value),
            };
            match output {
                SampleType::Int => Some(Value::Int(super::value::leading_int(&value.as_bytes())?)),
                SampleType::Ip => value.as_ip().map(Value::Ip),
                _ => Some(value),
            }
        }
    }
}

/// A string or binary value's bytes, keeping a borrow when there is one.
/// The calendar date of `secs` since the epoch, local or UTC.
fn broken_down(secs: i64, local: bool) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain data the C library fills; both pointers are valid for the
    // call, and the `_r` variants keep no shared state.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let done = if local {
            libc::localtime_r(&t, &mut tm)
        } else {
            libc::gmtime_r(&t, &mut tm)
        };
        (!done.is_null()).then_some(tm)
    }
}

/// `ltime` / `utime`: `strftime(3)` with the configured format.
fn strftime(format: &std::ffi::CStr, secs: i64, local: bool) -> Option<Vec<u8>> {
    let tm = broken_down(secs, local)?;
    let mut buf = vec![0u8; 256];
    // SAFETY: the buffer is valid for its length, the format is NUL-terminated and
    // `tm` was filled by the C library.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm) };
    buf.truncate(n);
    Some(buf)
}

/// `http_date`: RFC 9110's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(secs: i64) -> Option<Vec<u8>> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let tm = broken_down(secs, false)?;
    Some(
        format!(
            "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
            DAYS.get(tm.tm_wday as usize)?,
            tm.tm_mday,
            MONTHS.get(tm.tm_mon as usize)?,
            tm.tm_year + 1900,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
        .into_bytes(),
    )
}

/// `json`: the input escaped as the inside of a JSON string, as HAProxy escapes it;
/// `None` when a UTF-8 decoder meets an error it may not drop.
fn json(b: &[u8], input: JsonInput) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len() + 8);
    let push = |c: u32, out: &mut Vec<u8>| match c {
        0x22 => out.extend_from_slice(b"\\\""),
        0x5c => out.extend_from_slice(b"\\\\"),
        0x2f => out.extend_from_slice(b"\\/"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x0d => out.extend_from_slice(b"\\r"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x09 => out.extend_from_slice(b"\\t"),
        0x20..=0x7e => out.push(c as u8),
        _ => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
    };
    let JsonInput::Utf8 { permissive, silent } = input else {
        for &c in b {
            push(u32::from(c), &mut out);
        }
        return Some(out);
    };
    let mut i = 0;
    while i < b.len() {
        let (decoded, len) = utf8_char(&b[i..], permissive);
        match decoded {
            // JSON's escapes have four hex digits: larger characters are errors.
            Some(c) if c <= 0xffff => push(c, &mut out),
            _ if silent => {}
            _ => return None,
        }
        i += len;
    }
    Some(out)
}

/// Decodes one UTF-8 character: its value (`None` on an error) and the bytes it took.
/// An overlong form is an error unless `permissive`.
fn utf8_char(b: &[u8], permissive: bool) -> (Option<u32>, usize) {
    let lead = b[0];
    let (len, init, min) = match lead {
        0x00..=0x7f => return (Some(u32::from(lead)), 1),
        0xc0..=0xdf => (2, u32::from(lead & 0x1f), 0x80),
        0xe0..=0xef => (3, u32::from(lead & 0x0f), 0x800),
        0xf0..=0xf7 => (4, u32::from(lead & 0x07), 0x1_0000),
        _ => return (None, 1),
    };
    let mut c = init;
    for k in 1..len {
        match b.get(k) {
            Some(&x) if x & 0xc0 == 0x80 => c = (c << 6) | u32::from(x & 0x3f),
            _ => return (None, k),
        }
    }
    let overlong = c < min;
    let invalid = (0xd800..=0xdfff).contains(&c) || c > 0x10_ffff;
    if invalid || (overlong && !permissive) {
        return (None, len);
    }
    (Some(c), len)
}

fn bytes(v: Value<'_>) -> Option<Cow<'_, [u8]>> {
    match v {
        Value::Str(s) | Value::Bin(s) => Some(s),
        other => Some(Cow::Owned(other.as_bytes().into_owned())),
    }
}

fn slice(b: Cow<'_, [u8]>, from: usize, to: usize) -> Cow<'_, [u8]> {
    match b {
        Cow::Borrowed(b) => Cow::Borrowed(&b[from..to]),
        Cow::Owned(b) => Cow::Owned(b[from..to].to_vec()),
    }
}

/// `url_dec`: `%XX` escapes decoded, `+` turned into a space in a form (`in_form`)
/// and after the first `?`, as HAProxy decodes; `None` (no sample) for a `%` not
/// followed by two hexadecimal digits.
fn url_decode(b: &[u8], mut in_form: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if in_form => out.push(b' '),
            b'%' => {
                let digit = |at: usize| char::from(*b.get(at)?).to_digit(16);
                let (hi, lo) = (digit(i + 1)?, digit(i + 2)?);
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            c => {
                in_form |= c == b'?';
                out.push(c);
            }
        }
        i += 1;
    }
    Some(out)
}

/// `field`/`word`: the `index`-th part (negative: from the end) and `count - 1` more
/// (0: all the rest), delimiters between them kept. Past the last part, `field` has
/// no sample and `word` an empty one, as in HAProxy 2.6.
fn pick<'a>(
    b: Cow<'a, [u8]>,
    index: i64,
    delims: &[u8],
    count: i64,
    words: bool,
) -> Option<Value<'a>> {
    let parts = || {
        b.split(|c| delims.contains(c))
            .map(|p| p.as_ptr() as usize - b.as_ptr() as usize)
            .zip(b.split(|c| delims.contains(c)).map(<[u8]>::len))
            .filter(move |(_, len)| !words || *len > 0)
    };
    let n = parts().count() as i64;
    let first = if index > 0 { index - 1 } else { n + index };
    if first < 0 || first >= n {
        // HAProxy 2.6: `field` has no sample there, `word` an empty one.
        return words.then_some(Value::Str(Cow::Borrowed(b"")));
    }
    let last = if count <= 0 {
        n - 1
    } else {
        (first + count - 1).min(n - 1)
    };
    let (from, _) = parts().nth(first as usize)?;
    let (at, len) = parts().nth(last as usize)?;
    let to = at + len;
    Some(Value::Str(slice(b, from, to)))
}

/// Appends `template` to `out` with each `\N` replaced by capture group N (and `\\`
/// by a backslash), as HAProxy's regex replacements do.
pub fn expand(template: &[u8], caps: &regex::bytes::Captures<'_>, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < template.len() {
        match (template[i], template.get(i + 1)) {
            (b'\\', Some(d)) if d.is_ascii_digit() => {
                if let Some(m) = caps.get(usize::from(d - b'0')) {
                    out.extend_from_slice(m.as_bytes());
                }
                i += 2;
            }
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Option<Value<'_>>) -> Vec<u8> {
        v.unwrap().as_bytes().into_owned()
    }

    #[test]
    fn field_and_word() {
        let b = |x: &'static [u8]| Cow::Borrowed(x);
        assert_eq!(s(pick(b(b"a:b:c"), 2, b":", 1, false)), b"b");
        assert_eq!(s(pick(b(b"a:b:c"), -1, b":", 1, false)), b"c");
        assert_eq!(s(pick(b(b"a:b:c"), 2, b":", 0, false)), b"b:c");
        assert_eq!(s(pick(b(b"::a::b"), 2, b":", 1, true)), b"b");
        assert!(pick(b(b"a"), 3, b":", 1, false).is_none());
        assert!(pick(b(b"a:b"), -3, b":", 1, false).is_none());
        assert_eq!(s(pick(b(b"a:b"), 3, b":", 1, true)), b"");
    }

    #[test]
    fn url_decoding_as_haproxy() {
        assert_eq!(url_decode(b"/a+b?c+d%20e", false).unwrap(), b"/a+b?c d e");
        assert_eq!(url_decode(b"a+b", true).unwrap(), b"a b");
        assert!(url_decode(b"a%2", false).is_none());
        assert!(url_decode(b"a%zz", false).is_none());
        assert!(url_decode(b"a%+1", false).is_none());
    }

    #[test]
    fn backreferences() {
        let re = regex::bytes::Regex::new("/static(/.*)").unwrap();
        let caps = re.captures(b"/static/a").unwrap();
        let mut out = Vec::new();
        expand(b"\\1-$x\\\\", &caps, &mut out);
        assert_eq!(out, b"/a-$x\\");
    }

    #[test]
    fn json_escapes_as_haproxy() {
        let ascii = JsonInput::Ascii;
        assert_eq!(
            json(b"a\"b\\c/d\n\x01\xe9", ascii).unwrap(),
            b"a\\\"b\\\\c\\/d\\n\\u0001\\u00e9"
        );
        let utf8 = |permissive, silent| JsonInput::Utf8 { permissive, silent };
        assert_eq!(
            json("é€".as_bytes(), utf8(false, false)).unwrap(),
            b"\\u00e9\\u20ac"
        );
        assert!(json(b"a\xffb", utf8(false, false)).is_none());
        assert_eq!(json(b"a\xffb", utf8(false, true)).unwrap(), b"ab");
        assert!(json("😀".as_bytes(), utf8(false, false)).is_none());
        // An overlong "/" (0xc0 0xaf): refused unless permissive.
        assert!(json(b"\xc0\xaf", utf8(false, false)).is_none());
        assert_eq!(json(b"\xc0\xaf", utf8(true, false)).unwrap(), b"\\/");
    }

    #[test]
    fn dates() {
        assert_eq!(
            http_date(784111777).unwrap(),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        let f = std::ffi::CString::new("%Y%m%d%H%M%S").unwrap();
        assert_eq!(
            strftime(&f, 1_796_551_200, false).unwrap(),
            b"20261206100000"
        );
    }
}
