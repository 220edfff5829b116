//! How the server speaks each protocol: beamline's wire format, or a user codec whose
//! messages are [`Tagged`].

use std::error::Error as StdError;
use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::error::ServeError;
use crate::frame::{FrameCodec, FrameError, FrameKind};
use crate::io::WriteBuf;
use crate::tagged::Tagged;

pub(crate) enum Incoming<R> {
    Request { tag: u32, request: R },
    Cancel { tag: u32 },
    Ping { tag: u32, payload: Bytes },
    Ignored,
}

pub(crate) trait ServerProto {
    type Req;
    type Resp;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming<Self::Req>>, ServeError>;

    /// Whether the next message in `src` is a control message (a cancel, a ping) rather
    /// than a request; `None` while too few bytes are there to tell. A protocol that cannot
    /// tell without decoding says `Some(false)`.
    fn next_is_control(&self, src: &BytesMut) -> Option<bool>;

    fn encode_reply(
        &mut self,
        tag: u32,
        resp: Self::Resp,
        out: &mut WriteBuf,
    ) -> Result<(), ServeError>;

    /// The acknowledgement that request `tag` was cancelled and will not be answered.
    fn encode_cancelled(&mut self, tag: u32, out: &mut WriteBuf) -> Result<(), ServeError>;

    fn encode_pong(
        &mut self,
        tag: u32,
        payload: Bytes,
        out: &mut WriteBuf,
    ) -> Result<(), ServeError>;
}

fn decode_error(e: impl StdError + Send + Sync + 'static) -> ServeError {
    ServeError::Decode(Box::new(e))
}

fn encode_error(e: impl StdError + Send + Sync + 'static) -> ServeError {
    ServeError::Encode(Box::new(e))
}

pub(crate) struct WireServer {
    pub(crate) codec: FrameCodec,
}

impl WireServer {
    fn frame(
        &self,
        kind: FrameKind,
        tag: u32,
        payload: Bytes,
        out: &mut WriteBuf,
    ) -> Result<(), FrameError> {
        self.codec
            .encode_header(kind, tag, payload.len(), out.tail())?;
        out.push_payload(payload);
        Ok(())
    }
}

impl ServerProto for WireServer {
    type Req = Bytes;
    type Resp = Result<Bytes, Bytes>;

    fn next_is_control(&self, src: &BytesMut) -> Option<bool> {
        src.get(4).map(|&kind| kind != FrameKind::Request.as_u8())
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming<Bytes>>, ServeError> {
        let Some(frame) = self.codec.decode(src).map_err(decode_error)? else {
            return Ok(None);
        };
        Ok(Some(match frame.kind {
            FrameKind::Request => Incoming::Request {
                tag: frame.id,
                request: frame.payload,
            },
            FrameKind::Cancel => Incoming::Cancel { tag: frame.id },
            FrameKind::Ping => Incoming::Ping {
                tag: frame.id,
                payload: frame.payload,
            },
            FrameKind::Pong => Incoming::Ignored,
            kind @ (FrameKind::Response | FrameKind::Error) => {
                return Err(ServeError::UnexpectedFrame { kind, id: frame.id });
            }
        }))
    }

    fn encode_reply(
        &mut self,
        tag: u32,
        resp: Result<Bytes, Bytes>,
        out: &mut WriteBuf,
    ) -> Result<(), ServeError> {
        let (kind, payload) = match resp {
            Ok(payload) => (FrameKind::Response, payload),
            Err(payload) => (FrameKind::Error, payload),
        };
        match self.frame(kind, tag, payload, out) {
            Ok(()) => Ok(()),
            // The caller still gets exactly one answer: an error saying why.
            Err(FrameError::TooLarge { len, max }) => {
                let mut why =
                    format!("response of {len} bytes exceeds the maximum frame length of {max}")
                        .into_bytes();
                // The explanation itself must fit (it is ASCII: any cut is valid).
                why.truncate(max);
                self.frame(FrameKind::Error, tag, Bytes::from(why), out)
                    .map_err(encode_error)
            }
            Err(e) => Err(encode_error(e)),
        }
    }

    fn encode_cancelled(&mut self, tag: u32, out: &mut WriteBuf) -> Result<(), ServeError> {
        self.frame(FrameKind::Cancel, tag, Bytes::new(), out)
            .map_err(encode_error)
    }

    fn encode_pong(
        &mut self,
        tag: u32,
        payload: Bytes,
        out: &mut WriteBuf,
    ) -> Result<(), ServeError> {
        self.frame(FrameKind::Pong, tag, payload, out)
            .map_err(encode_error)
    }
}

pub(crate) struct TaggedServer<C, Req, Resp> {
    pub(crate) codec: C,
    pub(crate) types: PhantomData<fn(Req) -> Resp>,
}

impl<C, Req, Resp> ServerProto for TaggedServer<C, Req, Resp>
where
    C: Decoder<Item = Req> + Encoder<Resp>,
    <C as Decoder>::Error: StdError + Send + Sync + 'static,
    <C as Encoder<Resp>>::Error: StdError + Send + Sync + 'static,
    Req: Tagged,
    Resp: Tagged,
{
    type Req = Req;
    type Resp = Resp;

    fn next_is_control(&self, _: &BytesMut) -> Option<bool> {
        Some(false)
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming<Req>>, ServeError> {
        let Some(req) = self.codec.decode(src).map_err(decode_error)? else {
            return Ok(None);
        };
        Ok(Some(match req.cancels() {
            Some(tag) => Incoming::Cancel { tag },
            None => Incoming::Request {
                tag: req.tag(),
                request: req,
            },
        }))
    }

    fn encode_reply(
        &mut self,
        tag: u32,
        mut resp: Resp,
        out: &mut WriteBuf,
    ) -> Result<(), ServeError> {
        resp.set_tag(tag);
        self.codec.encode(resp, out.tail()).map_err(encode_error)
    }

    fn encode_cancelled(&mut self, tag: u32, out: &mut WriteBuf) -> Result<(), ServeError> {
        match Resp::cancel(tag) {
            Some(ack) => self.codec.encode(ack, out.tail()).map_err(encode_error),
            None => Ok(()),
        }
    }

    fn encode_pong(&mut self, _: u32, _: Bytes, _: &mut WriteBuf) -> Result<(), ServeError> {
        Ok(())
    }
}
