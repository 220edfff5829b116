//! The listening socket, which refusing closes and un-refusing binds again, and the accept
//! loop that owns every connection task.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

use super::error::ReopenError;
use super::{Shared, conn};

/// How long the accept loop pauses after an accept error (out of file descriptors, say), so
/// it never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The proxy's listening socket, present while it accepts and absent while it refuses.
#[derive(Debug)]
pub(crate) struct Slot {
    addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
    /// Wakes the accept loop when a new listener is put in.
    reopened: Notify,
    /// The runtime the listener registers with when it is bound again from any thread.
    runtime: Handle,
}

impl Slot {
    /// Binds `addr`; the error names the address.
    pub(crate) fn bind(addr: SocketAddr, runtime: Handle) -> io::Result<Slot> {
        let _entered = runtime.enter();
        let listener = listen(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the chaos proxy cannot listen on {addr}: {e}"),
            )
        })?;
        Ok(Slot {
            addr: listener.local_addr()?,
            listener: Mutex::new(Some(listener)),
            reopened: Notify::new(),
            runtime,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, Option<TcpListener>> {
        // The lock guards no invariant a panic could break: an Option of a socket.
        self.listener.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens (binds again) or closes the listening socket so that it is open iff `open`.
    /// `open` is computed under the lock, so concurrent callers end in the latest state.
    pub(crate) fn set_open(&self, open: impl FnOnce() -> bool) -> Result<(), ReopenError> {
        let mut slot = self.lock();
        match (open(), slot.is_some()) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => {
                // Dropping the listener closes it: the kernel now answers a SYN with an RST.
                *slot = None;
                Ok(())
            }
            (true, false) => {
                let _entered = self.runtime.enter();
                let listener = listen(self.addr).map_err(|e| ReopenError::new(self.addr, e))?;
                *slot = Some(listener);
                self.reopened.notify_one();
                Ok(())
            }
        }
    }

    /// Closes the listening socket for good (the proxy is stopping).
    pub(crate) fn close(&self) {
        *self.lock() = None;
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.lock().as_ref() {
            Some(listener) => listener.poll_accept(cx),
            // Closed: `reopened` wakes the loop when a listener is back.
            None => Poll::Pending,
        }
    }
}

/// A listening socket on `addr` with `SO_REUSEADDR`, so binding the same port again after a
/// refusal is not blocked by connections in `TIME_WAIT`.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections and owns their tasks until `stop` fires (or this task is aborted,
/// which drops the set and so aborts every connection task with it).
pub(crate) async fn accept_loop(shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    let mut index = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = shared.listener.reopened.notified() => {}
            accepted = poll_fn(|cx| shared.listener.poll_accept(cx)) => match accepted {
                Ok((stream, _peer)) => {
                    let connection = conn::Connection::accepted(Arc::clone(&shared), index);
                    index += 1;
                    connections.spawn(conn::serve(connection, stream));
                }
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
        }
    }
    shared.listener.close();
    connections.shutdown().await;
}
