//! Message body framing (RFC 9112 §6–7): tells how many of the bytes at hand belong to
//! the current message and when it ends, validating chunked encoding strictly on the
//! way. The bytes are forwarded as they came, except chunk-size lines, which leave in
//! their canonical form (the bare size: no blanks, no extensions). Never allocates,
//! never buffers beyond one line.

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

/// The longest chunk-size line (size, extensions and CRLF) and trailer line accepted.
pub const LINE_LIMIT: usize = 4096;
/// The most trailer bytes a chunked body may end with.
pub const TRAILERS_LIMIT: usize = 16 * 1024;

/// Where a chunked decoder stands. Size and trailer lines are read whole: the decoder
/// stops before one that has not fully arrived, so that it can be checked, and a size
/// line rewritten, before any byte of it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// At the start of a chunk-size line.
    SizeLine,
    /// Inside chunk data.
    Data { left: u64 },
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final empty line), after `seen`
    /// trailer bytes.
    Trailers { seen: usize },
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
        Framing::Chunked(Chunked::SizeLine)
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        matches!(self, Framing::Empty | Framing::Length(0))
    }

    /// Consumes as much of `buf[..limit]` as belongs to this body; returns how many
    /// bytes at the start of `buf` that is, to be forwarded. A chunk-size line that is
    /// not canonical (blanks after the size, extensions) is rewritten in place to the
    /// bare size first, so `buf` may shrink. After it returns, [`Framing::is_done`]
    /// says whether the body has ended.
    pub fn advance(&mut self, buf: &mut Vec<u8>, limit: usize) -> Result<usize, FramingError> {
        let limit = limit.min(buf.len());
        match self {
            Framing::Empty | Framing::UntilClose | Framing::Length(_) => Ok(self.plain(limit)),
            Framing::Chunked(state) => {
                let (mut at, mut end) = (0, limit);
                loop {
                    let step = advance_chunked(state, &buf[at..end], |_| {})?;
                    at += step.consumed;
                    let Some(line) = step.rewrite else { break };
                    // `line` is the size line's extent past `at`; keep its digits.
                    let (line_len, digits) = (line.len, line.digits);
                    buf.drain(at + digits..at + line_len - 2);
                    let canonical = digits + 2;
                    at += canonical;
                    end -= line_len - canonical;
                }
                if *state == Chunked::Done {
                    *self = Framing::Length(0);
                }
                Ok(at)
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
                let mut at = 0;
                loop {
                    let step =
                        advance_chunked(state, &data[at..], |part| out.extend_from_slice(part))?;
                    at += step.consumed;
                    match step.rewrite {
                        Some(line) => at += line.len,
                        None => break,
                    }
                }
                Ok(*state == Chunked::Done)
            }
            other => {
                let n = other.plain(data.len());
                out.extend_from_slice(&data[..n]);
                Ok(other.is_done())
            }
        }
    }

    /// For a body without chunked framing: consumes what belongs to it of `available`
    /// bytes and returns how many that is (a chunked body takes none this way).
    fn plain(&mut self, available: usize) -> usize {
        match self {
            Framing::UntilClose => available,
            Framing::Length(left) => {
                let n = (*left).min(available as u64);
                *left -= n;
                n as usize
            }
            Framing::Empty | Framing::Chunked(_) => 0,
        }
    }
}

/// A chunk-size line that is valid but not canonical: its length (CRLF included) and
/// how many hexadecimal digits start it.
#[derive(Debug, Clone, Copy)]
struct SizeLine {
    len: usize,
    digits: usize,
}

/// How far one run of the decoder went.
struct Step {
    /// Bytes consumed (and forwarded as they are).
    consumed: usize,
    /// The decoder stopped at this size line, already decoded, to be made canonical
    /// before it goes on past it.
    rewrite: Option<SizeLine>,
}

