//! The wire-format client over real transports: answers reach their callers, the in-flight
//! bound holds, failures say whether the request was written, and the connection's life
//! (close, peer death, dropped handles) is observable.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use beamline_mux::WasSent;
use beamline_mux::{
    Client, ClientConfig, ConnectionError, Frame, FrameCodec, FrameError, FrameKind, MuxError,
    ServerConfig, serve_wire,
};
use bytes::Bytes;
use common::{connect, spawn_server, tcp_pair};
use futures::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;

fn assert_handle_traits<T: Clone + Send + Sync + 'static>() {}

#[test]
fn the_handle_is_clone_send_sync_and_static() {
    assert_handle_traits::<Client<Bytes, Bytes>>();
}

async fn echo_client(config: &ClientConfig) -> Client<Bytes, Bytes> {
    let addr = spawn_server(ServerConfig::new(), |req: Bytes| async move { Ok(req) }).await;
    let (client, driver) = Client::wire(connect(addr).await, config).unwrap();
    tokio::spawn(driver);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_each_get_their_own_answer() {
    let client = echo_client(&ClientConfig::new().peer("echo")).await;
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let payload = Bytes::from(format!("task {task} call {i}"));
                    assert_eq!(client.call(payload.clone()).await.unwrap(), payload);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.stats().in_flight, 0);
}

#[tokio::test]
async fn large_payloads_go_out_whole() {
    let client = echo_client(&ClientConfig::new()).await;
    let big = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let (a, b) = tokio::join!(
        client.call(big.clone()),
        client.call(Bytes::from_static(b"small"))
    );
    assert_eq!(a.unwrap(), big);
    assert_eq!(&b.unwrap()[..], b"small");
}

