//! The life of one request, as an explicit state machine shared by both modes.

use std::time::{Duration, Instant};

/// Where one request stands. Both the id table and the FIFO queue hold these.
pub(super) enum Entry<R, T> {
    /// Admitted, waiting for the driver to write it.
    Queued {
        request: R,
        waiter: T,
        deadline: Option<Instant>,
    },
    /// Handed to the driver for writing at byte `offset` of the outgoing stream.
    Sent {
        waiter: T,
        deadline: Option<Instant>,
        offset: u64,
    },
    /// The caller gave up after the request was handed out: its answer may still come and
    /// must be recognised and dropped. `until` is its age limit: the end of the id's
    /// quarantine (id mode), or the abandon timeout past which the connection counts as
    /// wedged (FIFO mode; `None` once that fired).
    Abandoned { until: Option<Instant> },
    /// FIFO mode only: a request that will never be answered (cancelled or failed before
    /// a byte of it was written). It keeps its position until the queue's front reaches it.
    Void,
}

/// An input that moves an entry.
#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    /// The driver takes the request for writing at `offset`.
    Transmit { offset: u64 },
    /// A reply for this entry arrived.
    Reply,
    /// The caller dropped its future.
    Cancel { now: Instant },
    /// The entry's timer fired (deadline, quarantine age, or abandon timeout).
    Expire { now: Instant },
    /// Encoding the request failed: nothing of it was written.
    TransmitFailed,
    /// The connection died with `written` bytes of the outgoing stream handed to it.
    Lost { written: u64 },
}

/// What a transition asks the caller of the state machine to do.
pub(super) enum Effect<R, T> {
    Nothing,
    /// Write this request.
    Send(R),
    /// Hand the reply to this waiter.
    Deliver(T),
    /// A reply for an abandoned request: drop it, count it.
    Late,
    /// A reply for an entry that was never sent.
    Unexpected,
    /// The caller gave up before anything was written: nothing to tell the peer.
    Forgotten,
    /// The caller gave up after the request was handed out: tell the peer if the protocol can.
    Abandoned,
    /// The deadline passed.
    TimedOut {
        waiter: T,
        sent: bool,
    },
    /// A quarantined id reached its age limit.
    Released,
    /// FIFO: an abandoned request's reply did not come within the abandon timeout.
    Wedged,
    /// Encoding failed; nothing was written.
    Failed(T),
    /// The connection died.
    Lost {
        waiter: T,
        sent: bool,
    },
}

/// What ends the wait of an abandoned request for its late answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ageing {
    /// Id mode: after this long the id leaves quarantine and the entry is gone.
    Release(Duration),
    /// FIFO mode: after this long the connection is wedged (every later reply waits behind
    /// the missing one); the entry keeps its place, since its reply may still come.
    Wedge(Duration),
}

impl Ageing {
    fn age(self) -> Duration {
        match self {
            Ageing::Release(age) | Ageing::Wedge(age) => age,
        }
    }
}

/// How an entry counts against the mux's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Live,
    Abandoned,
}

impl<R, T> Entry<R, T> {
    /// The one place where an entry changes state. `None` means the entry is finished (the
    /// id table removes it; the FIFO queue turns it into `Void` or pops it).
    ///
    /// `ageing` says how long an abandoned entry waits for its answer, and what then.
    pub(super) fn step(self, event: Event, ageing: Ageing) -> (Option<Self>, Effect<R, T>) {
        use Entry::{Abandoned, Queued, Sent, Void};
        let abandoned = |now: Instant| Abandoned {
            until: now.checked_add(ageing.age()),
        };
        match (self, event) {
            (
                Queued {
                    request,
                    waiter,
                    deadline,
                },
                Event::Transmit { offset },
            ) => (
                Some(Sent {
                    waiter,
                    deadline,
                    offset,
                }),
                Effect::Send(request),
            ),
            (Queued { .. }, Event::Cancel { .. }) => (None, Effect::Forgotten),
            (Queued { waiter, .. }, Event::Expire { .. }) => (
                None,
                Effect::TimedOut {
                    waiter,
                    sent: false,
                },
            ),
            (Queued { waiter, .. }, Event::Lost { .. }) => (
                None,
                Effect::Lost {
                    waiter,
                    sent: false,
                },
            ),
            (Sent { waiter, .. }, Event::Reply) => (None, Effect::Deliver(waiter)),
            (Sent { .. }, Event::Cancel { now }) => (Some(abandoned(now)), Effect::Abandoned),
            (Sent { waiter, .. }, Event::Expire { now }) => (
                Some(abandoned(now)),
                Effect::TimedOut { waiter, sent: true },
            ),
            (Sent { waiter, .. }, Event::TransmitFailed) => (None, Effect::Failed(waiter)),
            (Sent { waiter, offset, .. }, Event::Lost { written }) => (
                None,
                Effect::Lost {
                    waiter,
                    sent: offset < written,
                },
            ),
            (Abandoned { .. }, Event::Reply) => (None, Effect::Late),
            (Abandoned { .. }, Event::Expire { .. }) => match ageing {
                Ageing::Release(_) => (None, Effect::Released),
                // Its place stays: the reply may still come, and must not shift onto the
                // next caller. The driver fails the connection.
                Ageing::Wedge(_) => (Some(Abandoned { until: None }), Effect::Wedged),
            },
            // Nothing of it was written, so no answer will come: the quarantine can end.
            (Abandoned { .. } | Void, Event::TransmitFailed | Event::Lost { .. }) => {
                (None, Effect::Nothing)
            }
            (state @ (Queued { .. } | Void), Event::Reply) => (Some(state), Effect::Unexpected),
            // Everything else is a no-op: a second cancel, a transmit of an entry already
            // sent, a timer on an entry without one.
            (state, _) => (Some(state), Effect::Nothing),
        }
    }

