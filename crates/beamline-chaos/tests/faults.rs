//! Every fault, measured through real loopback sockets the way a client and a server would
//! observe it. Each test ends by stopping the proxy and checking that no task is left.
//!
//! Latencies are asserted as lower bounds only: a loaded machine makes everything slower,
//! never faster.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::ErrorKind;
use std::num::{NonZeroU64, NonZeroUsize};

use beamline_chaos::{Direction, Fault, FaultKind, PartitionMode, Proxy};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

async fn stop(proxy: Proxy) {
    proxy.shutdown().await;
    assert_no_tasks_left().await;
}

#[tokio::test]
async fn bytes_pass_untouched_and_are_counted_per_direction() {
    let server = Server::greeting("hi");
    let proxy = proxy_to(&server).await;
    let mut client = connect(&proxy).await;
    assert_eq!(read_exactly(&mut client, 2).await, b"hi");
    round_trip(&mut client, b"hello").await;
    let stats = wait_for_stats(&proxy, |s| s.live == 1).await;
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.upstream_bytes, 5);
    assert_eq!(stats.downstream_bytes, 7);
    // The proxy runs its accept task and one task per live connection.
    assert_eq!(alive_tasks(), 2);

    // A FIN from the client reaches the server, the server's FIN comes back, the connection
    // task ends.
    client.shutdown().await.unwrap();
    let (rest, end) = read_to_end(&mut client).await;
    assert_eq!((rest.len(), end), (0, Ok(())));
    let ended = server.next_end().await;
    assert_eq!((ended.received, ended.end), (b"hello".to_vec(), Ok(())));
    wait_for_stats(&proxy, |s| s.live == 0).await;
    assert_eq!(proxy.stats().resets, 0);
    stop(proxy).await;
}

#[tokio::test]
async fn latency_is_at_least_what_was_asked_in_each_direction() {
    let (_server, proxy, mut client) = echo_session().await;

    proxy.apply(Direction::Downstream, Fault::latency(ms(50)));
    assert!(round_trip(&mut client, b"down").await >= ms(50));

    proxy.apply(Direction::Upstream, Fault::latency(ms(50)));
    let both = round_trip(&mut client, b"both").await;
    assert!(both >= ms(100), "50 ms each way took {both:?}");

    // Jitter only adds to the floor.
    proxy.apply(
        Direction::Both,
        Fault::Latency {
            delay: ms(20),
            jitter: ms(20),
        },
    );
    for _ in 0..3 {
        assert!(round_trip(&mut client, b"jitter").await >= ms(40));
    }

    // A new connection gets the faults in force, too.
    let mut late = connect(&proxy).await;
    assert!(round_trip(&mut late, b"new").await >= ms(40));

    proxy.clear(Direction::Both, FaultKind::Latency);
    round_trip(&mut client, b"clear").await;
    stop(proxy).await;
}

#[tokio::test]
async fn bandwidth_caps_the_rate() {
    let (_server, proxy, mut client) = echo_session().await;

    // 50 KiB/s is written in 1 KiB pieces 20 ms apart: 10 KiB need at least 9 gaps.
    let rate = NonZeroU64::new(50 * 1024).unwrap();
    proxy.apply(
        Direction::Downstream,
        Fault::Bandwidth {
            bytes_per_sec: rate,
        },
    );
    let data = noise(10 * 1024);
    let took = round_trip(&mut client, &data).await;
    assert!(took >= ms(180), "10 KiB at 50 KiB/s took {took:?}");
    stop(proxy).await;
}

#[tokio::test]
async fn slicing_delivers_every_byte_intact_and_in_order() {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    proxy.apply(
        Direction::Both,
        Fault::Slice {
            max_bytes: NonZeroUsize::new(1000).unwrap(),
            delay: ms(2),
        },
    );
    let mut client = connect(&proxy).await;
    let data = noise(16 * 1024);
    let start = Instant::now();
    client.write_all(&data).await.unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    while got.len() < data.len() {
        got.extend(read_some(&mut client).await);
        reads += 1;
    }
    assert_eq!(got, data, "bytes lost, changed or reordered");
    // 17 slices, at least 2 ms apart, in each direction (pipelined).
    assert!(start.elapsed() >= ms(32));
    assert!(reads > 1, "slices arrived as one read");
    // The server got the client's bytes intact too.
    client.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut client).await.1, Ok(()));
    assert_eq!(server.next_end().await.received, data);
    stop(proxy).await;
}