#[tokio::test]
async fn an_error_frame_fails_the_call_as_delivered() {
    let addr = spawn_server(ServerConfig::new(), |_req: Bytes| async move {
        Err(Bytes::from_static(b"no such key"))
    })
    .await;
    let (client, driver) = Client::wire(connect(addr).await, &ClientConfig::new()).unwrap();
    tokio::spawn(driver);
    match client.call(Bytes::from_static(b"get x")).await {
        Err(e @ MuxError::Remote { .. }) => {
            assert!(e.was_sent());
            let MuxError::Remote { payload, .. } = e else {
                unreachable!()
            };
            assert_eq!(&payload[..], b"no such key");
        }
        other => panic!("expected Remote, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_request_is_refused_unsent_and_the_connection_lives_on() {
    let client = echo_client(&ClientConfig::new().peer("small").max_frame_len(16)).await;
    let err = client.call(Bytes::from(vec![0u8; 17])).await.unwrap_err();
    assert!(
        matches!(
            err,
            MuxError::FrameTooLarge {
                len: 17,
                max: 16,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.was_sent());
    assert_eq!(client.in_flight(), 0);
    let ok = client.call(Bytes::from_static(b"fits")).await.unwrap();
    assert_eq!(&ok[..], b"fits");
}

#[tokio::test]
async fn an_oversized_response_becomes_an_error_answer() {
    let addr = spawn_server(
        ServerConfig::new().max_frame_len(80),
        |_req: Bytes| async move { Ok(Bytes::from(vec![1u8; 100])) },
    )
    .await;
    let (client, driver) = Client::wire(connect(addr).await, &ClientConfig::new()).unwrap();
    tokio::spawn(driver);
    match client.call(Bytes::from_static(b"x")).await {
        Err(MuxError::Remote { payload, .. }) => {
            let why = String::from_utf8_lossy(&payload).into_owned();
            assert!(why.contains("100 bytes"), "{why}");
        }
        other => panic!("expected Remote, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_frame_from_the_server_closes_the_connection() {
    let (client_io, server_io) = tcp_pair().await;
    let (client, driver) = Client::wire(client_io, &ClientConfig::new().max_frame_len(64)).unwrap();
    let driver = tokio::spawn(driver);
    let mut server = Framed::new(server_io, FrameCodec::new());
    let call = tokio::spawn(async move { client.call(Bytes::from_static(b"hi")).await });
    let req = server.next().await.unwrap().unwrap();
    server
        .send(Frame::new(FrameKind::Response, req.id, vec![0u8; 1000]))
        .await
        .unwrap();
    let err = call.await.unwrap().unwrap_err();
    let MuxError::ConnectionLost {
        cause: ConnectionError::Protocol(cause),
        ..
    } = &err
    else {
        panic!("expected a protocol error, got {err:?}");
    };
    let frame_err = cause.downcast_ref::<FrameError>().unwrap();
    assert_eq!(frame_err, &FrameError::TooLarge { len: 1000, max: 64 });
    assert!(driver.await.unwrap().is_err());
}

/// The h2 #848 trap: nothing is "ready" past the bound. The server counts how many
/// requests it holds at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_beyond_the_bound_wait_and_try_call_fails_fast() {
    let gate = Arc::new(Semaphore::new(0));
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let addr = {
        let (gate, holding, most) = (gate.clone(), holding.clone(), most.clone());
        spawn_server(ServerConfig::new(), move |req: Bytes| {
            let (gate, holding, most) = (gate.clone(), holding.clone(), most.clone());
            async move {
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                holding.fetch_sub(1, Ordering::SeqCst);
                Ok(req)
            }
        })
        .await
    };
    let config = ClientConfig::new().peer("bounded").max_in_flight(4);
    let (client, driver) = Client::wire(connect(addr).await, &config).unwrap();
    tokio::spawn(driver);
    let calls: Vec<_> = (0..12u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call(Bytes::from(vec![i])).await })
        })
        .collect();
    while holding.load(Ordering::SeqCst) < 4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(client.in_flight(), 4);
    assert_eq!(client.max_in_flight(), 4);
    let busy = client
        .try_call(Bytes::from_static(b"now"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            busy,
            MuxError::Busy {
                max_in_flight: 4,
                ..
            }
        ),
        "{busy:?}"
    );
    assert!(!busy.was_sent());
    gate.add_permits(12);
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap()[..], [i as u8]);
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        4,
        "the server never held more than the bound"
    );
    assert_eq!(client.in_flight(), 0);
}

