//! The proxy gives back every file descriptor and task it took, through faults, resets and a
//! shutdown. Alone in its binary, so the process-wide descriptor count is this test's own.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use beamline_chaos::{Direction, Fault};
use beamline_testkit::open_fds;
use common::*;
use tokio::time::{Instant, sleep};

#[tokio::test]
async fn faults_resets_and_shutdown_leave_no_descriptor_and_no_task() {
    let server = Server::echo();
    let baseline = open_fds();

    let proxy = proxy_to(&server).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = connect(&proxy).await;
        round_trip(&mut c, b"hello").await;
        clients.push(c);
    }
    proxy.apply(
        Direction::Downstream,
        Fault::latency(Duration::from_millis(5)),
    );
    round_trip(&mut clients[0], b"slow").await;
    proxy.reset_all();
    for c in &mut clients {
        assert_eq!(read_to_end(c).await.1, Err(ErrorKind::ConnectionReset));
    }
    let mut late = connect(&proxy).await;
    round_trip(&mut late, b"again").await;
    clients.push(late);
    proxy.partition();
    let _held = connect(&proxy).await;
    wait_for_stats(&proxy, |s| s.live == 2).await;

    proxy.shutdown().await;
    assert_no_tasks_left().await;
    drop(clients);
    drop(_held);
    // Every upstream connection the proxy opened has ended at the server.
    for _ in 0..5 {
        server.next_end().await;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while open_fds() != baseline {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open, {baseline} before the proxy",
            open_fds()
        );
        sleep(Duration::from_millis(2)).await;
    }
}
