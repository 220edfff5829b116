//! The PROXY protocol (HAProxy's, v1 text and v2 binary): how a balancer in front of the
//! server tells it the real client's address.
//!
//! A balancer that relays TCP (HAProxy `send-proxy` / `send-proxy-v2`, an AWS NLB, Fly's TLS
//! passthrough, nginx `proxy_protocol on` in its stream module) connects to the server
//! itself, so the server sees the balancer's address. With the PROXY protocol it first writes
//! a header saying who the client is; [`Server::proxy_protocol`](crate::Server::proxy_protocol)
//! makes a listener read it.
//!
//! The header is read in the connection's own process, under the handshake timeout, by
//! peeking: nothing past the header is consumed (TLS and your handler see the stream as the
//! client sent it). Then the carried source address becomes the connection's
//! [`peer`](crate::ConnInfo::peer) — what the per-IP cap counts and what the `peer` field of
//! the tracing events shows — and the balancer's address is kept as
//! [`via`](crate::ConnInfo::via). [`ProxyHeader`] is the parsed header (v2 TLVs included),
//! also usable alone: [`ProxyHeader::parse`] is sans-IO.

mod error;
pub(crate) mod parse;
pub(crate) mod read;
#[cfg(test)]
mod tests;
mod tlv;
mod trust;

use std::fmt;
use std::net::SocketAddr;

pub use error::ProxyError;
pub use parse::{MAX_HEADER_LEN, Parsed};
pub use tlv::{Tlv, Tlvs};
pub use trust::{Cidr, CidrError};

/// Whether a listener reads a PROXY protocol header first, set per listener with
/// [`Server::proxy_protocol`](crate::Server::proxy_protocol).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: off, required or optional
pub enum ProxyProtocol {
    /// No header: the connection's bytes are the client's. The default.
    #[default]
    Off,
    /// Every connection starts with a v1 or v2 header; one that does not (or sends a
    /// malformed one, or none within the handshake timeout, or comes from a source not in
    /// [`proxy_protocol_from`](crate::Server::proxy_protocol_from)) is closed with a
    /// [`ProxyError`], counted in [`ServerStats::proxy_failures`](crate::ServerStats::proxy_failures)
    /// and `handshake_failures`. Right when only the balancer can reach the listener.
    Required,
    /// A connection from a trusted source
    /// ([`proxy_protocol_from`](crate::Server::proxy_protocol_from), required with this
    /// mode) may start with a header; one that does not is served as it is. A header from
    /// any other source is refused. The server decides from the client's first bytes, so this
    /// suits protocols where the client speaks first; for one where the server speaks first
    /// use [`Required`](Self::Required).
    Optional,
}

impl ProxyProtocol {
    /// Whether a header may be read at all.
    pub(crate) fn is_on(self) -> bool {
        self != Self::Off
    }
}

/// Which version of the protocol a header was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: the two versions the PROXY protocol defines
pub enum ProxyVersion {
    /// The text form: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
    V1,
    /// The binary form, with optional TLVs.
    V2,
}

impl fmt::Display for ProxyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        })
    }
}

/// A parsed PROXY header: the client's address as the balancer saw it, and for v2 its TLVs.
///
/// No address ([`source`](Self::source) is `None`) means the balancer had none to give — a
/// v1 `UNKNOWN`, a v2 `UNSPEC` or Unix-socket client — or spoke for itself (a v2 `LOCAL`
/// command: its health checks); the connection then keeps its real peer address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    pub(crate) version: ProxyVersion,
    pub(crate) local: bool,
    /// Source (the client) and destination (the address the client connected to).
    pub(crate) addresses: Option<(SocketAddr, SocketAddr)>,
    /// The v2 TLV bytes after the address block, checked to be whole TLVs; boxed and absent
    /// unless sent, so a header without TLVs allocates nothing.
    pub(crate) tlvs: Option<Box<[u8]>>,
}

