//! [`Stream`]: a connection's bytes (TCP, TLS or Unix), counted on their way through.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;
use tokio_rustls::server::TlsStream;

use super::send::SendTimer;
use super::tls::CountedTcp;
use super::{ConnError, Transport};
use crate::stats::{BYTES_GRAIN_SHIFT, Stats};

/// The socket under a [`Stream`]. The TLS variant is boxed: a rustls session is large, and a
/// plain TCP connection should not pay for its size.
pub(crate) enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<CountedTcp>>),
    Unix(UnixStream),
}

/// What a connection's process body and its stream share: byte counts (which the read
/// timeout watches), whether the send timeout passed, the shutdown request and the busy marks
/// of the stream-owning form.
pub(crate) struct ConnState {
    read: AtomicU64,
    written: AtomicU64,
    flags: AtomicU8,
    /// Live [`Busy`](super::Busy) guards: while any lives, the read timeout does not run.
    busy: AtomicU32,
    shutdown: Notify,
    stats: Arc<Stats>,
}

const SHUTDOWN_REQUESTED: u8 = 1;
const SHUTDOWN_WATCHED: u8 = 2;
const SEND_TIMED_OUT: u8 = 4;

impl ConnState {
    pub(crate) fn new(stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            read: AtomicU64::new(0),
            written: AtomicU64::new(0),
            flags: AtomicU8::new(0),
            busy: AtomicU32::new(0),
            shutdown: Notify::new(),
            stats,
        })
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes received so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read.load(Relaxed)
    }

    // One writer at a time (the stream's `&mut` poll), so a load and a store count without a
    // locked instruction; the server-wide counter gets a share per 64 KiB crossed.
    fn add(counter: &AtomicU64, total: &AtomicU64, n: usize) {
        let old = counter.load(Relaxed);
        let new = old + n as u64;
        counter.store(new, Relaxed);
        let grains = (new >> BYTES_GRAIN_SHIFT) - (old >> BYTES_GRAIN_SHIFT);
        if grains != 0 {
            total.fetch_add(grains << BYTES_GRAIN_SHIFT, Relaxed);
        }
    }

    fn add_read(&self, n: usize) {
        Self::add(&self.read, &self.stats.bytes_in, n);
    }

    fn add_written(&self, n: usize) {
        Self::add(&self.written, &self.stats.bytes_out, n);
    }

    /// Adds what the 64 KiB steps have not yet counted (once, when the connection ends).
    pub(crate) fn flush_bytes(&self) {
        let mask = (1u64 << BYTES_GRAIN_SHIFT) - 1;
        self.stats
            .bytes_in
            .fetch_add(self.read.load(Relaxed) & mask, Relaxed);
        self.stats
            .bytes_out
            .fetch_add(self.written.load(Relaxed) & mask, Relaxed);
    }

    /// Records that the send timeout passed (once per connection: the stream stays failed).
    fn send_timed_out(&self) {
        self.flags.fetch_or(SEND_TIMED_OUT, Relaxed);
        self.stats.send_timeout();
    }

    /// Whether the connection's send timeout passed.
    pub(crate) fn sending_timed_out(&self) -> bool {
        self.flags.load(Relaxed) & SEND_TIMED_OUT != 0
    }

    /// Marks the shutdown as requested and wakes whoever waits for it.
    pub(crate) fn request_shutdown(&self) {
        self.flags.fetch_or(SHUTDOWN_REQUESTED, Relaxed);
        self.shutdown.notify_waiters();
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.flags.load(Relaxed) & SHUTDOWN_REQUESTED != 0
    }

    /// Records that the connection's function took its [`ShutdownSignal`](super::ShutdownSignal)
    /// and so will end by itself when asked.
    pub(crate) fn watch_shutdown(&self) {
        self.flags.fetch_or(SHUTDOWN_WATCHED, Relaxed);
    }

    pub(crate) fn shutdown_watched(&self) -> bool {
        self.flags.load(Relaxed) & SHUTDOWN_WATCHED != 0
    }

    /// One more live busy mark.
    pub(crate) fn busy_enter(&self) {
        self.busy.fetch_add(1, Relaxed);
    }

    /// One busy mark fewer.
    pub(crate) fn busy_exit(&self) {
        self.busy.fetch_sub(1, Relaxed);
    }

    /// Whether a busy mark lives.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Relaxed) != 0
    }

    pub(crate) async fn shutdown_wait(&self) {
        loop {
            let notified = self.shutdown.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shutdown_requested() {
                return;
            }
            notified.await;
        }
    }
}

/// A connection's byte stream: TCP, TLS (already handshaken) or Unix, as one
/// `AsyncRead + AsyncWrite` type.
///
/// Reads and writes go straight to the socket (or the TLS session); what is added is a count
/// of bytes each way, for [`ServerStats`](crate::ServerStats) and the read timeout, and the
/// send timeout ([`Server::send_timeout`](crate::Server::send_timeout)).
///
/// Errors are the socket's own `io::Error`s: a peer's reset is
/// [`ConnectionReset`](io::ErrorKind::ConnectionReset), a read of 0 bytes is the peer's EOF.
/// A write (or flush, or shutdown) that makes no progress for the send timeout — the socket
/// accepts no byte — fails with [`TimedOut`](io::ErrorKind::TimedOut) (the inner error is
/// [`ConnError::SendTimeout`]), and so does every write after it: the connection cannot be
/// written to any more.
pub struct Stream {
    io: Io,
    state: Arc<ConnState>,
    send: SendTimer,
}

impl Stream {
    pub(crate) fn new(io: Io, state: Arc<ConnState>, send_timeout: Option<Duration>) -> Self {
        Self {
            io,
            state,
            send: SendTimer::new(send_timeout),
        }
    }

