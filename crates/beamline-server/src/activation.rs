//! Listening sockets a server did not bind itself: [`ListenFds`], handed over by systemd
//! (socket activation: `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) or by a predecessor
//! process during an upgrade ([`crate::upgrade`]), and what [`Server::listen_fds`] does with
//! them.
//!
//! Taking a descriptor by number (fd 3, 4, ...) is the one unsafe act of this crate: nothing
//! in std or socket2 can prove that a number names an open descriptor no one else owns.
//! [`ListenFds::from_env`] does it under the conditions of systemd's protocol, once per
//! process. Descriptors received from a predecessor arrive as `OwnedFd` (rustix's
//! `recvmsg`) and need no unsafe code.

use std::fmt;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use socket2::{Socket, Type};

use crate::listen::{Inherited, ListenAddr, ListenSpec};
use crate::server::Server;

/// systemd passes its sockets from this descriptor on (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Listening sockets handed to this process, to serve with [`Server::listen_fds`]: by
/// systemd ([`from_env`](Self::from_env)) or by the process this one replaces
/// ([`Predecessor::connect`](crate::upgrade::Predecessor::connect)).
///
/// Each is a TCP or Unix stream socket that is already listening, with its address (and
/// for systemd, its `FileDescriptorName=`). Dropping a `ListenFds` closes the sockets it
/// still holds.
pub struct ListenFds {
    pub(crate) listeners: Vec<InheritedListener>,
}

/// One socket of a [`ListenFds`].
pub(crate) struct InheritedListener {
    pub(crate) addr: ListenAddr,
    pub(crate) name: Option<String>,
    pub(crate) socket: Socket,
    /// Whether this process may remove a Unix socket's file when done with it.
    pub(crate) owns_path: bool,
}

/// Why [`ListenFds::from_env`] found no sockets to take.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_FDS` or `LISTEN_PID` is not set: the process was not socket-activated.
    #[error("not socket-activated: LISTEN_FDS and LISTEN_PID are not both set")]
    NotActivated,
    /// The sockets were meant for another process (a parent that did not unset the
    /// variables before starting this one).
    #[error("LISTEN_PID is {listen_pid}, not this process ({pid}): the sockets are not ours")]
    OtherProcess {
        /// The `LISTEN_PID` value.
        listen_pid: u32,
        /// This process's id.
        pid: u32,
    },
    /// A variable holds something that is not what systemd writes.
    #[error("{var}={value:?} is not valid: {reason}")]
    Invalid {
        /// `LISTEN_FDS`, `LISTEN_PID` or `LISTEN_FDNAMES`.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `from_env` already took the sockets (a second call would own them twice).
    #[error("the socket-activation descriptors were already taken by an earlier call")]
    AlreadyTaken,
    /// A passed descriptor is not a listening TCP or Unix stream socket with an address.
    #[error("descriptor {fd} is not a listening TCP or Unix stream socket: {reason}")]
    NotListening {
        /// The descriptor.
        fd: RawFd,
        /// What it is instead, or the error that asking it gave.
        reason: String,
    },
}

/// Whether `from_env` has taken the descriptors: each may be owned once.
static TAKEN: AtomicBool = AtomicBool::new(false);

impl ListenFds {
    /// Takes the sockets systemd passed to this process (`LISTEN_PID` must be this process,
    /// `LISTEN_FDS` says how many from descriptor 3, `LISTEN_FDNAMES` optionally names them)
    /// and marks them close-on-exec. The variables are left as they are: a child started
    /// later sees a `LISTEN_PID` that is not its own. Once per process.
    ///
    /// # Errors
    /// [`ActivationError`]: not activated, sockets meant for another process, malformed
    /// variables, a second call, or a descriptor that is not a listening stream socket (then
    /// none is taken: every descriptor is left open and unowned, as it was).
    pub fn from_env() -> Result<Self, ActivationError> {
        let var = |name| std::env::var(name).ok();
        let passed = parse_env(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            std::process::id(),
        )?;
        if TAKEN.swap(true, SeqCst) {
            return Err(ActivationError::AlreadyTaken);
        }
        let mut listeners = Vec::with_capacity(passed.len());
        for (fd, name) in passed {
            // SAFETY: systemd's protocol: with LISTEN_PID equal to this process's id,
            // descriptors 3 .. 3 + LISTEN_FDS were opened for this process and are owned by
            // no one else in it; `TAKEN` makes sure each is taken once. On any error below
            // every one taken so far is given back (into_raw_fd), not closed.
            #[allow(unsafe_code)]
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            match adopt(owned, name, false) {
                Ok(listener) => listeners.push(listener),
                Err((owned, error)) => {
                    let _ = owned.into_raw_fd();
                    for listener in listeners {
                        let _ = listener.socket.into_raw_fd();
                    }
                    // Nothing is owned any more: a later call may take them.
                    TAKEN.store(false, SeqCst);
                    return Err(error);
                }
            }
        }
        Ok(Self { listeners })
    }

    /// How many sockets it holds.
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// The sockets' addresses, with their names (systemd's `FileDescriptorName=`).
    pub fn addrs(&self) -> impl Iterator<Item = (&ListenAddr, Option<&str>)> {
        self.listeners.iter().map(|l| (&l.addr, l.name.as_deref()))
    }
}

impl fmt::Debug for ListenFds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.addrs()).finish()
    }
}