/// A handler that records being dropped before it finished.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_frees_its_slot_and_cancels_the_handler() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let addr = {
        let (dropped, started) = (dropped.clone(), started.clone());
        spawn_server(ServerConfig::new(), move |_req: Bytes| {
            let flag = DropFlag(dropped.clone());
            started.fetch_add(1, Ordering::SeqCst);
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
                Ok(Bytes::new())
            }
        })
        .await
    };
    let (client, driver) =
        Client::wire(connect(addr).await, &ClientConfig::new().max_in_flight(1)).unwrap();
    tokio::spawn(driver);
    {
        let call = client.call(Bytes::from_static(b"forever"));
        tokio::pin!(call);
        while started.load(Ordering::SeqCst) == 0 {
            tokio::select! {
                _ = &mut call => panic!("the handler never answers"),
                _ = tokio::task::yield_now() => {}
            }
        }
        assert_eq!(client.in_flight(), 1);
    }
    // The slot is free at once: the next call is admitted even with max_in_flight 1.
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.stats().cancelled, 1);
    // The cancel reaches the server, which drops the handler and acknowledges it.
    while dropped.load(Ordering::SeqCst) == 0 || client.stats().abandoned != 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_dead_transport_fails_each_request_saying_whether_it_was_written() {
    // A 64-byte pipe: the first request fills it, later ones stay unwritten.
    let (client_io, server_io) = tokio::io::duplex(64);
    let (client, driver) = Client::wire(client_io, &ClientConfig::new().peer("pipe")).unwrap();
    let driver = tokio::spawn(driver);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call(Bytes::from(vec![7u8; 100])).await })
        })
        .collect();
    while client.stats().in_flight < 3 {
        tokio::task::yield_now().await;
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    drop(server_io);
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap().unwrap_err());
    }
    let sent = outcomes.iter().filter(|e| e.was_sent()).count();
    assert_eq!(sent, 1, "{outcomes:?}");
    for e in &outcomes {
        match e {
            MuxError::ConnectionLost { peer, .. } | MuxError::NotSent { peer, .. } => {
                assert_eq!(&**peer, "pipe");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(driver.await.unwrap().is_err());
    assert!(client.is_closed());
    let after = client.call(Bytes::from_static(b"late")).await.unwrap_err();
    assert!(matches!(after, MuxError::Closed { .. }), "{after:?}");
}

#[tokio::test]
async fn close_fails_what_is_in_flight_and_refuses_new_calls() {
    let (client_io, server_io) = tcp_pair().await;
    let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
    let driver = tokio::spawn(driver);
    let mut server = Framed::new(server_io, FrameCodec::new());
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.call(Bytes::from_static(b"q")).await })
    };
    server.next().await.unwrap().unwrap();
    let closed = client.closed();
    client.close();
    closed.await;
    assert!(client.is_closed());
    let err = pending.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            MuxError::ConnectionLost {
                cause: ConnectionError::Closed,
                ..
            }
        ),
        "{err:?}"
    );
    let refused = client.call(Bytes::new()).await.unwrap_err();
    assert!(matches!(refused, MuxError::Closed { .. }));
    assert!(driver.await.unwrap().is_ok());
    // The server sees the transport shut down.
    assert!(server.next().await.is_none());
}

#[tokio::test]
async fn dropping_every_handle_stops_the_driver_cleanly() {
    let (client_io, server_io) = tcp_pair().await;
    let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
    let driver = tokio::spawn(driver);
    let other = client.clone();
    drop(client);
    tokio::task::yield_now().await;
    assert!(!driver.is_finished(), "a clone is still alive");
    drop(other);
    assert!(driver.await.unwrap().is_ok());
    let mut server = Framed::new(server_io, FrameCodec::new());
    assert!(
        server.next().await.is_none(),
        "the server sees end of stream"
    );
}

#[tokio::test]
async fn the_peer_closing_resolves_closed() {
    let (client_io, server_io) = tcp_pair().await;
    let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
    let driver = tokio::spawn(driver);
    let closed = client.closed();
    drop(server_io);
    closed.await;
    assert!(client.is_closed());
    assert!(matches!(
        driver.await.unwrap(),
        Err(ConnectionError::PeerClosed)
    ));
}

#[tokio::test]
async fn a_dropped_driver_fails_queued_calls_as_unsent() {
    let (client_io, _server_io) = tokio::io::duplex(1024);
    let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call(Bytes::from_static(b"never")).await })
    };
    while client.stats().in_flight == 0 {
        tokio::task::yield_now().await;
    }
    drop(driver);
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            MuxError::NotSent {
                cause: ConnectionError::DriverDropped,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(client.is_closed());
}

#[tokio::test]
async fn the_driver_answers_pings_and_ignores_pongs() {
    let (client_io, server_io) = tcp_pair().await;
    let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
    tokio::spawn(driver);
    let mut server = Framed::new(server_io, FrameCodec::new());
    server
        .send(Frame::new(FrameKind::Pong, 1, ""))
        .await
        .unwrap();
    server
        .send(Frame::new(FrameKind::Ping, 42, "are you there"))
        .await
        .unwrap();
    let pong = server.next().await.unwrap().unwrap();
    assert_eq!(pong, Frame::new(FrameKind::Pong, 42, "are you there"));
    assert!(!client.is_closed());
}

