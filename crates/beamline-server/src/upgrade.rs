//! Upgrades that refuse no connection: a running server hands its listening sockets to the
//! process that replaces it, over a Unix socket (`SCM_RIGHTS`), and stops accepting only
//! once the successor accepts on them. The sockets never close, so the kernel's backlog
//! never does: no client sees a refusal.
//!
//! ```text
//! old process                                   new process
//! UpgradeListener::bind(path)
//!   accept() ◄──────────── connect ───────────── Predecessor::connect(path)
//! hand_over(successor) ── sockets (SCM_RIGHTS) ─►  Server::new()…listen_fds(fds).serve_fn(…)
//!   (still accepting)   ◄──────── ready ──────── predecessor.ready()
//!   stops accepting (backlog left in place)
//!                       ───────── done ────────►  (returns: the old one accepts no more)
//! shutdown(drain): live connections finish
//! ```
//!
//! Both sides are bounded by a timeout, and a failure on either side leaves the old server
//! serving as it was. Descriptors travel as `OwnedFd` (rustix's `recvmsg`): nothing is
//! leaked by a failed or partial exchange on either side.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};

use crate::activation::{ActivationError, ListenFds, adopt};
use crate::handle::{HandOff, ServerHandle, ServerState};
use crate::listen::{ListenAddr, Listener};

/// The most listening sockets one upgrade carries (addresses × `SO_REUSEPORT` acceptors).
pub const MAX_SOCKETS: usize = 64;

/// The message's first bytes: "BeamLine UPgrade", then the protocol's version.
const MAGIC: &[u8; 4] = b"BLUP";
const VERSION: u8 = 1;
/// The successor accepts on the sockets; the predecessor has stopped accepting.
const READY: u8 = b'R';
const DONE: u8 = b'D';