/// Whether `c` may appear in a chunk extension or a trailer line: visible ASCII,
/// blanks and obs-text; never control bytes.
fn line_byte(c: u8) -> bool {
    c == b'\t' || (c >= b' ' && c != 0x7f)
}

/// The complete line at the start of `data`, without its CRLF: `Ok(None)` when it has
/// not fully arrived. A line longer than `limit` or ending in a bare LF is refused.
fn whole_line<'d>(
    data: &'d [u8],
    limit: usize,
    what: &'static str,
) -> Result<Option<&'d [u8]>, FramingError> {
    let Some(lf) = memchr::memchr(b'\n', &data[..data.len().min(limit)]) else {
        return if data.len() >= limit {
            Err(FramingError(what))
        } else {
            Ok(None)
        };
    };
    match data[..lf].strip_suffix(b"\r") {
        Some(line) => Ok(Some(line)),
        None => Err(FramingError("bare LF in chunked framing")),
    }
}

/// Parses a chunk-size line's content: the size, and how many digits it took.
/// Blanks may follow the digits, then extensions (`;` and visible bytes); anything
/// else is refused.
fn size_line(line: &[u8]) -> Result<(u64, usize), FramingError> {
    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(FramingError("bad chunk size"));
    }
    if digits > 15 {
        return Err(FramingError("chunk size too large"));
    }
    let size = line[..digits].iter().fold(0u64, |n, &c| {
        n * 16 + u64::from((c as char).to_digit(16).unwrap_or(0))
    });
    let rest = line[digits..].trim_ascii_start();
    match rest.first() {
        None => Ok((size, digits)),
        Some(b';') if rest.iter().all(|&c| line_byte(c)) => Ok((size, digits)),
        Some(b';') => Err(FramingError("control byte in chunk extension")),
        Some(_) => Err(FramingError("junk after chunk size")),
    }
}

/// Checks a trailer line: a field name, a colon, a value of visible bytes.
fn trailer_line(line: &[u8]) -> Result<(), FramingError> {
    let name = line.iter().take_while(|&&c| c != b':').count();
    let token = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c);
    if name == 0 || name == line.len() || !line[..name].iter().all(token) {
        return Err(FramingError("trailer line is not a header field"));
    }
    if !line[name..].iter().all(|&c| line_byte(c)) {
        return Err(FramingError("control byte in trailer"));
    }
    Ok(())
}