#[tokio::test]
async fn a_request_frame_from_the_server_is_a_protocol_error() {
    let (client_io, server_io) = tcp_pair().await;
    let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
    let driver = tokio::spawn(driver);
    let mut server = Framed::new(server_io, FrameCodec::new());
    server
        .send(Frame::new(FrameKind::Request, 1, ""))
        .await
        .unwrap();
    let Err(ConnectionError::Protocol(cause)) = driver.await.unwrap() else {
        panic!("expected a protocol error");
    };
    assert!(cause.to_string().contains("Request"), "{cause}");
    assert!(client.is_closed());
}

/// A transport that counts the write calls that reached it.
struct CountingWrites {
    inner: tokio::io::DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl tokio::io::AsyncRead for CountingWrites {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        // Counted before the bytes can reach the reader (which may check the count at
        // once), and uncounted if nothing was written.
        self.writes.fetch_add(1, Ordering::SeqCst);
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if polled.is_pending() {
            self.writes.fetch_sub(1, Ordering::SeqCst);
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Write coalescing: requests queued by callers that run back to back leave in one write,
/// even on tokio's multi-threaded scheduler, which runs a woken task (the driver) right
/// after the task that woke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn requests_from_callers_running_together_leave_in_one_write() {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let io = CountingWrites {
        inner: client_io,
        writes: writes.clone(),
    };
    let (client, driver) = Client::wire(io, &ClientConfig::new()).unwrap();
    tokio::spawn(driver);
    let mut server = Framed::new(server_io, FrameCodec::new());
    // One task spawns ten callers on the worker: they run one after another.
    let spawner = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..10u8 {
                let client = client.clone();
                tokio::spawn(async move { client.call(Bytes::from(vec![i])).await });
            }
        })
    };
    spawner.await.unwrap();
    for _ in 0..10 {
        assert_eq!(next_kind(&mut server).await, FrameKind::Request);
    }
    assert_eq!(writes.load(Ordering::SeqCst), 1, "ten requests, one write");
}

async fn next_kind(server: &mut Framed<tokio::io::DuplexStream, FrameCodec>) -> FrameKind {
    server.next().await.unwrap().unwrap().kind
}

#[tokio::test]
async fn a_zero_in_flight_bound_is_refused() {
    let (client_io, _server_io) = tokio::io::duplex(64);
    let err = Client::wire(client_io, &ClientConfig::new().max_in_flight(0)).unwrap_err();
    assert_eq!(err, beamline_mux::ConfigError::ZeroInFlight);
}

#[tokio::test]
async fn wire_over_tls() {
    use beamline_testkit::TestPki;
    use rustls::pki_types::ServerName;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    let pki = TestPki::new();
    let (client_tcp, server_tcp) = tcp_pair().await;
    let acceptor = TlsAcceptor::from(pki.server_config());
    tokio::spawn(async move {
        let tls = acceptor.accept(server_tcp).await.unwrap();
        serve_wire(
            tls,
            &ServerConfig::new(),
            |req: Bytes| async move { Ok(req) },
        )
        .await
        .unwrap();
    });
    let connector = TlsConnector::from(pki.client_config());
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), client_tcp)
        .await
        .unwrap();
    let (client, driver) = Client::wire(tls, &ClientConfig::new().peer("tls")).unwrap();
    let driver = tokio::spawn(driver);
    let calls: Vec<_> = (0..20u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let payload = Bytes::from(i.to_be_bytes().to_vec());
                assert_eq!(client.call(payload.clone()).await.unwrap(), payload);
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    drop(client);
    assert!(driver.await.unwrap().is_ok());
}

#[cfg(unix)]
#[tokio::test]
async fn wire_over_a_unix_socket() {
    let (client_io, server_io) = tokio::net::UnixStream::pair().unwrap();
    tokio::spawn(serve_wire(
        server_io,
        &ServerConfig::new(),
        |req: Bytes| async move { Ok(req) },
    ));
    let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
    tokio::spawn(driver);
    let answer = client.call(Bytes::from_static(b"unix")).await.unwrap();
    assert_eq!(&answer[..], b"unix");
}
