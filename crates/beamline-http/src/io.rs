//! [`HttpIo`]: the connection's socket as hyper sees it — counting received bytes for the
//! header and keep-alive timers, and, once upgraded, tied to the connection's process: when
//! the process ends (a timeout, a drain's deadline, a dropped server), the upgraded stream
//! fails and closes wherever it is held.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use beamline_server::Connection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ctx::ConnCtx;

/// The socket of one HTTP connection. `None` once closed because its process ended.
#[derive(Debug)]
pub(crate) struct HttpIo {
    conn: Option<Connection>,
    ctx: Arc<ConnCtx>,
}

impl HttpIo {
    pub(crate) fn new(conn: Connection, ctx: Arc<ConnCtx>) -> Self {
        Self {
            conn: Some(conn),
            ctx,
        }
    }

    /// The socket, unless the connection's process ended (then it is closed now).
    fn live(&mut self) -> io::Result<Pin<&mut Connection>> {
        if self.ctx.is_killed() {
            self.conn = None;
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(Pin::new(conn)),
            None => Err(closed()),
        }
    }

    /// After a pending poll of an upgraded stream: register to be woken by a kill, and close
    /// if one happened meanwhile.
    fn pending<T>(&mut self, write: bool, cx: &Context<'_>) -> Poll<io::Result<T>> {
        if self.ctx.is_upgrading() {
            let waker = if write {
                &self.ctx.write_waker
            } else {
                &self.ctx.read_waker
            };
            waker.register(cx.waker());
            if self.ctx.is_killed() {
                self.conn = None;
                return Poll::Ready(Err(closed()));
            }
        }
        Poll::Pending
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the connection's process ended",
    )
}

impl Drop for HttpIo {
    fn drop(&mut self) {
        self.ctx.io_dropped();
    }
}

impl AsyncRead for HttpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match this.live()?.poll_read(cx, buf) {
            Poll::Pending => this.pending(false, cx),
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                this.ctx.add_bytes(n);
                if n > 0 && this.ctx.is_upgrading() {
                    this.ctx.upgraded_read();
                }
                Poll::Ready(Ok(()))
            }
            done => done,
        }
    }
}

macro_rules! write_side {
    ($this:ident, $cx:ident, $call:expr) => {{
        let this = $this.get_mut();
        let conn = this.live()?;
        #[allow(clippy::redundant_closure_call)]
        match ($call)(conn) {
            Poll::Pending => this.pending(true, $cx),
            done => done,
        }
    }};
}

impl AsyncWrite for HttpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        write_side!(self, cx, |c: Pin<&mut Connection>| c.poll_write(cx, data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        write_side!(self, cx, |c: Pin<&mut Connection>| c
            .poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        write_side!(self, cx, |c: Pin<&mut Connection>| c.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        write_side!(self, cx, |c: Pin<&mut Connection>| c.poll_shutdown(cx))
    }
}
