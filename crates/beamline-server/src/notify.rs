//! [`Notifier`]: telling systemd (or whatever set `NOTIFY_SOCKET`) how the service is doing
//! — `READY=1`, `STOPPING=1`, `MAINPID=`, `STATUS=` — one datagram per notice over a Unix
//! socket, as `sd_notify(3)` does, without libsystemd.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

/// Sends `sd_notify` notices to the service manager. Make one with
/// [`from_env`](Self::from_env) (systemd sets `NOTIFY_SOCKET` for `Type=notify` services) or
/// [`new`](Self::new) with a socket path; an address starting with `@` is in Linux's
/// abstract namespace.
///
/// Each notice is one datagram, sent at once (a local datagram socket does not block); a
/// failure is returned, never retried.
///
/// ```no_run
/// use beamline_server::{Notifier, Server};
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::new().bind("127.0.0.1:7000".parse()?).serve_fn(|conn| async move {
///     drop(conn);
///     Ok(())
/// })?;
/// let notifier = Notifier::from_env()?; // None unless started by systemd with Type=notify
/// if let Some(n) = &notifier { n.ready()?; }
/// # let asked_to_stop = std::future::ready(());
/// asked_to_stop.await; // tokio::signal::ctrl_c(), a SIGTERM handler, ...
/// if let Some(n) = &notifier { n.stopping()?; }
/// server.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    path: PathBuf,
}

/// Why a notice could not be sent (or a [`Notifier`] made).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The notification socket's address is not usable (empty, too long, an abstract
    /// address on a system without them).
    #[error("NOTIFY_SOCKET {path:?} is not a usable socket address: {source}")]
    Address {
        /// The address as given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Sending the datagram failed (nobody listens there, no permission).
    #[error("sending {state:?} to {path:?} failed: {source}")]
    Send {
        /// The notice.
        state: String,
        /// Where to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` names, or `None` when it is not set (not started by a
    /// service manager that listens for notices: sending nothing is then right).
    ///
    /// # Errors
    /// [`NotifyError::Address`] for a value that is not a socket address.
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(None),
            Some(path) => Self::new(PathBuf::from(path)).map(Some),
        }
    }

    /// A notifier for the socket at `path` (`@name`: the abstract name `name`).
    ///
    /// # Errors
    /// [`NotifyError::Address`] for an address that cannot be one.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, NotifyError> {
        let path = path.as_ref().to_path_buf();
        let address = |source| NotifyError::Address {
            path: path.clone(),
            source,
        };
        let addr = socket_addr(&path).map_err(address)?;
        let socket = UnixDatagram::unbound().map_err(address)?;
        Ok(Self { socket, addr, path })
    }

    /// Sends one notice: newline-separated `KEY=VALUE` assignments, as `sd_notify(3)`
    /// documents them.
    ///
    /// # Errors
    /// [`NotifyError::Send`] when the datagram could not be sent.
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(drop)
            .map_err(|source| NotifyError::Send {
                state: state.to_owned(),
                path: self.path.clone(),
                source,
            })
    }

    /// `READY=1`: the service serves (call it once the server has started).
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.notify("READY=1")
    }

    /// `STOPPING=1`: the service is shutting down (call it when the drain starts).
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.notify("STOPPING=1")
    }

    /// `MAINPID=pid` and `READY=1` in one notice: after an upgrade, the successor tells the
    /// manager it is now the service's main process (the unit needs `NotifyAccess=all`).
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    pub fn ready_as_main(&self, pid: u32) -> Result<(), NotifyError> {
        self.notify(&format!("MAINPID={pid}\nREADY=1"))
    }

    /// `STATUS=text`: a line of status for `systemctl status`.
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        self.notify(&format!("STATUS={text}"))
    }
}

fn socket_addr(path: &Path) -> io::Result<SocketAddr> {
    let bytes = path.as_os_str().as_encoded_bytes();
    match bytes.split_first() {
        None => Err(io::Error::new(io::ErrorKind::InvalidInput, "empty address")),
        Some((b'@', name)) => abstract_addr(name),
        Some(_) => SocketAddr::from_pathname(path),
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket addresses are Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(name: &str) -> (UnixDatagram, PathBuf) {
        let path =
            std::env::temp_dir().join(format!("beamline-notify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        (UnixDatagram::bind(&path).unwrap(), path)
    }

    fn next(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notices_arrive_one_datagram_each() {
        let (socket, path) = receiver("path");
        let notifier = Notifier::new(&path).unwrap();
        notifier.ready().unwrap();
        notifier.status("serving 3 connections").unwrap();
        notifier.ready_as_main(4242).unwrap();
        notifier.stopping().unwrap();
        assert_eq!(next(&socket), "READY=1");
        assert_eq!(next(&socket), "STATUS=serving 3 connections");
        assert_eq!(next(&socket), "MAINPID=4242\nREADY=1");
        assert_eq!(next(&socket), "STOPPING=1");
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("beamline-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(format!("@{name}")).unwrap().ready().unwrap();
        assert_eq!(next(&socket), "READY=1");
    }

    #[test]
    fn errors_name_the_socket() {
        assert!(matches!(
            Notifier::new(""),
            Err(NotifyError::Address { .. })
        ));
        let gone = std::env::temp_dir().join("beamline-notify-nobody-listens");
        let notifier = Notifier::new(&gone).unwrap();
        let error = notifier.ready().unwrap_err();
        assert!(matches!(error, NotifyError::Send { .. }));
        assert!(
            error.to_string().contains("beamline-notify-nobody-listens"),
            "{error}"
        );
    }
}
