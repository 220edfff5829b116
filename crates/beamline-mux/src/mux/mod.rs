//! The sans-IO multiplexer: which request a reply belongs to, how many may be in flight,
//! and what happens to a request whose caller gave up.

mod config;
mod entry;
mod error;
mod fifo;
mod ids;
mod outcome;
mod timers;

pub use config::{
    ConfigError, DEFAULT_ABANDON_TIMEOUT, DEFAULT_MAX_ABANDONED, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_QUARANTINE, Mode, MuxConfig,
};
pub use error::AdmitError;
#[cfg(feature = "driver")]
pub(crate) use ids::IdHasher;
pub use outcome::{Cancelled, Expired, Fired, Lost, MuxStats, Recipient, Ticket, Transmit};

use std::mem;
use std::time::Instant;

use entry::{Ageing, Class, Effect, Entry, Event};
use fifo::FifoQueue;
use ids::{IdTable, Pending};
use timers::Timers;

enum Table<R, T> {
    Ids(IdTable<R, T>),
    Fifo(FifoQueue<R, T>),
}

/// The sans-IO multiplexer core: a table of in-flight requests over one connection.
///
/// It never touches a socket or a clock. A driver feeds it inputs (`admit`, `cancel`,
/// `handle_reply`, `handle_timeout`, `connection_lost`, each time-dependent one with a
/// `now`), and takes outputs from it (`poll_transmit` for what to write, `poll_timeout` for
/// when to call back). `R` is the request type, held until it is written; `T` is whatever the
/// driver uses to reach the caller (a oneshot sender, say).
///
/// # Guarantees
/// - **Every reply reaches the caller whose request it answers, or no one.** In id mode a
///   reply is looked up by id in O(1); ids are handed out in order, wrap at the protocol's
///   largest id and skip every id still in flight or quarantined. In FIFO mode replies
///   match requests by order, and a cancelled request keeps its place, so its reply is
///   read and discarded instead of shifting onto the next caller.
/// - **A caller that gives up frees its slot at once.** If the request was not handed out
///   yet, it is simply forgotten. If it was, its id is quarantined until the late answer
///   arrives (dropped, counted) or the age limit passes; a cancel message is queued where
///   the protocol has one.
/// - **In-flight requests are bounded:** at most `max_in_flight` live requests
///   ([`AdmitError::Full`] beyond), and at most `max_abandoned` abandoned ones
///   ([`AdmitError::Blocked`] beyond), so a silent peer cannot make the table grow.
/// - **Deadlines are exact:** [`handle_timeout`](Self::handle_timeout) fails each request
///   whose deadline is at or before `now`, saying whether it had been handed out.
/// - **FIFO mode never waits for ever behind a lost reply:** a request abandoned after it
///   was handed out whose reply has not come within the abandon timeout makes
///   [`handle_timeout`](Self::handle_timeout) report [`Fired::Wedged`]; the driver then
///   fails the connection instead of letting every later reply queue behind it.
/// - **A dead connection fails everything, honestly:** [`connection_lost`](Self::connection_lost)
///   says for each request whether any byte of it was written.
///
/// # Examples
///
/// ```
/// use beamline_mux::{Recipient, Mux, MuxConfig, Transmit};
///
/// let mut mux: Mux<&str, &str> = Mux::new(MuxConfig::ids())?;
/// let ticket = mux.admit("GET /", "caller A", None).map_err(|e| e.to_string())?;
/// let Some(Transmit::Request { ticket: t, request }) = mux.poll_transmit(0) else { panic!() };
/// assert_eq!((t, request), (ticket, "GET /"));
/// // ... the driver writes it with id `ticket.tag()`; later a reply with that id arrives:
/// assert_eq!(mux.handle_reply(ticket.tag()), Recipient::Caller("caller A"));
/// assert_eq!(mux.in_flight(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mux<R, T> {
    table: Table<R, T>,
    timers: Timers,
    config: MuxConfig,
    /// How long abandoned entries wait for their late answers: the quarantine (id mode) or
    /// the abandon timeout (FIFO mode).
    ageing: Ageing,
    send_cancel: bool,
    live: usize,
    abandoned: usize,
    next_seq: u64,
    stats: MuxStats,
}

