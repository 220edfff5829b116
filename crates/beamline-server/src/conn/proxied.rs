//! A connection on a PROXY listener, in its own process: the header read under the handshake
//! timeout (beside the mailbox), the client's address put in place of the balancer's, the
//! per-IP cap applied to it, then TLS or the handler as on any other listener.

use std::sync::Arc;

use beamline_process::{Context, ExitReason};

use super::run::{AcceptedIo, Close, Service, Setup, Shared};
use super::tls::{Handshake, handshake, tls_body};
use super::{Endpoint, Io, ProxyInfo};
use crate::proxy::read::{Peek, read_header};
use crate::proxy::{Cidr, ProxyError, ProxyHeader, ProxyProtocol};
use crate::stats::Outcome;

/// Whether `peer` may send a PROXY header. A Unix-socket peer is local (only who can open
/// the socket's file reaches it): trusted, like any peer when no source was named.
fn trusted(sources: &[Cidr], peer: &Endpoint) -> bool {
    match peer.ip() {
        Some(addr) => sources.is_empty() || sources.iter().any(|c| c.contains(addr.ip())),
        None => true,
    }
}

/// Reads the header `io` starts with, as `mode` and the trusted sources allow.
async fn header(
    io: &AcceptedIo,
    mode: ProxyProtocol,
    peer: &Endpoint,
    sources: &[Cidr],
) -> Result<Option<ProxyHeader>, ProxyError> {
    let trusted = trusted(sources, peer);
    let untrusted = || ProxyError::Untrusted {
        peer: peer
            .ip()
            .map(|a| a.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
    };
    if !trusted && mode == ProxyProtocol::Required {
        return Err(untrusted());
    }
    let peek = match io {
        AcceptedIo::Tcp(tcp) | AcceptedIo::Tls(tcp, _) => Peek::Tcp(tcp),
        AcceptedIo::Unix(unix) => Peek::Unix(unix),
    };
    match read_header(peek, mode).await? {
        Some(_) if !trusted => Err(untrusted()),
        header => Ok(header),
    }
}

/// A PROXY listener's connection process body: the header, then TLS or the handler.
pub(crate) async fn proxied_body<S: Service>(
    mut ctx: Context<S::Message>,
    io: AcceptedIo,
    mode: ProxyProtocol,
    mut setup: Setup,
    shared: Arc<Shared<S>>,
) -> Result<(), ExitReason> {
    let timeout = shared.config.handshake_timeout;
    let read = header(&io, mode, &setup.peer, &shared.proxy_from);
    let (close, error) = match handshake(&mut ctx, read, timeout).await {
        Ok(header) => {
            if let Some(header) = header {
                accept(&mut setup, header);
            }
            return serve(ctx, io, setup, shared).await;
        }
        Err(Handshake::Failed(error)) => (Close::ProxyFailed, error),
        Err(Handshake::TimedOut) => (Close::ProxyTimeout, ProxyError::Timeout { timeout }),
        Err(Handshake::Stopped(reason)) => return setup.guard.stopped(reason),
    };
    shared.stats.proxy_failure();
    setup.guard.end(Outcome::HandshakeFailed, close);
    setup.guard.detail(error.to_string().into());
    Ok(())
}

/// Puts the client's address the header carried (if any) in place of the balancer's.
fn accept(setup: &mut Setup, header: ProxyHeader) {
    let via = setup.peer.clone();
    if let Some(source) = header.source() {
        setup.peer = Endpoint::Ip(source);
        setup.guard.peer = setup.peer.clone();
        setup.guard.via = Some(Box::new(via.clone()));
    }
    tracing::debug!(
        conn_id = setup.guard.id(),
        peer = %setup.peer,
        %via,
        version = %header.version(),
        "proxy header received"
    );
    setup.proxy = Some(Box::new(ProxyInfo { via, header }));
}

/// The per-IP cap on the client's address, then the connection as on any listener.
async fn serve<S: Service>(
    ctx: Context<S::Message>,
    io: AcceptedIo,
    mut setup: Setup,
    shared: Arc<Shared<S>>,
) -> Result<(), ExitReason> {
    if let Some(addr) = setup.peer.ip()
        && shared
            .limits
            .admit_ip(&mut setup.guard.admission, addr.ip())
            .is_err()
    {
        setup.guard.end(Outcome::Rejected, Close::PerIp);
        return Ok(());
    }
    match io {
        AcceptedIo::Tcp(tcp) => setup.serve(ctx, Io::Tcp(tcp), None, &shared).await,
        AcceptedIo::Unix(unix) => setup.serve(ctx, Io::Unix(unix), None, &shared).await,
        AcceptedIo::Tls(tcp, acceptor) => tls_body(ctx, tcp, acceptor, setup, shared).await,
    }
}
