//! What can go wrong on a link, and in which direction.
//!
//! A [`Fault`] is data: the proxy keeps at most one fault of each [`FaultKind`] per direction,
//! and faults of different kinds stack (latency, then bandwidth, then slicing, with the byte
//! budgets of reset and close counted on what is actually forwarded).

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: up, down or both
pub enum Direction {
    /// Client → server: what the client writes, on its way to the upstream.
    Upstream,
    /// Server → client: what the upstream writes, on its way back to the client.
    Downstream,
    /// Both directions at once. A fault applied to `Both` is applied to each direction
    /// separately: a byte budget ([`Fault::ResetAfter`], [`Fault::CloseAfter`]) is counted in
    /// each direction on its own and fires when either direction spends it.
    Both,
}

impl Direction {
    /// The single directions this one stands for.
    pub(crate) fn sides(self) -> &'static [Side] {
        match self {
            Direction::Upstream => &[Side::Up],
            Direction::Downstream => &[Side::Down],
            Direction::Both => &[Side::Up, Side::Down],
        }
    }
}

/// One concrete direction of one connection (what a forwarding loop serves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Up,
    Down,
}

/// A fault injected into one direction of every connection through a proxy.
///
/// Each variant's doc says what a peer observes. "Destination" is the peer the direction
/// writes to (the server for [`Direction::Upstream`], the client for
/// [`Direction::Downstream`]); "source" is the peer that writes.
///
/// A fault applied at run time reaches live connections and every new one. Bytes the proxy
/// has already written are never taken back; bytes it has read but not yet written (held by
/// latency, pacing or a blackhole) are subject to the faults in force when they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Every chunk the proxy reads is held for `delay` plus a uniform random extra in
    /// `[0, jitter]` before it is written on.
    ///
    /// The destination sees each byte **at least** `delay` after the source wrote it (never
    /// less: jitter only adds). Order is kept: a chunk is never released before the one read
    /// before it, as on a real TCP link. The extra delay comes from a generator seeded by the
    /// proxy's seed, the connection's accept index and the direction, so the n-th chunk of
    /// the k-th connection gets the same delay in every run with the same seed.
    /// Chunks already held when the latency changes keep the delay they were given.
    Latency {
        /// The fixed part of the delay: the floor of what the destination observes.
        delay: Duration,
        /// The random part, added on top of `delay` (`Duration::ZERO` for none).
        jitter: Duration,
    },
    /// The destination receives at most `bytes_per_sec` bytes per second.
    ///
    /// The proxy writes in pieces of about 20 ms worth of bytes and waits before the next
    /// piece so the average rate never exceeds the limit; an idle link earns no burst credit.
    /// The source is slowed the way a slow link slows it: once the proxy's buffer (1 MiB
    /// per direction) and the socket buffers are full, its writes wait.
    Bandwidth {
        /// The rate limit.
        bytes_per_sec: NonZeroU64,
    },
    /// Every write to the destination is at most `max_bytes` long, and consecutive writes are
    /// at least `delay` apart.
    ///
    /// Every byte arrives intact and in order; only the pieces are smaller and later. The
    /// proxy sets `TCP_NODELAY`, so each piece leaves as its own segment and a destination
    /// that reads promptly sees short reads (one that reads slowly may find several pieces
    /// waiting, as with any TCP stream).
    Slice {
        /// The largest piece written at once.
        max_bytes: NonZeroUsize,
        /// The pause between two pieces (`Duration::ZERO` for none).
        delay: Duration,
    },
    /// Forward nothing in this direction and keep the connection open.
    ///
    /// The proxy stops reading from the source and stops writing to the destination, so the
    /// destination's reads wait (and time out if it has a timeout) and, once the buffers
    /// fill, the source's writes wait too. Nothing is dropped: what the proxy had read or the
    /// source had written is held and delivered, in order, when the blackhole is cleared,
    /// exactly as TCP retransmission delivers it after a real outage heals. A FIN or RST from
    /// the source is likewise not seen until then.
    Blackhole,
    /// Reset the whole connection once `bytes` more bytes have been forwarded in this
    /// direction (`0`: at once).
    ///
    /// The budget counts bytes written to the destination from the moment the fault reaches
    /// the connection (when it is applied, for a live connection; from its start, for a new
    /// one); applying the fault again starts a new count. When it is spent, the proxy closes
    /// both of its sockets with `SO_LINGER` 0, so both the client and the server receive an
    /// RST, not a FIN: their next read (after the bytes already delivered) or write fails
    /// with [`std::io::ErrorKind::ConnectionReset`]. Bytes still held by the proxy in either
    /// direction are lost, as they are on a real reset. While the fault stays, every new
    /// connection is reset once it has forwarded `bytes` bytes; with `0`, at once (the
    /// client's connect succeeds, then its first read or write sees the reset). A reset at
    /// once also fires in a blackhole or a partition, where no byte moves; a connection a
    /// partition holds before it reached the upstream is reset on the client side only.
    ResetAfter {
        /// Bytes forwarded in this direction before the reset.
        bytes: u64,
    },
    /// Close the whole connection gracefully once `bytes` more bytes have been forwarded in
    /// this direction (`0`: at once).
    ///
    /// Counted like [`Fault::ResetAfter`]. When spent, the destination has received exactly
    /// `bytes` bytes and then a FIN: its next read returns end-of-stream (`Ok(0)`). The other
    /// peer gets a FIN too, after whatever had already been written to it; bytes the proxy
    /// still held for it are dropped. The proxy then closes its sockets, as a peer that
    /// called `close()` does: data sent to it afterwards is answered with an RST by the
    /// kernel. If both this and [`Fault::ResetAfter`] run out on the same byte, the reset wins.
    CloseAfter {
        /// Bytes forwarded in this direction before the close.
        bytes: u64,
    },
}

