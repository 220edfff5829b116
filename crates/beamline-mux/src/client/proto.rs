//! How the driver speaks each kind of protocol: beamline's wire format, a user codec whose
//! messages are [`Tagged`], and a user codec without ids (FIFO).

use std::error::Error as StdError;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::error::{ConnectionError, ProtocolViolation};
use crate::frame::{FrameCodec, FrameError, FrameKind};
use crate::io::WriteBuf;
use crate::mux::Mode;
use crate::tagged::Tagged;

/// Why a request could not be encoded (nothing of it was written).
pub(crate) enum EncodeError {
    TooLarge { len: usize, max: usize },
    Codec(Arc<dyn StdError + Send + Sync>),
}

/// What came in.
pub(crate) enum Inbound<R> {
    /// An answer: to request `tag` (id mode) or to the oldest request (FIFO, `tag: None`).
    Reply { tag: Option<u32>, reply: Reply<R> },
    /// The peer asks whether we are alive.
    Ping { tag: u32, payload: Bytes },
    /// Nothing for anyone (a pong).
    Ignored,
}

pub(crate) enum Reply<R> {
    Ok(R),
    /// The peer's handler failed (wire format error frame).
    Remote(Bytes),
    /// The peer stopped the request without answering it.
    Cancelled,
}

/// One protocol, as the client driver needs it.
pub(crate) trait Proto: Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;

    fn mode(&self) -> Mode;

    /// Appends request `req` with id `tag` (ignored in FIFO mode). On error nothing needs
    /// undoing by the caller beyond rolling `out` back to where it was.
    fn encode(&mut self, tag: u32, req: Self::Req, out: &mut WriteBuf) -> Result<(), EncodeError>;

    /// Appends a cancel for `tag`, if the protocol has one (by default it has none).
    fn encode_cancel(&mut self, tag: u32, out: &mut WriteBuf) -> Result<(), EncodeError> {
        let _ = (tag, out);
        Ok(())
    }

    /// Appends the answer to a ping (by default the protocol has no pings).
    fn encode_pong(
        &mut self,
        tag: u32,
        payload: Bytes,
        out: &mut WriteBuf,
    ) -> Result<(), EncodeError> {
        let _ = (tag, payload, out);
        Ok(())
    }

    fn decode(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Inbound<Self::Resp>>, ConnectionError>;
}

fn codec_error(e: impl StdError + Send + Sync + 'static) -> EncodeError {
    EncodeError::Codec(Arc::new(e))
}

impl From<FrameError> for EncodeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => EncodeError::TooLarge { len, max },
            other => codec_error(other),
        }
    }
}

/// beamline's wire format: requests and responses are `Bytes` payloads.
pub(crate) struct WireProto {
    pub(crate) codec: FrameCodec,
}

impl Proto for WireProto {
    type Req = Bytes;
    type Resp = Bytes;

    fn mode(&self) -> Mode {
        Mode::Ids {
            max_tag: u32::MAX,
            cancel: true,
        }
    }

    fn encode(&mut self, tag: u32, req: Bytes, out: &mut WriteBuf) -> Result<(), EncodeError> {
        self.codec
            .encode_header(FrameKind::Request, tag, req.len(), out.tail())?;
        out.push_payload(req);
        Ok(())
    }

    fn encode_cancel(&mut self, tag: u32, out: &mut WriteBuf) -> Result<(), EncodeError> {
        Ok(self
            .codec
            .encode_header(FrameKind::Cancel, tag, 0, out.tail())?)
    }

