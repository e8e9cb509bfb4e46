//! The PROXY protocol, v1 (text) and v2 (binary): parsing what an `accept-proxy` listener
//! receives and building what a `send-proxy` server gets. Pure functions over bytes.
//!
//! Where HAProxy 2.6 departs from the specification percore follows the specification:
//! a header split across TCP segments is accepted, `PROXY UNKNOWN` with addresses is
//! accepted (addresses ignored), and v2 families other than TCP over IPv4/IPv6 fall back
//! to the real connection addresses instead of being refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const V2_SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
const V1_MAX: usize = 107;

/// TLV type of the authority (SNI / host name).
pub const TLV_AUTHORITY: u8 = 0x02;
/// TLV type of the CRC32C checksum.
pub const TLV_CRC32C: u8 = 0x03;
/// TLV type of the unique id.
pub const TLV_UNIQUE_ID: u8 = 0x05;

/// What a received header says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyHeader {
    /// Client address, when the header carries one (`None`: use the socket's).
    pub src: Option<SocketAddr>,
    /// Destination address, when the header carries one.
    pub dst: Option<SocketAddr>,
    /// v2 TLVs in order, kept for the `fc_pp_*` fetches of the rules engine.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

impl ProxyHeader {
    /// The value of the first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|(t, _)| *t == kind)
            .map(|(_, v)| v.as_slice())
    }
}

