//! The connection loop over in-memory streams: batching, bad input, QUIT, the drain.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadBuf};

use super::*;
use crate::kv::KvConfig;
use crate::kv::store::Store;

fn shared(config: &KvConfig) -> Arc<Shared> {
    let config = config
        .clone()
        .max_bulk_len(1024)
        .max_request_len(128 * 1024);
    Arc::new(config.shared(Arc::new(Store::new())))
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
    let ended = run_session(server, 1, std::future::pending(), shared).await;
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
    let serving = async move { run_session(counted, 1, std::future::pending(), shared).await };
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
        // Anything but `*` starts an inline command, as in Redis.
        (
            b"$3\r\nGET\r\n",
            "-ERR unknown command '$3', with args beginning with: \r\n-ERR wrong number of arguments for 'get' command\r\n",
        ),
        (
            b":1\r\n",
            "-ERR unknown command ':1', with args beginning with: \r\n",
        ),
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
    let long_line = vec![b'a'; 70_000];
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
        tokio::spawn(async move { run_session(server, 1, std::future::ready(()), shared).await });
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
        tokio::spawn(async move { run_session(server, 1, std::future::ready(()), shared).await });
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
    let ended = run_session(server, 1, std::future::ready(()), shared).await;
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
