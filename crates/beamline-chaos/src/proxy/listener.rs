//! The listening socket, which refusing closes and un-refusing binds again, and the accept
//! loop that owns every connection task.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
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
    /// Connections whose handshake had completed when the listener was closed: they were
    /// accepted on the way out and wait for the accept loop to serve them.
    adopted: Mutex<Vec<TcpStream>>,
    /// Wakes the accept loop when a listener is put back or connections are adopted.
    changed: Notify,
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
            adopted: Mutex::new(Vec::new()),
            changed: Notify::new(),
            runtime,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, Option<TcpListener>> {
        lock(&self.listener)
    }

    /// Opens (binds again) or closes the listening socket so that it is open iff `open`.
    /// `open` is computed under the lock, so concurrent callers end in the latest state.
    pub(crate) fn set_open(&self, open: impl FnOnce() -> bool) -> Result<(), ReopenError> {
        let mut slot = self.lock();
        match (open(), slot.is_some()) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => {
                if let Some(listener) = slot.take() {
                    self.close_adopting(listener);
                }
                Ok(())
            }
            (true, false) => {
                let _entered = self.runtime.enter();
                let listener = listen(self.addr).map_err(|e| ReopenError::new(self.addr, e))?;
                *slot = Some(listener);
                self.changed.notify_one();
                Ok(())
            }
        }
    }

    /// Closes the listening socket for good (the proxy is stopping).
    pub(crate) fn close(&self) {
        *self.lock() = None;
    }

    /// Closes `listener` so the kernel answers new SYNs with an RST, but first accepts every
    /// connection already in its queue: a client whose connect returned before the proxy
    /// started refusing is served, not reset.
    fn close_adopting(&self, listener: TcpListener) {
        // `into_std` leaves the reactor, so `accept` below asks the kernel directly instead
        // of trusting readiness the reactor may not have seen yet.
        let Ok(listener) = listener.into_std() else {
            return;
        };
        let _entered = self.runtime.enter();
        let mut adopted = lock(&self.adopted);
        let before = adopted.len();
        // The listener is non-blocking: this stops at the first WouldBlock.
        while let Ok((stream, _)) = listener.accept() {
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                adopted.push(stream);
            }
        }
        drop(listener);
        if adopted.len() > before {
            self.changed.notify_one();
        }
    }

    /// The connections adopted since the last call.
    fn take_adopted(&self) -> Vec<TcpStream> {
        std::mem::take(&mut *lock(&self.adopted))
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.lock().as_ref() {
            Some(listener) => listener.poll_accept(cx),
            // Closed: `changed` wakes the loop when a listener is back.
            None => Poll::Pending,
        }
    }
}

/// Locks `mutex`, which guards no invariant a panic could break (a socket or a list of them).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
    let mut connections = Connections {
        tasks: JoinSet::new(),
        accepted: 0,
    };
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            // Reap finished connections so the set holds only live ones; count the panics.
            Some(ended) = connections.tasks.join_next(), if !connections.tasks.is_empty() => {
                if ended.is_err_and(|e| e.is_panic()) {
                    shared.counters.panicked.fetch_add(1, Ordering::Relaxed);
                }
            }
            () = shared.listener.changed.notified() => {
                for stream in shared.listener.take_adopted() {
                    connections.serve(&shared, stream);
                }
            }
            accepted = poll_fn(|cx| shared.listener.poll_accept(cx)) => match accepted {
                Ok((stream, _peer)) => connections.serve(&shared, stream),
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
        }
    }
    shared.listener.close();
    connections.tasks.shutdown().await;
}

/// The connection tasks, and how many connections were accepted (each one's index).
struct Connections {
    tasks: JoinSet<()>,
    accepted: u64,
}

impl Connections {
    fn serve(&mut self, shared: &Arc<Shared>, stream: TcpStream) {
        let connection = conn::Connection::accepted(Arc::clone(shared), self.accepted);
        self.accepted += 1;
        self.tasks.spawn(conn::serve(connection, stream));
    }
}
