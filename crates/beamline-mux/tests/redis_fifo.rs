//! FIFO mode against a real `redis-server` on a free loopback port: pipelined commands
//! from many callers, some cancelled in the middle, and every reply lands on its own caller.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::time::Duration;

use beamline_mux::WasSent;
use beamline_mux::{Client, ClientConfig, ConnectionError, MuxError};
use beamline_testkit::RedisServer;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Rng, connect};
use tokio_util::codec::{Decoder, Encoder};

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Bytes>),
    Array(Option<Vec<Reply>>),
}

/// Just enough RESP2: commands out as arrays of bulk strings, replies in.
#[derive(Debug, Default)]
struct Resp;

impl Encoder<Vec<Bytes>> for Resp {
    type Error = io::Error;

    fn encode(&mut self, args: Vec<Bytes>, dst: &mut BytesMut) -> io::Result<()> {
        dst.put_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            dst.put_slice(format!("${}\r\n", arg.len()).as_bytes());
            dst.put_slice(&arg);
            dst.put_slice(b"\r\n");
        }
        Ok(())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Parses one reply starting at `at`; `Ok(None)` if it is not complete yet. Returns the
/// reply and the position after it.
fn parse(buf: &[u8], at: usize) -> io::Result<Option<(Reply, usize)>> {
    let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[at + 1..at + end]).map_err(|_| invalid("utf-8"))?;
    let next = at + end + 2;
    let number = || line.parse::<i64>().map_err(|_| invalid("number"));
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    Ok(Some(match kind {
        b'+' => (Reply::Simple(line.to_owned()), next),
        b'-' => (Reply::Error(line.to_owned()), next),
        b':' => (Reply::Integer(number()?), next),
        b'$' => match number()? {
            -1 => (Reply::Bulk(None), next),
            len => {
                let len = usize::try_from(len).map_err(|_| invalid("length"))?;
                if buf.len() < next + len + 2 {
                    return Ok(None);
                }
                let body = Bytes::copy_from_slice(&buf[next..next + len]);
                (Reply::Bulk(Some(body)), next + len + 2)
            }
        },
        b'*' => match number()? {
            -1 => (Reply::Array(None), next),
            n => {
                let mut items = Vec::new();
                let mut pos = next;
                for _ in 0..n {
                    let Some((item, after)) = parse(buf, pos)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    pos = after;
                }
                (Reply::Array(Some(items)), pos)
            }
        },
        _ => return Err(invalid("reply type")),
    }))
}

impl Decoder for Resp {
    type Item = Reply;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Reply>> {
        if src.is_empty() {
            return Ok(None);
        }
        Ok(parse(src, 0)?.map(|(reply, len)| {
            src.advance(len);
            reply
        }))
    }
}

fn command(args: &[&str]) -> Vec<Bytes> {
    args.iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(Bytes::copy_from_slice(s.as_bytes())))
}

async fn redis_client(redis: &RedisServer) -> Client<Vec<Bytes>, Reply> {
    let config = ClientConfig::new()
        .peer(format!("redis {}", redis.addr()))
        .max_in_flight(64);
    let (client, driver) = Client::fifo(connect(redis.addr()).await, Resp, &config).unwrap();
    tokio::spawn(driver);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_with_cancellations_each_reach_their_own_caller() {
    let redis = RedisServer::start();
    let client = redis_client(&redis).await;
    let tasks: Vec<_> = (0..32u64)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(task + 1);
                let mut cancelled = 0;
                for i in 0..60 {
                    let key = format!("k:{task}:{i}");
                    let value = format!("v:{task}:{i}:{}", rng.next_u64());
                    let set = client.call(command(&["SET", &key, &value]));
                    // Some SETs are abandoned mid-flight: applied or not, their "+OK"
                    // must not land on anyone else.
                    let set_done = if rng.below(6) == 0 {
                        tokio::time::timeout(Duration::from_micros(rng.below(300)), set)
                            .await
                            .ok()
                    } else {
                        Some(set.await)
                    };
                    let set_answered = set_done.is_some();
                    match set_done {
                        Some(reply) => assert_eq!(reply.unwrap(), Reply::Simple("OK".into())),
                        None => cancelled += 1,
                    }
                    let get = client.call(command(&["GET", &key])).await.unwrap();
                    if set_answered {
                        assert_eq!(get, bulk(&value), "GET {key} got another caller's reply");
                    } else {
                        assert!(get == bulk(&value) || get == Reply::Bulk(None), "{get:?}");
                    }
                    let echo = format!("echo:{task}:{i}");
                    let echoed = client.call(command(&["ECHO", &echo])).await.unwrap();
                    assert_eq!(echoed, bulk(&echo));
                }
                cancelled
            })
        })
        .collect();
    let mut cancelled = 0;
    for t in tasks {
        cancelled += t.await.unwrap();
    }
    assert!(
        cancelled > 0,
        "no call was cancelled: the test proves nothing"
    );
    assert_eq!(client.in_flight(), 0);
    while client.stats().abandoned != 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = client.stats();
    assert_eq!(stats.in_flight, 0);
    // Counts and lists round-trip too.
    let n = client.call(command(&["DBSIZE"])).await.unwrap();
    assert!(matches!(n, Reply::Integer(k) if k > 0), "{n:?}");
    client
        .call(command(&["RPUSH", "list", "a", "b"]))
        .await
        .unwrap();
    let list = client
        .call(command(&["LRANGE", "list", "0", "-1"]))
        .await
        .unwrap();
    assert_eq!(list, Reply::Array(Some(vec![bulk("a"), bulk("b")])));
    let err = client.call(command(&["NOSUCHCOMMAND"])).await.unwrap();
    assert!(matches!(err, Reply::Error(_)), "{err:?}");
}

