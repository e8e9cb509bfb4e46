//! Converters: transforming a sample (`lower`, `field`, `regsub`, `map_beg`, ...).
//! Borrowed values stay borrowed when the converter only selects a part of them.

use super::matching::find;
use super::value::Value;
use super::Context;
use crate::balance::{djb2, full_hash, sdbm, wt6};
use base64::Engine;
use percore_config::rules::sample::{Arith, Converter, HashConv, IntArg, SampleType};
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
        UrlDec => owned(percent_encoding::percent_decode(&v.as_bytes()).collect()),
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
        } => {
            let value = match find(map, &v) {
                Some(i) => &map.values[i],
                None => default.as_ref()?,
            };
            match output {
                SampleType::Int => Some(Value::Int(super::value::leading_int(value)?)),
                SampleType::Ip => Value::str(value).as_ip().map(Value::Ip),
                _ => Some(Value::str(value)),
            }
        }
    }
}

/// A string or binary value's bytes, keeping a borrow when there is one.
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

/// `field`/`word`: the `index`-th part (negative: from the end) and `count - 1` more
/// (0: all the rest), delimiters between them kept.
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
        return Some(Value::Str(Cow::Borrowed(b"")));
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
        assert_eq!(s(pick(b(b"a"), 3, b":", 1, false)), b"");
    }

    #[test]
    fn backreferences() {
        let re = regex::bytes::Regex::new("/static(/.*)").unwrap();
        let caps = re.captures(b"/static/a").unwrap();
        let mut out = Vec::new();
        expand(b"\\1-$x\\\\", &caps, &mut out);
        assert_eq!(out, b"/a-$x\\");
    }
}
