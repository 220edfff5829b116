//! Socket activation with the real `systemd-socket-activate`: it listens on a TCP port and a
//! Unix socket, and on the first connection starts this test binary as its child with the
//! sockets as descriptors 3 and 4; the child takes them with `ListenFds::from_env` (the
//! crate's one `unsafe` block) and serves on them. `sd_notify` goes to a socket the test
//! reads.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use beamline_server::{ActivationError, Connection, ExitReason, ListenFds, Notifier, Server};
use common::*;
use tokio::io::AsyncWriteExt;

const TEST: &str = "systemd_sockets_are_taken_once_and_served";

/// Says which socket the connection came in on.
async fn where_am_i(mut conn: Connection) -> Result<(), ExitReason> {
    let line = format!("served on {}\n", conn.info().local());
    conn.write_all(line.as_bytes()).await?;
    Ok(())
}

/// The child: takes the sockets, serves two connections, and reports.
fn child() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fds = ListenFds::from_env().unwrap();
        let names: Vec<_> = fds
            .addrs()
            .map(|(_, name)| name.map(str::to_owned))
            .collect();
        println!("names {names:?}");
        assert!(matches!(
            ListenFds::from_env(),
            Err(ActivationError::AlreadyTaken)
        ));
        let server = Server::new().listen_fds(fds).serve_fn(where_am_i).unwrap();
        let notifier = Notifier::from_env().unwrap().unwrap();
        notifier.ready().unwrap();
        stats_until(&server, |s| s.closed == 2).await;
        notifier.stopping().unwrap();
        server.shutdown(Duration::from_secs(1)).await.unwrap();
        println!("child done");
    });
}

/// Connects (retrying while the activator is not listening yet), and reads one line.
fn line_from(connect: impl Fn() -> std::io::Result<Box<dyn std::io::Read>>) -> String {
    let started = Instant::now();
    let stream = loop {
        match connect() {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "cannot connect: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

#[test]
fn systemd_sockets_are_taken_once_and_served() {
    if is_child(TEST) {
        return child();
    }
    let dir = std::env::temp_dir().join(format!("beamline-activation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unix_path = dir.join("activated.sock");
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = beamline_testkit::free_port();
    let exe = std::env::current_exe().unwrap();
    let activator = "systemd-socket-activate";
    let child = Command::new(activator)
        .args(["-l", &format!("127.0.0.1:{port}"), "-l"])
        .arg(&unix_path)
        .arg("--fdname=web:local")
        .arg(format!("-E{CHILD_ENV}={TEST}"))
        .arg(format!("-ENOTIFY_SOCKET={}", notify_path.display()))
        .arg(&exe)
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {activator} ({e}): run `apt-get install -y systemd`")
        });

    let tcp = line_from(|| {
        let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        Ok(Box::new(s) as Box<dyn std::io::Read>)
    });
    assert_eq!(tcp, format!("served on 127.0.0.1:{port}\n"));
    let mut ready = [0u8; 64];
    let n = notify.recv(&mut ready).unwrap();
    assert_eq!(&ready[..n], b"READY=1");
    let unix = line_from(|| {
        let s = UnixStream::connect(&unix_path)?;
        Ok(Box::new(s) as Box<dyn std::io::Read>)
    });
    assert_eq!(unix, format!("served on unix:{}\n", unix_path.display()));
    let n = notify.recv(&mut ready).unwrap();
    assert_eq!(&ready[..n], b"STOPPING=1");

    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("names [Some(\"web\"), Some(\"local\")]"),
        "{stdout}"
    );
    assert!(stdout.contains("child done"), "{stdout}");
    // systemd's socket file is systemd's: the server left it.
    assert!(unix_path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