impl ProxyHeader {
    /// Parses the header at the start of `input`: sans-IO, for a header read by other means
    /// (the server reads its own). `input` may hold more than the header (the client's data
    /// after it) or less (then [`Parsed::Incomplete`] says how much is needed).
    ///
    /// # Errors
    /// [`ProxyError::Malformed`] for bytes that start like a header (the v1 `PROXY ` or the
    /// v2 signature) but break the format; [`ProxyError::TooLarge`] for a header over
    /// [`MAX_HEADER_LEN`] (decided from the v2 length field, or from 107 bytes without a
    /// v1 line end). Never panics, whatever `input` holds.
    pub fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
        parse::parse(input)
    }

    /// A header carrying `source` (the client) and `destination` (where it connected), to be
    /// written with [`encode`](Self::encode) — what a balancer sends.
    pub fn new(version: ProxyVersion, source: SocketAddr, destination: SocketAddr) -> Self {
        Self {
            version,
            local: false,
            addresses: Some((source, destination)),
            tlvs: None,
        }
    }

    /// A header without addresses: v1 `UNKNOWN`, v2 `LOCAL` (a balancer's health check).
    pub fn local(version: ProxyVersion) -> Self {
        Self {
            version,
            local: version == ProxyVersion::V2,
            addresses: None,
            tlvs: None,
        }
    }

    /// Adds a v2 TLV (ignored by a v1 header, and by one without addresses).
    ///
    /// # Errors
    /// [`ProxyError::TooLarge`] if the header would exceed [`MAX_HEADER_LEN`].
    pub fn with_tlv(mut self, kind: u8, value: &[u8]) -> Result<Self, ProxyError> {
        let mut tlvs = self.tlvs.take().map(Vec::from).unwrap_or_default();
        let len = u16::try_from(value.len()).map_err(|_| ProxyError::TooLarge {
            len: value.len(),
            max: MAX_HEADER_LEN,
        })?;
        // 16 fixed bytes and the largest address block (IPv6: 36).
        let total = 16 + 36 + tlvs.len() + 3 + value.len();
        if total > MAX_HEADER_LEN {
            return Err(ProxyError::TooLarge {
                len: total,
                max: MAX_HEADER_LEN,
            });
        }
        tlvs.push(kind);
        tlvs.extend_from_slice(&len.to_be_bytes());
        tlvs.extend_from_slice(value);
        self.tlvs = Some(tlvs.into_boxed_slice());
        Ok(self)
    }

    /// Appends the header's bytes, in its version, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        parse::encode(self, out);
    }

    /// v1 or v2.
    pub fn version(&self) -> ProxyVersion {
        self.version
    }

    /// The client's address, when the header carried one.
    pub fn source(&self) -> Option<SocketAddr> {
        self.addresses.map(|(source, _)| source)
    }

    /// The address the client connected to (the balancer's front), when carried.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.addresses.map(|(_, destination)| destination)
    }

    /// Whether this is a v2 `LOCAL` header: the balancer's own connection (a health check),
    /// whose addresses, if any, are to be ignored.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The v2 TLVs, in the order sent (none for v1).
    pub fn tlvs(&self) -> Tlvs<'_> {
        Tlvs::new(self.tlvs.as_deref().unwrap_or_default())
    }

    /// The value of the first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs().find(|t| t.kind == kind).map(|t| t.value)
    }

    /// The ALPN protocol the client negotiated with the balancer (`PP2_TYPE_ALPN`).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlv(Tlv::ALPN)
    }

    /// The host name the client asked the balancer for (`PP2_TYPE_AUTHORITY`, its SNI), when
    /// sent and valid UTF-8.
    pub fn authority(&self) -> Option<&str> {
        std::str::from_utf8(self.tlv(Tlv::AUTHORITY)?).ok()
    }

    /// The balancer's id for this connection (`PP2_TYPE_UNIQUE_ID`).
    pub fn unique_id(&self) -> Option<&[u8]> {
        self.tlv(Tlv::UNIQUE_ID)
    }
}

impl fmt::Debug for ProxyHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHeader")
            .field("version", &self.version)
            .field("local", &self.local)
            .field("source", &self.source())
            .field("destination", &self.destination())
            .field("tlvs", &self.tlvs().collect::<Vec<_>>())
            .finish()
    }
}
