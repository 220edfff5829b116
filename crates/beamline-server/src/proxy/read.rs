//! Reading a PROXY header off a socket without consuming anything past it: peek until
//! [`parse`](super::parse::parse) decides, then read exactly the header's bytes.
//!
//! Each peek runs inside tokio's `try_io`, and a peek that finds no byte beyond those already
//! seen reports `WouldBlock`, which clears the socket's readiness for exactly the readiness
//! event it saw: a partial header waits for the next bytes instead of peeking in a loop.
//! Once the peer has shut its side (read-closed, which tokio never clears), a peek that finds
//! nothing new is the end: nothing more can come.

use std::io;

use rustix::net::RecvFlags;
use tokio::io::{Interest, Ready};
use tokio::net::{TcpStream, UnixStream};

use super::parse::{MAX_HEADER_LEN, Parsed, parse};
use super::{ProxyError, ProxyHeader, ProxyProtocol};

/// The socket a header is read from (under TLS: the TCP socket, before the handshake).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peek<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

/// Bytes peeked on the stack before a (rare) longer v2 header moves to the heap: a v1
/// header and a v2 header of up to 240 bytes of addresses and TLVs fit.
const STACK: usize = 256;

impl Peek<'_> {
    async fn readable(self) -> io::Result<Ready> {
        match self {
            Self::Tcp(s) => s.ready(Interest::READABLE).await,
            Self::Unix(s) => s.ready(Interest::READABLE).await,
        }
    }

    /// Peeks into `buf`: `Ok(n)` with more than `seen` bytes, or 0 at the peer's EOF;
    /// `WouldBlock` (readiness cleared) when nothing new has arrived.
    fn try_peek(self, buf: &mut [u8], seen: usize) -> io::Result<usize> {
        fn more(fd: impl std::os::fd::AsFd, buf: &mut [u8], seen: usize) -> io::Result<usize> {
            let (n, _) = rustix::net::recv(fd, buf, RecvFlags::PEEK)?;
            if n != 0 && n <= seen {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }
        match self {
            Self::Tcp(s) => s.try_io(Interest::READABLE, || more(s, buf, seen)),
            Self::Unix(s) => s.try_io(Interest::READABLE, || more(s, buf, seen)),
        }
    }

    fn try_read(self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.try_read(buf),
            Self::Unix(s) => s.try_read(buf),
        }
    }

    /// Waits for readiness and runs `op` until it stops saying `WouldBlock`; 0 when it says
    /// so after the peer shut its side (nothing more will come).
    async fn retry(self, mut op: impl FnMut() -> io::Result<usize>) -> Result<usize, ProxyError> {
        loop {
            let ready = self.readable().await.map_err(ProxyError::Io)?;
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if ready.is_read_closed() {
                        return Ok(0);
                    }
                }
                Err(e) => return Err(ProxyError::Io(e)),
                Ok(n) => return Ok(n),
            }
        }
    }
}

/// Reads the header a connection starts with. `Ok(None)`: under
/// [`ProxyProtocol::Optional`], the connection does not start with one (nothing was
/// consumed). Not cancel-safe in the middle of consuming the header (the caller drops the
/// connection when it gives up).
///
/// # Errors
/// Under `Required`, [`ProxyError::Missing`] for a stream that starts otherwise and
/// [`ProxyError::Closed`] for one that ends first; in both modes a malformed or oversized
/// header, or a failed read.
pub(crate) async fn read_header(
    io: Peek<'_>,
    mode: ProxyProtocol,
) -> Result<Option<ProxyHeader>, ProxyError> {
    let mut stack = [0u8; STACK];
    let mut heap = Vec::new();
    let mut seen = 0;
    loop {
        let buf: &mut [u8] = if heap.is_empty() {
            &mut stack
        } else {
            &mut heap
        };
        let n = io.retry(|| io.try_peek(buf, seen)).await?;
        if n == 0 {
            // The peer ended first: whatever it sent is not a header.
            return match mode {
                ProxyProtocol::Optional => Ok(None),
                _ => Err(ProxyError::Closed),
            };
        }
        seen = n;
        match parse(&buf[..seen])? {
            Parsed::NotProxy => {
                return match mode {
                    ProxyProtocol::Optional => Ok(None),
                    _ => Err(ProxyError::Missing),
                };
            }
            Parsed::Header { header, len } => {
                let mut done = 0;
                while done < len {
                    let k = io.retry(|| io.try_read(&mut buf[done..len])).await?;
                    if k == 0 {
                        return Err(ProxyError::Closed);
                    }
                    done += k;
                }
                return Ok(Some(header));
            }
            Parsed::Incomplete { needed } if needed > buf.len() => {
                // `parse` bounds `needed` by MAX_HEADER_LEN; peeking starts over into the
                // larger buffer (the bytes are still in the socket).
                heap = vec![0; needed.min(MAX_HEADER_LEN)];
            }
            Parsed::Incomplete { .. } => {}
        }
    }
}
