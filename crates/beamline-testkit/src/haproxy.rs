//! A real HAProxy in TCP mode, in front of a server under test, with a config generated for
//! one test on free loopback ports.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, unique};

/// How long a starting HAProxy may take to listen on every frontend.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// An `haproxy` child process relaying TCP to one backend: one frontend per entry of the
/// `server_options` it was started with (say `"send-proxy"` and `"send-proxy-v2"`), each on
/// its own `127.0.0.1` port and writing those options on its `server` line.
///
/// Dropping it kills HAProxy and removes its config.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    frontends: Vec<SocketAddr>,
    dir: PathBuf,
}

impl Haproxy {
    /// Starts HAProxy relaying to `backend`, one frontend per `server_options` entry, and
    /// waits until every frontend accepts connections.
    ///
    /// # Panics
    /// If `haproxy` is not installed (the message says how to install it), or if it could
    /// not be started after a few tries with other ports. A real-peer test fails loudly
    /// rather than skipping.
    pub fn start(backend: SocketAddr, server_options: &[&str]) -> Self {
        let mut last_error = None;
        for _ in 0..5 {
            match Self::try_start(backend, server_options) {
                Ok(haproxy) => return haproxy,
                // A port taken between free_port and HAProxy's bind: try others.
                Err(e) => last_error = Some(e),
            }
        }
        panic!(
            "could not start haproxy: {}",
            last_error.map_or_else(|| "unknown error".to_owned(), |e| e.to_string())
        )
    }

    fn try_start(backend: SocketAddr, server_options: &[&str]) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "beamline-haproxy-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir)?;
        let frontends: Vec<SocketAddr> = server_options
            .iter()
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let mut config = String::from(
            "global\n  maxconn 1024\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
             timeout client 30s\n  timeout server 30s\n",
        );
        for (i, (frontend, options)) in frontends.iter().zip(server_options).enumerate() {
            config.push_str(&format!(
                "\nlisten relay{i}\n  bind {frontend}\n  server backend {backend} {options}\n"
            ));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config)?;
        let child = match Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
                "haproxy not found: run `apt-get install -y haproxy` \
                 (`cargo xtask test` installs it when it can)"
            ),
            Err(e) => return Err(e),
        };
        let mut haproxy = Haproxy {
            child,
            frontends,
            dir,
        };
        haproxy.wait_ready()?;
        Ok(haproxy)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for frontend in &self.frontends {
            while TcpStream::connect(frontend).is_err() {
                if let Some(status) = self.child.try_wait()? {
                    let mut stderr = String::new();
                    if let Some(mut err) = self.child.stderr.take() {
                        let _ = io::Read::read_to_string(&mut err, &mut stderr);
                    }
                    return Err(io::Error::other(format!(
                        "haproxy exited ({status}): {stderr}"
                    )));
                }
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "haproxy never listened on {frontend}"
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The address of the frontend for `server_options[index]`.
    ///
    /// # Panics
    /// If there is no such frontend.
    pub fn frontend(&self, index: usize) -> SocketAddr {
        self.frontends[index]
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