fn advance_chunked(
    state: &mut Chunked,
    data: &[u8],
    mut on_data: impl FnMut(&[u8]),
) -> Result<Step, FramingError> {
    let mut i = 0;
    let done = |consumed| {
        Ok(Step {
            consumed,
            rewrite: None,
        })
    };
    while i < data.len() {
        let c = data[i];
        *state = match *state {
            Chunked::SizeLine => {
                let Some(line) = whole_line(&data[i..], LINE_LIMIT, "chunk size line too long")?
                else {
                    return done(i);
                };
                let (size, digits) = size_line(line)?;
                *state = if size == 0 {
                    Chunked::Trailers { seen: 0 }
                } else {
                    Chunked::Data { left: size }
                };
                if line.len() > digits {
                    return Ok(Step {
                        consumed: i,
                        rewrite: Some(SizeLine {
                            len: line.len() + 2,
                            digits,
                        }),
                    });
                }
                i += line.len() + 2;
                continue;
            }
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
                b'\n' => Chunked::SizeLine,
                _ => return Err(FramingError("chunk data not followed by CRLF")),
            },
            Chunked::Trailers { seen } => {
                let room = (TRAILERS_LIMIT - seen).min(LINE_LIMIT);
                let Some(line) = whole_line(&data[i..], room, "trailers too large")? else {
                    return done(i);
                };
                i += line.len() + 2;
                if line.is_empty() {
                    *state = Chunked::Done;
                    return done(i);
                }
                trailer_line(line)?;
                *state = Chunked::Trailers {
                    seen: seen + line.len() + 2,
                };
                continue;
            }
            Chunked::Done => return done(i),
        };
        i += 1;
    }
    done(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a fresh chunked decoder over `input`: what it forwards and whether the body
    /// ended.
    fn run(input: &[u8]) -> Result<(Vec<u8>, bool), FramingError> {
        let mut f = Framing::chunked();
        let mut buf = input.to_vec();
        let n = f.advance(&mut buf, usize::MAX)?;
        buf.truncate(n);
        Ok((buf, f.is_done()))
    }

    #[test]
    fn chunked_whole_and_split() {
        let body = b"5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, done) = run(body).unwrap();
        assert_eq!((out.as_slice(), done), (&body[..body.len() - 4], true));
        for split in 1..body.len() - 4 {
            // The first part is fed alone; what it leaves unconsumed (a partial line)
            // comes again with the rest, as a caller's buffer keeps it.
            let mut f = Framing::chunked();
            let mut first = body[..split].to_vec();
            let a = f.advance(&mut first, usize::MAX).unwrap();
            assert!(!f.is_done());
            let mut rest = [&first[a..], &body[split..]].concat();
            let b = f.advance(&mut rest, usize::MAX).unwrap();
            assert_eq!(a + b, body.len() - 4, "split at {split}");
            assert!(f.is_done());
        }
    }

    #[test]
    fn size_lines_leave_canonical() {
        for line in [&b"5 "[..], b"5\t", b"5 ;a=b", b"5;a=b", b"5;a=\"q x\""] {
            let input = [line, b"\r\nhello\r\n0;z\r\n\r\n"].concat();
            let (out, done) = run(&input).unwrap();
            assert_eq!(
                out,
                b"5\r\nhello\r\n0\r\n\r\n",
                "{:?}",
                String::from_utf8_lossy(line)
            );
            assert!(done);
        }
        // Within a limit: only the bytes before it are looked at.
        let mut f = Framing::chunked();
        let mut buf = b"3;x\r\nabc\r\n".to_vec();
        assert_eq!(f.advance(&mut buf, 4).unwrap(), 0);
        assert_eq!(f.advance(&mut buf, usize::MAX).unwrap(), 8);
        assert_eq!(buf, b"3\r\nabc\r\n");
    }

    #[test]
    fn chunked_errors() {
        for bad in [
            &b"g\r\n"[..],
            b"5\nhello",
            b"5\r\nhelloX",
            b"\r\n",
            b"1000000000000000\r\n",
            b"0\r\n\n",
            b"5 x\r\nhello\r\n",
            b"5;a\x01\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\nnocolon\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n",
        ] {
            assert!(run(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_ext = [&b"5;"[..], &vec![b'a'; LINE_LIMIT], b"\r\n"].concat();
        assert!(run(&long_ext).is_err());
        let long_trailers: Vec<u8> = [&b"0\r\n"[..]]
            .into_iter()
            .chain(std::iter::repeat_n(
                &b"X-Trailer: 0123456789012345678901234567890123456789\r\n"[..],
                400,
            ))
            .flatten()
            .copied()
            .collect();
        assert!(run(&long_trailers).is_err());
        // An incomplete line is waited for, not refused, until it passes the limit.
        assert_eq!(run(b"5;aaaa").unwrap(), (Vec::new(), false));
    }

    #[test]
    fn payload_leaves_framing_out() {
        let mut out = Vec::new();
        let body = b"5;e\r\nhello\r\n2\r\n!!\r\n0\r\n\r\n";
        assert!(Framing::chunked().payload(body, &mut out).unwrap());
        assert_eq!(out, b"hello!!");
    }

    #[test]
    fn length_and_close() {
        let mut f = Framing::Length(3);
        assert_eq!(f.advance(&mut b"abcdef".to_vec(), usize::MAX).unwrap(), 3);
        assert!(f.is_done());
        let mut f = Framing::UntilClose;
        assert_eq!(f.advance(&mut b"abc".to_vec(), 2).unwrap(), 2);
        assert!(!f.is_done());
    }
}
