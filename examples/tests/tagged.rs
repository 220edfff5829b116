//! The `tagged` example's logic, in-process: a user protocol with ids served by
//! `Server::serve_fn` + `serve_tagged` and called through `ClientBuilder::tagged`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use beamline::mux::Envelope;
use beamline_examples::tagged::{Lines, connect, start_server};
use bytes::BytesMut;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::codec::{Decoder, Encoder};

fn line(text: &str) -> Envelope<String> {
    Envelope::new(text.to_owned())
}

/// Many callers on one connection, slow and quick requests mixed: every answer is its
/// caller's own, quick ones overtake slow ones, and a refused request is answered with the
/// protocol's own error line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_gets_its_own_answer_out_of_order() {
    let server = start_server("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = connect(server.local_addr().unwrap()).await.unwrap();
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let request = format!("SLEEP {} caller {i}", (i * 7) % 40);
                let answer = client.call(line(&request)).await.unwrap();
                assert_eq!(answer.into_body(), format!("caller {i}"));
            })
        })
        .collect();
    // A quick request sent after a slow one comes back first.
    let slow = client.call(line("SLEEP 300 slow"));
    let quick = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let answer = client.call(line("UPPER quick")).await.unwrap();
        assert_eq!(answer.body(), "QUICK");
    };
    let (slow, ()) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(
            async {
                let answer = slow.await.unwrap();
                answer.into_body()
            },
            quick
        )
    })
    .await
    .unwrap();
    assert_eq!(slow, "slow");
    for call in calls {
        call.await.unwrap();
    }
    let refused = client.call(line("SHOUT hi")).await.unwrap();
    assert_eq!(refused.body(), "ERR unknown command \"SHOUT\"");
    assert_eq!(server.stats().errored, 0);
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// `nc` speaks it too: ids are whatever the peer chose, copied onto the answers.
#[tokio::test]
async fn a_raw_peer_gets_its_own_ids_back() {
    let server = start_server("127.0.0.1:0".parse().unwrap()).unwrap();
    let stream = tokio::net::TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"9 SLEEP 200 later\n4 UPPER now\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(read).lines();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "4 NOW");
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "9 later");
    // A line that is not `<id> <text>` breaks the protocol: that connection ends, counted.
    write.write_all(b"nonsense\n").await.unwrap();
    assert_eq!(lines.next_line().await.unwrap(), None);
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(server.stats().errored, 1);
}

#[test]
fn the_codec_round_trips_and_refuses_newlines() {
    let mut codec = Lines::new();
    let mut wire = BytesMut::new();
    codec
        .encode(Envelope::with_tag(42, "a b".to_owned()), &mut wire)
        .unwrap();
    assert_eq!(&wire[..], b"42 a b\n");
    let back = codec.decode(&mut wire).unwrap().unwrap();
    assert_eq!(back.into_parts(), (42, "a b".to_owned()));
    assert!(codec.encode(line("two\nlines"), &mut wire).is_err());
    let mut bad = BytesMut::from(&b"x y\n"[..]);
    assert!(codec.decode(&mut bad).is_err());
}
