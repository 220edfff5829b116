//! One connection, as its own process: RESP requests in, replies out in request order, one
//! flush per batch of requests that arrived together.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use beamline::resp::{Arguments, Request, RespCodec, RespError, Value};
use beamline::server::{Connection, ExitReason};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder, Framed};

/// A connection's codec: requests in ([`RespCodec::decode_request`]: a command is its
/// arguments' positions in the frame, with no value built per argument), replies out.
#[derive(Debug)]
struct Codec(RespCodec);

impl Decoder for Codec {
    type Item = Request;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, RespError> {
        self.0.decode_request(src)
    }
}

impl Encoder<Value> for Codec {
    type Error = RespError;

    fn encode(&mut self, reply: Value, dst: &mut BytesMut) -> Result<(), RespError> {
        self.0.encode(reply, dst)
    }
}

use super::commands::{ConfigTable, Session, execute};
use super::store::{Clock, Store};

/// How much a connection reads at a time.
const READ_CAPACITY: usize = 16 * 1024;

/// Replies are flushed mid-batch once this many bytes wait, so a batch of requests for big
/// values never piles up in memory: the socket's backpressure reaches the reader.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Draining, a connection closes once no request has come for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// Draining, a connection that never pauses that long is closed at its first moment with
/// nothing to answer once the drain has lasted this long.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// What every connection of one kv server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    /// The request decoder's settings (limits, inline commands); cloned per connection.
    pub(crate) codec: RespCodec,
    pub(crate) config: ConfigTable,
}

/// Serves one connection until the peer closes it, sends QUIT or bad input, or the server
/// drains: then it closes once no request has come for `DRAIN_QUIET` (100 ms), or, after
/// `DRAIN_LINGER` (1 s), at its first moment with nothing to answer.
pub(crate) async fn serve(conn: Connection, shared: Arc<Shared>) -> Result<(), ExitReason> {
    let id = conn.id().as_u64();
    let shutdown = conn.shutdown_signal();
    serve_stream(conn, id, shutdown.requested(), &shared).await
}

