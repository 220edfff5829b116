//! The PROXY protocol header, v1 (text) and v2 (binary), as a sans-IO parser: bytes in, a
//! [`Parsed`] out. It never reads past the header, never allocates more than the header's
//! own TLV bytes, and decides from at most [`MAX_HEADER_LEN`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{ProxyError, ProxyHeader, ProxyVersion};

/// The most bytes a PROXY header may take: a v1 header is at most 107 bytes by the
/// specification; a v2 header with its TLVs is refused beyond this
/// ([`ProxyError::TooLarge`]), before any of it is buffered. Balancers send far less
/// (HAProxy: 16 to a few hundred bytes with its TLVs; AWS NLB: under 100).
pub const MAX_HEADER_LEN: usize = 4096;

/// The v1 header's signature, and the most bytes a v1 header may take (CRLF included).
pub(crate) const V1_PREFIX: &[u8] = b"PROXY ";
pub(crate) const V1_MAX_LEN: usize = 107;
/// The v2 header's 12-byte signature, and the length of its fixed part.
pub(crate) const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
pub(crate) const V2_FIXED_LEN: usize = 16;

/// What [`ProxyHeader::parse`] found at the start of a byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parsed {
    /// A whole header, `len` bytes long: the stream's own data starts right after it.
    Header {
        /// What it carried.
        header: ProxyHeader,
        /// How many bytes it took.
        len: usize,
    },
    /// The bytes so far begin a header (or could): at least `needed` bytes in all are
    /// required to decide. Never more than [`MAX_HEADER_LEN`].
    Incomplete {
        /// The least total number of bytes worth trying again with.
        needed: usize,
    },
    /// The stream does not start with a PROXY header (its first bytes match neither
    /// signature).
    NotProxy,
}

/// The v2 command: `LOCAL` (the proxy's own connection, a health check: the addresses are
/// to be ignored) or `PROXY`.
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const AF_UNSPEC: u8 = 0x0;
const AF_INET: u8 = 0x1;
const AF_INET6: u8 = 0x2;
const AF_UNIX: u8 = 0x3;

/// Parses the header at the start of `input`. See [`ProxyHeader::parse`].
pub(crate) fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    let v2 = starts_like(input, V2_SIGNATURE);
    let v1 = starts_like(input, V1_PREFIX);
    if v2 && input.len() >= V2_SIGNATURE.len() {
        return parse_v2(input);
    }
    if v1 && input.len() >= V1_PREFIX.len() {
        return parse_v1(input);
    }
    if v1 || v2 {
        // A strict prefix of a signature (an empty input included): one more byte decides.
        return Ok(Parsed::Incomplete {
            needed: input.len() + 1,
        });
    }
    Ok(Parsed::NotProxy)
}

/// Whether `input` and `signature` agree on their common length.
fn starts_like(input: &[u8], signature: &[u8]) -> bool {
    let n = input.len().min(signature.len());
    input[..n] == signature[..n]
}

fn malformed(version: ProxyVersion, reason: &'static str) -> ProxyError {
    ProxyError::Malformed { version, reason }
}

fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyError> {
    let bad = |reason| Err(malformed(ProxyVersion::V1, reason));
    let window = &input[..input.len().min(V1_MAX_LEN)];
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        if input.len() >= V1_MAX_LEN {
            // No line end within the most a v1 header may take: it would be longer.
            return Err(ProxyError::TooLarge {
                len: V1_MAX_LEN + 1,
                max: V1_MAX_LEN,
            });
        }
        if window
            .iter()
            .position(|&b| b == b'\r')
            .is_some_and(|cr| cr + 1 < window.len())
        {
            return bad("a carriage return not followed by a line feed");
        }
        return Ok(Parsed::Incomplete {
            needed: input.len() + 1,
        });
    };
    let len = end + 1;
    let Some(line) = window[..end].strip_suffix(b"\r") else {
        return bad("a line feed without its carriage return");
    };
    let Ok(line) = std::str::from_utf8(&line[V1_PREFIX.len()..]) else {
        return bad("not ASCII text");
    };
    let mut fields = line.split(' ');
    let addresses = match fields.next() {
        // The sender may omit the rest; the receiver ignores whatever is there.
        Some("UNKNOWN") => None,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut next = |what| fields.next().filter(|f| !f.is_empty()).ok_or(what);
            let parts = (|| {
                Ok::<_, &'static str>((
                    next("no source address")?,
                    next("no destination address")?,
                    next("no source port")?,
                    next("no destination port")?,
                ))
            })();
            let (src, dst, sport, dport) = match parts {
                Ok(parts) => parts,
                Err(reason) => return bad(reason),
            };
            if fields.next().is_some() {
                return bad("more fields than TCP4/TCP6 carries");
            }
            let ip = |text: &str| -> Option<IpAddr> {
                if family == "TCP4" {
                    text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
                } else {
                    text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
                }
            };
            let (Some(src), Some(dst)) = (ip(src), ip(dst)) else {
                return bad("an address that is not of the announced family");
            };
            let (Some(sport), Some(dport)) = (v1_port(sport), v1_port(dport)) else {
                return bad("a port that is not a decimal number from 0 to 65535");
            };
            Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport)))
        }
        _ => return bad("an unknown protocol (not TCP4, TCP6 or UNKNOWN)"),
    };
    Ok(Parsed::Header {
        header: ProxyHeader {
            version: ProxyVersion::V1,
            local: false,
            addresses,
            tlvs: None,
        },
        len,
    })
}

