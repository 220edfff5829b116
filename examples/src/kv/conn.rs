//! One connection, as its own process: RESP requests in, replies out in request order, one
//! flush per batch of requests that arrived together.

use std::io;
use std::pin::pin;
use std::sync::Arc;

use beamline::resp::{RespCodec, RespError, Value};
use beamline::server::{Connection, ExitReason};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::commands::{ConfigTable, Session, execute};
use super::store::{Clock, Store};

/// How much a connection reads at a time.
const READ_CAPACITY: usize = 16 * 1024;

/// Replies are flushed mid-batch once this many bytes wait, so a batch of requests for big
/// values never piles up in memory: the socket's backpressure reaches the reader.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// What every connection of one kv server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    /// The request decoder's settings (limits, inline commands); cloned per connection.
    pub(crate) codec: RespCodec,
    pub(crate) config: ConfigTable,
}

/// Serves one connection until the peer closes it, sends QUIT or bad input, or the server
/// drains (the batch in progress is answered first).
pub(crate) async fn serve(conn: Connection, shared: Arc<Shared>) -> Result<(), ExitReason> {
    let mut session = Session::new(conn.id().as_u64());
    let shutdown = conn.shutdown_signal();
    let mut drain = pin!(shutdown.requested());
    let mut framed = Framed::with_capacity(conn, shared.codec.clone(), READ_CAPACITY);
    // Replies are encoded straight into the write buffer by a second codec (encoding keeps
    // no state), so a batch costs one flush rather than one `Sink::send` per reply.
    let mut encoder = RespCodec::new();
    loop {
        let first = tokio::select! {
            biased;
            () = &mut drain => return Ok(()),
            next = framed.next() => next,
        };
        let mut clock = Clock::new();
        let mut next = first;
        // Everything already decodable is answered before the one flush below.
        loop {
            let request = match next {
                None => return close(&mut framed).await,
                Some(Ok(request)) => request,
                Some(Err(RespError::Io(e))) => return peer_gone(e),
                Some(Err(e)) => {
                    let reply = protocol_error(&e, framed.read_buffer());
                    return reply_and_close(&mut framed, &mut encoder, &reply).await;
                }
            };
            match request_args(request) {
                Ok(None) => {}
                Ok(Some(args)) => {
                    let reply = execute(
                        &args,
                        &shared.store,
                        &mut session,
                        &shared.config,
                        &mut clock,
                    );
                    encode(&mut encoder, &reply, framed.write_buffer_mut());
                    if session.quit {
                        return close(&mut framed).await;
                    }
                    if framed.write_buffer().len() >= WRITE_HIGH_WATER {
                        if let Err(e) = flush(&mut framed).await {
                            return flush_failed(e);
                        }
                        // Time moved on while the socket was full.
                        clock = Clock::new();
                    }
                }
                Err(reply) => return reply_and_close(&mut framed, &mut encoder, &reply).await,
            }
            next = match decode_buffered(&mut framed) {
                Ok(Some(request)) => Some(Ok(request)),
                Ok(None) => break,
                Err(e) => Some(Err(e)),
            };
        }
        if let Err(e) = flush(&mut framed).await {
            return flush_failed(e);
        }
    }
}

/// The next request already in the read buffer, without reading the socket.
fn decode_buffered(framed: &mut Framed<Connection, RespCodec>) -> Result<Option<Value>, RespError> {
    // The codec and the buffer are both inside `framed`: take the buffer out for the call
    // (moving a `BytesMut` copies four words and allocates nothing).
    let mut buffer = std::mem::take(framed.read_buffer_mut());
    let decoded = framed.codec_mut().decode(&mut buffer);
    *framed.read_buffer_mut() = buffer;
    decoded
}

