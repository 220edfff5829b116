//! What the core hands its driver: the [`Ticket`] of an admitted request, the frames to
//! [`Transmit`], where a reply goes ([`Recipient`]), what a timer [`Fired`], and the counters
//! ([`MuxStats`]).

use std::time::Duration;

/// Names one admitted request, for [`Mux::cancel`](crate::Mux::cancel) and [`Mux::transmit_failed`](crate::Mux::transmit_failed).
///
/// A ticket never names a later request, even one that reuses the same id: besides the tag it
/// carries a sequence number that is unique for the life of the `Mux`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub(super) seq: u64,
    pub(super) tag: Option<u32>,
}

impl Ticket {
    /// The request's id on the wire (id mode); `None` in FIFO mode.
    pub fn tag(&self) -> Option<u32> {
        self.tag
    }
}

/// Something for the driver to write, from [`Mux::poll_transmit`](crate::Mux::poll_transmit).
#[derive(Debug)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: a driver must handle every output of the sans-IO core
pub enum Transmit<R> {
    /// Encode and write this request, with id `ticket.tag()` in id mode.
    Request {
        /// The request's ticket.
        ticket: Ticket,
        /// The request itself.
        request: R,
    },
    /// Tell the peer that request `tag` was abandoned (id mode with `cancel`).
    Cancel {
        /// The abandoned request's id.
        tag: u32,
    },
}

/// Whom a reply goes to, from [`Mux::handle_reply`](crate::Mux::handle_reply).
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: a driver must handle every output of the sans-IO core
pub enum Recipient<T> {
    /// The reply belongs to this live request: hand it to its waiter.
    Caller(T),
    /// The reply belongs to a request whose caller gave up: drop it. Counted in
    /// [`MuxStats::late_replies`]; in id mode its id leaves quarantine.
    Late,
    /// Id mode: no request holds this id (its quarantine aged out, or the peer made it up):
    /// drop it. Counted in [`MuxStats::stray_replies`].
    Stray,
    /// FIFO mode: a reply arrived while no written request was waiting for one. The stream
    /// is out of step: the connection must be closed.
    Unsolicited,
}

/// What a timer did, from [`Mux::handle_timeout`](crate::Mux::handle_timeout).
#[derive(Debug)]
#[non_exhaustive]
pub enum Fired<T> {
    /// A request's deadline passed: tell its waiter.
    Expired(Expired<T>),
    /// FIFO mode: a request abandoned `abandon_timeout` ago still has no reply. Replies come
    /// in order, so every later reply queues behind the missing one: the connection is
    /// wedged. Close it and call [`Mux::connection_lost`](crate::Mux::connection_lost), which fails every request on it
    /// saying whether it was written. Counted in [`MuxStats::abandon_expired`].
    Wedged {
        /// The abandon timeout that passed ([`MuxConfig::abandon_timeout`](crate::MuxConfig::abandon_timeout)).
        abandon_timeout: Duration,
    },
}

/// A request whose deadline passed, from [`Mux::handle_timeout`](crate::Mux::handle_timeout) ([`Fired::Expired`]).
#[derive(Debug)]
#[allow(clippy::exhaustive_structs)] // closed on purpose: an output of the sans-IO core, destructured by drivers
pub struct Expired<T> {
    /// The request's ticket.
    pub ticket: Ticket,
    /// Its waiter, to be told "timed out".
    pub waiter: T,
    /// Whether the request had been handed out for writing (then it may still be
    /// delivered: its id is quarantined and, where the protocol can, a cancel is queued).
    pub sent: bool,
}

/// A request that was in flight when the connection died, from [`Mux::connection_lost`](crate::Mux::connection_lost).
#[derive(Debug)]
#[allow(clippy::exhaustive_structs)] // closed on purpose: an output of the sans-IO core, destructured by drivers
pub struct Lost<T> {
    /// Its waiter.
    pub waiter: T,
    /// Whether any byte of it had been written: `false` means it certainly never reached
    /// the peer and is safe to retry.
    pub sent: bool,
}

/// What [`Mux::cancel`](crate::Mux::cancel) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: a driver must handle every output of the sans-IO core
pub enum Cancelled {
    /// The request was not handed out yet: it is gone, and nothing needs telling.
    Forgotten,
    /// The request was handed out: its id is quarantined (FIFO: its reply will be
    /// discarded). `cancel_queued` says whether a [`Transmit::Cancel`] now waits.
    Abandoned {
        /// A cancel message was queued for the peer.
        cancel_queued: bool,
    },
    /// The ticket names no live request (it already finished).
    Finished,
}

/// Counters for a [`Mux`](crate::Mux): how it is loaded and what it has dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MuxStats {
    /// Live requests: admitted and not yet answered, failed or given up.
    pub in_flight: usize,
    /// Abandoned requests still waiting for their late answers (or quarantine age).
    pub abandoned: usize,
    /// Replies that arrived for abandoned requests and were dropped.
    pub late_replies: u64,
    /// Replies (id mode) for ids no request held; dropped.
    pub stray_replies: u64,
    /// Requests whose deadline passed.
    pub timed_out: u64,
    /// Requests whose caller gave up.
    pub cancelled: u64,
    /// Quarantined ids released by their age limit rather than by a late answer.
    pub quarantine_expired: u64,
    /// FIFO mode: abandoned requests whose reply did not come within the abandon timeout;
    /// each wedged its connection ([`Fired::Wedged`]).
    pub abandon_expired: u64,
}
