//! A schedule run against a live connection: its faults arrive and leave on time, and the
//! traffic held by a partition flows once it heals.
//!
//! The client's own timeline keeps wide margins around the schedule's steps, so a loaded
//! machine (late timers) cannot make a step land on the wrong side of a ping.

mod common;

use beamline_chaos::{Direction, Fault, Schedule};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, sleep_until};

#[tokio::test]
async fn a_schedule_applies_and_heals_its_faults_on_time() {
    let (_server, proxy, mut client) = echo_session().await;

    let schedule = Schedule::new()
        .fault(
            ms(0),
            ms(100),
            Direction::Downstream,
            Fault::latency(ms(50)),
        )
        .partition(ms(150), ms(300));
    assert_eq!(schedule.duration(), ms(450));

    let start = Instant::now();
    let traffic = async {
        // Inside the latency window.
        sleep_until(start + ms(10)).await;
        let slow = round_trip(&mut client, b"slow").await;
        // Inside the partition (100 ms after it starts): held until the heal at 450 ms.
        sleep_until(start + ms(250)).await;
        client.write_all(b"held").await.unwrap();
        assert_eq!(read_exactly(&mut client, 4).await, b"held");
        (slow, start.elapsed())
    };
    let (run, (slow, held_until)) = tokio::join!(schedule.run(&proxy), traffic);
    run.unwrap();
    assert!(
        slow >= ms(50),
        "the scheduled latency was missing: {slow:?}"
    );
    assert!(
        held_until >= ms(450),
        "the partition healed early: {held_until:?}"
    );

    // Everything the schedule applied, it cleared.
    round_trip(&mut client, b"after").await;
    assert_eq!(proxy.stats().resets, 0);
    proxy.shutdown().await;
    assert_no_tasks_left().await;
}
