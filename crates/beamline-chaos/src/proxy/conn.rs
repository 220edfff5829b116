//! One connection: wait out a partition, connect upstream, then forward both directions
//! through a [`Shaper`] each until both end, a fault ends the connection, or the proxy stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Conditions, Shared};
use crate::fault::Side;
use crate::jitter::Jitter;
use crate::shaper::{Next, Shaper};

/// Bytes read from a socket at once.
const READ_BUF: usize = 32 * 1024;

/// A live connection's identity; dropping it (the task ended or was aborted) takes it off
/// the live count.
#[derive(Debug)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
    /// Accept order: picks the connection's jitter streams.
    index: u64,
    /// The `reset_all` epoch when it was accepted: a later epoch resets it.
    epoch: u64,
}

impl Connection {
    /// Counts a connection the listener just accepted. The epoch is read here, not when the
    /// task first runs, so a `reset_all` after `stats().live` showed the connection resets it.
    pub(crate) fn accepted(shared: Arc<Shared>, index: u64) -> Connection {
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        shared.counters.live.fetch_add(1, Ordering::Relaxed);
        let epoch = shared.conditions.borrow().reset_epoch;
        Connection {
            shared,
            index,
            epoch,
        }
    }

    fn conditions(&self) -> watch::Receiver<Conditions> {
        self.shared.conditions.subscribe()
    }

    /// Closes every socket given with `SO_LINGER` 0, so each peer receives an RST.
    fn reset(&self, sockets: impl IntoIterator<Item = TcpStream>) {
        for socket in sockets {
            // If the option cannot be set the socket is closed anyway, with a FIN.
            let _ = socket.set_zero_linger();
        }
        self.shared.counters.resets.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.counters.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both directions delivered their FIN.
    Finished,
    /// Reset both peers.
    Reset,
    /// Close both peers gracefully.
    Close,
}

/// How one direction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpEnd {
    /// The source's FIN was forwarded.
    Finished,
    /// A reset budget ran out.
    Reset,
    /// A close budget ran out.
    Close,
    /// A read, write or shutdown failed: a peer is gone.
    Failed,
}

pub(crate) async fn serve(connection: Connection, mut client: TcpStream) {
    // Small writes must leave at once, or slicing and latency would meet Nagle's delay.
    let _ = client.set_nodelay(true);
    let upstream = tokio::select! {
        biased;
        () = reset_requested(connection.conditions(), connection.epoch) => None,
        connected = connect_when_healed(connection.conditions()) => connected,
    };
    let Some(mut upstream) = upstream else {
        // Reset, or the upstream refused: the client sees what a dead server would show.
        connection.reset([client]);
        return;
    };
    let _ = upstream.set_nodelay(true);
    match forward(&connection, &mut client, &mut upstream).await {
        End::Finished => {}
        End::Reset => connection.reset([client, upstream]),
        End::Close => {
            // FIN both ways; whatever arrives after is the kernel's to refuse.
            let _ = client.shutdown().await;
            let _ = upstream.shutdown().await;
        }
    }
}

/// Completes when `reset_all` is called after `epoch`.
async fn reset_requested(mut conditions: watch::Receiver<Conditions>, epoch: u64) {
    loop {
        if conditions.borrow_and_update().reset_epoch != epoch {
            return;
        }
        if conditions.changed().await.is_err() {
            // The proxy is gone; its task set aborts this one.
            std::future::pending::<()>().await;
        }
    }
}

/// Connects to the upstream once no partition is in force. `None`: reset the client instead,
/// because the connect failed, or a reset-at-once fault came while the partition held it.
async fn connect_when_healed(mut conditions: watch::Receiver<Conditions>) -> Option<TcpStream> {
    loop {
        let (healed, reset) = {
            let now = conditions.borrow_and_update();
            let healed = now.partition.is_none().then_some(now.upstream);
            (healed, now.resets_at_once())
        };
        match (healed, reset) {
            // Not held: connect, and a reset-at-once fault resets both peers once forwarding.
            (Some(addr), _) => return TcpStream::connect(addr).await.ok(),
            // Held, and the upstream is out of reach: only the client can be reset.
            (None, true) => return None,
            (None, false) => {}
        }
        if conditions.changed().await.is_err() {
            return None;
        }
    }
}

/// Runs both directions until the connection ends.
async fn forward(connection: &Connection, client: &mut TcpStream, upstream: &mut TcpStream) -> End {
    let counters = &connection.shared.counters;
    let (mut client_rx, mut client_tx) = client.split();
    let (mut upstream_rx, mut upstream_tx) = upstream.split();
    let up = pump(
        connection,
        Side::Up,
        &mut client_rx,
        &mut upstream_tx,
        &counters.upstream_bytes,
    );
    let down = pump(
        connection,
        Side::Down,
        &mut upstream_rx,
        &mut client_tx,
        &counters.downstream_bytes,
    );
    let reset = reset_requested(connection.conditions(), connection.epoch);
    tokio::pin!(up, down, reset);
    let (mut up_open, mut down_open) = (true, true);
    loop {
        let (side, end) = tokio::select! {
            biased;
            () = &mut reset => return End::Reset,
            end = &mut up, if up_open => (Side::Up, end),
            end = &mut down, if down_open => (Side::Down, end),
        };
        match end {
            PumpEnd::Finished => match side {
                Side::Up => up_open = false,
                Side::Down => down_open = false,
            },
            PumpEnd::Reset | PumpEnd::Failed => return End::Reset,
            PumpEnd::Close => return End::Close,
        }
        if !up_open && !down_open {
            return End::Finished;
        }
    }
}

/// Forwards one direction, shaped by the faults in force for it.
async fn pump(
    connection: &Connection,
    side: Side,
    source: &mut ReadHalf<'_>,
    destination: &mut WriteHalf<'_>,
    forwarded: &AtomicU64,
) -> PumpEnd {
    let mut conditions = connection.conditions();
    let mut shaper = {
        let now = conditions.borrow_and_update();
        let jitter = Jitter::for_connection(connection.shared.seed, connection.index, side);
        Shaper::new(now.side(side), now.partition.is_some(), jitter)
    };
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let can_read = shaper.can_read();
        let (piece, wake_at) = match shaper.next(Instant::now()) {
            Next::Reset => return PumpEnd::Reset,
            Next::Close => return PumpEnd::Close,
            Next::Finish => {
                return match destination.shutdown().await {
                    Ok(()) => PumpEnd::Finished,
                    Err(_) => PumpEnd::Failed,
                };
            }
            Next::Write(piece) => (piece, None),
            Next::WaitUntil(at) => (&[][..], Some(at)),
            Next::Idle => (&[][..], None),
        };
        let writing = !piece.is_empty();
        // Biased: a fault change is seen before any byte moves in the same turn.
        tokio::select! {
            biased;
            changed = conditions.changed() => {
                if changed.is_err() {
                    return PumpEnd::Failed;
                }
                let now = conditions.borrow_and_update();
                shaper.set_faults(now.side(side), now.partition.is_some());
            }
            read = source.read(&mut buf), if can_read => match read {
                Ok(0) => shaper.on_eof(),
                Ok(n) => shaper.on_read(&buf[..n], Instant::now()),
                Err(_) => return PumpEnd::Failed,
            },
            written = destination.write(piece), if writing => match written {
                Ok(0) | Err(_) => return PumpEnd::Failed,
                Ok(n) => {
                    shaper.on_written(n, Instant::now());
                    forwarded.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            () = tokio::time::sleep_until(wake_at.unwrap_or_else(Instant::now)), if wake_at.is_some() => {}
        }
    }
}