/// Why a header was refused; the connection is closed at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyProtocolError {
    /// Neither signature.
    #[error("no PROXY protocol header")]
    Missing,
    /// Malformed v1 line.
    #[error("malformed PROXY v1 header: {0}")]
    BadV1(&'static str),
    /// Malformed v2 block.
    #[error("malformed PROXY v2 header: {0}")]
    BadV2(&'static str),
}

/// Parses a header at the start of `buf`. `Ok(None)`: not enough bytes yet.
/// `Ok(Some((header, len)))`: the header took `len` bytes; what follows is payload.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let n = buf.len().min(V2_SIG.len());
    if buf[..n] == V2_SIG[..n] {
        return if buf.len() < 16 {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return if buf.len() < 6 {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    Err(ProxyProtocolError::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    use ProxyProtocolError::BadV1;
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&c| c == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(BadV1("no CRLF within 107 bytes"))
        } else {
            Ok(None)
        };
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(BadV1("line not terminated by CRLF"));
    }
    let line = std::str::from_utf8(&buf[6..lf - 1]).map_err(|_| BadV1("not ASCII"))?;
    if line.contains('\r') {
        return Err(BadV1("stray CR"));
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.as_slice() {
        ["UNKNOWN", ..] => ProxyHeader::default(),
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *proto == "TCP4";
            let ip = |s: &str| -> Result<IpAddr, ProxyProtocolError> {
                if v4 {
                    s.parse::<Ipv4Addr>()
                        .map(IpAddr::V4)
                        .map_err(|_| BadV1("bad IPv4 address"))
                } else {
                    s.parse::<Ipv6Addr>()
                        .map(IpAddr::V6)
                        .map_err(|_| BadV1("bad IPv6 address"))
                }
            };
            let port = |s: &str| -> Result<u16, ProxyProtocolError> {
                if s.is_empty()
                    || (s.len() > 1 && s.starts_with('0'))
                    || !s.bytes().all(|c| c.is_ascii_digit())
                {
                    return Err(BadV1("bad port"));
                }
                s.parse().map_err(|_| BadV1("port out of range"))
            };
            ProxyHeader {
                src: Some(SocketAddr::new(ip(src)?, port(sport)?)),
                dst: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
                tlvs: Vec::new(),
            }
        }
        _ => return Err(BadV1("expected TCP4, TCP6 or UNKNOWN with four fields")),
    };
    Ok(Some((header, lf + 1)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    use ProxyProtocolError::BadV2;
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(BadV2("version is not 2"));
    }
    let local = match ver_cmd & 0x0F {
        0 => true,
        1 => false,
        _ => return Err(BadV2("unknown command")),
    };
    let fam = buf[13];
    if fam >> 4 > 3 || fam & 0x0F > 2 {
        return Err(BadV2("unknown address family or transport"));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    let mut header = ProxyHeader::default();
    let addr_len = match fam {
        0x11 => 12,
        0x21 => 36,
        0x12 => 12,
        0x22 => 36,
        0x31 | 0x32 => 216,
        _ => 0,
    };
    if !local && body.len() < addr_len {
        return Err(BadV2("length shorter than the address block"));
    }
    if local {
        return Ok(Some((header, total)));
    }
    match fam {
        0x11 => {
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[o],
                    body[o + 1],
                    body[o + 2],
                    body[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            header.src = Some(SocketAddr::new(ip(0), port(8)));
            header.dst = Some(SocketAddr::new(ip(4), port(10)));
        }
        0x21 => {
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            header.src = Some(SocketAddr::new(ip(0), port(32)));
            header.dst = Some(SocketAddr::new(ip(16), port(34)));
        }
        _ => {}
    }
    let mut pos = addr_len;
    while pos < body.len() {
        if body.len() - pos < 3 {
            return Err(BadV2("truncated TLV"));
        }
        let kind = body[pos];
        let tlen = usize::from(u16::from_be_bytes([body[pos + 1], body[pos + 2]]));
        let start = pos + 3;
        if start + tlen > body.len() {
            return Err(BadV2("TLV runs past the header"));
        }
        let value = &body[start..start + tlen];
        match kind {
            TLV_AUTHORITY if tlen > 255 => return Err(BadV2("authority longer than 255 bytes")),
            TLV_UNIQUE_ID if tlen > 128 => return Err(BadV2("unique id longer than 128 bytes")),
            TLV_CRC32C => {
                if tlen != 4 {
                    return Err(BadV2("CRC32C TLV is not 4 bytes"));
                }
                let mut copy = buf[..total].to_vec();
                copy[16 + start..16 + start + 4].fill(0);
                if crc32c::crc32c(&copy).to_be_bytes() != value {
                    return Err(BadV2("CRC32C mismatch"));
                }
            }
            _ if tlen > 1024 => return Err(BadV2("TLV longer than 1024 bytes")),
            _ => {}
        }
        header.tlvs.push((kind, value.to_vec()));
        pos = start + tlen;
    }
    Ok(Some((header, total)))
}

/// Builds a v1 line for a connection from `src` to `dst` (TCP6 with IPv4-mapped
/// addresses when the families differ).
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let line = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            format!("PROXY TCP4 {s} {d} {} {}\r\n", src.port(), dst.port())
        }
        (s, d) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            to_v6(s),
            to_v6(d),
            src.port(),
            dst.port()
        ),
    };
    line.into_bytes()
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Builds a v2 header: PROXY with the addresses, or LOCAL when `addrs` is `None`
/// (a connection percore originates itself, such as a health check).
pub fn encode_v2(addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut out = V2_SIG.to_vec();
    let Some((src, dst)) = addrs else {
        out.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return out;
    };
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x21, 0x11, 0, 12]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.extend_from_slice(&[0x21, 0x21, 0, 36]);
            out.extend_from_slice(&to_v6(s).octets());
            out.extend_from_slice(&to_v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_roundtrip_and_payload() {
        let mut buf = encode_v1(sa("192.0.2.1:1234"), sa("10.0.0.1:80"));
        assert_eq!(buf, b"PROXY TCP4 192.0.2.1 10.0.0.1 1234 80\r\n");
        buf.extend_from_slice(b"GET /");
        let (h, n) = parse(&buf).unwrap().unwrap();
        assert_eq!(h.src, Some(sa("192.0.2.1:1234")));
        assert_eq!(&buf[n..], b"GET /");
        let six = encode_v1(sa("[2001:db8::1]:1"), sa("10.0.0.1:2"));
        assert_eq!(six, b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 2\r\n");
        assert!(parse(&six).unwrap().is_some());
    }

    #[test]
    fn v1_partial_and_errors() {
        assert_eq!(parse(b"PRO").unwrap(), None);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4").unwrap(), None);
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().1, 15);
        assert!(parse(b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n")
            .unwrap()
            .is_some());
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n").is_err());
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n").is_err());
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n").is_err());
        assert!(parse(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n").is_err());
        assert!(parse(b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\r\n").is_err());
        assert!(parse(&[b'P', b'R', b'O', b'X', b'Y', b' '].repeat(20)).is_err());
    }

    #[test]
    fn v2_roundtrip_local_and_partial() {
        let h = encode_v2(Some((sa("192.0.2.1:1234"), sa("10.0.0.1:80"))));
        assert_eq!(h.len(), 28);
        assert_eq!(parse(&h[..20]).unwrap(), None);
        let (p, n) = parse(&h).unwrap().unwrap();
        assert_eq!(
            (p.src, p.dst, n),
            (Some(sa("192.0.2.1:1234")), Some(sa("10.0.0.1:80")), 28)
        );
        let h6 = encode_v2(Some((sa("[::1]:1"), sa("[::2]:2"))));
        assert_eq!(parse(&h6).unwrap().unwrap().0.src, Some(sa("[::1]:1")));
        let local = encode_v2(None);
        let (p, n) = parse(&local).unwrap().unwrap();
        assert_eq!((p.src, n), (None, 16));
    }

    fn v2_with_tlvs(tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut h = encode_v2(Some((sa("1.2.3.4:1"), sa("5.6.7.8:2"))));
        for (t, v) in tlvs {
            h.push(*t);
            h.extend_from_slice(&(v.len() as u16).to_be_bytes());
            h.extend_from_slice(v);
        }
        let len = (h.len() - 16) as u16;
        h[14..16].copy_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn v2_tlvs_and_crc() {
        let h = v2_with_tlvs(&[
            (TLV_AUTHORITY, b"example.com"),
            (TLV_UNIQUE_ID, b"abc123"),
            (0xE0, b"x"),
            (0x04, b""),
        ]);
        let (p, _) = parse(&h).unwrap().unwrap();
        assert_eq!(p.tlv(TLV_AUTHORITY), Some(&b"example.com"[..]));
        assert_eq!(p.tlv(TLV_UNIQUE_ID), Some(&b"abc123"[..]));
        let mut h = v2_with_tlvs(&[(TLV_CRC32C, &[0, 0, 0, 0])]);
        let crc = crc32c::crc32c(&h).to_be_bytes();
        let at = h.len() - 4;
        h[at..].copy_from_slice(&crc);
        assert!(parse(&h).unwrap().is_some());
        h[at] ^= 1;
        assert!(parse(&h).is_err());
        assert!(parse(&v2_with_tlvs(&[(TLV_AUTHORITY, &[b'a'; 256])])).is_err());
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn v2_errors() {
        let good = encode_v2(Some((sa("1.2.3.4:1"), sa("5.6.7.8:2"))));
        let mut bad = good.clone();
        bad[12] = 0x11;
        assert!(parse(&bad).is_err());
        let mut bad = good.clone();
        bad[12] = 0x22;
        assert!(parse(&bad).is_err());
        let mut bad = good.clone();
        bad[15] = 11;
        assert!(parse(&bad[..27]).is_err());
        let mut overrun = v2_with_tlvs(&[(0xE0, b"abc")]);
        let n = overrun.len();
        overrun[n - 4] = 9;
        assert!(parse(&overrun).is_err());
        let mut big = good.clone();
        big[14..16].copy_from_slice(&0xFFFFu16.to_be_bytes());
        assert_eq!(parse(&big).unwrap(), None);
    }
}
