//! A user protocol with its own ids: a Cassandra-like codec whose id space is `0..=MAX`.

use std::io;

use beamline_mux::Tagged;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// One message: `[stream: i16][opcode: u8][len: u32][body]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message<const MAX: u32> {
    pub(crate) stream: i16,
    pub(crate) op: Op,
    pub(crate) body: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Query,
    Result,
    /// Client: cancel that stream. Server: that stream was cancelled.
    Cancel,
}

impl<const MAX: u32> Message<MAX> {
    pub(crate) fn query(body: &str) -> Self {
        Message {
            stream: -1,
            op: Op::Query,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }
}

impl<const MAX: u32> Tagged for Message<MAX> {
    const MAX_TAG: u32 = MAX;

    fn tag(&self) -> u32 {
        self.stream as u32
    }

    fn set_tag(&mut self, tag: u32) {
        self.stream = i16::try_from(tag).unwrap_or(i16::MAX);
    }

    fn cancel(tag: u32) -> Option<Self> {
        let mut m = Message {
            stream: 0,
            op: Op::Cancel,
            body: Bytes::new(),
        };
        m.set_tag(tag);
        Some(m)
    }

    fn cancels(&self) -> Option<u32> {
        (self.op == Op::Cancel).then(|| self.tag())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Codec<const MAX: u32>;

impl<const MAX: u32> Decoder for Codec<MAX> {
    type Item = Message<MAX>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Message<MAX>>> {
        if src.len() < 7 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[3], src[4], src[5], src[6]]) as usize;
        if len > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
        }
        if src.len() < 7 + len {
            return Ok(None);
        }
        let stream = src.get_i16();
        let op = match src.get_u8() {
            0 => Op::Query,
            1 => Op::Result,
            2 => Op::Cancel,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("opcode {other}"),
                ));
            }
        };
        src.advance(4);
        let body = src.split_to(len).freeze();
        Ok(Some(Message { stream, op, body }))
    }
}

impl<const MAX: u32> Encoder<Message<MAX>> for Codec<MAX> {
    type Error = io::Error;

    fn encode(&mut self, m: Message<MAX>, dst: &mut BytesMut) -> io::Result<()> {
        dst.put_i16(m.stream);
        dst.put_u8(match m.op {
            Op::Query => 0,
            Op::Result => 1,
            Op::Cancel => 2,
        });
        dst.put_u32(m.body.len() as u32);
        dst.put_slice(&m.body);
        Ok(())
    }
}