impl<R, T> std::fmt::Debug for Mux<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<R, T> Mux<R, T> {
    /// A multiplexer with `config`'s mode and limits.
    ///
    /// # Errors
    /// When the configuration is inconsistent (see [`MuxConfig::validate`]).
    pub fn new(config: MuxConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let (table, ageing, send_cancel) = match config.mode {
            Mode::Ids { max_tag, cancel } => (
                Table::Ids(IdTable::new(max_tag)),
                Ageing::Release(config.quarantine),
                cancel,
            ),
            Mode::Fifo => (
                Table::Fifo(FifoQueue::new()),
                Ageing::Wedge(config.abandon_timeout),
                false,
            ),
        };
        Ok(Mux {
            table,
            timers: Timers::default(),
            config,
            ageing,
            send_cancel,
            live: 0,
            abandoned: 0,
            next_seq: 0,
            stats: MuxStats::default(),
        })
    }

    // ---- getters ----

    /// The configuration.
    pub fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// Live requests: admitted and neither answered, failed nor given up.
    pub fn in_flight(&self) -> usize {
        self.live
    }

    /// Abandoned requests whose late answers are still expected.
    pub fn abandoned(&self) -> usize {
        self.abandoned
    }

    /// The counters.
    pub fn stats(&self) -> MuxStats {
        MuxStats {
            in_flight: self.live,
            abandoned: self.abandoned,
            ..self.stats
        }
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) may have something to write.
    pub fn has_transmit(&self) -> bool {
        match &self.table {
            Table::Ids(t) => t.has_pending(),
            Table::Fifo(q) => q.has_unsent(),
        }
    }

    // ---- inputs ----

    /// Admits `request`, to be answered through `waiter`, failing at `deadline` if given.
    ///
    /// # Errors
    /// [`AdmitError::Full`] at `max_in_flight` live requests; [`AdmitError::Blocked`] when
    /// abandoned requests reach `max_abandoned` or no id is free. Both give the request and
    /// waiter back.
    pub fn admit(
        &mut self,
        request: R,
        waiter: T,
        deadline: Option<Instant>,
    ) -> Result<Ticket, AdmitError<R, T>> {
        if self.live >= self.config.max_in_flight {
            return Err(AdmitError::Full {
                request,
                waiter,
                max_in_flight: self.config.max_in_flight,
            });
        }
        if self.abandoned >= self.config.max_abandoned {
            return Err(AdmitError::Blocked {
                request,
                waiter,
                abandoned: self.abandoned,
            });
        }
        let ticket = match &mut self.table {
            Table::Ids(table) => {
                let Some(tag) = table.allocate() else {
                    return Err(AdmitError::Blocked {
                        request,
                        waiter,
                        abandoned: self.abandoned,
                    });
                };
                let seq = self.next_seq;
                self.next_seq += 1;
                table.insert(
                    tag,
                    seq,
                    Entry::Queued {
                        request,
                        waiter,
                        deadline,
                    },
                );
                Ticket {
                    seq,
                    tag: Some(tag),
                }
            }
            Table::Fifo(queue) => Ticket {
                seq: queue.push(Entry::Queued {
                    request,
                    waiter,
                    deadline,
                }),
                tag: None,
            },
        };
        self.live += 1;
        if let Some(at) = deadline {
            self.timers
                .schedule(at, ticket.seq, ticket.tag.unwrap_or_default());
        }
        Ok(ticket)
    }

    /// The caller of `ticket` gave up (its future was dropped) at `now`.
    ///
    /// Its slot is freed at once. A request not yet handed out is forgotten; one handed out
    /// is abandoned: its id quarantined (FIFO: its reply to be discarded) and, in id mode
    /// with `cancel`, a [`Transmit::Cancel`] queued.
    pub fn cancel(&mut self, ticket: Ticket, now: Instant) -> Cancelled {
        match self.apply(ticket, Event::Cancel { now }, false) {
            Some(Effect::Forgotten) => {
                self.stats.cancelled += 1;
                Cancelled::Forgotten
            }
            Some(Effect::Abandoned) => {
                self.stats.cancelled += 1;
                Cancelled::Abandoned {
                    cancel_queued: self.queue_cancel(ticket),
                }
            }
            _ => Cancelled::Finished,
        }
    }