/// Why an upgrade step failed. On the old side the server keeps serving as before; on the
/// new side every socket received is closed with the value that held it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The upgrade socket could not be bound: another process listens there, or the path
    /// is not usable.
    #[error("cannot listen for a successor on {path:?}: {source}")]
    Bind {
        /// The upgrade socket's path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No predecessor listens on the upgrade socket.
    #[error("cannot reach the running process at {path:?}: {source}")]
    Connect {
        /// The upgrade socket's path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading or writing the upgrade socket failed.
    #[error("upgrade socket failed while {step}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The other process did not answer in time.
    #[error("no answer within {timeout:?} while {step}")]
    Timeout {
        /// What was being waited for.
        step: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// The other process hung up.
    #[error("the other process closed the upgrade socket while {step}")]
    Closed {
        /// What was being done.
        step: &'static str,
    },
    /// The other side sent something this protocol does not say.
    #[error("upgrade protocol error: {reason}")]
    Protocol {
        /// What was wrong.
        reason: &'static str,
    },
    /// Only a running server can hand its sockets over.
    #[error("cannot hand over the sockets of a server that is {state}")]
    NotRunning {
        /// Its state.
        state: ServerState,
    },
    /// More listening sockets than one upgrade carries.
    #[error("{count} listening sockets, more than the {max} an upgrade carries")]
    TooManySockets {
        /// How many the server has.
        count: usize,
        /// [`MAX_SOCKETS`].
        max: usize,
    },
    /// A received descriptor is not a listening socket.
    #[error("a handed-over descriptor is not usable: {0}")]
    Socket(#[source] ActivationError),
}

/// Where a running server waits for its successor: a Unix socket at a path both processes
/// know. One successor per listener; the socket's file is removed once it is accepted (so
/// the successor can listen at the same path for its own successor) or when this is
/// dropped.
#[derive(Debug)]
pub struct UpgradeListener {
    listener: UnixListener,
    path: PathBuf,
}

impl UpgradeListener {
    /// Listens at `path`. A file left there by a process that died (nobody accepts on it)
    /// is replaced.
    ///
    /// # Errors
    /// [`UpgradeError::Bind`]: another process listens there, or the path is unusable.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self, UpgradeError> {
        let path = path.as_ref().to_path_buf();
        let bind = |path: &Path| UnixListener::bind(path);
        let listener = match bind(&path) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let stale = matches!(
                    std::os::unix::net::UnixStream::connect(&path),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
                );
                if stale {
                    let _ = std::fs::remove_file(&path);
                    bind(&path)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
        .map_err(|source| UpgradeError::Bind {
            path: path.clone(),
            source,
        })?;
        Ok(Self { listener, path })
    }

    /// The upgrade socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for a successor to connect. Cancel-safe (dropping the future drops the
    /// listener, removing its file).
    ///
    /// # Errors
    /// [`UpgradeError::Io`] if accepting fails.
    pub async fn accept(self) -> Result<Successor, UpgradeError> {
        let (stream, _) = self
            .listener
            .accept()
            .await
            .map_err(|source| UpgradeError::Io {
                step: "accepting a successor",
                source,
            })?;
        let pid = stream
            .peer_cred()
            .ok()
            .and_then(|c| c.pid())
            .and_then(|p| u32::try_from(p).ok());
        Ok(Successor { stream, pid })
    }
}

impl Drop for UpgradeListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A process that connected to an [`UpgradeListener`] to take over: give it to
/// [`ServerHandle::hand_over`].
#[derive(Debug)]
pub struct Successor {
    stream: UnixStream,
    pid: Option<u32>,
}

impl Successor {
    /// Its process id, as the kernel reports it (`SO_PEERCRED`).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

impl ServerHandle {
    /// Hands this server's listening sockets to `successor` and, once it says it accepts on
    /// them, stops accepting — leaving what waits in the backlogs, and the Unix sockets'
    /// files, to it. Returns how many sockets went over. The server is then
    /// [`Suspended`](ServerState::Suspended): call [`shutdown`](Self::shutdown) to drain its
    /// live connections (a `resume` would find the addresses taken).
    ///
    /// Until the successor's answer, both processes accept from the same sockets; no
    /// connection is refused at any moment.
    ///
    /// # Errors
    /// [`UpgradeError`]: the server is not running, has more than [`MAX_SOCKETS`] sockets,
    /// or the successor failed, hung up or took longer than `timeout` to accept. The
    /// server then keeps serving as before.
    pub async fn hand_over(
        &self,
        successor: Successor,
        timeout: Duration,
    ) -> Result<usize, UpgradeError> {
        let mut stream = successor.stream;
        let sent = self
            .hand_over_with(|listeners| send_and_wait(&mut stream, listeners, timeout))
            .await;
        let count = match sent {
            Ok(count) => count,
            Err(HandOff::NotRunning(state)) => return Err(UpgradeError::NotRunning { state }),
            Err(HandOff::Send(error)) => return Err(error),
        };
        // The successor may bind the upgrade socket's path for its own successor now; if it
        // is gone, it is no longer ours to care about.
        let _ = stream.write_all(&[DONE]).await;
        Ok(count)
    }
}

/// Sends the sockets and waits for the successor's `READY`.
async fn send_and_wait(
    stream: &mut UnixStream,
    listeners: Vec<(ListenAddr, Arc<Listener>)>,
    timeout: Duration,
) -> Result<(), UpgradeError> {
    if listeners.len() > MAX_SOCKETS {
        return Err(UpgradeError::TooManySockets {
            count: listeners.len(),
            max: MAX_SOCKETS,
        });
    }
    let mut message = Vec::with_capacity(6 + listeners.len());
    message.extend_from_slice(MAGIC);
    message.push(VERSION);
    message.push(u8::try_from(listeners.len()).unwrap_or(u8::MAX));
    message.extend(listeners.iter().map(|(addr, _)| kind_of(addr)));
    let fds: Vec<BorrowedFd<'_>> = listeners.iter().map(|(_, l)| l.fd()).collect();
    let exchange = async {
        send_with_fds(stream, &message, &fds).await?;
        let mut answer = [0u8; 1];
        match stream.read(&mut answer).await {
            Ok(0) => Err(UpgradeError::Closed {
                step: "waiting for the successor to accept",
            }),
            Ok(_) if answer[0] == READY => Ok(()),
            Ok(_) => Err(UpgradeError::Protocol {
                reason: "the successor's answer is not READY",
            }),
            Err(source) => Err(UpgradeError::Io {
                step: "waiting for the successor to accept",
                source,
            }),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| UpgradeError::Timeout {
            step: "waiting for the successor to accept",
            timeout,
        })?
}

fn kind_of(addr: &ListenAddr) -> u8 {
    match addr {
        ListenAddr::Tcp(_) => 0,
        ListenAddr::Tls(_) => 1,
        ListenAddr::Unix(_) => 2,
    }
}

/// Writes `message` with `fds` attached to its first byte(s), then the rest if the socket
/// took only part of it.
async fn send_with_fds(
    stream: &UnixStream,
    message: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), UpgradeError> {
    let io_error = |source| UpgradeError::Io {
        step: "sending the sockets",
        source,
    };
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut sent = 0;
    while sent < message.len() {
        stream.writable().await.map_err(io_error)?;
        let attempt = stream.try_io(Interest::WRITABLE, || {
            let mut control = SendAncillaryBuffer::new(&mut space);
            if sent == 0 && !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::other("no room for the descriptors"));
            }
            let iov = [IoSlice::new(&message[sent..])];
            Ok(rustix::net::sendmsg(
                stream,
                &iov,
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        });
        match attempt {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(())
}

/// The process being replaced, seen from its successor: it has sent its sockets and waits
/// for [`ready`](Self::ready).
#[derive(Debug)]
pub struct Predecessor {
    stream: UnixStream,
}

impl Predecessor {
    /// Connects to the running process's [`UpgradeListener`] at `path` and receives its
    /// listening sockets, within `timeout`. Serve them with
    /// [`Server::listen_fds`](crate::Server::listen_fds) (the same `bind*` calls as a first
    /// start: each socket stands in for its address), then call [`ready`](Self::ready).
    ///
    /// # Errors
    /// [`UpgradeError`]: nobody listens at `path`, the message is not this protocol's, a
    /// descriptor is not a listening socket, or no answer in time. Whatever was received
    /// is closed.
    pub async fn connect(
        path: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<(ListenFds, Self), UpgradeError> {
        let path = path.as_ref();
        let exchange = async {
            let stream =
                UnixStream::connect(path)
                    .await
                    .map_err(|source| UpgradeError::Connect {
                        path: path.to_path_buf(),
                        source,
                    })?;
            let fds = receive(&stream).await?;
            Ok((fds, Self { stream }))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| UpgradeError::Timeout {
                step: "receiving the sockets",
                timeout,
            })?
    }

    /// Tells the predecessor that this process accepts on the sockets (call it once the
    /// server has started), and waits until the predecessor has stopped accepting. From
    /// then on it only drains its live connections, and the upgrade socket's path is free
    /// for this process's own [`UpgradeListener`].
    ///
    /// # Errors
    /// [`UpgradeError`]: the predecessor hung up or did not confirm within `timeout` (this
    /// server keeps serving either way: the sockets are its own).
    pub async fn ready(mut self, timeout: Duration) -> Result<(), UpgradeError> {
        let step = "waiting for the predecessor to stop accepting";
        let exchange = async {
            let io = |source| UpgradeError::Io { step, source };
            self.stream.write_all(&[READY]).await.map_err(io)?;
            let mut answer = [0u8; 1];
            match self.stream.read(&mut answer).await.map_err(io)? {
                0 => Err(UpgradeError::Closed { step }),
                _ if answer[0] == DONE => Ok(()),
                _ => Err(UpgradeError::Protocol {
                    reason: "the predecessor's answer is not DONE",
                }),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| UpgradeError::Timeout { step, timeout })?
    }
}

/// Receives the sockets message: the descriptors come with its first bytes.
async fn receive(stream: &UnixStream) -> Result<ListenFds, UpgradeError> {
    let step = "receiving the sockets";
    let mut message = [0u8; 6 + MAX_SOCKETS];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut have = 0;
    let mut need = 6;
    while have < need {
        stream
            .readable()
            .await
            .map_err(|source| UpgradeError::Io { step, source })?;
        let attempt = stream.try_io(Interest::READABLE, || {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut message[have..need])];
            let got =
                rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
            for received in control.drain() {
                if let RecvAncillaryMessage::ScmRights(rights) = received {
                    fds.extend(rights);
                }
            }
            Ok(got)
        });
        let got = match attempt {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(source) => return Err(UpgradeError::Io { step, source }),
        };
        if got.flags.contains(ReturnFlags::CTRUNC) {
            return Err(UpgradeError::Protocol {
                reason: "more descriptors than an upgrade carries",
            });
        }
        if got.bytes == 0 {
            return Err(UpgradeError::Closed { step });
        }
        have += got.bytes;
        if have >= 6 && need == 6 {
            if &message[..4] != MAGIC || message[4] != VERSION {
                return Err(UpgradeError::Protocol {
                    reason: "not a beamline upgrade message of this version",
                });
            }
            need = 6 + usize::from(message[5]);
            if need > message.len() {
                return Err(UpgradeError::Protocol {
                    reason: "more sockets than an upgrade carries",
                });
            }
        }
    }
    let kinds = &message[6..need];
    if fds.len() != kinds.len() {
        return Err(UpgradeError::Protocol {
            reason: "the number of descriptors differs from the message's",
        });
    }
    let mut listeners = Vec::with_capacity(fds.len());
    for (fd, &kind) in fds.into_iter().zip(kinds) {
        let mut listener = adopt(fd, None, true).map_err(|(_, e)| UpgradeError::Socket(e))?;
        listener.addr = match (kind, &listener.addr) {
            (0, ListenAddr::Tcp(addr)) => ListenAddr::Tcp(*addr),
            (1, ListenAddr::Tcp(addr)) => ListenAddr::Tls(*addr),
            (2, ListenAddr::Unix(path)) => ListenAddr::Unix(path.clone()),
            _ => {
                return Err(UpgradeError::Protocol {
                    reason: "a socket that is not of the kind the message says",
                });
            }
        };
        listeners.push(listener);
    }
    Ok(ListenFds { listeners })
}