#[tokio::test]
async fn a_reset_at_once_is_a_connection_reset_for_live_and_new_connections() {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    let mut live = connect(&proxy).await;
    round_trip(&mut live, b"up").await;

    proxy.apply(Direction::Downstream, Fault::reset());
    assert_eq!(
        read_to_end(&mut live).await.1,
        Err(ErrorKind::ConnectionReset)
    );
    // The server is reset too: an RST, not a FIN.
    assert_eq!(server.next_end().await.end, Err(ErrorKind::ConnectionReset));

    // While the fault stays, a new connection connects and is then reset.
    let mut fresh = connect(&proxy).await;
    assert_eq!(
        read_to_end(&mut fresh).await.1,
        Err(ErrorKind::ConnectionReset)
    );
    wait_for_stats(&proxy, |s| s.resets == 2 && s.live == 0).await;

    proxy.clear_all();
    let mut after = connect(&proxy).await;
    round_trip(&mut after, b"fine again").await;
    stop(proxy).await;
}

/// A byte budget of `n`: downstream, the client reads exactly `n` bytes and then `end`;
/// upstream, the server reads exactly `n` bytes and then `end`, and so does the client.
async fn spends_exactly_the_budget(budget: fn(u64) -> Fault, end: Result<(), ErrorKind>) {
    let server = Server::greeting(noise(10_000));
    let proxy = proxy_to(&server).await;
    proxy.apply(Direction::Downstream, budget(4096));
    let mut client = connect(&proxy).await;
    let (got, client_end) = read_to_end(&mut client).await;
    assert_eq!(got, noise(10_000)[..4096]);
    assert_eq!(client_end, end);
    assert_eq!(proxy.stats().downstream_bytes, 4096);
    stop(proxy).await;

    let server = Server::sink();
    let proxy = proxy_to(&server).await;
    proxy.apply(Direction::Upstream, budget(100));
    let mut client = connect(&proxy).await;
    client.write_all(&noise(1000)).await.unwrap();
    let ended = server.next_end().await;
    assert_eq!(ended.received, noise(1000)[..100]);
    assert_eq!(ended.end, end);
    assert_eq!(read_to_end(&mut client).await, (Vec::new(), end));
    stop(proxy).await;
}

#[tokio::test]
async fn a_reset_after_n_bytes_delivers_exactly_n_then_an_rst() {
    spends_exactly_the_budget(
        |bytes| Fault::ResetAfter { bytes },
        Err(ErrorKind::ConnectionReset),
    )
    .await;
}

#[tokio::test]
async fn close_after_n_sends_exactly_n_bytes_then_a_fin() {
    // A close is a FIN (end-of-stream), never a reset.
    spends_exactly_the_budget(|bytes| Fault::CloseAfter { bytes }, Ok(())).await;
}

#[tokio::test]
async fn a_blackhole_keeps_the_connection_open_and_forwards_nothing_until_cleared() {
    let (_server, proxy, mut client) = echo_session().await;

    proxy.apply(Direction::Downstream, Fault::Blackhole);
    client.write_all(b"ping").await.unwrap();
    assert!(
        silent_for(&mut client, ms(150)).await,
        "a blackhole let bytes through"
    );
    // The upstream direction still flows: the server got the ping.
    assert_eq!(proxy.stats().upstream_bytes, 8);
    assert_eq!(proxy.stats().live, 1);
    // Nothing was dropped: clearing delivers what was held.
    proxy.clear(Direction::Downstream, FaultKind::Blackhole);
    assert_eq!(read_exactly(&mut client, 4).await, b"ping");

    proxy.apply(Direction::Upstream, Fault::Blackhole);
    client.write_all(b"pong").await.unwrap();
    assert!(silent_for(&mut client, ms(150)).await);
    assert_eq!(proxy.stats().upstream_bytes, 8, "the server got bytes");
    proxy.clear_all();
    assert_eq!(read_exactly(&mut client, 4).await, b"pong");
    stop(proxy).await;
}