    /// A reply arrived, carrying `tag` (id mode; ignored in FIFO mode, where a reply
    /// answers the oldest written request).
    pub fn handle_reply(&mut self, tag: Option<u32>) -> Recipient<T> {
        let ticket = match &mut self.table {
            Table::Ids(table) => {
                let seq = tag.and_then(|tag| table.seq_of(tag));
                match (tag, seq) {
                    (Some(tag), Some(seq)) => Ticket {
                        seq,
                        tag: Some(tag),
                    },
                    _ => {
                        self.stats.stray_replies += 1;
                        return Recipient::Stray;
                    }
                }
            }
            Table::Fifo(queue) => {
                let trimmed = queue.trim();
                self.abandoned -= trimmed;
                match queue.front_seq() {
                    Some(seq) => Ticket { seq, tag: None },
                    None => return Recipient::Unsolicited,
                }
            }
        };
        match self.apply(ticket, Event::Reply, false) {
            Some(Effect::Deliver(waiter)) => Recipient::Caller(waiter),
            Some(Effect::Late) => {
                self.stats.late_replies += 1;
                Recipient::Late
            }
            _ if ticket.tag.is_some() => {
                self.stats.stray_replies += 1;
                Recipient::Stray
            }
            _ => Recipient::Unsolicited,
        }
    }

