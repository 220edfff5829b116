//! The one ordered admission gate: calls that find no room in the mux (the in-flight bound,
//! the abandoned bound, a full id space) wait here in the order of their first polls, and
//! whoever makes room admits them, oldest first, under the same lock as the mux.
//!
//! It holds requests, never futures: admitting a call is `Mux::admit` on its behalf, so no
//! caller's code runs under the lock and a caller need not be woken to take its turn.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::mux::{Mux, Ticket};

/// A call waiting for room: what `Mux::admit` needs, and its place in line.
struct Parked<R, T> {
    place: u64,
    request: R,
    waiter: T,
    deadline: Option<Instant>,
}

/// Where a call stood when its caller left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Left {
    /// Still waiting: it is gone, never admitted, never written.
    Waiting,
    /// Admitted on its caller's behalf: cancel this ticket in the mux.
    Admitted(Ticket),
    /// Not here (failed with the connection, or already forgotten).
    Gone,
}

pub(crate) struct Gate<R, T> {
    /// Oldest first; places only grow, so the queue is sorted by place.
    parked: VecDeque<Parked<R, T>>,
    /// Calls admitted from the queue whose callers know only their place, until they
    /// finish or leave.
    admitted: HashMap<u64, Ticket>,
    next_place: u64,
}

impl<R, T> Gate<R, T> {
    pub(crate) fn new() -> Self {
        Gate {
            parked: VecDeque::new(),
            admitted: HashMap::new(),
            next_place: 0,
        }
    }

    /// Whether no call waits (then a new call may go straight to the mux).
    pub(crate) fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    /// How many calls wait.
    pub(crate) fn len(&self) -> usize {
        self.parked.len()
    }

    /// Puts a call at the end of the line and returns its place.
    pub(crate) fn park(&mut self, request: R, waiter: T, deadline: Option<Instant>) -> u64 {
        let place = self.next_place;
        self.next_place += 1;
        self.parked.push_back(Parked {
            place,
            request,
            waiter,
            deadline,
        });
        place
    }

    /// Starts waiting calls in the mux, oldest first, for as long as it takes them.
    /// Returns whether any was admitted (then the driver has something to write).
    ///
    /// A call whose deadline is at or before `now` is not admitted: it would only be
    /// written late. It keeps its place until its caller, whose timer is due, leaves with
    /// "timed out, never written".
    pub(crate) fn admit(&mut self, mux: &mut Mux<R, T>, now: Instant) -> bool {
        let mut any = false;
        let mut late = Vec::new();
        while let Some(call) = self.parked.pop_front() {
            if call.deadline.is_some_and(|at| at <= now) {
                late.push(call);
                continue;
            }
            match mux.admit(call.request, call.waiter, call.deadline) {
                Ok(ticket) => {
                    self.admitted.insert(call.place, ticket);
                    any = true;
                }
                Err(refused) => {
                    // No room: it keeps its place at the front.
                    let (request, waiter) = refused.into_parts();
                    self.parked.push_front(Parked {
                        request,
                        waiter,
                        ..call
                    });
                    break;
                }
            }
        }
        // They were ahead of everything still parked: back at the front, in order.
        for call in late.into_iter().rev() {
            self.parked.push_front(call);
        }
        any
    }

    /// The caller of `place` leaves (it finished, timed out while waiting, or was dropped).
    pub(crate) fn leave(&mut self, place: u64) -> Left {
        if let Ok(i) = self.parked.binary_search_by_key(&place, |p| p.place) {
            self.parked.remove(i);
            return Left::Waiting;
        }
        match self.admitted.remove(&place) {
            Some(ticket) => Left::Admitted(ticket),
            None => Left::Gone,
        }
    }

    /// The connection ended: every waiting call's waiter, to be told, oldest first.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.admitted.clear();
        self.parked.drain(..).map(|p| p.waiter).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::{MuxConfig, Transmit};

    fn written(mux: &mut Mux<&'static str, u8>) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(t) = mux.poll_transmit(0) {
            if let Transmit::Request { request, .. } = t {
                out.push(request);
            }
        }
        out
    }

    #[test]
    fn waiting_calls_are_admitted_in_order_while_room_lasts() {
        let mut mux = Mux::new(MuxConfig::fifo().max_in_flight(2)).unwrap();
        let mut gate = Gate::new();
        let a = gate.park("a", 1, None);
        let b = gate.park("b", 2, None);
        let c = gate.park("c", 3, None);
        assert!(gate.admit(&mut mux, Instant::now()));
        assert_eq!(written(&mut mux), ["a", "b"]);
        assert_eq!(gate.len(), 1);
        // No room: the front keeps its place.
        assert!(!gate.admit(&mut mux, Instant::now()));
        assert!(matches!(gate.leave(a), Left::Admitted(_)));
        assert_eq!(gate.leave(a), Left::Gone);
        assert_eq!(gate.leave(c), Left::Waiting);
        assert!(gate.is_empty());
        assert!(matches!(gate.leave(b), Left::Admitted(_)));
    }

    #[test]
    fn a_caller_that_leaves_the_line_is_never_admitted() {
        let mut mux = Mux::new(MuxConfig::fifo().max_in_flight(1)).unwrap();
        mux.admit("holder", 0, None).unwrap();
        let mut gate = Gate::new();
        gate.park("a", 1, None);
        let b = gate.park("b", 2, None);
        gate.park("c", 3, None);
        assert_eq!(gate.leave(b), Left::Waiting);
        assert_eq!(written(&mut mux), ["holder"]);
        assert_eq!(mux.handle_reply(None), crate::Recipient::Caller(0));
        assert!(gate.admit(&mut mux, Instant::now()));
        assert_eq!(written(&mut mux), ["a"]);
        assert_eq!(mux.handle_reply(None), crate::Recipient::Caller(1));
        assert!(gate.admit(&mut mux, Instant::now()));
        assert_eq!(written(&mut mux), ["c"]);
        assert_eq!(gate.drain(), Vec::<u8>::new());
    }

    #[test]
    fn a_call_past_its_deadline_is_not_admitted_and_keeps_its_place() {
        let mut mux = Mux::new(MuxConfig::fifo().max_in_flight(4)).unwrap();
        let mut gate = Gate::new();
        let now = Instant::now();
        let late = gate.park("late", 1, Some(now));
        let on_time = gate.park("on time", 2, Some(now + std::time::Duration::from_secs(1)));
        assert!(gate.admit(&mut mux, now));
        assert_eq!(written(&mut mux), ["on time"]);
        assert!(matches!(gate.leave(on_time), Left::Admitted(_)));
        assert_eq!(gate.leave(late), Left::Waiting);
    }

    #[test]
    fn draining_hands_back_every_waiter_oldest_first() {
        let mut gate: Gate<&str, u8> = Gate::new();
        gate.park("a", 1, None);
        gate.park("b", 2, None);
        assert_eq!(gate.drain(), [1, 2]);
        assert!(gate.is_empty());
    }
}