#[tokio::test]
async fn refusing_makes_connects_fail_and_leaves_live_connections_alone() {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    let addr = proxy.local_addr();
    // Refused at once, perhaps before the proxy accepted it: a connection whose connect
    // returned must be served, not reset with the listener's backlog.
    let mut live = connect(&proxy).await;

    proxy.refuse_new(true).unwrap();
    assert_refused(addr).await;
    round_trip(&mut live, b"still here").await;

    proxy.refuse_new(false).unwrap();
    assert_eq!(proxy.local_addr(), addr);
    let mut again = connect(&proxy).await;
    round_trip(&mut again, b"back").await;
    stop(proxy).await;
}

#[tokio::test]
async fn a_failed_reopen_is_typed_names_the_address_and_can_be_retried() {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    let addr = proxy.local_addr();
    proxy.refuse_new(true).unwrap();
    // Someone else takes the port while the proxy refuses.
    let squatter = std::net::TcpListener::bind(addr).unwrap();
    let err = proxy.refuse_new(false).unwrap_err();
    assert_eq!(err.addr(), addr);
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    drop(squatter);
    proxy.refuse_new(false).unwrap();
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"retried").await;
    stop(proxy).await;
}

#[tokio::test]
async fn a_partition_holds_live_and_new_connections_and_heals() {
    let (server, proxy, mut live) = echo_session().await;

    proxy.partition();
    live.write_all(b"held").await.unwrap();
    let mut fresh = connect(&proxy).await;
    fresh.write_all(b"early").await.unwrap();
    assert!(silent_for(&mut live, ms(150)).await);
    assert!(silent_for(&mut fresh, ms(10)).await);
    // The new connection was accepted, but the upstream never heard of it.
    assert_eq!(proxy.stats().accepted, 2);
    assert_eq!(server.accepted(), 1);

    proxy.heal().unwrap();
    assert_eq!(read_exactly(&mut live, 4).await, b"held");
    assert_eq!(read_exactly(&mut fresh, 5).await, b"early");
    assert_eq!(server.accepted(), 2);
    stop(proxy).await;
}

#[tokio::test]
async fn a_reset_at_once_reaches_connections_a_partition_holds() {
    let (server, proxy, mut live) = echo_session().await;
    proxy.partition();
    let mut held = connect(&proxy).await;
    wait_for_stats(&proxy, |s| s.live == 2).await;

    proxy.apply(Direction::Upstream, Fault::reset());
    assert_eq!(
        read_to_end(&mut live).await.1,
        Err(ErrorKind::ConnectionReset)
    );
    assert_eq!(
        read_to_end(&mut held).await.1,
        Err(ErrorKind::ConnectionReset)
    );
    // The held connection never reached the upstream.
    assert_eq!(server.accepted(), 1);
    stop(proxy).await;
}

#[tokio::test]
async fn a_refusing_partition_refuses_new_connections_until_healed() {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    let mut live = connect(&proxy).await;

    proxy.partition_with(PartitionMode::Refuse);
    live.write_all(b"held").await.unwrap();
    assert_refused(proxy.local_addr()).await;
    assert!(silent_for(&mut live, ms(100)).await);

    proxy.heal().unwrap();
    assert_eq!(read_exactly(&mut live, 4).await, b"held");
    let mut fresh = connect(&proxy).await;
    round_trip(&mut fresh, b"new").await;
    stop(proxy).await;
}

