//! beamline's wire format, for users who own both ends of the connection.
//!
//! Every frame is a 9-byte header followed by its payload:
//!
//! ```text
//! 0       4    5       9
//! +-------+----+-------+-----------------+
//! |  len  |kind|  id   | payload (len B) |
//! +-------+----+-------+-----------------+
//!  u32 BE  u8   u32 BE
//! ```
//!
//! `len` counts the payload only. `kind` is a [`FrameKind`]; `id` is the request id the
//! frame belongs to (a response carries the id of its request).
//!
//! [`FrameCodec`] is a tokio-util [`Encoder`]/[`Decoder`] pair for it:
//! - decode is zero-copy: the payload is a [`Bytes`] split off the read buffer;
//! - the maximum payload length (default [`DEFAULT_MAX_FRAME_LEN`], 16 MiB) is checked as
//!   soon as the header is complete, *before* any buffer is grown for the payload: a header
//!   that announces 4 GiB costs nothing but a [`FrameError::TooLarge`];
//! - an unknown kind byte is a [`FrameError::UnknownKind`] (also seen at the header, before
//!   waiting for the payload), and a stream that ends inside a frame is a
//!   [`FrameError::Truncated`] from [`Decoder::decode_eof`].
//!
//! After a decode error the byte stream is out of step: the connection must be closed.

mod error;

pub use error::FrameError;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Length of the frame header in bytes: `len` (4), `kind` (1), `id` (4).
pub const HEADER_LEN: usize = 9;

/// The default maximum payload length: 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// What a frame is for.
///
/// The client sends `Request`, `Cancel` and `Ping`; the server answers each request with
/// exactly one of `Response`, `Error` or `Cancel` (the last meaning "cancelled as you asked:
/// no response follows"), and each `Ping` with a `Pong` carrying the same id and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(clippy::exhaustive_enums)] // closed: the wire format's kinds; a new one is a new wire version
pub enum FrameKind {
    /// A request; the payload is the request body.
    Request = 0,
    /// A successful response to the request with the same id.
    Response = 1,
    /// A failed response (the handler returned an error); the payload describes it.
    Error = 2,
    /// Client to server: stop working on this request. Server to client: the request was
    /// cancelled before it produced a response, and none will follow.
    Cancel = 3,
    /// A liveness probe; the peer answers with a `Pong` echoing id and payload.
    Ping = 4,
    /// The answer to a `Ping`.
    Pong = 5,
}

impl FrameKind {
    /// The kind whose wire byte is `byte`, if there is one.
    pub fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Request,
            1 => Self::Response,
            2 => Self::Error,
            3 => Self::Cancel,
            4 => Self::Ping,
            5 => Self::Pong,
            _ => return None,
        })
    }

    /// The wire byte of this kind.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// One frame of the wire format: a kind, a request id and a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs)] // closed: the wire format's three fields, built as a literal by servers
pub struct Frame {
    /// The request this frame belongs to.
    pub id: u32,
    /// What the frame is for.
    pub kind: FrameKind,
    /// The body. Decoded frames share the read buffer's memory (no copy).
    pub payload: Bytes,
}

impl Frame {
    /// A frame of `kind` for request `id`.
    pub fn new(kind: FrameKind, id: u32, payload: impl Into<Bytes>) -> Self {
        Frame {
            id,
            kind,
            payload: payload.into(),
        }
    }

    /// The length of this frame on the wire (header and payload).
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

/// The tokio-util codec for [`Frame`]s, with a maximum payload length.
///
/// # Errors
/// Decoding returns [`FrameError::TooLarge`] for a header announcing more than the maximum
/// (before allocating anything for it), [`FrameError::UnknownKind`] for a kind byte that is
/// not a [`FrameKind`], and, at end of stream, [`FrameError::Truncated`] for a partial frame.
/// Encoding a frame whose payload is over the maximum returns [`FrameError::TooLarge`] and
/// writes nothing.
///
/// # Examples
///
/// ```
/// use beamline_mux::{Frame, FrameCodec, FrameKind};
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FrameCodec::new();
/// let mut buf = BytesMut::new();
/// codec.encode(Frame::new(FrameKind::Request, 7, "hello"), &mut buf)?;
/// let frame = codec.decode(&mut buf)?.expect("a whole frame");
/// assert_eq!((frame.id, frame.kind, &frame.payload[..]), (7, FrameKind::Request, &b"hello"[..]));
/// # Ok::<(), beamline_mux::FrameError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl FrameCodec {
    /// A codec with the default maximum payload length (16 MiB).
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A codec whose payloads may be at most `max_frame_len` bytes (capped at `u32::MAX`,
    /// the largest length the header can carry).
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        FrameCodec {
            max_frame_len: max_frame_len.min(u32::MAX as usize),
        }
    }

