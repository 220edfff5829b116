//! TLS in a connection's process: the handshake under its timeout (beside the mailbox, so a
//! drain or a stop ends it at once), and the TCP socket under the session, counted so that the
//! send timeout sees the socket's progress rather than the session's buffering.

use beamline_process::Info;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use beamline_process::{Context, Event, ExitReason};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::run::{Close, Service, Setup, Shared};
use super::{Io, TlsInfo};
use crate::stats::Outcome;

/// The TCP socket under a TLS session, with the bytes it has accepted.
#[derive(Debug)]
pub(crate) struct CountedTcp {
    tcp: TcpStream,
    sent: u64,
}

impl CountedTcp {
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Bytes the socket has accepted (TLS records, handshake included).
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }
}

impl AsyncRead for CountedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.sent += n as u64;
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.sent += n as u64;
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A TLS connection's process body: the handshake, then the handler.
pub(crate) async fn tls_body<S: Service>(
    mut ctx: Context<S::Message>,
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    mut setup: Setup,
    shared: Arc<Shared<S>>,
) -> Result<(), ExitReason> {
    let timeout = shared.config.handshake_timeout;
    let tcp = CountedTcp { tcp, sent: 0 };
    match handshake(&mut ctx, acceptor.accept(tcp), timeout).await {
        Ok(tls) => {
            let session = tls.get_ref().1;
            let info = TlsInfo {
                sni: session.server_name().map(Box::from),
                alpn: session.alpn_protocol().map(Box::from),
            };
            let io = Io::Tls(Box::new(tls));
            setup.serve(ctx, io, Some(Box::new(info)), &shared).await
        }
        Err(Handshake::Failed(error)) => {
            setup
                .guard
                .end(Outcome::HandshakeFailed, Close::HandshakeFailed);
            setup.guard.detail(error.to_string().into());
            setup.guard.failed(|| ExitReason::error(error));
            Ok(())
        }
        Err(Handshake::TimedOut) => {
            setup
                .guard
                .end(Outcome::HandshakeFailed, Close::HandshakeTimeout);
            setup.guard.failed(|| {
                let why = format!("TLS handshake timed out after {timeout:?}");
                ExitReason::error(io::Error::new(io::ErrorKind::TimedOut, why))
            });
            Ok(())
        }
        Err(Handshake::Stopped(reason)) => setup.guard.stopped(reason),
    }
}

/// How a step of a connection's setup (the TLS handshake, reading a PROXY header) failed.
pub(crate) enum Handshake<E> {
    Failed(E),
    TimedOut,
    Stopped(ExitReason),
}

/// Runs a setup step (the TLS handshake, reading a PROXY header) under its timeout, beside
/// the mailbox: a drain or a stop ends it at once.
pub(crate) async fn handshake<M: Send + 'static, T, E, F>(
    ctx: &mut Context<M>,
    accept: F,
    timeout: Duration,
) -> Result<T, Handshake<E>>
where
    F: Future<Output = Result<T, E>>,
{
    let accept = tokio::time::timeout(timeout, accept);
    let mut accept = pin!(accept);
    loop {
        tokio::select! {
            biased;
            done = &mut accept => {
                return match done {
                    Ok(Ok(tls)) => Ok(tls),
                    Ok(Err(error)) => Err(Handshake::Failed(error)),
                    Err(_) => Err(Handshake::TimedOut),
                };
            }
            event = ctx.recv() => {
                // Nobody has this process's address yet: only its supervisor can signal it.
                if let Event::Info(Info::Exit { from, reason }) = event
                    && ctx.parent() == Some(&from)
                {
                    return Err(Handshake::Stopped(reason));
                }
            }
        }
    }
}
