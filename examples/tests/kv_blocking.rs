//! The blocking list commands as processes, over real sockets: a blocked connection is a
//! process waiting on its keys; a push wakes the longest waiter first, a timeout is exact
//! (paused time), a client that disconnects while blocked leaves no ghost waiter, and a
//! drain answers every waiter.
#![allow(clippy::unwrap_used)]

mod kv_support;

use std::time::Duration;

use beamline::resp::Value;
use kv_support::{Conn, bulk, bulks, start};
use tokio::time::Instant;

/// INFO's `blocked_clients`.
async fn blocked(admin: &mut Conn) -> u64 {
    let Value::Bulk(info) = admin.call(&["INFO", "clients"]).await else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8(info.to_vec()).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits (bounded) until `n` clients are blocked.
async fn until_blocked(admin: &mut Conn, n: u64) {
    for _ in 0..500 {
        if blocked(admin).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never {n} blocked clients");
}

#[tokio::test]
async fn a_push_wakes_the_longest_waiter_first() {
    let kv = start();
    let mut admin = Conn::connect(kv.local_addr()).await;
    let mut waiters = Vec::new();
    for n in 1..=3 {
        let mut c = Conn::connect(kv.local_addr()).await;
        c.send(&["BLPOP", "other", "k", "0"]).await;
        until_blocked(&mut admin, n).await;
        waiters.push(c);
    }
    // One push of three: each waiter, oldest first, takes the head in turn.
    assert_eq!(
        admin.call(&["RPUSH", "k", "a", "b", "c"]).await,
        Value::Integer(3)
    );
    for (c, want) in waiters.iter_mut().zip(["a", "b", "c"]) {
        assert_eq!(c.recv().await, bulks(&["k", want]));
    }
    assert_eq!(admin.call(&["EXISTS", "k"]).await, Value::Integer(0));
    // One push of one: only the oldest of two is served; the other waits on.
    let (mut first, mut second) = (
        Conn::connect(kv.local_addr()).await,
        Conn::connect(kv.local_addr()).await,
    );
    first.send(&["BRPOP", "k", "0"]).await;
    until_blocked(&mut admin, 1).await;
    second.send(&["BRPOP", "k", "0"]).await;
    until_blocked(&mut admin, 2).await;
    admin.call(&["LPUSH", "k", "x"]).await;
    assert_eq!(first.recv().await, bulks(&["k", "x"]));
    assert_eq!(blocked(&mut admin).await, 1);
    admin.call(&["LPUSH", "k", "y"]).await;
    assert_eq!(second.recv().await, bulks(&["k", "y"]));
}

#[tokio::test]
async fn blmove_and_blmpop_are_served_by_a_push() {
    let kv = start();
    let mut admin = Conn::connect(kv.local_addr()).await;
    let mut mover = Conn::connect(kv.local_addr()).await;
    mover
        .send(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"])
        .await;
    let mut mpop = Conn::connect(kv.local_addr()).await;
    mpop.send(&["BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "2"])
        .await;
    until_blocked(&mut admin, 2).await;
    admin.call(&["RPUSH", "src", "v", "w"]).await;
    assert_eq!(mover.recv().await, bulk("v"));
    assert_eq!(
        admin.call(&["LRANGE", "dst", "0", "-1"]).await,
        bulks(&["v"])
    );
    admin.call(&["RPUSH", "b", "1", "2", "3"]).await;
    assert_eq!(
        mpop.recv().await,
        Value::Array(vec![bulk("b"), bulks(&["3", "2"])])
    );
    assert_eq!(admin.call(&["LRANGE", "b", "0", "-1"]).await, bulks(&["1"]));
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_exact_for_each_waiter() {
    let kv = start();
    let mut waiters = Vec::new();
    for (cmd, timeout) in [
        (&["BLPOP", "k"][..], "0.3"),
        (&["BLMOVE", "k", "d", "LEFT", "LEFT"], "0.1"),
        (&["BLMPOP", "2", "k", "j", "LEFT"], "0.2"),
    ] {
        let mut c = Conn::connect(kv.local_addr()).await;
        let mut args = cmd.to_vec();
        if cmd[0] == "BLMPOP" {
            args.insert(1, timeout);
        } else {
            args.push(timeout);
        }
        c.send(&args).await;
        waiters.push(c);
    }
    let t0 = Instant::now();
    let mut order = Vec::new();
    let mut pending: Vec<_> = waiters
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| tokio::spawn(async move { (i, c.recv().await, Instant::now()) }))
        .collect();
    while let Some(task) = pending.pop() {
        order.push(task.await.unwrap());
    }
    order.sort_by_key(|(_, _, at)| *at);
    let seen: Vec<_> = order
        .iter()
        .map(|(i, reply, at)| (*i, reply.clone(), (*at - t0).as_millis()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, Value::Null, 100),
            (2, Value::NullArray, 200),
            (0, Value::NullArray, 300),
        ]
    );
}

#[tokio::test]
async fn a_client_that_disconnects_while_blocked_is_removed() {
    let kv = start();
    let mut admin = Conn::connect(kv.local_addr()).await;
    let mut gone = Conn::connect(kv.local_addr()).await;
    gone.send(&["BLPOP", "k", "0"]).await;
    until_blocked(&mut admin, 1).await;
    let mut stays = Conn::connect(kv.local_addr()).await;
    stays.send(&["BLPOP", "k", "0"]).await;
    until_blocked(&mut admin, 2).await;
    drop(gone);
    until_blocked(&mut admin, 1).await;
    // The push goes to the live waiter, not to the one that left.
    admin.call(&["RPUSH", "k", "x"]).await;
    assert_eq!(stays.recv().await, bulks(&["k", "x"]));
    assert_eq!(admin.call(&["LLEN", "k"]).await, Value::Integer(0));
    assert_eq!(blocked(&mut admin).await, 0);
}

#[tokio::test]
async fn a_drain_unblocks_every_waiter_with_a_clear_reply() {
    let kv = start();
    let mut admin = Conn::connect(kv.local_addr()).await;
    let mut waiters = Vec::new();
    for n in 1..=2 {
        let mut c = Conn::connect(kv.local_addr()).await;
        c.send(&["BRPOP", "k", "0"]).await;
        until_blocked(&mut admin, n).await;
        waiters.push(c);
    }
    drop(admin);
    let report = kv.shutdown(Duration::from_secs(5)).await.unwrap();
    for c in &mut waiters {
        assert_eq!(
            c.recv().await,
            Value::error("UNBLOCKED the server is shutting down")
        );
        assert_eq!(c.next().await, None, "then the connection closes");
    }
    assert_eq!(report.aborted, 0, "{report:?}");
}
