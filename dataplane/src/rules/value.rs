//! Sample values while rules run: borrowed from the message where possible, owned only
//! when a converter builds a new string.

use std::borrow::Cow;
use std::net::IpAddr;

/// A sample's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An address.
    Ip(IpAddr),
    /// Text (bytes, as HTTP carries them).
    Str(Cow<'a, [u8]>),
    /// Binary data.
    Bin(Cow<'a, [u8]>),
}

impl<'a> Value<'a> {
    /// A borrowed string value.
    pub fn str(s: &'a [u8]) -> Self {
        Value::Str(Cow::Borrowed(s))
    }

    /// The value as an integer, casting as HAProxy does (strings: leading digits).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Int(n) => Some(*n),
            Value::Ip(_) => None,
            Value::Str(s) | Value::Bin(s) => leading_int(s),
        }
    }

    /// The value as an address (strings are parsed).
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Value::Ip(ip) => Some(*ip),
            Value::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            _ => false,
        }
    }

    /// The value as bytes: text as is, numbers and addresses written out.
    pub fn as_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Value::Str(s) | Value::Bin(s) => Cow::Borrowed(s),
            Value::Bool(b) => Cow::Borrowed(if *b { b"1" } else { b"0" }),
            Value::Int(n) => Cow::Owned(n.to_string().into_bytes()),
            Value::Ip(ip) => Cow::Owned(ip.to_string().into_bytes()),
        }
    }

    /// Appends the value's text to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Value::Str(s) | Value::Bin(s) => out.extend_from_slice(s),
            Value::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
            Value::Int(n) => {
                use std::io::Write;
                let _ = write!(out, "{n}");
            }
            Value::Ip(ip) => {
                use std::io::Write;
                let _ = write!(out, "{ip}");
            }
        }
    }

    /// A copy that owns its bytes, to be kept in a variable.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Bool(b) => Value::Bool(b),
            Value::Int(n) => Value::Int(n),
            Value::Ip(ip) => Value::Ip(ip),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Bin(s) => Value::Bin(Cow::Owned(s.into_owned())),
        }
    }

    /// A value borrowing from this one.
    pub fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(n) => Value::Int(*n),
            Value::Ip(ip) => Value::Ip(*ip),
            Value::Str(s) => Value::Str(Cow::Borrowed(s)),
            Value::Bin(s) => Value::Bin(Cow::Borrowed(s)),
        }
    }
}

/// The integer written at the start of `s` (after blanks), as HAProxy casts strings.
pub fn leading_int(s: &[u8]) -> Option<i64> {
    let s = crate::http::message::trim(s);
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let v = digits[..n].iter().try_fold(0i64, |acc, &c| {
        acc.checked_mul(10)?.checked_add(i64::from(c - b'0'))
    })?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts() {
        assert_eq!(Value::str(b" 42abc").as_int(), Some(42));
        assert_eq!(Value::str(b"-7").as_int(), Some(-7));
        assert_eq!(Value::str(b"x").as_int(), None);
        assert_eq!(Value::Int(5).as_bytes().as_ref(), b"5");
        assert!(Value::str(b"10.0.0.1").as_ip().is_some());
    }
}
