//! Message body framing (RFC 9112 §6–7): tells how many of the bytes at hand belong to
//! the current message and when it ends, validating chunked encoding on the way. The
//! bytes themselves are forwarded untouched. Never allocates, never buffers.

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// `Content-Length`: this many bytes remain.
    Length(u64),
    /// `Transfer-Encoding: chunked`, with the decoder's position.
    Chunked(Chunked),
    /// Response body ending when the server closes.
    UntilClose,
}

/// Where a chunked decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Reading the hexadecimal size; `digits` seen so far.
    Size { size: u64, digits: u8 },
    /// Skipping a chunk extension up to CR.
    Ext { size: u64 },
    /// Expecting LF after the size line's CR.
    SizeLf { size: u64 },
    /// Inside chunk data.
    Data { left: u64 },
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Expecting LF after a trailer line's CR.
    TrailerLf,
    /// Expecting LF of the final empty line.
    EndLf,
    /// The final empty line has been read.
    Done,
}

/// A chunked body that breaks the rules; answered with 400 (request) or 502 (response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked encoding: {0}")]
pub struct FramingError(pub &'static str);

impl Framing {
    /// A fresh chunked decoder.
    pub fn chunked() -> Self {
        Framing::Chunked(Chunked::Size { size: 0, digits: 0 })
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        matches!(self, Framing::Empty | Framing::Length(0))
    }

    /// Consumes as much of `data` as belongs to this body; returns how many bytes that
    /// is. After it returns, [`Framing::is_done`] says whether the body has ended.
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, FramingError> {
        match self {
            Framing::Empty => Ok(0),
            Framing::UntilClose => Ok(data.len()),
            Framing::Length(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                Ok(n as usize)
            }
            Framing::Chunked(state) => {
                let n = advance_chunked(state, data, |_| {})?;
                if *state == Chunked::Done {
                    *self = Framing::Length(0);
                }
                Ok(n)
            }
        }
    }

    /// Appends to `out` the payload `data` carries for this body (chunk sizes and
    /// trailers left out), without moving the decoder; returns whether `data` holds
    /// the whole body. For `option http-buffer-request`, whose rules read the body.
    pub fn payload(&self, data: &[u8], out: &mut Vec<u8>) -> Result<bool, FramingError> {
        let mut framing = *self;
        match &mut framing {
            Framing::Chunked(state) => {
                advance_chunked(state, data, |part| out.extend_from_slice(part))?;
                Ok(*state == Chunked::Done)
            }
            other => {
                let n = other.advance(data)?;
                out.extend_from_slice(&data[..n]);
                Ok(other.is_done())
            }
        }
    }
}

fn advance_chunked(
    state: &mut Chunked,
    data: &[u8],
    mut on_data: impl FnMut(&[u8]),
) -> Result<usize, FramingError> {
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        *state = match *state {
            Chunked::Size { size, digits } => match c {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 15 {
                        return Err(FramingError("chunk size too large"));
                    }
                    let v = (c as char).to_digit(16).unwrap_or(0) as u64;
                    Chunked::Size {
                        size: size * 16 + v,
                        digits: digits + 1,
                    }
                }
                b';' | b' ' | b'\t' if digits > 0 => Chunked::Ext { size },
                b'\r' if digits > 0 => Chunked::SizeLf { size },
                _ => return Err(FramingError("bad chunk size")),
            },
            Chunked::Ext { size } => match c {
                b'\r' => Chunked::SizeLf { size },
                b'\n' => return Err(FramingError("bare LF in chunk extension")),
                _ => Chunked::Ext { size },
            },
            Chunked::SizeLf { size } => match c {
                b'\n' if size == 0 => Chunked::TrailerStart,
                b'\n' => Chunked::Data { left: size },
                _ => return Err(FramingError("CR not followed by LF")),
            },
            Chunked::Data { left } => {
                let n = (left as usize).min(data.len() - i);
                on_data(&data[i..i + n]);
                i += n;
                *state = if left as usize == n {
                    Chunked::DataCr
                } else {
                    Chunked::Data {
                        left: left - n as u64,
                    }
                };
                continue;
            }
            Chunked::DataCr => match c {
                b'\r' => Chunked::DataLf,
                _ => return Err(FramingError("chunk data not followed by CRLF")),
            },
            Chunked::DataLf => match c {
                b'\n' => Chunked::Size { size: 0, digits: 0 },
                _ => return Err(FramingError("chunk data not followed by CRLF")),
            },
            Chunked::TrailerStart => match c {
                b'\r' => Chunked::EndLf,
                b'\n' => return Err(FramingError("bare LF in trailers")),
                _ => Chunked::Trailer,
            },
            Chunked::Trailer => match c {
                b'\r' => Chunked::TrailerLf,
                b'\n' => return Err(FramingError("bare LF in trailers")),
                _ => Chunked::Trailer,
            },
            Chunked::TrailerLf => match c {
                b'\n' => Chunked::TrailerStart,
                _ => return Err(FramingError("CR not followed by LF")),
            },
            Chunked::EndLf => match c {
                b'\n' => {
                    *state = Chunked::Done;
                    return Ok(i + 1);
                }
                _ => return Err(FramingError("CR not followed by LF")),
            },
            Chunked::Done => return Ok(i),
        };
        i += 1;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Result<(usize, bool), FramingError> {
        let mut f = Framing::chunked();
        let n = f.advance(input)?;
        Ok((n, f.is_done()))
    }

    #[test]
    fn chunked_whole_and_split() {
        let body =
            b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        assert_eq!(run(body).unwrap(), (body.len() - 4, true));
        for split in 1..body.len() - 4 {
            let mut f = Framing::chunked();
            let a = f.advance(&body[..split]).unwrap();
            assert_eq!(a, split);
            assert!(!f.is_done());
            let b = f.advance(&body[split..]).unwrap();
            assert_eq!(a + b, body.len() - 4, "split at {split}");
            assert!(f.is_done());
        }
    }

    #[test]
    fn chunked_errors() {
        assert!(run(b"g\r\n").is_err());
        assert!(run(b"5\nhello").is_err());
        assert!(run(b"5\r\nhelloX").is_err());
        assert!(run(b"\r\n").is_err());
        assert!(run(b"1000000000000000\r\n").is_err());
        assert!(run(b"0\r\n\n").is_err());
    }

    #[test]
    fn length_and_close() {
        let mut f = Framing::Length(3);
        assert_eq!(f.advance(b"abcdef").unwrap(), 3);
        assert!(f.is_done());
        let mut f = Framing::UntilClose;
        assert_eq!(f.advance(b"abc").unwrap(), 3);
        assert!(!f.is_done());
    }
}