    fn encode_pong(
        &mut self,
        tag: u32,
        payload: Bytes,
        out: &mut WriteBuf,
    ) -> Result<(), EncodeError> {
        self.codec
            .encode_header(FrameKind::Pong, tag, payload.len(), out.tail())?;
        out.push_payload(payload);
        Ok(())
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound<Bytes>>, ConnectionError> {
        let Some(frame) = self.codec.decode(src).map_err(ConnectionError::protocol)? else {
            return Ok(None);
        };
        let (id, kind, payload) = (frame.id, frame.kind, frame.payload);
        let reply = move |reply| Inbound::Reply {
            tag: Some(id),
            reply,
        };
        Ok(Some(match kind {
            FrameKind::Response => reply(Reply::Ok(payload)),
            FrameKind::Error => reply(Reply::Remote(payload)),
            FrameKind::Cancel => reply(Reply::Cancelled),
            FrameKind::Ping => Inbound::Ping { tag: id, payload },
            FrameKind::Pong => Inbound::Ignored,
            FrameKind::Request => {
                return Err(ConnectionError::protocol(
                    ProtocolViolation::UnexpectedFrame { kind, id },
                ));
            }
        }))
    }
}

/// A user codec as the driver uses it: its errors made shareable.
pub(crate) trait UserCodec<Req, Resp>: Send + 'static {
    fn encode_message(&mut self, message: Req, out: &mut WriteBuf) -> Result<(), EncodeError>;
    fn decode_message(&mut self, src: &mut BytesMut) -> Result<Option<Resp>, ConnectionError>;
}

impl<C, Req, Resp> UserCodec<Req, Resp> for C
where
    C: Encoder<Req> + Decoder<Item = Resp> + Send + 'static,
    <C as Encoder<Req>>::Error: StdError + Send + Sync + 'static,
    <C as Decoder>::Error: StdError + Send + Sync + 'static,
{
    fn encode_message(&mut self, message: Req, out: &mut WriteBuf) -> Result<(), EncodeError> {
        self.encode(message, out.tail()).map_err(codec_error)
    }

    fn decode_message(&mut self, src: &mut BytesMut) -> Result<Option<Resp>, ConnectionError> {
        self.decode(src).map_err(ConnectionError::protocol)
    }
}

/// Replies are matched by the tag their messages carry ([`Tagged`]).
pub(crate) struct ByTag;

/// Replies are matched by order (FIFO).
pub(crate) struct InOrder;

/// A user codec, matched `ByTag` or `InOrder`.
pub(crate) struct CodecProto<C, Req, Resp, Order> {
    pub(crate) codec: C,
    pub(crate) order: PhantomData<Order>,
    pub(crate) types: PhantomData<fn(Req) -> Resp>,
}

impl<C, Req, Resp> Proto for CodecProto<C, Req, Resp, ByTag>
where
    C: UserCodec<Req, Resp>,
    Req: Tagged + Send + 'static,
    Resp: Tagged + Send + 'static,
{
    type Req = Req;
    type Resp = Resp;

    fn mode(&self) -> Mode {
        Mode::Ids {
            max_tag: Req::MAX_TAG,
            cancel: true,
        }
    }

    fn encode(&mut self, tag: u32, mut req: Req, out: &mut WriteBuf) -> Result<(), EncodeError> {
        req.set_tag(tag);
        self.codec.encode_message(req, out)
    }

    fn encode_cancel(&mut self, tag: u32, out: &mut WriteBuf) -> Result<(), EncodeError> {
        match Req::cancel(tag) {
            Some(cancel) => self.codec.encode_message(cancel, out),
            None => Ok(()),
        }
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound<Resp>>, ConnectionError> {
        Ok(self
            .codec
            .decode_message(src)?
            .map(|resp| match resp.cancels() {
                Some(tag) => Inbound::Reply {
                    tag: Some(tag),
                    reply: Reply::Cancelled,
                },
                None => Inbound::Reply {
                    tag: Some(resp.tag()),
                    reply: Reply::Ok(resp),
                },
            }))
    }
}

impl<C, Req, Resp> Proto for CodecProto<C, Req, Resp, InOrder>
where
    C: UserCodec<Req, Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Req = Req;
    type Resp = Resp;

    fn mode(&self) -> Mode {
        Mode::Fifo
    }

    fn encode(&mut self, _: u32, req: Req, out: &mut WriteBuf) -> Result<(), EncodeError> {
        self.codec.encode_message(req, out)
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound<Resp>>, ConnectionError> {
        Ok(self.codec.decode_message(src)?.map(|resp| Inbound::Reply {
            tag: None,
            reply: Reply::Ok(resp),
        }))
    }
}
