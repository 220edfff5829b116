//! The TLVs (type, length, value) a v2 header may carry after its addresses.

use std::fmt;

/// One TLV of a v2 PROXY header: its type byte and its value, borrowed from the header.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tlv<'a> {
    /// The type: [`Tlv::ALPN`], [`Tlv::AUTHORITY`], [`Tlv::UNIQUE_ID`], ... or a custom one
    /// (0xE0 to 0xEF are for applications: AWS puts its VPC endpoint id in 0xEA).
    pub kind: u8,
    /// The value, as sent.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// `PP2_TYPE_ALPN`: the application protocol the client negotiated with the proxy.
    pub const ALPN: u8 = 0x01;
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (its TLS SNI), UTF-8.
    pub const AUTHORITY: u8 = 0x02;
    /// `PP2_TYPE_CRC32C`: a checksum of the header (not verified here).
    pub const CRC32C: u8 = 0x03;
    /// `PP2_TYPE_NOOP`: padding, to be ignored.
    pub const NOOP: u8 = 0x04;
    /// `PP2_TYPE_UNIQUE_ID`: an opaque id of the connection, up to 128 bytes (HAProxy's
    /// `unique-id-format`), to correlate the proxy's logs with yours.
    pub const UNIQUE_ID: u8 = 0x05;
    /// `PP2_TYPE_SSL`: what the proxy learned from the client's TLS (sub-TLVs inside).
    pub const SSL: u8 = 0x20;
    /// `PP2_TYPE_NETNS`: the network namespace the proxy accepted the connection in.
    pub const NETNS: u8 = 0x30;
}

impl fmt::Debug for Tlv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tlv")
            .field("kind", &format_args!("{:#04x}", self.kind))
            .field("value", &self.value)
            .finish()
    }
}

/// The TLVs of a header, in the order they were sent.
#[derive(Clone, Debug)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
}

impl<'a> Tlvs<'a> {
    /// Over bytes [`validate`] accepted (anything else ends the iteration early).
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let (tlv, rest) = split_one(self.rest).ok()??;
        self.rest = rest;
        Some(tlv)
    }
}

/// The first TLV of `bytes` and what follows it; `Ok(None)` when `bytes` is empty.
fn split_one(bytes: &[u8]) -> Result<Option<(Tlv<'_>, &[u8])>, &'static str> {
    let [kind, hi, lo, rest @ ..] = bytes else {
        return if bytes.is_empty() {
            Ok(None)
        } else {
            Err("a TLV cut short in its type or length")
        };
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if rest.len() < len {
        return Err("a TLV longer than the header");
    }
    let (value, rest) = rest.split_at(len);
    Ok(Some((Tlv { kind: *kind, value }, rest)))
}

/// Checks that `bytes` is a sequence of whole TLVs, exactly.
pub(crate) fn validate(mut bytes: &[u8]) -> Result<(), &'static str> {
    while let Some((_, rest)) = split_one(bytes)? {
        bytes = rest;
    }
    Ok(())
}
