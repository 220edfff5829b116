//! Where a client connects (TCP, TLS over TCP, a Unix socket) and the stream it gets.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use super::TransportError;

/// Where a [`Client`](crate::Client) connects.
///
/// A TCP target is a `host:port` string, resolved again on every connect (so a name whose
/// address changes is followed across reconnects). `&str`, `String` and [`SocketAddr`]
/// convert into a TCP target.
///
/// Nothing is checked when a target is made: a name that does not resolve, a port nobody
/// listens on or a socket path that does not exist is a
/// [`TransportError::Connect`](crate::TransportError::Connect) of the attempt that tried it,
/// naming the target.
///
/// # Examples
/// ```
/// use beamline_client::Target;
///
/// let tcp: Target = "127.0.0.1:6379".into();
/// assert_eq!(tcp.to_string(), "127.0.0.1:6379");
/// # #[cfg(unix)] {
/// let unix = Target::unix("/run/redis/redis.sock");
/// assert_eq!(unix.to_string(), "unix:/run/redis/redis.sock");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A TCP `host:port` (a name or an IP address).
    Tcp(String),
    /// A Unix domain socket's path.
    #[cfg(unix)]
    Unix(PathBuf),
}

impl Target {
    /// A TCP target, `host:port`.
    pub fn tcp(addr: impl Into<String>) -> Self {
        Target::Tcp(addr.into())
    }

    /// A Unix domain socket.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Target::Unix(path.into())
    }

    /// The host part of a TCP target (brackets of an IPv6 literal removed): the TLS server
    /// name when none is given.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn host(&self) -> Option<&str> {
        match self {
            Target::Tcp(addr) => {
                let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                Some(host.trim_start_matches('[').trim_end_matches(']'))
            }
            #[cfg(unix)]
            Target::Unix(_) => None,
        }
    }

    /// Opens one stream to the target (the TLS handshake, if any, is the caller's).
    pub(crate) async fn open(&self, nodelay: bool) -> Result<Stream, TransportError> {
        let failed = |source: io::Error| TransportError::Connect {
            target: Arc::from(self.to_string()),
            source: Arc::new(source),
        };
        match self {
            Target::Tcp(addr) => {
                let stream = TcpStream::connect(addr.as_str()).await.map_err(failed)?;
                if nodelay {
                    stream.set_nodelay(true).map_err(failed)?;
                }
                Ok(Stream::Tcp(stream))
            }
            #[cfg(unix)]
            Target::Unix(path) => Ok(Stream::Unix(
                UnixStream::connect(path).await.map_err(failed)?,
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) => f.write_str(addr),
            #[cfg(unix)]
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl From<&str> for Target {
    fn from(addr: &str) -> Self {
        Target::Tcp(addr.to_owned())
    }
}

impl From<String> for Target {
    fn from(addr: String) -> Self {
        Target::Tcp(addr)
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Target::Tcp(addr.to_string())
    }
}

/// One connected transport: what the mux driver reads and writes.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<Stream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(unix)]
            Stream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(feature = "tls")]
            Stream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            #[cfg(unix)]
            Stream::Unix(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_tcp_targets() {
        assert_eq!(Target::tcp("localhost:6379").host(), Some("localhost"));
        assert_eq!(Target::tcp("127.0.0.1:1").host(), Some("127.0.0.1"));
        assert_eq!(Target::tcp("[::1]:6379").host(), Some("::1"));
        let addr: SocketAddr = "[::1]:7".parse().unwrap();
        assert_eq!(Target::from(addr).host(), Some("::1"));
        #[cfg(unix)]
        assert_eq!(Target::unix("/tmp/s").host(), None);
    }
}