impl Fault {
    /// A fixed delay with no jitter.
    pub fn latency(delay: Duration) -> Fault {
        Fault::Latency {
            delay,
            jitter: Duration::ZERO,
        }
    }

    /// A reset at once: [`Fault::ResetAfter`] with a budget of 0.
    pub fn reset() -> Fault {
        Fault::ResetAfter { bytes: 0 }
    }

    /// Which slot this fault takes (a new fault replaces the one of its kind).
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Latency { .. } => FaultKind::Latency,
            Fault::Bandwidth { .. } => FaultKind::Bandwidth,
            Fault::Slice { .. } => FaultKind::Slice,
            Fault::Blackhole => FaultKind::Blackhole,
            Fault::ResetAfter { .. } => FaultKind::ResetAfter,
            Fault::CloseAfter { .. } => FaultKind::CloseAfter,
        }
    }
}

/// The kind of a [`Fault`], without its parameters: what [`crate::Proxy::clear`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// [`Fault::Latency`].
    Latency,
    /// [`Fault::Bandwidth`].
    Bandwidth,
    /// [`Fault::Slice`].
    Slice,
    /// [`Fault::Blackhole`].
    Blackhole,
    /// [`Fault::ResetAfter`].
    ResetAfter,
    /// [`Fault::CloseAfter`].
    CloseAfter,
}

/// What a partition does to connections that arrive while it lasts.
///
/// Live connections are blackholed in both directions either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::exhaustive_enums)] // closed: what a partition does to new connections, chosen by the test
pub enum PartitionMode {
    /// Accept new connections and forward nothing, not even the connect to the upstream,
    /// until the partition heals; then connect and deliver what the client had sent. The
    /// client's connect succeeds and its reads wait: the view from a host whose packets
    /// vanish once a middlebox (or the kernel's backlog) has answered the handshake.
    #[default]
    Blackhole,
    /// Close the listening socket for the duration, so a new connect fails at once with
    /// [`std::io::ErrorKind::ConnectionRefused`], as when the server's host is up but
    /// nothing listens (connections whose handshake had already completed are held like
    /// live ones). The same address is bound again on heal.
    Refuse,
}

