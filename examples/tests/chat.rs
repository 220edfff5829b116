//! The `chat` example over real sockets: members see each other and the room's notices; a
//! member that never reads is dropped while the others keep talking; a member that vanishes
//! mid-conversation leaves without touching the room.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamline_examples::chat::{self, ChatConfig, ChatServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

/// How long any one expected line may take.
const PATIENCE: Duration = Duration::from_secs(5);

async fn start() -> ChatServer {
    chat::start(ChatConfig::new().addr("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

/// A member's connection, read line by line.
struct Client {
    lines: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    nick: String,
}

impl Client {
    /// Connects and reads the greeting: `* welcome ...` then `* you are guestN; ...`.
    async fn join(addr: SocketAddr) -> Client {
        let (reader, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut client = Client {
            lines: BufReader::new(reader),
            writer,
            nick: String::new(),
        };
        assert!(client.line().await.starts_with("* welcome"));
        let you = client.line().await;
        let rest = you.strip_prefix("* you are ").unwrap();
        client.nick = rest.split(';').next().unwrap().to_owned();
        client
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        let read = tokio::time::timeout(PATIENCE, self.lines.read_line(&mut line))
            .await
            .expect("a line within the patience");
        assert!(read.unwrap() > 0, "the server closed the connection");
        line.trim_end().to_owned()
    }

    async fn say(&mut self, text: &str) {
        self.writer
            .write_all(format!("{text}\n").as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_see_each_other_and_the_notices() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = Client::join(addr).await;
    let mut b = Client::join(addr).await;
    assert_eq!(a.line().await, format!("* {} joined", b.nick));
    let mut c = Client::join(addr).await;
    assert_eq!(a.line().await, format!("* {} joined", c.nick));
    assert_eq!(b.line().await, format!("* {} joined", c.nick));

    a.say("hello from a").await;
    assert_eq!(b.line().await, format!("<{}> hello from a", a.nick));
    assert_eq!(c.line().await, format!("<{}> hello from a", a.nick));
    b.say("/nick bob").await;
    let renamed = format!("* {} is now bob", b.nick);
    for member in [&mut a, &mut b, &mut c] {
        assert_eq!(member.line().await, renamed);
    }
    b.nick = "bob".into();
    c.say("hi bob").await;
    assert_eq!(a.line().await, format!("<{}> hi bob", c.nick));
    assert_eq!(b.line().await, format!("<{}> hi bob", c.nick));
    b.say("/who").await;
    assert_eq!(
        b.line().await,
        format!("* here: {}, bob, {}", a.nick, c.nick)
    );

    c.say("/quit").await;
    assert_eq!(c.line().await, "* bye");
    assert_eq!(a.line().await, format!("* {} left", c.nick));
    assert_eq!(b.line().await, format!("* {} left", c.nick));
    // The server is draining: everyone is told.
    let report = server.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (2, 0));
    assert_eq!(a.line().await, "* server shutting down, bye");
    assert_eq!(b.line().await, "* server shutting down, bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_reads_is_dropped_while_the_others_talk() {
    let server = start().await;
    let addr = server.local_addr();
    let mut talker = Client::join(addr).await;
    let mut listener = Client::join(addr).await;
    assert_eq!(talker.line().await, format!("* {} joined", listener.nick));
    // Joins, then never reads again: its socket fills, then its mailbox.
    let mut slow = Client::join(addr).await;
    assert_eq!(talker.line().await, format!("* {} joined", slow.nick));
    assert_eq!(listener.line().await, format!("* {} joined", slow.nick));

    let dropped = format!("* {} was dropped: too slow to keep up", slow.nick);
    let line = "x".repeat(1000);
    let started = tokio::time::Instant::now();
    // The listener reads everything; the talker talks until the notice arrives, never more
    // than `AHEAD` lines ahead of the listener: the listener is an attentive reader (on a
    // loaded machine an unpaced flood would make it too slow as well, and rightly dropped),
    // the slow member reads nothing at all.
    const AHEAD: usize = 64;
    let heard = Arc::new(Semaphore::new(AHEAD));
    let reading = tokio::spawn({
        let heard = Arc::clone(&heard);
        async move {
            let mut said = 0u64;
            loop {
                let got = listener.line().await;
                if got == dropped {
                    return (listener, said);
                }
                assert!(got.ends_with(&"x".repeat(1000)), "{got}");
                said += 1;
                heard.add_permits(1);
            }
        }
    });
    let mut sent = 0u64;
    while !reading.is_finished() {
        assert!(sent < 200_000, "the slow member was never dropped");
        // Waits for the listener to catch up, or for the notice (which ends the reader).
        tokio::select! {
            permit = heard.acquire() => permit.expect("never closed").forget(),
            _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
        }
        talker.say(&line).await;
        sent += 1;
    }
    let (mut listener, heard) = reading.await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("dropped after {heard} lines of 1000 bytes, {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    // The room goes on without it.
    talker.say("still here").await;
    loop {
        let got = listener.line().await;
        if got.ends_with("still here") {
            assert_eq!(got, format!("<{}> still here", talker.nick));
            break;
        }
    }
    // The slow member's connection was closed by the server.
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut line = String::new();
        loop {
            line.clear();
            match slow.lines.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the dropped member's connection is still open"
    );
    assert_eq!(server.server().stats().killed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_vanishes_leaves_without_hurting_the_room() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = Client::join(addr).await;
    let gone = Client::join(addr).await;
    assert_eq!(a.line().await, format!("* {} joined", gone.nick));
    // A reset: the peer is gone without a word.
    let Client {
        lines,
        writer,
        nick,
    } = gone;
    let stream = lines.into_inner().reunite(writer).unwrap();
    stream.set_zero_linger().unwrap();
    drop(stream);
    assert_eq!(a.line().await, format!("* {nick} left"));
    let mut b = Client::join(addr).await;
    assert_eq!(a.line().await, format!("* {} joined", b.nick));
    b.say("anyone?").await;
    assert_eq!(a.line().await, format!("<{}> anyone?", b.nick));
    assert_eq!(server.server().stats().panicked, 0);
}
