//! Zero-downtime upgrades: the listening sockets go to the successor over a Unix socket
//! (SCM_RIGHTS), the successor accepts on them before the predecessor stops, and the
//! predecessor drains. Under a connect loop: no connection is refused, every one is answered,
//! by the old server or the new one; descriptors are counted before and after on both sides;
//! a successor that fails leaves the old server serving; every failure is a typed error.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use beamline_server::upgrade::{Predecessor, UpgradeError, UpgradeListener};
use beamline_server::{Connection, ExitReason, Server, ServerHandle, ServerState, StartError};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

const WAIT: Duration = Duration::from_secs(5);

fn dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beamline-upgrade-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The builder every generation uses, first start and upgrades alike.
fn builder(tcp: std::net::SocketAddr, unix: &Path) -> Server {
    Server::new()
        .bind(tcp)
        .bind_unix(unix)
        .acceptors(2)
        .reuseport(true)
}

/// Starts `server` answering each connection's first byte with its generation `n`.
fn serve(server: Server, n: u8) -> ServerHandle {
    server
        .serve_fn(move |mut conn: Connection| async move {
            let mut byte = [0u8; 1];
            conn.read_exact(&mut byte).await?;
            conn.write_all(&[n]).await?;
            Ok::<(), ExitReason>(())
        })
        .unwrap()
}

/// One connection: connect, a byte there, the generation back. `Err` says how it failed.
async fn ask_tcp(addr: std::net::SocketAddr) -> Result<u8, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(b"?").await.map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    s.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
    Ok(byte[0])
}

async fn ask_unix(path: &Path) -> Result<u8, String> {
    let mut s = UnixStream::connect(path).await.map_err(|e| e.to_string())?;
    s.write_all(b"?").await.map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    s.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
    Ok(byte[0])
}

/// Upgrades `old` (generation n) to generation n + 1 through `path`: both sides as the two
/// processes would run them.
async fn upgrade(
    old: ServerHandle,
    n: u8,
    tcp: std::net::SocketAddr,
    unix: &Path,
    path: &Path,
) -> ServerHandle {
    let upgrades = UpgradeListener::bind(path).unwrap();
    let old_side = tokio::spawn(async move {
        let successor = upgrades.accept().await.unwrap();
        assert_eq!(successor.pid(), Some(std::process::id()));
        let sockets = old.hand_over(successor, WAIT).await.unwrap();
        assert_eq!(old.state(), ServerState::Suspended);
        let report = old.shutdown(WAIT).await.unwrap();
        (sockets, report.aborted, old.stats())
    });
    let (fds, predecessor) = Predecessor::connect(path, WAIT).await.unwrap();
    assert_eq!(
        fds.len(),
        3,
        "two SO_REUSEPORT TCP sockets and the Unix one: {fds:?}"
    );
    let new = serve(builder(tcp, unix).listen_fds(fds), n + 1);
    predecessor.ready(WAIT).await.unwrap();
    let (sockets, aborted, stats) = old_side.await.unwrap();
    assert_eq!((sockets, aborted), (3, 0));
    // The old one's backlog went to the new one: nothing it accepted was refused.
    assert_eq!(stats.rejected, 0, "{stats:?}");
    assert_balanced(&stats);
    new
}

const UNDER_LOAD: &str = "three_upgrades_under_load_refuse_no_connection_and_leak_no_fd";

