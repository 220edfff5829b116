//! A real `redis-server`, started on a free loopback port for one test.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, unique};

/// How long a starting redis-server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child process listening on `127.0.0.1:<port>`, with persistence off
/// and its working files in a private temporary directory.
///
/// Dropping it kills the server and removes the directory. [`stop`](Self::stop) and
/// [`restart`](Self::restart) let a test take the server away and bring it back on the
/// same port, which is what a reconnecting client must survive.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    ///
    /// # Panics
    /// If `redis-server` is not installed (the message says how to install it), or if no
    /// server could be started after a few ports were tried. A real-peer test fails loudly
    /// rather than skipping.
    pub fn start() -> Self {
        let mut last_error = None;
        for _ in 0..5 {
            match Self::start_on(free_port()) {
                Ok(server) => return server,
                // Another process may have taken the port between free_port and the bind.
                Err(e) => last_error = Some(e),
            }
        }
        panic!(
            "could not start redis-server: {}",
            last_error.map_or_else(|| "unknown error".to_owned(), |e| e.to_string())
        )
    }

    /// Starts a server on `port` and waits until it answers PING.
    ///
    /// # Errors
    /// When the server exits at once (the port is taken, for example) or does not answer
    /// within 10 seconds; the error carries the tail of its log.
    ///
    /// # Panics
    /// If `redis-server` is not installed.
    pub fn start_on(port: u16) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "beamline-redis-{}-{port}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
                "redis-server not found: run `apt-get install -y redis-server` \
                 (`cargo xtask test` installs it when it can)"
            ),
            Err(e) => return Err(e),
        };
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(io::Error::other("redis-server is not running"));
            };
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited at start ({status}); log: {}",
                    self.port,
                    self.log_tail()
                )));
            }
            // The server that answers must be ours: with the port taken, another server
            // would answer while ours fails to bind and exits.
            let pid = child.id();
            if server_pid(self.addr()).is_ok_and(|answered| answered == pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}; log: {}",
                        self.port,
                        self.log_tail()
                    ),
                ));
            }
            // Waiting on an external process: there is no event to wait for but its socket.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// The port the server listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `redis://127.0.0.1:<port>/`, the form redis-rs and redis-cli's `-u` take.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's process id while it runs (to read its CPU time from `/proc`, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the server at once (SIGKILL, like a crash: no goodbye to clients) and waits
    /// for it to exit. Connected clients see their sockets close.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port and waits until it answers PING. Data is
    /// not kept (persistence is off): a restarted server is empty.
    ///
    /// # Errors
    /// As for [`start_on`](Self::start_on).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asks the server at `addr` for its process id (`INFO server`, field `process_id`).
fn server_pid(addr: SocketAddr) -> io::Result<u32> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"INFO server\r\n")?;
    // The reply is one bulk string: `$<len>\r\n<body>\r\n`; read until the body is complete.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "INFO reply cut short",
            ));
        }
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply);
        let Some((header, body)) = text.split_once("\r\n") else {
            continue;
        };
        let len: usize = header
            .strip_prefix('$')
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected reply to INFO: {header}")))?;
        if body.len() < len {
            continue;
        }
        return body
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
            .ok_or_else(|| io::Error::other("INFO server has no process_id"));
    }
}

/// A number that differs between calls in one process (names temporary directories).
#[cfg(test)]
mod tests {
    use super::*;

    fn command(addr: SocketAddr, cmd: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(cmd).unwrap();
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn starts_answers_stops_and_restarts_on_the_same_port() {
        let mut server = RedisServer::start();
        let addr = server.addr();
        assert_eq!(command(addr, b"SET k v\r\n"), b"+OK\r\n");
        assert_eq!(command(addr, b"GET k\r\n"), b"$1\r\nv\r\n");
        server.stop();
        assert!(!server.is_running());
        assert!(TcpStream::connect(addr).is_err());
        server.restart().unwrap();
        assert!(server.is_running());
        assert_eq!(server.addr(), addr);
        // Persistence is off: the restarted server is empty.
        assert_eq!(command(addr, b"GET k\r\n"), b"$-1\r\n");
    }

    #[test]
    fn a_taken_port_is_an_error_with_the_log() {
        let first = RedisServer::start();
        let err = RedisServer::start_on(first.port()).unwrap_err();
        assert!(err.to_string().contains("exited at start"), "{err}");
    }
}
