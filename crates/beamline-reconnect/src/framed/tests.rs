use super::*;
use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, duplex};
use tokio_util::codec::LinesCodec;

/// A line codec that refuses to encode "bad" after writing part of it.
struct Picky(LinesCodec);

impl Encoder<String> for Picky {
    type Error = std::io::Error;
    fn encode(&mut self, item: String, dst: &mut BytesMut) -> Result<(), Self::Error> {
        if item == "bad" {
            dst.put_slice(b"partial");
            return Err(std::io::Error::other("refused"));
        }
        self.0.encode(item, dst).map_err(std::io::Error::other)
    }
}

impl Decoder for Picky {
    type Item = String;
    type Error = std::io::Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, Self::Error> {
        self.0.decode(src).map_err(std::io::Error::other)
    }
}

fn pair(max: usize) -> (FramedConnection<String, String>, BufReader<DuplexStream>) {
    let (client, server) = duplex(64 * 1024);
    let conn = FramedConnection::with_max_in_flight(
        Framed::new(client, Picky(LinesCodec::new_with_max_length(8 * 1024))),
        NonZeroUsize::new(max).unwrap(),
    );
    (conn, BufReader::new(server))
}

fn spawn_call(
    conn: &FramedConnection<String, String>,
    request: &str,
) -> tokio::task::JoinHandle<Result<String, FramedError>> {
    let (conn, request) = (conn.clone(), request.to_string());
    tokio::spawn(async move { conn.call(request).await })
}

async fn read_line(server: &mut BufReader<DuplexStream>) -> String {
    let mut line = String::new();
    server.read_line(&mut line).await.unwrap();
    line.trim_end().to_string()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (conn, mut server) = pair(8);
    let calls: Vec<_> = (0..5)
        .map(|i| spawn_call(&conn, &format!("req{i}")))
        .collect();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(read_line(&mut server).await);
    }
    // Answer each line with its own text reversed-tagged, in the order received.
    for line in &seen {
        server
            .get_mut()
            .write_all(format!("re:{line}\n").as_bytes())
            .await
            .unwrap();
    }
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), format!("re:req{i}"));
    }
    // Spawned tasks start in spawn order on this current-thread runtime.
    assert_eq!(seen, ["req0", "req1", "req2", "req3", "req4"]);
}

#[tokio::test]
async fn one_at_a_time_waits_for_each_response() {
    let (conn, mut server) = pair(1);
    let a = spawn_call(&conn, "a");
    let b = spawn_call(&conn, "b");
    assert_eq!(read_line(&mut server).await, "a");
    // "b" is not written while "a" is unanswered.
    tokio::task::yield_now().await;
    assert!(server.buffer().is_empty());
    server.get_mut().write_all(b"A\n").await.unwrap();
    assert_eq!(read_line(&mut server).await, "b");
    server.get_mut().write_all(b"B\n").await.unwrap();
    assert_eq!(a.await.unwrap().unwrap(), "A");
    assert_eq!(b.await.unwrap().unwrap(), "B");
}

#[tokio::test]
async fn written_requests_are_lost_and_queued_ones_not_sent_when_the_peer_closes() {
    let (conn, mut server) = pair(1);
    let first = spawn_call(&conn, "first");
    assert_eq!(read_line(&mut server).await, "first");
    let second = spawn_call(&conn, "second");
    tokio::task::yield_now().await;
    drop(server);
    let first = first.await.unwrap().unwrap_err();
    assert!(
        matches!(first, FramedError::ConnectionLost { .. }),
        "{first}"
    );
    assert!(first.was_sent());
    let second = second.await.unwrap().unwrap_err();
    assert!(matches!(second, FramedError::NotSent { .. }), "{second}");
    assert!(!second.was_sent());
    assert!(conn.is_closed());
    conn.closed().await;
    let later = conn.call("later".into()).await.unwrap_err();
    assert!(matches!(later, FramedError::NotSent { .. }));
}

#[tokio::test]
async fn an_encode_error_fails_one_request_and_keeps_the_connection() {
    let (conn, mut server) = pair(4);
    let err = conn.call("bad".into()).await.unwrap_err();
    assert!(matches!(err, FramedError::Encode { .. }), "{err}");
    assert!(!conn.is_closed());
    let ok = spawn_call(&conn, "good");
    // The partial bytes of "bad" never reached the wire.
    assert_eq!(read_line(&mut server).await, "good");
    server.get_mut().write_all(b"fine\n").await.unwrap();
    assert_eq!(ok.await.unwrap().unwrap(), "fine");
}

#[tokio::test]
async fn close_fails_pending_calls_and_resolves_closed() {
    let (conn, mut server) = pair(4);
    let pending = spawn_call(&conn, "x");
    assert_eq!(read_line(&mut server).await, "x");
    conn.close();
    assert!(conn.is_closed());
    let err = pending.await.unwrap().unwrap_err();
    assert!(matches!(
        err,
        FramedError::ConnectionLost {
            cause: FramedCloseCause::Closed
        }
    ));
    conn.closed().await;
    // The transport was dropped: the server sees end of stream.
    let mut rest = String::new();
    assert_eq!(server.read_line(&mut rest).await.unwrap(), 0);
}

#[tokio::test]
async fn an_unasked_response_closes_the_connection() {
    let (conn, mut server) = pair(4);
    server.get_mut().write_all(b"surprise\n").await.unwrap();
    conn.closed().await;
    let err = conn.call("x".into()).await.unwrap_err();
    assert!(matches!(
        err,
        FramedError::NotSent {
            cause: FramedCloseCause::UnexpectedResponse
        }
    ));
}

#[tokio::test]
async fn a_request_whose_caller_left_is_never_written() {
    let (conn, mut server) = pair(1);
    let first = spawn_call(&conn, "first");
    assert_eq!(read_line(&mut server).await, "first");
    // "gone" waits for the pipeline slot; its caller gives up.
    let gone = spawn_call(&conn, "gone");
    tokio::task::yield_now().await;
    gone.abort();
    let _ = gone.await;
    let third = spawn_call(&conn, "third");
    tokio::task::yield_now().await;
    server.get_mut().write_all(b"1\n").await.unwrap();
    assert_eq!(first.await.unwrap().unwrap(), "1");
    assert_eq!(read_line(&mut server).await, "third");
    server.get_mut().write_all(b"3\n").await.unwrap();
    assert_eq!(third.await.unwrap().unwrap(), "3");
}

#[tokio::test]
async fn dropping_every_handle_closes_the_transport() {
    let (conn, mut server) = pair(4);
    drop(conn);
    let mut rest = String::new();
    assert_eq!(server.read_line(&mut rest).await.unwrap(), 0);
}
