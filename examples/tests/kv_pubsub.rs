//! Pub/Sub as processes, over real sockets and the real redis-cli: what PUBLISH sends
//! reaches redis-cli in subscribe mode, and a subscriber that stops reading is cut off at
//! its output bound while the others keep receiving.
#![allow(clippy::unwrap_used)]

mod kv_support;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use beamline::resp::Value;
use beamline_examples::kv::KvConfig;
use kv_support::{Conn, bulk, spawn_tool, start, start_with};
use tokio::net::TcpSocket;

/// Waits (bounded) until `channel` has `n` subscribers and `n_patterns` patterns are live.
async fn until_subscribed(admin: &mut Conn, channel: &str, n: i64, n_patterns: i64) {
    for _ in 0..1000 {
        let numsub = admin.call(&["PUBSUB", "NUMSUB", channel]).await;
        let numpat = admin.call(&["PUBSUB", "NUMPAT"]).await;
        if numsub == Value::Array(vec![bulk(channel), Value::Integer(n)])
            && numpat == Value::Integer(n_patterns)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{channel} never had {n} subscribers and {n_patterns} patterns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_in_subscribe_mode_receives_what_publish_sends() {
    let kv = start();
    let port = kv.local_addr().port().to_string();
    let mut listeners: Vec<_> = [["SUBSCRIBE", "news"], ["PSUBSCRIBE", "n*"]]
        .into_iter()
        .map(|[cmd, arg]| {
            let args = ["-p", &port, cmd, arg].map(str::to_owned);
            spawn_tool("redis-cli", &args)
        })
        .collect();
    let mut admin = Conn::connect(kv.local_addr()).await;
    until_subscribed(&mut admin, "news", 1, 1).await;
    for text in ["hello", "world"] {
        assert_eq!(
            admin.call(&["PUBLISH", "news", text]).await,
            Value::Integer(2),
            "the subscriber and the pattern subscriber"
        );
    }
    let mut outputs = Vec::new();
    for child in &mut listeners {
        let stdout = child.stdout.take().unwrap();
        // redis-cli prints each reply's lines as it arrives (flushing each): read until the
        // last message, then stop it.
        let lines = tokio::task::spawn_blocking(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let last = line == "world";
                lines.push(line);
                if last {
                    break;
                }
            }
            lines
        });
        outputs.push(
            tokio::time::timeout(Duration::from_secs(10), lines)
                .await
                .expect("redis-cli printed the messages")
                .unwrap(),
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(
        outputs[0],
        [
            "subscribe",
            "news",
            "1",
            "message",
            "news",
            "hello",
            "message",
            "news",
            "world"
        ]
    );
    assert_eq!(
        outputs[1],
        [
            "psubscribe",
            "n*",
            "1",
            "pmessage",
            "n*",
            "news",
            "hello",
            "pmessage",
            "n*",
            "news",
            "world"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_at_the_bound_while_others_keep_receiving() {
    const LIMIT: usize = 256 * 1024;
    const MESSAGE: usize = 4 * 1024;
    let kv = start_with(KvConfig::new().pubsub_output_limit(LIMIT));
    let addr = kv.local_addr();
    // The slow subscriber takes little into its socket and then reads nothing.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Conn::over(socket.connect(addr).await.unwrap());
    let mut fast = Conn::connect(addr).await;
    for c in [&mut slow, &mut fast] {
        assert_eq!(
            c.call(&["SUBSCRIBE", "ch"]).await,
            Value::Array(vec![bulk("subscribe"), bulk("ch"), Value::Integer(1)])
        );
    }
    let mut admin = Conn::connect(addr).await;
    until_subscribed(&mut admin, "ch", 2, 0).await;
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        while let Some(Value::Array(message)) = fast.next().await {
            if message.last() == Some(&bulk("stop")) {
                break;
            }
            got += 1;
        }
        got
    });
    let payload = "x".repeat(MESSAGE);
    let (mut published, mut cut_after) = (0usize, None);
    // Bounded: 4096 messages of 4 KiB is 16 MiB, far past the kernel's buffers plus LIMIT.
    while published < 4096 {
        let received = admin.call(&["PUBLISH", "ch", &payload]).await;
        published += 1;
        if received == Value::Integer(1) && cut_after.is_none() {
            cut_after = Some(published);
        }
        if cut_after.is_some_and(|at| published >= at + 100) {
            break;
        }
        assert!(matches!(received, Value::Integer(1 | 2)), "{received:?}");
    }
    let cut_after = cut_after.expect("the slow subscriber was never cut off");
    // Not before it was LIMIT behind (the kernel's buffers took some more first).
    assert!(
        cut_after * MESSAGE > LIMIT,
        "cut after {cut_after} messages"
    );
    assert_eq!(
        admin.call(&["PUBSUB", "NUMSUB", "ch"]).await,
        Value::Array(vec![bulk("ch"), Value::Integer(1)])
    );
    admin.call(&["PUBLISH", "ch", "stop"]).await;
    // The other subscriber received every message, before and after the cut.
    assert_eq!(reader.await.unwrap(), published);
    // The slow one gets what was in its socket, then the close (which may cut a message
    // short): well under what was sent.
    let mut slow_got = 0usize;
    while let Some(Ok(message)) = slow.try_next().await {
        assert!(matches!(message, Value::Array(_)), "{message:?}");
        slow_got += 1;
    }
    assert!(slow_got < cut_after, "{slow_got} of {cut_after}");
    assert_eq!(kv.server().stats().panicked, 0);
}
