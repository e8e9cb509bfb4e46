//! The TLS ClientHello at the start of a TCP stream, read without terminating TLS, so
//! that `req.ssl_sni`, `req.ssl_alpn` and `req.ssl_hello_type` can route the stream
//! while its bytes go on to the server untouched.
//!
//! Parsed with `tls-parser`, a passive parser: it reads any well-formed hello, as
//! HAProxy does. (rustls' `Acceptor` was tried first; it applies its own policy and
//! refuses valid hellos, e.g. TLS 1.2 ones without signature algorithms.)

use tls_parser::{
    parse_tls_client_hello_extensions, parse_tls_plaintext, SNIType, TlsExtension, TlsMessage,
    TlsMessageHandshake,
};

/// What the buffered request bytes hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello<'a> {
    /// The start of a TLS record, or nothing yet: more bytes may complete a hello.
    Partial,
    /// Not a TLS ClientHello.
    NotTls,
    /// A complete ClientHello.
    Complete {
        /// The host name the client asked for, if it sent one.
        sni: Option<&'a [u8]>,
        /// The ALPN protocols, in the client's order.
        alpn: Vec<&'a [u8]>,
    },
}

impl<'a> Hello<'a> {
    /// Parses the ClientHello at the start of `payload` (it must fit one record, as in
    /// HAProxy).
    pub fn parse(payload: &'a [u8]) -> Hello<'a> {
        // A handshake record of SSLv3 or later, holding a ClientHello, as far as known.
        let start = [0x16, 0x03, 0, 0, 0, 0x01];
        let known = [true, true, false, false, false, true];
        if payload
            .iter()
            .zip(start.iter().zip(known))
            .any(|(b, (want, k))| k && b != want)
        {
            return Hello::NotTls;
        }
        let record = match parse_tls_plaintext(payload) {
            Ok((_, record)) => record,
            Err(tls_parser::Err::Incomplete(_)) => return Hello::Partial,
            Err(_) => return Hello::NotTls,
        };
        let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello))) =
            record.msg.into_iter().next()
        else {
            return Hello::NotTls;
        };
        let (mut sni, mut alpn) = (None, Vec::new());
        let extensions = hello.ext.map(parse_tls_client_hello_extensions);
        for ext in extensions
            .and_then(|r| r.ok())
            .map(|(_, e)| e)
            .unwrap_or_default()
        {
            match ext {
                TlsExtension::SNI(names) => {
                    sni = names
                        .into_iter()
                        .find(|(kind, _)| *kind == SNIType::HostName)
                        .map(|(_, name)| name)
                }
                TlsExtension::ALPN(protocols) => alpn = protocols,
                _ => {}
            }
        }
        Hello::Complete { sni, alpn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello `openssl s_client -servername a.example -alpn h2,http/1.1`
    /// sent, cut to its first cipher suites and these two extensions.
    const HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0x4a, 0x01, 0x00, 0x00, 0x46, 0x03, 0x03, 0x8e, 0xf9, 0x86, 0x02,
        0xa2, 0x65, 0x55, 0x0d, 0x1e, 0x9a, 0xe7, 0x5d, 0xa3, 0xd6, 0x48, 0x67, 0x92, 0x63, 0x12,
        0x78, 0xa9, 0x57, 0x66, 0x18, 0x16, 0xd2, 0x79, 0x72, 0x47, 0x5d, 0xf0, 0x62, 0x00, 0x00,
        0x02, 0xc0, 0x2c, 0x01, 0x00, 0x00, 0x1b, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x0c, 0x00, 0x00,
        0x09, b'a', b'.', b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x00, 0x10, 0x00, 0x05, 0x00,
        0x03, 0x02, b'h', b'2',
    ];

    #[test]
    fn reads_the_name_and_protocols() {
        assert_eq!(
            Hello::parse(HELLO),
            Hello::Complete {
                sni: Some(b"a.example"),
                alpn: vec![b"h2"],
            }
        );
    }

    #[test]
    fn a_cut_hello_is_partial_and_other_bytes_are_not_tls() {
        for cut in [0, 1, 5, 40, HELLO.len() - 1] {
            assert_eq!(Hello::parse(&HELLO[..cut]), Hello::Partial, "{cut}");
        }
        assert_eq!(Hello::parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(
            Hello::parse(&[0x16, 0x03, 0x01, 0x00, 0x02, 0x02, 0x00]),
            Hello::NotTls
        );
    }
}