/// A v1 port: decimal, no sign, no leading zero (but "0").
fn v1_port(text: &str) -> Option<u16> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if !digits || text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyError> {
    let bad = |reason| Err(malformed(ProxyVersion::V2, reason));
    if input.len() < V2_FIXED_LEN {
        return Ok(Parsed::Incomplete {
            needed: V2_FIXED_LEN,
        });
    }
    let (version, command) = (input[12] >> 4, input[12] & 0x0f);
    if version != 2 {
        return bad("a version other than 2 after the v2 signature");
    }
    if command != CMD_LOCAL && command != CMD_PROXY {
        return bad("a command other than LOCAL or PROXY");
    }
    let (family, transport) = (input[13] >> 4, input[13] & 0x0f);
    if family > AF_UNIX || transport > 2 {
        return bad("an unknown address family or transport");
    }
    let body_len = usize::from(u16::from_be_bytes([input[14], input[15]]));
    let len = V2_FIXED_LEN + body_len;
    if len > MAX_HEADER_LEN {
        return Err(ProxyError::TooLarge {
            len,
            max: MAX_HEADER_LEN,
        });
    }
    if input.len() < len {
        return Ok(Parsed::Incomplete { needed: len });
    }
    let body = &input[V2_FIXED_LEN..len];
    let address_len = match family {
        AF_INET => 12,
        AF_INET6 => 36,
        AF_UNIX => 216,
        // UNSPEC: the receiver ignores the whole block.
        _ => body.len(),
    };
    if body.len() < address_len {
        return bad("an address block shorter than its family needs");
    }
    let (block, tlvs) = body.split_at(address_len);
    if let Err(reason) = super::tlv::validate(tlvs) {
        return bad(reason);
    }
    let addresses = if command == CMD_LOCAL {
        None
    } else {
        v2_addresses(family, block)
    };
    Ok(Parsed::Header {
        header: ProxyHeader {
            version: ProxyVersion::V2,
            local: command == CMD_LOCAL,
            addresses,
            tlvs: (family != AF_UNSPEC && !tlvs.is_empty()).then(|| Box::from(tlvs)),
        },
        len,
    })
}

/// The source and destination of an INET or INET6 block (UNSPEC and UNIX carry no IP).
fn v2_addresses(family: u8, block: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match family {
        AF_INET => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        AF_INET6 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        AF_UNSPEC | AF_UNIX => None,
        _ => None,
    }
}

/// Writes `header` as a v1 or v2 header (its version) onto `out`. A v1 header has no TLVs
/// (they are dropped); a header without addresses is `UNKNOWN` (v1) or `LOCAL`/`UNSPEC`
/// (v2).
pub(crate) fn encode(header: &ProxyHeader, out: &mut Vec<u8>) {
    match header.version {
        ProxyVersion::V1 => encode_v1(header, out),
        ProxyVersion::V2 => encode_v2(header, out),
    }
}

fn encode_v1(header: &ProxyHeader, out: &mut Vec<u8>) {
    use std::io::Write;
    let line = match header.addresses {
        Some((src, dst)) => {
            let family = if src.is_ipv4() && dst.is_ipv4() {
                "TCP4"
            } else {
                "TCP6"
            };
            let ip = |a: SocketAddr| match (family, a.ip()) {
                ("TCP6", IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
                (_, ip) => ip,
            };
            format!(
                "{family} {} {} {} {}",
                ip(src),
                ip(dst),
                src.port(),
                dst.port()
            )
        }
        None => "UNKNOWN".to_owned(),
    };
    // Writing into a Vec cannot fail.
    let _ = write!(out, "PROXY {line}\r\n");
}

fn encode_v2(header: &ProxyHeader, out: &mut Vec<u8>) {
    let command = if header.local || header.addresses.is_none() {
        CMD_LOCAL
    } else {
        CMD_PROXY
    };
    out.extend_from_slice(V2_SIGNATURE);
    out.push(0x20 | command);
    let mut block = Vec::with_capacity(36);
    let family = match header.addresses {
        Some((SocketAddr::V4(src), SocketAddr::V4(dst))) => {
            block.extend_from_slice(&src.ip().octets());
            block.extend_from_slice(&dst.ip().octets());
            block.extend_from_slice(&src.port().to_be_bytes());
            block.extend_from_slice(&dst.port().to_be_bytes());
            AF_INET
        }
        Some((src, dst)) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            block.extend_from_slice(&v6(src).octets());
            block.extend_from_slice(&v6(dst).octets());
            block.extend_from_slice(&src.port().to_be_bytes());
            block.extend_from_slice(&dst.port().to_be_bytes());
            AF_INET6
        }
        None => AF_UNSPEC,
    };
    // TLVs follow an address block only: with UNSPEC the receiver ignores the whole body.
    let tlvs = match (family, &header.tlvs) {
        (AF_UNSPEC, _) | (_, None) => &[][..],
        (_, Some(tlvs)) => &tlvs[..],
    };
    out.push((family << 4) | u8::from(family != AF_UNSPEC));
    let body = u16::try_from(block.len() + tlvs.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&body.to_be_bytes());
    out.extend_from_slice(&block);
    out.extend_from_slice(tlvs);
}