/// A byte budget and the apply call that set it (a new apply restarts the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub(crate) bytes: u64,
    pub(crate) generation: u64,
}

/// The faults in force in one direction: one slot per [`FaultKind`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SideFaults {
    pub(crate) latency: Option<(Duration, Duration)>,
    pub(crate) bandwidth: Option<NonZeroU64>,
    pub(crate) slice: Option<(NonZeroUsize, Duration)>,
    pub(crate) blackhole: bool,
    pub(crate) reset_after: Option<Budget>,
    pub(crate) close_after: Option<Budget>,
}

impl SideFaults {
    /// Puts `fault` in its slot; `generation` identifies this apply call.
    pub(crate) fn set(&mut self, fault: Fault, generation: u64) {
        match fault {
            Fault::Latency { delay, jitter } => self.latency = Some((delay, jitter)),
            Fault::Bandwidth { bytes_per_sec } => self.bandwidth = Some(bytes_per_sec),
            Fault::Slice { max_bytes, delay } => self.slice = Some((max_bytes, delay)),
            Fault::Blackhole => self.blackhole = true,
            Fault::ResetAfter { bytes } => self.reset_after = Some(Budget { bytes, generation }),
            Fault::CloseAfter { bytes } => self.close_after = Some(Budget { bytes, generation }),
        }
    }

    /// Empties the slot of `kind`.
    pub(crate) fn clear(&mut self, kind: FaultKind) {
        match kind {
            FaultKind::Latency => self.latency = None,
            FaultKind::Bandwidth => self.bandwidth = None,
            FaultKind::Slice => self.slice = None,
            FaultKind::Blackhole => self.blackhole = false,
            FaultKind::ResetAfter => self.reset_after = None,
            FaultKind::CloseAfter => self.close_after = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Fault; 6] = [
        Fault::Latency {
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
        },
        Fault::Bandwidth {
            bytes_per_sec: NonZeroU64::MIN,
        },
        Fault::Slice {
            max_bytes: NonZeroUsize::MIN,
            delay: Duration::ZERO,
        },
        Fault::Blackhole,
        Fault::ResetAfter { bytes: 3 },
        Fault::CloseAfter { bytes: 4 },
    ];

    #[test]
    fn set_then_clear_by_kind_leaves_nothing() {
        let mut faults = SideFaults::default();
        for (i, fault) in ALL.into_iter().enumerate() {
            faults.set(fault, i as u64);
        }
        assert_ne!(faults, SideFaults::default());
        for fault in ALL {
            faults.clear(fault.kind());
        }
        assert_eq!(faults, SideFaults::default());
    }

    #[test]
    fn a_new_fault_replaces_its_kind_only() {
        let mut faults = SideFaults::default();
        faults.set(Fault::latency(Duration::from_millis(1)), 1);
        faults.set(Fault::ResetAfter { bytes: 10 }, 2);
        faults.set(Fault::latency(Duration::from_millis(9)), 3);
        assert_eq!(
            faults.latency,
            Some((Duration::from_millis(9), Duration::ZERO))
        );
        assert_eq!(
            faults.reset_after,
            Some(Budget {
                bytes: 10,
                generation: 2
            })
        );
        faults.clear(FaultKind::Latency);
        assert!(faults.reset_after.is_some());
    }

    #[test]
    fn both_means_each_side_once() {
        assert_eq!(Direction::Both.sides(), &[Side::Up, Side::Down]);
        assert_eq!(Direction::Upstream.sides(), &[Side::Up]);
        assert_eq!(Direction::Downstream.sides(), &[Side::Down]);
        assert_eq!(Fault::reset(), Fault::ResetAfter { bytes: 0 });
    }
}