/// The descriptors and names the variables describe, checked.
fn parse_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    names: Option<&str>,
    pid: u32,
) -> Result<Vec<(RawFd, Option<String>)>, ActivationError> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Err(ActivationError::NotActivated);
    };
    let invalid = |var, value: &str, reason| ActivationError::Invalid {
        var,
        value: value.to_owned(),
        reason,
    };
    let listen_pid: u32 = listen_pid
        .parse()
        .map_err(|_| invalid("LISTEN_PID", listen_pid, "not a process id"))?;
    if listen_pid != pid {
        return Err(ActivationError::OtherProcess { listen_pid, pid });
    }
    let count: RawFd = listen_fds
        .parse()
        .ok()
        .filter(|n| (0..=RawFd::MAX - LISTEN_FDS_START).contains(n))
        .ok_or_else(|| invalid("LISTEN_FDS", listen_fds, "not a count of descriptors"))?;
    let names: Vec<Option<String>> = match names {
        None => vec![None; count.unsigned_abs() as usize],
        Some(text) => {
            let names: Vec<_> = text
                .split(':')
                .map(|n| Some(n.to_owned()).filter(|n| !n.is_empty()))
                .collect();
            if names.len() != count.unsigned_abs() as usize {
                return Err(invalid(
                    "LISTEN_FDNAMES",
                    text,
                    "not one name per descriptor of LISTEN_FDS",
                ));
            }
            names
        }
    };
    Ok((LISTEN_FDS_START..LISTEN_FDS_START + count)
        .zip(names)
        .collect())
}

/// Checks that `fd` is a listening TCP or Unix stream socket with an address, and makes it
/// close-on-exec. On error, the descriptor is handed back with the error.
pub(crate) fn adopt(
    fd: OwnedFd,
    name: Option<String>,
    owns_path: bool,
) -> Result<InheritedListener, (OwnedFd, ActivationError)> {
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let socket = Socket::from(fd);
    let not = |socket: Socket, reason: String| {
        Err((
            OwnedFd::from(socket),
            ActivationError::NotListening { fd: raw, reason },
        ))
    };
    let checked = (|| {
        let kind = socket.r#type()?;
        let listening = socket.is_listener()?;
        let local = socket.local_addr()?;
        Ok::<_, std::io::Error>((kind, listening, local))
    })();
    let (kind, listening, local) = match checked {
        Ok(checked) => checked,
        Err(e) => return not(socket, e.to_string()),
    };
    if kind != Type::STREAM {
        return not(socket, format!("a socket of type {kind:?}, not a stream"));
    }
    if !listening {
        return not(socket, "a stream socket that is not listening".to_owned());
    }
    let addr = if let Some(ip) = local.as_socket() {
        ListenAddr::Tcp(ip)
    } else if let Some(path) = local.as_pathname() {
        ListenAddr::Unix(PathBuf::from(path))
    } else {
        return not(
            socket,
            "a Unix socket with no path (abstract or unnamed)".to_owned(),
        );
    };
    if let Err(e) = socket.set_cloexec(true) {
        return not(socket, e.to_string());
    }
    Ok(InheritedListener {
        addr,
        name,
        socket,
        owns_path,
    })
}

/// Whether two listen addresses name the same socket address (TCP and TLS alike).
fn same_socket(a: &ListenAddr, b: &ListenAddr) -> bool {
    match (a, b) {
        (ListenAddr::Unix(a), ListenAddr::Unix(b)) => a == b,
        _ => a.socket_addr().is_some() && a.socket_addr() == b.socket_addr(),
    }
}

impl Server {
    /// Serves on sockets handed to this process ([`ListenFds`]) instead of binding them.
    ///
    /// A socket whose address is that of a [`bind`](Self::bind), [`bind_tls`](Self::bind_tls)
    /// or [`bind_unix`](Self::bind_unix) made *before* this call stands in for it (that
    /// address is then not bound: with TLS, the config given there applies). Every other
    /// socket is served as it is: plain TCP or Unix. So the same builder serves a first
    /// start (nothing handed over: `bind` binds) and an upgrade or a socket-activated start.
    /// [`proxy_protocol`](Self::proxy_protocol) right after this call applies to all of
    /// them.
    ///
    /// The sockets are used once: after a [`suspend`](crate::ServerHandle::suspend),
    /// `resume` binds the addresses itself. A Unix socket from systemd keeps its file
    /// (systemd's); one handed over by a predecessor is this server's to remove.
    ///
    /// A socket handed over as TLS by a predecessor with no `bind_tls` of its address here
    /// is reported by `start` as [`StartError::Inherited`](crate::StartError::Inherited).
    ///
    /// ```no_run
    /// use beamline_server::{ListenFds, Server};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::new()
    ///     .listen_fds(ListenFds::from_env()?)
    ///     .serve_fn(|conn| async move { drop(conn); Ok(()) })?;
    /// # Ok(()) }
    /// ```
    pub fn listen_fds(mut self, fds: ListenFds) -> Self {
        let mut added = Vec::new();
        let mut groups: Vec<(ListenAddr, Vec<Socket>, bool)> = Vec::new();
        for l in fds.listeners {
            match groups
                .iter_mut()
                .find(|(addr, ..)| same_socket(addr, &l.addr))
            {
                Some((_, sockets, _)) => sockets.push(l.socket),
                None => groups.push((l.addr, vec![l.socket], l.owns_path)),
            }
        }
        for (addr, sockets, owns_path) in groups {
            let inherited = Some(Inherited::new(sockets, owns_path));
            let matching = self
                .listen
                .iter()
                .position(|spec| spec.inherited.is_none() && same_socket(&spec.addr, &addr));
            match matching {
                Some(index) => {
                    self.listen[index].inherited = inherited;
                    added.push(index);
                }
                None => {
                    if matches!(addr, ListenAddr::Tls(_)) {
                        self.inherited_error.get_or_insert(addr.clone());
                    }
                    self.listen.push(ListenSpec {
                        inherited,
                        ..ListenSpec::new(addr, None)
                    });
                    added.push(self.listen.len() - 1);
                }
            }
        }
        self.last_added = added;
        self
    }
}

#[cfg(test)]
mod tests;