/// A request's arguments: `Ok(None)` for an empty array (Redis ignores it), an error reply
/// for anything but an array of bulk strings.
fn request_args(request: Value) -> Result<Option<Vec<Bytes>>, Value> {
    match request {
        Value::Array(items) if items.is_empty() => Ok(None),
        Value::NullArray => Ok(None),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Bulk(arg) => Ok(arg),
                Value::Null => Err(protocol("invalid bulk length")),
                other => Err(protocol(&format!(
                    "expected '$', got '{}'",
                    type_byte(&other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(protocol(&format!(
            "expected '*', got '{}'",
            type_byte(&other)
        ))),
    }
}

fn type_byte(value: &Value) -> char {
    match value {
        Value::Simple(_) => '+',
        Value::Error(_) => '-',
        Value::Integer(_) => ':',
        Value::Bulk(_) | Value::Null => '$',
        Value::Array(_) | Value::NullArray => '*',
    }
}

fn protocol(what: &str) -> Value {
    Value::Error(Bytes::from(format!("ERR Protocol error: {what}")))
}

/// The error reply Redis gives for input it cannot parse. `buffered` is the read buffer,
/// which still starts with the offending frame (a failed decode consumes nothing).
fn protocol_error(error: &RespError, buffered: &[u8]) -> Value {
    let length_kind = |type_at: Option<usize>| match type_at.and_then(|i| buffered.get(i)) {
        Some(b'*') => "invalid multibulk length",
        _ => "invalid bulk length",
    };
    match error {
        RespError::BulkTooLong { .. } => protocol("invalid bulk length"),
        RespError::InvalidLength { offset, .. } => protocol(length_kind(Some(*offset))),
        RespError::InvalidInteger { offset } => protocol(length_kind(offset.checked_sub(1))),
        RespError::UnexpectedByte { byte, .. } => {
            protocol(&format!("expected '$', got '{}'", printable(*byte)))
        }
        RespError::TooDeep { .. } => protocol("expected '$', got '*'"),
        RespError::LineTooLong { .. } => protocol("too big inline request"),
        RespError::FrameTooLarge { .. } => protocol("too big request"),
        RespError::MissingCrlf { .. } => protocol("expected '\\r\\n'"),
        other => protocol(&other.to_string()),
    }
}

fn printable(byte: u8) -> char {
    if byte.is_ascii_graphic() || byte == b' ' {
        char::from(byte)
    } else {
        '?'
    }
}

fn encode(encoder: &mut RespCodec, reply: &Value, out: &mut BytesMut) {
    if encoder.encode(reply, out).is_err() {
        // Only a line break in a simple string or an error fails, and every reply built
        // here has none; should one slip through, the client still gets an answer in order.
        let _ = encoder.encode(
            &Value::Error(Bytes::from_static(b"ERR reply could not be encoded")),
            out,
        );
    }
}

async fn reply_and_close(
    framed: &mut Framed<Connection, RespCodec>,
    encoder: &mut RespCodec,
    reply: &Value,
) -> Result<(), ExitReason> {
    encode(encoder, reply, framed.write_buffer_mut());
    close(framed).await
}

/// Sends what is buffered, then lets the connection close.
async fn close(framed: &mut Framed<Connection, RespCodec>) -> Result<(), ExitReason> {
    match SinkExt::<Value>::close(framed).await {
        Ok(()) => Ok(()),
        Err(e) => flush_failed(e),
    }
}

async fn flush(framed: &mut Framed<Connection, RespCodec>) -> Result<(), RespError> {
    SinkExt::<Value>::flush(framed).await
}

fn flush_failed(error: RespError) -> Result<(), ExitReason> {
    match error {
        RespError::Io(e) => peer_gone(e),
        other => Err(ExitReason::error(other)),
    }
}

/// A peer that resets or vanishes is the peer's business: the connection ends normally.
/// Any other I/O error ends it with that error.
fn peer_gone(error: io::Error) -> Result<(), ExitReason> {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => Ok(()),
        _ => Err(ExitReason::error(error)),
    }
}