    /// The send timeout, once it has passed on this stream.
    pub(crate) fn send_timed_out(&self) -> Option<Duration> {
        self.send.timed_out()
    }

    /// Bytes the socket has accepted: the send timeout's measure of progress (for TLS, the
    /// TCP socket's, under the session's buffering).
    fn socket_sent(&self) -> u64 {
        match &self.io {
            Io::Tcp(_) | Io::Unix(_) => self.state.written.load(Relaxed),
            Io::Tls(tls) => tls.get_ref().0.sent(),
        }
    }

    /// Runs one write-side poll under the send timeout.
    fn poll_send<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut Io, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Some(timeout) = self.send.timed_out() {
            return Poll::Ready(Err(ConnError::send_timeout(timeout)));
        }
        match op(&mut self.io, cx) {
            Poll::Pending => {
                let sent = self.socket_sent();
                let timeout = ready!(self.send.poll_stalled(cx, sent));
                self.state.send_timed_out();
                Poll::Ready(Err(ConnError::send_timeout(timeout)))
            }
            done => {
                self.send.flowing();
                done
            }
        }
    }

    pub(crate) fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// TCP, TLS or Unix.
    pub fn transport(&self) -> Transport {
        match self.io {
            Io::Tcp(_) => Transport::Tcp,
            Io::Tls(_) => Transport::Tls,
            Io::Unix(_) => Transport::Unix,
        }
    }

    /// The TCP socket (under the TLS session, for TLS), to read or set socket options.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match &self.io {
            Io::Tcp(tcp) => Some(tcp),
            Io::Tls(tls) => Some(tls.get_ref().0.tcp()),
            Io::Unix(_) => None,
        }
    }

    /// The Unix socket, for a Unix connection.
    pub fn unix(&self) -> Option<&UnixStream> {
        match &self.io {
            Io::Unix(unix) => Some(unix),
            Io::Tcp(_) | Io::Tls(_) => None,
        }
    }

    /// The rustls session, for a TLS connection (certificates, cipher suite, protocol version).
    pub fn tls(&self) -> Option<&rustls::ServerConnection> {
        match &self.io {
            Io::Tls(tls) => Some(tls.get_ref().1),
            Io::Tcp(_) | Io::Unix(_) => None,
        }
    }

    /// Bytes received so far on this connection.
    pub fn bytes_read(&self) -> u64 {
        self.state.read.load(Relaxed)
    }

    /// Bytes sent so far on this connection.
    pub fn bytes_written(&self) -> u64 {
        self.state.written.load(Relaxed)
    }

    /// Ready when the socket has something to read (or an error). Lets the callback form
    /// allocate its read buffer only once there is data, so idle connections hold none. A TLS
    /// session may hold decrypted bytes the socket no longer shows, so it is always ready.
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.io {
            Io::Tcp(tcp) => tcp.poll_read_ready(cx),
            Io::Unix(unix) => unix.poll_read_ready(cx),
            Io::Tls(_) => Poll::Ready(Ok(())),
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("transport", &self.transport())
            .field("bytes_read", &self.bytes_read())
            .field("bytes_written", &self.bytes_written())
            .finish()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Io::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
            Io::Unix(unix) => Pin::new(unix).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = polled {
            let n = buf.filled().len() - before;
            if n > 0 {
                this.state.add_read(n);
            }
        }
        polled
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = this.poll_send(cx, |io, cx| match io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_write(cx, data),
            Io::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, data),
            Io::Unix(unix) => Pin::new(unix).poll_write(cx, data),
        });
        if let Poll::Ready(Ok(n)) = polled {
            this.state.add_written(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = this.poll_send(cx, |io, cx| match io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Io::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
            Io::Unix(unix) => Pin::new(unix).poll_write_vectored(cx, bufs),
        });
        if let Poll::Ready(Ok(n)) = polled {
            this.state.add_written(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp(tcp) => tcp.is_write_vectored(),
            Io::Tls(tls) => tls.is_write_vectored(),
            Io::Unix(unix) => unix.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send(cx, |io, cx| match io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Io::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
            Io::Unix(unix) => Pin::new(unix).poll_flush(cx),
        })
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send(cx, |io, cx| match io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Io::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
            Io::Unix(unix) => Pin::new(unix).poll_shutdown(cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_reach_the_server_totals_exactly() {
        let stats = Arc::new(Stats::default());
        let state = ConnState::new(stats.clone());
        let grain = 1usize << BYTES_GRAIN_SHIFT;
        // Live: only whole grains are published.
        state.add_read(grain - 1);
        assert_eq!(stats.snapshot().bytes_in, 0);
        state.add_read(2);
        assert_eq!(stats.snapshot().bytes_in, grain as u64);
        state.add_read(3 * grain);
        assert_eq!(stats.snapshot().bytes_in, 4 * grain as u64);
        state.add_written(10);
        // At the end: exactly the total.
        state.flush_bytes();
        let s = stats.snapshot();
        assert_eq!(s.bytes_in, (4 * grain + 1) as u64);
        assert_eq!(s.bytes_out, 10);
        assert_eq!(state.bytes_read(), (4 * grain + 1) as u64);
    }

    #[tokio::test]
    async fn a_shutdown_request_is_seen_before_or_after_waiting() {
        let state = ConnState::new(Arc::new(Stats::default()));
        assert!(!state.shutdown_requested());
        let waiter = {
            let state = state.clone();
            tokio::spawn(async move { state.shutdown_wait().await })
        };
        tokio::task::yield_now().await;
        state.request_shutdown();
        waiter.await.unwrap();
        // A late waiter returns at once.
        state.shutdown_wait().await;
        assert!(state.shutdown_requested());
        assert!(!state.shutdown_watched());
        state.watch_shutdown();
        assert!(state.shutdown_watched());
    }
}