    /// The maximum payload length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Checks that a payload of `len` bytes may be sent.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] when `len` is over the maximum.
    pub fn check_len(&self, len: usize) -> Result<(), FrameError> {
        if len > self.max_frame_len {
            Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            })
        } else {
            Ok(())
        }
    }

    /// Writes the header of a frame of `kind` for `id` whose payload is `len` bytes, after
    /// checking `len` against the maximum. The caller appends the payload (or hands it to
    /// a vectored write).
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] when `len` is over the maximum; nothing is written then.
    pub fn encode_header(
        &self,
        kind: FrameKind,
        id: u32,
        len: usize,
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        self.check_len(len)?;
        // The check above bounds `len` by `u32::MAX`.
        let len = len as u32;
        let mut head = [0u8; HEADER_LEN];
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4] = kind.as_u8();
        head[5..].copy_from_slice(&id.to_be_bytes());
        dst.put_slice(&head);
        Ok(())
    }

    /// Encodes a frame from its parts, copying the payload (the allocation-free form of
    /// [`Encoder::encode`] when the caller holds a borrowed payload).
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] when the payload is over the maximum; nothing is written then.
    pub fn encode_parts(
        &self,
        kind: FrameKind,
        id: u32,
        payload: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        self.check_len(payload.len())?;
        dst.reserve(HEADER_LEN + payload.len());
        self.encode_header(kind, id, payload.len(), dst)?;
        dst.put_slice(payload);
        Ok(())
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(head) = src.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let [l0, l1, l2, l3, kind, i0, i1, i2, i3] = *head;
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        // Both checks come before anything is reserved for the payload.
        self.check_len(len)?;
        let kind = FrameKind::from_u8(kind).ok_or(FrameError::UnknownKind { kind })?;
        let total = HEADER_LEN + len;
        if src.len() < total {
            // Bounded by the check above: at most HEADER_LEN + max_frame_len.
            src.reserve(total - src.len());
            return Ok(None);
        }
        let id = u32::from_be_bytes([i0, i1, i2, i3]);
        src.advance(HEADER_LEN);
        let payload = src.split_to(len).freeze();
        Ok(Some(Frame { id, kind, payload }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let need = src
                    .first_chunk::<4>()
                    .map_or(HEADER_LEN, |l| HEADER_LEN + u32::from_be_bytes(*l) as usize);
                Err(FrameError::Truncated {
                    have: src.len(),
                    need,
                })
            }
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_parts(frame.kind, frame.id, &frame.payload, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_parts(frame.kind, frame.id, &frame.payload, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frames: &[Frame]) -> BytesMut {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        for f in frames {
            codec.encode(f, &mut buf).unwrap();
        }
        buf
    }

    #[test]
    fn header_layout_is_len_kind_id_big_endian() {
        let buf = encoded(&[Frame::new(FrameKind::Error, 0x0102_0304, "ab")]);
        assert_eq!(&buf[..], &[0, 0, 0, 2, 2, 1, 2, 3, 4, b'a', b'b']);
    }

    #[test]
    fn decodes_back_to_back_frames_and_waits_for_partial_ones() {
        let frames = [
            Frame::new(FrameKind::Request, 1, "one"),
            Frame::new(FrameKind::Ping, 2, ""),
            Frame::new(FrameKind::Response, 3, vec![9u8; 300]),
        ];
        let all = encoded(&frames);
        let mut codec = FrameCodec::new();
        let mut src = BytesMut::new();
        let mut out = Vec::new();
        for byte in all.iter() {
            src.put_u8(*byte);
            while let Some(f) = codec.decode(&mut src).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
        assert!(src.is_empty());
    }

    #[test]
    fn decoded_payload_shares_the_read_buffer() {
        let mut src = encoded(&[Frame::new(FrameKind::Request, 1, vec![7u8; 64])]);
        let start = src.as_ptr() as usize;
        let frame = FrameCodec::new().decode(&mut src).unwrap().unwrap();
        assert_eq!(frame.payload.as_ptr() as usize, start + HEADER_LEN);
    }

    #[test]
    fn an_oversized_header_is_refused_before_any_allocation() {
        let mut codec = FrameCodec::with_max_frame_len(1024);
        let mut src = BytesMut::with_capacity(16);
        src.put_u32(u32::MAX);
        src.put_u8(0);
        src.put_u32(1);
        let cap = src.capacity();
        let err = codec.decode(&mut src).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 1024
            }
        );
        assert_eq!(src.capacity(), cap);
    }

    #[test]
    fn an_unknown_kind_is_refused_at_the_header() {
        let mut src = BytesMut::new();
        src.put_u32(1_000);
        src.put_u8(42);
        src.put_u32(1);
        let err = FrameCodec::new().decode(&mut src).unwrap_err();
        assert_eq!(err, FrameError::UnknownKind { kind: 42 });
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let mut src = encoded(&[Frame::new(FrameKind::Request, 1, "hello")]);
        src.truncate(11);
        let err = FrameCodec::new().decode_eof(&mut src).unwrap_err();
        assert_eq!(err, FrameError::Truncated { have: 11, need: 14 });
        let mut head_only = BytesMut::from(&[0u8, 0][..]);
        let err = FrameCodec::new().decode_eof(&mut head_only).unwrap_err();
        assert_eq!(err, FrameError::Truncated { have: 2, need: 9 });
        assert_eq!(FrameCodec::new().decode_eof(&mut BytesMut::new()), Ok(None));
    }

    #[test]
    fn encoding_an_oversized_payload_writes_nothing() {
        let mut codec = FrameCodec::with_max_frame_len(4);
        let mut dst = BytesMut::new();
        let err = codec
            .encode(Frame::new(FrameKind::Request, 1, "12345"), &mut dst)
            .unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 5, max: 4 });
        assert!(dst.is_empty());
    }

    #[test]
    fn every_kind_round_trips_through_its_byte() {
        for byte in 0..=255u8 {
            match FrameKind::from_u8(byte) {
                Some(kind) => assert_eq!(kind.as_u8(), byte),
                None => assert!(byte > 5),
            }
        }
    }
}
