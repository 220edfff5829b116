//! The per-node wire: RESP2, where one request may be `ASKING` and a command written back
//! to back.
//!
//! `ASK` redirects need `ASKING` and the command adjacent on one connection: a node honours
//! `ASKING` for the very next command of that connection only. The composed client admits
//! requests one by one, so two separate calls could have another caller's request between
//! them. Instead, [`NodeRequest::Asking`] is *one* request of the FIFO multiplexer: the
//! codec encodes both commands in the same `encode` call, into the same contiguous bytes of
//! the write buffer (the mux driver encodes a request whole, under its lock, before the
//! next), so nothing can come between them. The node answers twice; the decoder, which
//! shares this codec's state with the encoder (one codec per connection, as `Framed`
//! does), knows from the queue of requests written how many replies make up each answer,
//! consumes `ASKING`'s `+OK` and hands the command's reply to the caller as the one answer
//! of the one request. A new connection gets a fresh codec ([`Clone`]), so a queue never
//! outlives the replies it describes.

use std::collections::VecDeque;

use beamline_resp::{Command, RespCodec, RespError, Value};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// One request to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeRequest {
    /// A command on its own.
    Plain(Command),
    /// `ASKING` and the command, adjacent on the connection; answered by the command's
    /// reply (or by `ASKING`'s, if that was an error).
    Asking(Command),
    /// `READONLY` and a read-only command, adjacent, for a replica; answered as `Asking`.
    /// `READONLY` lasts for the connection, so sending it with every read costs a few
    /// bytes and makes a reconnected connection read-only with its first request.
    ReadOnly(Command),
}

/// The cluster client's per-connection codec: [`RespCodec`] plus the count of replies each
/// written request expects.
#[derive(Debug)]
pub(crate) struct ClusterCodec {
    resp: RespCodec,
    /// For each request written and not answered yet, in order: whether it is an `Asking`
    /// pair (two replies) or a plain command (one).
    expected: VecDeque<bool>,
    /// `ASKING`'s reply, once read, while the command's reply has not come yet.
    asking_reply: Option<Value>,
}

impl ClusterCodec {
    pub(crate) fn new() -> Self {
        ClusterCodec {
            resp: RespCodec::new(),
            expected: VecDeque::new(),
            asking_reply: None,
        }
    }
}

impl Clone for ClusterCodec {
    /// A fresh codec for another connection: no replies expected.
    fn clone(&self) -> Self {
        ClusterCodec::new()
    }
}

impl Encoder<NodeRequest> for ClusterCodec {
    type Error = RespError;

    fn encode(&mut self, request: NodeRequest, dst: &mut BytesMut) -> Result<(), RespError> {
        match request {
            NodeRequest::Plain(command) => {
                self.resp.encode(command, dst)?;
                self.expected.push_back(false);
            }
            NodeRequest::Asking(command) => {
                // Both commands into the same buffer, in one call: adjacent on the wire.
                self.resp.encode(Command::new("ASKING"), dst)?;
                self.resp.encode(command, dst)?;
                self.expected.push_back(true);
            }
            NodeRequest::ReadOnly(command) => {
                self.resp.encode(Command::new("READONLY"), dst)?;
                self.resp.encode(command, dst)?;
                self.expected.push_back(true);
            }
        }
        Ok(())
    }
}

impl Decoder for ClusterCodec {
    type Item = Value;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Value>, RespError> {
        loop {
            let Some(reply) = self.resp.decode(src)? else {
                return Ok(None);
            };
            // A reply nobody is known to wait for is passed up as one answer: the
            // multiplexer decides what an unsolicited reply means.
            let pair = self.expected.front().copied().unwrap_or(false);
            if pair && self.asking_reply.is_none() {
                self.asking_reply = Some(reply);
                continue;
            }
            self.expected.pop_front();
            return Ok(Some(match self.asking_reply.take() {
                Some(asking) if asking.is_error() => asking,
                _ => reply,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_and_its_command_are_adjacent_and_answer_once() {
        let mut codec = ClusterCodec::new();
        let mut wire = BytesMut::new();
        codec
            .encode(NodeRequest::Plain(Command::new("GET").arg("a")), &mut wire)
            .unwrap();
        codec
            .encode(NodeRequest::Asking(Command::new("GET").arg("b")), &mut wire)
            .unwrap();
        codec
            .encode(NodeRequest::Plain(Command::new("GET").arg("c")), &mut wire)
            .unwrap();
        assert_eq!(
            &wire[..],
            &b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$6\r\nASKING\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\nc\r\n"[..]
        );
        // The replies arrive in pieces; each request gets exactly one answer.
        let mut input = BytesMut::from(&b"$1\r\nA\r\n+O"[..]);
        assert_eq!(codec.decode(&mut input).unwrap(), Some(Value::bulk("A")));
        assert_eq!(codec.decode(&mut input).unwrap(), None);
        input.extend_from_slice(b"K\r\n$1\r");
        assert_eq!(codec.decode(&mut input).unwrap(), None);
        input.extend_from_slice(b"\nB\r\n$1\r\nC\r\n");
        assert_eq!(codec.decode(&mut input).unwrap(), Some(Value::bulk("B")));
        assert_eq!(codec.decode(&mut input).unwrap(), Some(Value::bulk("C")));
        assert_eq!(codec.decode(&mut input).unwrap(), None);
        assert!(codec.expected.is_empty());
    }

    #[test]
    fn readonly_and_its_read_are_adjacent_and_answer_once() {
        let mut codec = ClusterCodec::new();
        let mut wire = BytesMut::new();
        codec
            .encode(
                NodeRequest::ReadOnly(Command::new("GET").arg("r")),
                &mut wire,
            )
            .unwrap();
        assert_eq!(
            &wire[..],
            &b"*1\r\n$8\r\nREADONLY\r\n*2\r\n$3\r\nGET\r\n$1\r\nr\r\n"[..]
        );
        let mut input = BytesMut::from(&b"+OK\r\n$1\r\nR\r\n"[..]);
        assert_eq!(codec.decode(&mut input).unwrap(), Some(Value::bulk("R")));
        assert!(codec.expected.is_empty());
    }

    #[test]
    fn a_refused_asking_is_the_answer() {
        let mut codec = ClusterCodec::new();
        let mut wire = BytesMut::new();
        codec
            .encode(NodeRequest::Asking(Command::new("GET").arg("b")), &mut wire)
            .unwrap();
        let mut input = BytesMut::from(&b"-ERR no\r\n$1\r\nB\r\n"[..]);
        assert_eq!(
            codec.decode(&mut input).unwrap(),
            Some(Value::error("ERR no"))
        );
        assert!(codec.clone().expected.is_empty());
    }
}