#[test]
fn three_upgrades_under_load_refuse_no_connection_and_leak_no_fd() {
    alone_in_child(UNDER_LOAD, || async {
        let dir = dir("load");
        let (unix, path) = (dir.join("served.sock"), dir.join("upgrade.sock"));
        let before = beamline_testkit::open_fds();
        let first = serve(builder(localhost(), &unix), 1);
        let tcp = addr(&first);
        let serving = beamline_testkit::open_fds();

        // The load: connections one after another, over TCP and Unix, until told to stop.
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (stop, unix) = (stop.clone(), unix.clone());
            tokio::spawn(async move {
                let (mut answers, mut failures, mut times) = (Vec::new(), Vec::new(), Vec::new());
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(20) {
                    for answer in [ask_tcp(tcp).await, ask_unix(&unix).await] {
                        match answer {
                            Ok(n) => {
                                answers.push(n);
                                times.push(started.elapsed());
                            }
                            Err(e) => failures.push(e),
                        }
                    }
                }
                (answers, failures, times)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut server = first;
        for n in 1..=3 {
            server = upgrade(server, n, tcp, &unix, &path).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let (answers, failures, times) = load.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        for n in 1..=4u8 {
            assert!(answers.contains(&n), "generation {n} answered nobody");
        }
        let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        println!(
            "{} connections, none refused; longest gap between answered connections {gap:?}",
            answers.len()
        );
        // The successor holds what the first server held: the same descriptors' count.
        assert_eq!(beamline_testkit::open_fds(), serving);
        drop(server);
        tokio::task::yield_now().await;
        assert_eq!(beamline_testkit::open_fds(), before);
        assert!(
            !unix.exists(),
            "the last server removed the socket file it owned"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[tokio::test]
async fn a_successor_that_fails_leaves_the_old_server_serving() {
    let dir = dir("fails");
    let path = dir.join("upgrade.sock");
    let server = Server::new().bind(localhost()).serve_fn(echo_fn).unwrap();
    // It takes the sockets, then goes away without saying it accepts.
    let upgrades = UpgradeListener::bind(&path).unwrap();
    let (handed, taken) = tokio::join!(
        async {
            server
                .hand_over(upgrades.accept().await.unwrap(), WAIT)
                .await
        },
        async { drop(Predecessor::connect(&path, WAIT).await.unwrap()) }
    );
    assert!(
        matches!(handed, Err(UpgradeError::Closed { .. })),
        "{handed:?}"
    );
    let () = taken;
    assert_eq!(server.state(), ServerState::Running);
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut client, b"still here").await, b"still here");

    // One that never answers: a timeout, and still serving.
    let upgrades = UpgradeListener::bind(&path).unwrap();
    let (handed, _held) = tokio::join!(
        async {
            let successor = upgrades.accept().await.unwrap();
            server
                .hand_over(successor, Duration::from_millis(200))
                .await
        },
        async { Predecessor::connect(&path, WAIT).await.unwrap() }
    );
    assert!(
        matches!(handed, Err(UpgradeError::Timeout { .. })),
        "{handed:?}"
    );
    assert_eq!(round_trip(&mut client, b"and here").await, b"and here");

    // A suspended server has nothing to hand over.
    server.suspend().await.unwrap();
    let upgrades = UpgradeListener::bind(&path).unwrap();
    let (handed, _) = tokio::join!(
        async {
            server
                .hand_over(upgrades.accept().await.unwrap(), WAIT)
                .await
        },
        async { UnixStream::connect(&path).await.unwrap() }
    );
    assert!(
        matches!(
            handed,
            Err(UpgradeError::NotRunning {
                state: ServerState::Suspended
            })
        ),
        "{handed:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_upgrade_socket_and_its_protocol_fail_with_typed_errors() {
    let dir = dir("errors");
    let path = dir.join("upgrade.sock");
    // Nobody there.
    let nobody = Predecessor::connect(&path, WAIT).await;
    assert!(
        matches!(nobody, Err(UpgradeError::Connect { .. })),
        "{nobody:?}"
    );
    // A file left by a dead process is replaced; a live listener is not.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let live = UpgradeListener::bind(&path).unwrap();
    let taken = UpgradeListener::bind(&path);
    assert!(matches!(taken, Err(UpgradeError::Bind { .. })), "{taken:?}");
    drop(live);
    assert!(!path.exists(), "dropping the listener removes its file");
    // Something that does not speak the protocol.
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let garbage = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        s
    });
    let spoken = Predecessor::connect(&path, WAIT).await;
    assert!(
        matches!(spoken, Err(UpgradeError::Protocol { .. })),
        "{spoken:?}"
    );
    drop(garbage.await.unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_tls_socket_needs_its_config_in_the_successor() {
    let dir = dir("tls");
    let path = dir.join("upgrade.sock");
    let pki = beamline_testkit::TestPki::new();
    let server = Server::new()
        .bind_tls(localhost(), pki.server_config())
        .serve_fn(echo_fn)
        .unwrap();
    let upgrades = UpgradeListener::bind(&path).unwrap();
    let (_, received) = tokio::join!(
        async {
            let successor = upgrades.accept().await.unwrap();
            server
                .hand_over(successor, Duration::from_millis(500))
                .await
        },
        async { Predecessor::connect(&path, WAIT).await.unwrap() }
    );
    let (fds, _predecessor) = received;
    let (addr, _) = fds.addrs().next().unwrap();
    assert_eq!(addr, &server.local_addrs()[0], "handed over as TLS");
    let without = Server::new().listen_fds(fds).serve_fn(echo_fn);
    assert!(
        matches!(without, Err(StartError::Inherited { .. })),
        "{without:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