/// The FIFO trap itself: a request that timed out after it was written still has a reply
/// coming. It must be read and discarded, not handed to the next caller.
#[tokio::test]
async fn a_timed_out_reply_is_discarded_not_shifted_onto_the_next_caller() {
    let redis = RedisServer::start();
    let client = redis_client(&redis).await;
    // BLPOP on an empty list blocks 0.3 s server-side, then replies nil.
    let err = client
        .call_timeout(
            command(&["BLPOP", "empty", "0.3"]),
            Duration::from_millis(20),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MuxError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    let echoed = client.call(command(&["ECHO", "mine"])).await.unwrap();
    assert_eq!(echoed, bulk("mine"));
    assert_eq!(client.stats().late_replies, 1);
    assert_eq!(client.stats().abandoned, 0);
}

#[tokio::test]
async fn redis_going_away_fails_in_flight_calls_as_maybe_delivered() {
    let mut redis = RedisServer::start();
    let client = redis_client(&redis).await;
    let blocked = {
        let client = client.clone();
        tokio::spawn(async move { client.call(command(&["BLPOP", "empty", "0"])).await })
    };
    // Wait until redis reports the BLPOP blocking: then it was certainly written.
    let observer = redis_client(&redis).await;
    loop {
        let info = observer.call(command(&["INFO", "clients"])).await.unwrap();
        let Reply::Bulk(Some(info)) = info else {
            panic!("INFO answered {info:?}");
        };
        if String::from_utf8_lossy(&info).contains("blocked_clients:1") {
            break;
        }
        tokio::task::yield_now().await;
    }
    redis.stop();
    let err = blocked.await.unwrap().unwrap_err();
    assert!(matches!(err, MuxError::ConnectionLost { .. }), "{err:?}");
    assert!(err.was_sent());
    assert!(err.to_string().contains("redis 127.0.0.1"), "{err}");
    client.closed().await;
}

/// The wedge itself, against the real thing: `BLPOP k 0` blocks its connection for good, so
/// once its caller gave up every later reply would wait behind a reply that never comes.
/// After the abandon timeout the connection fails instead, and the calls behind it end,
/// saying they were written.
#[tokio::test]
async fn an_abandoned_blpop_fails_the_connection_after_the_abandon_timeout() {
    let redis = RedisServer::start();
    let abandon = Duration::from_millis(300);
    let config = ClientConfig::new()
        .peer(format!("redis {}", redis.addr()))
        .abandon_timeout(abandon);
    let (client, driver) = Client::fifo(connect(redis.addr()).await, Resp, &config).unwrap();
    tokio::spawn(driver);
    let started = std::time::Instant::now();
    let err = client
        .call_timeout(command(&["BLPOP", "k", "0"]), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MuxError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    let err = client.call(command(&["PING"])).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            MuxError::ConnectionLost {
                cause: ConnectionError::Wedged { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.was_sent());
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(2),
        "the connection failed {waited:?} in: abandoned at 100 ms, + 300 ms"
    );
    assert!(client.is_closed());
    assert_eq!(client.stats().abandon_expired, 1);
}