#[tokio::test]
async fn reset_all_resets_every_live_connection_and_no_later_one() {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    let mut a = connect(&proxy).await;
    let mut b = connect(&proxy).await;
    wait_for_stats(&proxy, |s| s.live == 2).await;

    proxy.reset_all();
    assert_eq!(read_to_end(&mut a).await.1, Err(ErrorKind::ConnectionReset));
    assert_eq!(read_to_end(&mut b).await.1, Err(ErrorKind::ConnectionReset));
    let stats = wait_for_stats(&proxy, |s| s.live == 0).await;
    assert_eq!(stats.resets, 2);

    let mut c = connect(&proxy).await;
    round_trip(&mut c, b"unharmed").await;
    stop(proxy).await;
}

#[tokio::test]
async fn a_new_upstream_takes_new_connections_only() {
    let first = Server::greeting("A");
    let second = Server::greeting("B");
    let proxy = proxy_to(&first).await;
    let mut old = connect(&proxy).await;
    assert_eq!(read_exactly(&mut old, 1).await, b"A");

    proxy.set_upstream(second.addr());
    assert_eq!(proxy.upstream(), second.addr());
    let mut new = connect(&proxy).await;
    assert_eq!(read_exactly(&mut new, 1).await, b"B");
    round_trip(&mut old, b"still A").await;
    assert_eq!(first.accepted(), 1);
    stop(proxy).await;
}

#[tokio::test]
async fn an_upstream_that_refuses_resets_the_client() {
    let nowhere = std::net::SocketAddr::from(([127, 0, 0, 1], beamline_testkit::free_port()));
    let proxy = Proxy::start(localhost(), nowhere).await.unwrap();
    let mut client = connect(&proxy).await;
    assert_eq!(
        read_to_end(&mut client).await.1,
        Err(ErrorKind::ConnectionReset)
    );
    wait_for_stats(&proxy, |s| s.resets == 1 && s.live == 0).await;
    stop(proxy).await;
}

#[tokio::test]
async fn a_server_reset_reaches_the_client_as_a_reset() {
    let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
    let proxy = Proxy::start(localhost(), listener.local_addr().unwrap())
        .await
        .unwrap();
    let mut client = connect(&proxy).await;
    let (server_side, _) = listener.accept().await.unwrap();
    server_side.set_zero_linger().unwrap();
    drop(server_side);
    assert_eq!(
        read_to_end(&mut client).await.1,
        Err(ErrorKind::ConnectionReset)
    );
    stop(proxy).await;
}

#[tokio::test]
async fn faults_given_to_the_builder_hold_from_the_first_connection() {
    let server = Server::echo();
    let proxy = Proxy::builder(server.addr())
        .seed(11)
        .fault(Direction::Upstream, Fault::latency(ms(50)))
        .start()
        .await
        .unwrap();
    assert_eq!(proxy.seed(), 11);
    let mut client = connect(&proxy).await;
    assert!(round_trip(&mut client, b"slow").await >= ms(50));
    stop(proxy).await;
}

#[tokio::test]
async fn a_listen_address_in_use_is_an_error_naming_it() {
    let taken = std::net::TcpListener::bind(localhost()).unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Proxy::start(addr, addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert_no_tasks_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_proxy_closes_everything_and_leaves_no_task() {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    let addr = proxy.local_addr();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&proxy).await;
        round_trip(&mut c, b"x").await;
        clients.push(c);
    }
    // Held bytes in a blackhole must not keep anything alive either.
    proxy.apply(Direction::Both, Fault::Blackhole);
    clients[0].write_all(b"stuck").await.unwrap();
    assert_eq!(alive_tasks(), 4, "accept task + one per connection");

    drop(proxy);
    assert_no_tasks_left().await;
    for c in &mut clients {
        // Closed by the kernel as the proxy's sockets went: a FIN, or an RST where the proxy
        // had unread bytes. Either way the stream ends.
        let (_, end) = read_to_end(c).await;
        assert!(
            matches!(end, Ok(()) | Err(ErrorKind::ConnectionReset)),
            "{end:?}"
        );
    }
    assert_refused(addr).await;
}