/// The connection loop over any byte stream; `drain` resolves when the server asks the
/// connection to finish.
pub(crate) async fn serve_stream<T>(
    io: T,
    id: u64,
    drain: impl Future<Output = ()>,
    shared: &Shared,
) -> Result<(), ExitReason>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session::new(id);
    // The argument slices of one request at a time; the allocation is kept between them.
    let mut spare_args: Vec<&'static [u8]> = Vec::new();
    let mut drain = pin!(drain);
    let mut framed = Framed::with_capacity(io, Codec(shared.codec.clone()), READ_CAPACITY);
    // Replies are encoded straight into the write buffer by a second codec (encoding keeps
    // no state), so a batch costs one flush rather than one `Sink::send` per reply.
    let mut encoder = RespCodec::new();
    // When the drain began: from then on the connection closes at a quiet moment.
    let mut draining: Option<Instant> = None;
    loop {
        let first = match draining {
            None => tokio::select! {
                biased;
                () = &mut drain => {
                    draining = Some(Instant::now());
                    continue;
                }
                next = framed.next() => next,
            },
            // A request may be on its way (a client that has just connected, or one between
            // two requests): RESP has no way to say "closing", and a client meeting a closed
            // socket reports an error. So close only after a quiet spell, or, once the drain
            // has lingered, at the first moment nothing is buffered.
            Some(since) => {
                let quiet = if since.elapsed() >= DRAIN_LINGER {
                    Duration::ZERO
                } else {
                    DRAIN_QUIET
                };
                match tokio::time::timeout(quiet, framed.next()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(()),
                }
            }
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
            let reply = match request {
                Request::Command(args) => {
                    run(&args, &mut spare_args, shared, &mut session, &mut clock)
                }
                Request::Other(frame) => match not_a_command(frame) {
                    Ok(()) => None,
                    Err(reply) => return reply_and_close(&mut framed, &mut encoder, &reply).await,
                },
            };
            if let Some(reply) = reply {
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
fn decode_buffered<T>(framed: &mut Framed<T, Codec>) -> Result<Option<Request>, RespError> {
    // The codec and the buffer are both inside `framed`: take the buffer out for the call
    // (moving a `BytesMut` copies four words and allocates nothing).
    let mut buffer = std::mem::take(framed.read_buffer_mut());
    let decoded = framed.codec_mut().decode(&mut buffer);
    *framed.read_buffer_mut() = buffer;
    decoded
}

/// Runs one command; `spare` lends the argument vector its allocation. The command (and the
/// frame its arguments are in) is dropped by the caller right after, so the read buffer's
/// space is reused rather than reallocated.
fn run(
    command: &Arguments,
    spare: &mut Vec<&'static [u8]>,
    shared: &Shared,
    session: &mut Session,
    clock: &mut Clock,
) -> Option<Value> {
    let mut args = reuse(std::mem::take(spare));
    args.extend(command.iter());
    let reply = execute(&args, &shared.store, session, &shared.config, clock);
    *spare = reuse(args);
    Some(reply)
}

/// An empty vector of argument slices in `spare`'s allocation. The slices of one request
/// borrow its frame, so the vector cannot outlive the request; its allocation can, and a
/// request then costs no allocation here. (Collecting an empty vector's iterator into one of
/// the same element size reuses its allocation.)
fn reuse<'a>(mut spare: Vec<&[u8]>) -> Vec<&'a [u8]> {
    spare.clear();
    spare.into_iter().map(|_| &[][..]).collect()
}

/// What to do with a frame that is not a command: nothing for an empty or null array (Redis
/// ignores them), Redis's protocol error for anything else.
fn not_a_command(frame: Value) -> Result<(), Value> {
    let items = match frame {
        Value::Array(items) => items,
        Value::NullArray => return Ok(()),
        other => {
            return Err(protocol(&format!(
                "expected '*', got '{}'",
                type_byte(&other)
            )));
        }
    };
    match items.iter().find(|item| !matches!(item, Value::Bulk(_))) {
        None => Ok(()),
        Some(Value::Null) => Err(protocol("invalid bulk length")),
        Some(other) => Err(protocol(&format!(
            "expected '$', got '{}'",
            type_byte(other)
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

async fn reply_and_close<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, Codec>,
    encoder: &mut RespCodec,
    reply: &Value,
) -> Result<(), ExitReason> {
    encode(encoder, reply, framed.write_buffer_mut());
    close(framed).await
}

/// Sends what is buffered, then lets the connection close.
async fn close<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, Codec>,
) -> Result<(), ExitReason> {
    match SinkExt::<Value>::close(framed).await {
        Ok(()) => Ok(()),
        Err(e) => flush_failed(e),
    }
}

async fn flush<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, Codec>,
) -> Result<(), RespError> {
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadBuf};

    use super::*;
    use crate::kv::KvConfig;

    fn shared(config: &KvConfig) -> Shared {
        let limits = beamline::resp::RespLimits::new()
            .max_bulk_len(1024)
            .max_frame_len(64 * 1024)
            .max_depth(1)
            .max_line_len(256);
        Shared {
            store: Arc::new(Store::new()),
            codec: RespCodec::with_limits(limits).inline_commands(true),
            config: config.config_table(),
        }
    }

    /// A stream that counts the writes reaching it.
    struct Counted {
        inner: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let written = Pin::new(&mut self.inner).poll_write(cx, data);
            if matches!(written, Poll::Ready(Ok(_))) {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            written
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Sends `input` to a connection loop, closes the sending side, and returns everything
    /// the loop answered before it ended.
    async fn converse(input: &[u8]) -> (Vec<u8>, Result<(), ExitReason>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let shared = shared(&KvConfig::new());
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let ended = serve_stream(server, 1, std::future::pending(), &shared).await;
        let mut output = Vec::new();
        client.read_to_end(&mut output).await.unwrap();
        (output, ended)
    }

    #[tokio::test]
    async fn a_pipelined_batch_is_answered_in_order_with_one_write() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = Counted {
            inner: server,
            writes: writes.clone(),
        };
        let mut batch = Vec::new();
        for i in 0..16 {
            batch.extend_from_slice(
                format!("*2\r\n$4\r\nECHO\r\n${}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            );
            batch.extend_from_slice(b"PING\r\n");
        }
        client.write_all(&batch).await.unwrap();
        let shared = shared(&KvConfig::new());
        let serving =
            async move { serve_stream(counted, 1, std::future::pending(), &shared).await };
        let reading = async {
            let mut expected = Vec::new();
            for i in 0..16 {
                expected.extend_from_slice(
                    format!("${}\r\n{i}\r\n+PONG\r\n", i.to_string().len()).as_bytes(),
                );
            }
            let mut got = vec![0u8; expected.len()];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expected);
            assert_eq!(writes.load(Ordering::Relaxed), 1, "one write for the batch");
            drop(client);
        };
        let (ended, ()) = tokio::join!(serving, reading);
        assert!(ended.is_ok());
    }

    #[tokio::test]
    async fn bad_input_gets_redis_protocol_errors_then_the_connection_closes() {
        for (input, reply) in [
            (
                &b"*1\r\n:5\r\n"[..],
                "-ERR Protocol error: expected '$', got ':'\r\n",
            ),
            (
                b"*abc\r\n",
                "-ERR Protocol error: invalid multibulk length\r\n",
            ),
            (
                b"*-7\r\n",
                "-ERR Protocol error: invalid multibulk length\r\n",
            ),
            (
                b"*1\r\n$x\r\n",
                "-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*1\r\n$-1\r\n",
                "-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*2\r\n$3\r\nGET\r\n$5000\r\n",
                "-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*1\r\n*1\r\n$1\r\nx\r\n",
                "-ERR Protocol error: expected '$', got '*'\r\n",
            ),
            (
                b"*1\r\n\x01\r\n",
                "-ERR Protocol error: expected '$', got '?'\r\n",
            ),
            (
                b"$3\r\nGET\r\n",
                "-ERR Protocol error: expected '*', got '$'\r\n",
            ),
            (b":1\r\n", "-ERR Protocol error: expected '*', got ':'\r\n"),
            (
                b"*1\r\n$4\r\nPINGxx",
                "-ERR Protocol error: expected '\\r\\n'\r\n",
            ),
            (b"*100000\r\n", "-ERR Protocol error: too big request\r\n"),
        ] {
            let (output, ended) = converse(input).await;
            assert_eq!(
                String::from_utf8_lossy(&output),
                reply,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert!(ended.is_ok());
        }
        let long_line = vec![b'a'; 300];
        let (output, _) = converse(&long_line).await;
        assert_eq!(output, b"-ERR Protocol error: too big inline request\r\n");
    }

    #[tokio::test]
    async fn requests_before_bad_input_are_answered_first() {
        let (output, _) = converse(b"PING\r\n*0\r\nSET a 1\r\n*1\r\n:1\r\nPING\r\n").await;
        assert_eq!(
            output,
            b"+PONG\r\n+OK\r\n-ERR Protocol error: expected '$', got ':'\r\n"
        );
    }

    #[tokio::test]
    async fn quit_answers_then_closes_and_eof_mid_frame_is_a_normal_end() {
        let (output, ended) = converse(b"PING\r\nQUIT\r\nPING\r\n").await;
        assert_eq!(output, b"+PONG\r\n+OK\r\n");
        assert!(ended.is_ok());
        let (output, ended) = converse(b"PING\r\n*2\r\n$3\r\nGET").await;
        assert_eq!(output, b"+PONG\r\n");
        assert!(ended.is_ok());
    }

    /// A drain closes a connection only after a quiet spell: a request already on its way
    /// (a client that just connected, or one between two requests) is answered, not met
    /// with a closed socket, which clients such as redis-benchmark report as an error.
    #[tokio::test(start_paused = true)]
    async fn a_drain_answers_a_request_already_on_its_way_then_closes_when_quiet() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1024);
        let shared = shared(&KvConfig::new());
        let serving =
            tokio::spawn(
                async move { serve_stream(server, 1, std::future::ready(()), &shared).await },
            );
        tokio::time::sleep(DRAIN_QUIET / 2).await;
        client.write_all(b"PING\r\n").await.unwrap();
        let mut reply = [0u8; 7];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"+PONG\r\n");
        // Then quiet: closed one quiet spell after the last answer.
        let began = tokio::time::Instant::now();
        assert_eq!(client.read(&mut reply).await.unwrap(), 0);
        assert_eq!(began.elapsed(), DRAIN_QUIET);
        assert!(serving.await.unwrap().is_ok());
    }

    /// A client that never pauses is not kept for ever by a drain: after `DRAIN_LINGER`
    /// it is closed at its first pause, the batch in progress answered.
    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_is_closed_at_its_first_pause_after_the_linger() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1024);
        let shared = shared(&KvConfig::new());
        let serving =
            tokio::spawn(
                async move { serve_stream(server, 1, std::future::ready(()), &shared).await },
            );
        let began = tokio::time::Instant::now();
        let mut reply = [0u8; 7];
        let mut answered = 0;
        loop {
            tokio::time::sleep(DRAIN_QUIET / 4).await;
            if client.write_all(b"PING\r\n").await.is_err() {
                break;
            }
            match client.read_exact(&mut reply).await {
                Ok(_) => answered += 1,
                Err(_) => break,
            }
            assert!(began.elapsed() < DRAIN_LINGER * 2, "still open");
        }
        assert!(answered >= 1, "{answered}");
        assert!(began.elapsed() >= DRAIN_LINGER, "{:?}", began.elapsed());
        assert!(serving.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_drain_ends_an_idle_connection() {
        let (_client, server) = tokio::io::duplex(1024);
        let shared = shared(&KvConfig::new());
        let ended = serve_stream(server, 1, std::future::ready(()), &shared).await;
        assert!(ended.is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever bytes arrive, the loop ends without panicking and everything it sent is
        /// well-formed RESP.
        #[test]
        fn any_input_gets_well_formed_replies(
            chunks in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    Just(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n".to_vec()),
                    Just(b"SET k 1\r\nINCR k\r\n".to_vec()),
                    Just(b"*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\nx\r\n".to_vec()),
                    Just(b"*-1\r\n*0\r\n\r\n".to_vec()),
                ],
                0..12,
            )
        ) {
            let input = chunks.concat();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (output, ended) = runtime.block_on(converse(&input));
            prop_assert!(ended.is_ok());
            let mut output = BytesMut::from(&output[..]);
            let mut client = RespCodec::new();
            while !output.is_empty() {
                let reply = client.decode(&mut output);
                prop_assert!(matches!(reply, Ok(Some(_))), "malformed reply: {:?}", reply);
            }
        }
    }
}