    /// Fires every timer due at `now`: returns the next request whose deadline passed
    /// ([`Fired::Expired`]) or, in FIFO mode, the news that the connection is wedged
    /// ([`Fired::Wedged`]); `None` when nothing is left. Call it until it returns `None`.
    /// Quarantines that reach their age limit are released along the way.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Fired<T>> {
        loop {
            let table = &self.table;
            let (seq, tag) = self
                .timers
                .pop_due(now, |seq, tag, at| timer_is_live(table, seq, tag, at))?;
            let ticket = Ticket {
                seq,
                tag: matches!(self.table, Table::Ids(_)).then_some(tag),
            };
            match self.apply(ticket, Event::Expire { now }, true) {
                Some(Effect::TimedOut { waiter, sent }) => {
                    self.stats.timed_out += 1;
                    if sent {
                        self.queue_cancel(ticket);
                    }
                    return Some(Fired::Expired(Expired {
                        ticket,
                        waiter,
                        sent,
                    }));
                }
                Some(Effect::Released) => self.stats.quarantine_expired += 1,
                Some(Effect::Wedged) => {
                    self.stats.abandon_expired += 1;
                    return Some(Fired::Wedged {
                        abandon_timeout: self.config.abandon_timeout,
                    });
                }
                _ => {}
            }
        }
    }

    /// Encoding the request of `ticket` (just taken from [`poll_transmit`](Self::poll_transmit))
    /// failed and nothing of it was written: returns its waiter, to be told why. Its id is
    /// free again at once.
    pub fn transmit_failed(&mut self, ticket: Ticket) -> Option<T> {
        match self.apply(ticket, Event::TransmitFailed, false) {
            Some(Effect::Failed(waiter)) => Some(waiter),
            _ => None,
        }
    }

    /// The connection died after `written` bytes of the outgoing stream were handed to it
    /// (the offsets given to [`poll_transmit`](Self::poll_transmit) count the same stream).
    /// Every live request fails, each saying whether any byte of it was written;
    /// abandoned ones are dropped. The mux is empty afterwards.
    pub fn connection_lost(&mut self, written: u64) -> Vec<Lost<T>> {
        let ageing = self.ageing;
        let event = Event::Lost { written };
        let entries: Vec<Entry<R, T>> = match &mut self.table {
            Table::Ids(table) => table.drain().map(|(_, slot)| slot.entry).collect(),
            Table::Fifo(queue) => queue.drain().map(|(_, entry)| entry).collect(),
        };
        self.timers.clear();
        self.live = 0;
        self.abandoned = 0;
        entries
            .into_iter()
            .filter_map(|entry| match entry.step(event, ageing).1 {
                Effect::Lost { waiter, sent } => Some(Lost { waiter, sent }),
                _ => None,
            })
            .collect()
    }

    // ---- outputs ----

    /// The next thing to write, if any. `offset` is the position in the outgoing byte
    /// stream where its first byte will go (the total of bytes queued for writing before
    /// it); [`connection_lost`](Self::connection_lost) compares it with how much was written.
    pub fn poll_transmit(&mut self, offset: u64) -> Option<Transmit<R>> {
        loop {
            let ticket = match &mut self.table {
                Table::Ids(table) => match table.pop_pending()? {
                    Pending::Request { tag, seq } => Ticket {
                        seq,
                        tag: Some(tag),
                    },
                    Pending::Cancel { tag, seq } => {
                        // Only while the same request still sits in quarantine: never
                        // cancel a later request that reused the tag.
                        if table.is_abandoned(tag, seq) {
                            return Some(Transmit::Cancel { tag });
                        }
                        continue;
                    }
                },
                Table::Fifo(queue) => Ticket {
                    seq: queue.next_queued()?,
                    tag: None,
                },
            };
            // A stale item (its request was cancelled before it was written) moves nothing.
            if let Some(Effect::Send(request)) =
                self.apply(ticket, Event::Transmit { offset }, false)
            {
                return Some(Transmit::Request { ticket, request });
            }
        }
    }

    /// When the driver must call [`handle_timeout`](Self::handle_timeout) next: the
    /// earliest deadline or quarantine age limit.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let table = &self.table;
        self.timers
            .next(|seq, tag, at| timer_is_live(table, seq, tag, at))
    }

    // ---- internals ----

    /// Queues a cancel message for the abandoned request `ticket`, if the protocol has one.
    fn queue_cancel(&mut self, ticket: Ticket) -> bool {
        match (&mut self.table, ticket.tag) {
            (Table::Ids(table), Some(tag)) if self.send_cancel => {
                table.push_cancel(tag, ticket.seq);
                true
            }
            _ => false,
        }
    }

    /// Moves the entry `ticket` names by `event`, keeping the counters and timers in step.
    /// `None` when the ticket names no entry any more. `timer_consumed` says the entry's
    /// timer was just popped from the heap (so it is not stale).
    fn apply(
        &mut self,
        ticket: Ticket,
        event: Event,
        timer_consumed: bool,
    ) -> Option<Effect<R, T>> {
        let ageing = self.ageing;
        let slot = match (&mut self.table, ticket.tag) {
            (Table::Ids(table), Some(tag)) => table.get_mut(tag, ticket.seq)?,
            (Table::Fifo(queue), None) => queue.get_mut(ticket.seq)?,
            _ => return None,
        };
        let old = mem::replace(slot, Entry::Void);
        let (old_timer, old_class) = (old.timer(), old.class());
        let (next, effect) = old.step(event, ageing);
        let (new_timer, new_class) = match next {
            Some(entry) => {
                let kept = (entry.timer(), Some(entry.class()));
                *slot = entry;
                kept
            }
            None => {
                // Finished. The id table drops the slot; the FIFO queue pops it from the
                // front, or leaves a Void in its place (it keeps its position, expects no
                // reply) to be trimmed when the front reaches it.
                match &mut self.table {
                    Table::Ids(table) => {
                        if let Some(tag) = ticket.tag {
                            table.remove(tag);
                        }
                        (None, None)
                    }
                    Table::Fifo(queue) if queue.front_seq() == Some(ticket.seq) => {
                        queue.pop_front();
                        self.abandoned -= queue.trim();
                        (None, None)
                    }
                    Table::Fifo(_) => (None, Some(Class::Abandoned)),
                }
            }
        };
        match old_class {
            Class::Live => self.live -= 1,
            Class::Abandoned => self.abandoned -= 1,
        }
        match new_class {
            Some(Class::Live) => self.live += 1,
            Some(Class::Abandoned) => self.abandoned += 1,
            None => {}
        }
        if old_timer != new_timer {
            let tag = ticket.tag.unwrap_or_default();
            let table = &self.table;
            if old_timer.is_some() && !timer_consumed {
                self.timers
                    .forget(|seq, tag, at| timer_is_live(table, seq, tag, at));
            }
            if let Some(at) = new_timer {
                self.timers.schedule(at, ticket.seq, tag);
            }
        }
        Some(effect)
    }
}

fn timer_is_live<R, T>(table: &Table<R, T>, seq: u64, tag: u32, at: Instant) -> bool {
    match table {
        Table::Ids(t) => t.timer_is_live(seq, tag, at),
        Table::Fifo(q) => q.timer_is_live(seq, at),
    }
}

#[cfg(test)]
mod tests;
