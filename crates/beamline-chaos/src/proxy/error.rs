use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The proxy could not listen again on its address after refusing connections.
///
/// Returned by [`crate::Proxy::refuse_new`]`(false)`, [`crate::Proxy::heal`] after a
/// [`crate::PartitionMode::Refuse`] partition, and [`crate::Schedule::run`]. Refusing closes
/// the listening socket; ending it binds the same address again, which fails if another
/// socket took the port in between. Nothing else is lost: live connections keep running, the
/// proxy keeps refusing, and calling again retries the bind.
#[derive(Debug)]
pub struct ReopenError {
    addr: SocketAddr,
    source: io::Error,
}

impl ReopenError {
    pub(crate) fn new(addr: SocketAddr, source: io::Error) -> ReopenError {
        ReopenError { addr, source }
    }

    /// The address the proxy tried to listen on again.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Why the bind failed (usually [`io::ErrorKind::AddrInUse`]).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl fmt::Display for ReopenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the chaos proxy cannot listen on {} again", self.addr)
    }
}

impl std::error::Error for ReopenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