    /// When this entry's timer fires, if it has one.
    pub(super) fn timer(&self) -> Option<Instant> {
        match self {
            Entry::Queued { deadline, .. } | Entry::Sent { deadline, .. } => *deadline,
            Entry::Abandoned { until } => *until,
            Entry::Void => None,
        }
    }

    pub(super) fn class(&self) -> Class {
        match self {
            Entry::Queued { .. } | Entry::Sent { .. } => Class::Live,
            Entry::Abandoned { .. } | Entry::Void => Class::Abandoned,
        }
    }

    pub(super) fn is_queued(&self) -> bool {
        matches!(self, Entry::Queued { .. })
    }

    pub(super) fn is_abandoned(&self) -> bool {
        matches!(self, Entry::Abandoned { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type E = Entry<&'static str, u8>;

    const AGE: Ageing = Ageing::Release(Duration::from_secs(60));

    fn queued(deadline: Option<Instant>) -> E {
        Entry::Queued {
            request: "req",
            waiter: 1,
            deadline,
        }
    }

    #[test]
    fn a_request_goes_queued_sent_delivered() {
        let (next, effect) = queued(None).step(Event::Transmit { offset: 5 }, AGE);
        assert!(matches!(effect, Effect::Send("req")));
        let next = next.unwrap();
        assert!(matches!(next, Entry::Sent { offset: 5, .. }));
        let (next, effect) = next.step(Event::Reply, AGE);
        assert!(next.is_none());
        assert!(matches!(effect, Effect::Deliver(1)));
    }

    #[test]
    fn cancelling_before_transmit_forgets_and_after_quarantines() {
        let now = Instant::now();
        let (next, effect) = queued(None).step(Event::Cancel { now }, AGE);
        assert!(next.is_none());
        assert!(matches!(effect, Effect::Forgotten));

        let sent = queued(None)
            .step(Event::Transmit { offset: 0 }, AGE)
            .0
            .unwrap();
        let age = Duration::from_secs(3);
        let (next, effect) = sent.step(Event::Cancel { now }, Ageing::Release(age));
        assert!(matches!(effect, Effect::Abandoned));
        let next = next.unwrap();
        assert_eq!(next.timer(), Some(now + age));
        assert_eq!(next.class(), Class::Abandoned);
        let (gone, effect) = next.step(Event::Reply, Ageing::Release(age));
        assert!(gone.is_none());
        assert!(matches!(effect, Effect::Late));
    }

    #[test]
    fn expiry_reports_whether_the_request_was_handed_out() {
        let now = Instant::now();
        let (_, effect) = queued(Some(now)).step(Event::Expire { now }, AGE);
        assert!(matches!(effect, Effect::TimedOut { sent: false, .. }));
        let sent = queued(Some(now))
            .step(Event::Transmit { offset: 0 }, AGE)
            .0
            .unwrap();
        let (next, effect) = sent.step(Event::Expire { now }, AGE);
        assert!(matches!(effect, Effect::TimedOut { sent: true, .. }));
        assert_eq!(next.unwrap().timer(), Some(now + Duration::from_secs(60)));
    }

    #[test]
    fn a_fifo_abandoned_entry_past_its_age_wedges_and_keeps_its_place() {
        let now = Instant::now();
        let fifo = Ageing::Wedge(Duration::from_secs(2));
        let sent = queued(None)
            .step(Event::Transmit { offset: 0 }, fifo)
            .0
            .unwrap();
        let (abandoned, _) = sent.step(Event::Cancel { now }, fifo);
        let abandoned = abandoned.unwrap();
        assert_eq!(abandoned.timer(), Some(now + Duration::from_secs(2)));
        let (kept, effect) = abandoned.step(Event::Expire { now }, fifo);
        assert!(matches!(effect, Effect::Wedged));
        let kept = kept.unwrap();
        assert!(kept.is_abandoned());
        assert_eq!(kept.timer(), None, "it wedges once");
        // Its reply, if it ever comes, is still recognised and dropped.
        let (gone, effect) = kept.step(Event::Reply, fifo);
        assert!(gone.is_none());
        assert!(matches!(effect, Effect::Late));
    }

    #[test]
    fn loss_counts_a_request_as_sent_once_any_byte_was_written() {
        let sent = |offset| {
            queued(None)
                .step(Event::Transmit { offset }, AGE)
                .0
                .unwrap()
        };
        let (_, effect) = sent(10).step(Event::Lost { written: 10 }, AGE);
        assert!(matches!(effect, Effect::Lost { sent: false, .. }));
        let (_, effect) = sent(10).step(Event::Lost { written: 11 }, AGE);
        assert!(matches!(effect, Effect::Lost { sent: true, .. }));
        let (_, effect) = queued(None).step(Event::Lost { written: 99 }, AGE);
        assert!(matches!(effect, Effect::Lost { sent: false, .. }));
    }

    #[test]
    fn a_reply_to_an_unsent_entry_is_unexpected_and_changes_nothing() {
        let (next, effect) = queued(None).step(Event::Reply, AGE);
        assert!(matches!(effect, Effect::Unexpected));
        assert!(next.unwrap().is_queued());
        let (next, effect) = E::Void.step(Event::Reply, AGE);
        assert!(matches!(effect, Effect::Unexpected));
        assert!(matches!(next, Some(Entry::Void)));
    }
}
