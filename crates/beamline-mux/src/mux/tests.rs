use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

fn ids(max_tag: u32) -> MuxConfig {
    MuxConfig::with_mode(Mode::Ids {
        max_tag,
        cancel: true,
    })
}

/// Takes every request the mux wants written, as `(tag, request)`.
fn drain_requests<R, T>(mux: &mut Mux<R, T>, offset: &mut u64) -> Vec<(Option<u32>, R)> {
    let mut out = Vec::new();
    while let Some(t) = mux.poll_transmit(*offset) {
        *offset += 10;
        if let Transmit::Request { ticket, request } = t {
            out.push((ticket.tag(), request));
        }
    }
    out
}

/// The next request whose deadline passed at `now`, failing the test on anything else.
fn expire<R, T: std::fmt::Debug>(mux: &mut Mux<R, T>, now: Instant) -> Option<Expired<T>> {
    match mux.handle_timeout(now)? {
        Fired::Expired(expired) => Some(expired),
        other => panic!("expected a deadline, got {other:?}"),
    }
}

fn admit<R, T>(mux: &mut Mux<R, T>, request: R, waiter: T) -> Ticket {
    mux.admit(request, waiter, None)
        .unwrap_or_else(|e| panic!("admission refused: {e}"))
}

#[test]
fn replies_reach_their_callers_in_any_order() {
    let mut mux = Mux::new(MuxConfig::ids()).unwrap();
    let a = admit(&mut mux, "a", 1);
    let b = admit(&mut mux, "b", 2);
    let c = admit(&mut mux, "c", 3);
    let mut offset = 0;
    assert_eq!(drain_requests(&mut mux, &mut offset).len(), 3);
    assert_eq!(mux.handle_reply(b.tag()), Recipient::Caller(2));
    assert_eq!(mux.handle_reply(c.tag()), Recipient::Caller(3));
    assert_eq!(mux.handle_reply(a.tag()), Recipient::Caller(1));
    assert_eq!(mux.in_flight(), 0);
    assert_eq!(mux.handle_reply(a.tag()), Recipient::Stray);
    assert_eq!(mux.stats().stray_replies, 1);
}

#[test]
fn the_in_flight_bound_refuses_the_next_request_and_gives_it_back() {
    let mut mux = Mux::new(MuxConfig::ids().max_in_flight(2)).unwrap();
    admit(&mut mux, "a", 1);
    let b = admit(&mut mux, "b", 2);
    match mux.admit("c", 3, None) {
        Err(
            e @ AdmitError::Full {
                max_in_flight: 2, ..
            },
        ) => {
            assert_eq!(e.into_parts(), ("c", 3));
        }
        other => panic!("expected Full, got {other:?}"),
    }
    // Cancelling frees the slot at once, even though the request was written.
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    mux.cancel(b, Instant::now());
    assert_eq!(mux.in_flight(), 1);
    admit(&mut mux, "c", 3);
}

#[test]
fn a_late_reply_to_a_cancelled_request_is_dropped_and_counted() {
    let mut mux = Mux::new(MuxConfig::ids()).unwrap();
    let a = admit(&mut mux, "a", 1);
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    let now = Instant::now();
    assert_eq!(
        mux.cancel(a, now),
        Cancelled::Abandoned {
            cancel_queued: true
        }
    );
    assert!(matches!(
        mux.poll_transmit(offset),
        Some(Transmit::Cancel { tag }) if Some(tag) == a.tag()
    ));
    assert_eq!(mux.abandoned(), 1);
    assert_eq!(mux.handle_reply(a.tag()), Recipient::Late);
    assert_eq!(mux.abandoned(), 0);
    let stats = mux.stats();
    assert_eq!((stats.late_replies, stats.cancelled), (1, 1));
}

#[test]
fn a_request_cancelled_before_it_was_written_is_never_written() {
    let mut mux = Mux::new(MuxConfig::ids()).unwrap();
    let a = admit(&mut mux, "a", 1);
    admit(&mut mux, "b", 2);
    assert_eq!(mux.cancel(a, Instant::now()), Cancelled::Forgotten);
    assert_eq!(mux.abandoned(), 0, "nothing to wait for");
    let mut offset = 0;
    let written: Vec<_> = drain_requests(&mut mux, &mut offset)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(written, ["b"]);
}

/// The Xandra trap: an id whose caller timed out must not go to another request while its
/// late answer can still arrive, even when the id space is tiny.
#[test]
fn quarantined_ids_are_skipped_on_wraparound_until_their_late_answer() {
    let mut mux = Mux::new(ids(3).max_in_flight(2)).unwrap();
    let t0 = Instant::now();
    let mut offset = 0;
    let first = mux
        .admit("slow", 0, Some(t0 + Duration::from_secs(1)))
        .unwrap();
    assert_eq!(first.tag(), Some(0));
    drain_requests(&mut mux, &mut offset);
    let expired = expire(&mut mux, t0 + Duration::from_secs(1)).unwrap();
    assert!(expired.sent);
    assert_eq!(mux.stats().timed_out, 1);
    // Go round the id space twice: tag 0 is never handed out again.
    let mut tags = Vec::new();
    for i in 0..6 {
        let t = admit(&mut mux, "fast", i);
        tags.push(t.tag().unwrap());
        drain_requests(&mut mux, &mut offset);
        assert_eq!(mux.handle_reply(t.tag()), Recipient::Caller(i));
    }
    assert_eq!(tags, [1, 2, 3, 1, 2, 3]);
    // The late answer finally arrives: dropped, and tag 0 is free again.
    assert_eq!(mux.handle_reply(Some(0)), Recipient::Late);
    let tags: Vec<u32> = (0..4)
        .map(|i| {
            let t = admit(&mut mux, "x", i);
            mux.cancel(t, t0);
            t.tag().unwrap()
        })
        .collect();
    assert_eq!(tags, [0, 1, 2, 3]);
}

#[test]
fn a_quarantine_ends_at_its_age_limit() {
    let age = Duration::from_secs(30);
    // The abandon timeout is FIFO's: in id mode an unanswered id only ages out, it never
    // wedges the connection (`expire` fails on anything but a deadline).
    let config = MuxConfig::ids().quarantine(age).abandon_timeout(age / 3);
    let mut mux = Mux::new(config).unwrap();
    let t0 = Instant::now();
    let a = admit(&mut mux, "a", 1);
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    mux.cancel(a, t0);
    assert_eq!(mux.poll_timeout(), Some(t0 + age));
    assert!(expire(&mut mux, t0 + age - Duration::from_millis(1)).is_none());
    assert_eq!(mux.abandoned(), 1);
    assert!(expire(&mut mux, t0 + age).is_none(), "no caller to tell");
    assert_eq!(mux.abandoned(), 0);
    assert_eq!(mux.stats().quarantine_expired, 1);
    assert_eq!(mux.stats().abandon_expired, 0);
    assert_eq!(mux.poll_timeout(), None);
    // The very late answer now finds no one.
    assert_eq!(mux.handle_reply(a.tag()), Recipient::Stray);
}

#[test]
fn a_queued_cancel_is_not_sent_once_its_tag_went_to_another_request() {
    let mut mux = Mux::new(ids(0).max_in_flight(1)).unwrap();
    let now = Instant::now();
    let a = admit(&mut mux, "a", 1);
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    mux.cancel(a, now);
    // The late answer comes before the cancel is written; tag 0 is reused at once.
    assert_eq!(mux.handle_reply(Some(0)), Recipient::Late);
    let b = admit(&mut mux, "b", 2);
    assert_eq!(b.tag(), Some(0));
    let mut out = Vec::new();
    while let Some(t) = mux.poll_transmit(offset) {
        out.push(t);
    }
    assert_eq!(out.len(), 1);
    assert!(matches!(out[0], Transmit::Request { request: "b", .. }));
}

#[test]
fn too_many_abandoned_requests_block_new_ones_until_answers_arrive() {
    let mut mux = Mux::new(MuxConfig::ids().max_abandoned(2)).unwrap();
    let now = Instant::now();
    let mut offset = 0;
    let mut tickets = Vec::new();
    for i in 0..2 {
        tickets.push(admit(&mut mux, "a", i));
    }
    drain_requests(&mut mux, &mut offset);
    for t in &tickets {
        mux.cancel(*t, now);
    }
    match mux.admit("b", 9, None) {
        Err(AdmitError::Blocked { abandoned: 2, .. }) => {}
        other => panic!("expected Blocked, got {other:?}"),
    }
    assert_eq!(mux.handle_reply(tickets[0].tag()), Recipient::Late);
    admit(&mut mux, "b", 9);
}

#[test]
fn a_full_id_space_blocks_new_requests() {
    let mut mux = Mux::new(ids(1).max_in_flight(2)).unwrap();
    let now = Instant::now();
    let mut offset = 0;
    let a = admit(&mut mux, "a", 1);
    drain_requests(&mut mux, &mut offset);
    mux.cancel(a, now);
    admit(&mut mux, "b", 2);
    // One id live, one quarantined: none free, though in_flight is below its bound.
    assert!(matches!(
        mux.admit("c", 3, None),
        Err(AdmitError::Blocked { .. })
    ));
}

#[test]
fn deadlines_fire_in_order_and_say_whether_the_request_went_out() {
    let mut mux = Mux::new(MuxConfig::ids()).unwrap();
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    mux.admit("a", 1, Some(t0 + 2 * s)).unwrap();
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    mux.admit("b", 2, Some(t0 + s)).unwrap();
    mux.admit("c", 3, None).unwrap();
    assert_eq!(mux.poll_timeout(), Some(t0 + s));
    let first = expire(&mut mux, t0 + 3 * s).unwrap();
    assert_eq!((first.waiter, first.sent), (2, false));
    let second = expire(&mut mux, t0 + 3 * s).unwrap();
    assert_eq!((second.waiter, second.sent), (1, true));
    assert!(expire(&mut mux, t0 + 3 * s).is_none());
    // "b" timed out unsent: it is never written. "a" was: a cancel follows.
    let mut out = Vec::new();
    while let Some(t) = mux.poll_transmit(offset) {
        out.push(t);
    }
    assert!(matches!(out[0], Transmit::Cancel { .. }));
    assert!(matches!(out[1], Transmit::Request { request: "c", .. }));
    assert_eq!(out.len(), 2);
    assert_eq!(mux.in_flight(), 1);
}

#[test]
fn a_finished_request_leaves_no_timer_behind() {
    let mut mux = Mux::new(MuxConfig::ids()).unwrap();
    let t0 = Instant::now();
    let a = mux
        .admit("a", 1, Some(t0 + Duration::from_secs(1)))
        .unwrap();
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    assert_eq!(mux.handle_reply(a.tag()), Recipient::Caller(1));
    assert_eq!(mux.poll_timeout(), None);
    assert!(expire(&mut mux, t0 + Duration::from_secs(5)).is_none());
}

#[test]
fn connection_loss_says_which_requests_were_written() {
    let mut mux = Mux::new(MuxConfig::ids()).unwrap();
    admit(&mut mux, "a", 1);
    admit(&mut mux, "b", 2);
    assert!(mux.poll_transmit(0).is_some());
    assert!(mux.poll_transmit(100).is_some());
    admit(&mut mux, "c", 3);
    // 100 bytes went out: all of "a", nothing of "b"; "c" was never taken.
    let mut lost: Vec<(u8, bool)> = mux
        .connection_lost(100)
        .into_iter()
        .map(|l| (l.waiter, l.sent))
        .collect();
    lost.sort();
    assert_eq!(lost, [(1, true), (2, false), (3, false)]);
    assert_eq!((mux.in_flight(), mux.abandoned()), (0, 0));
}

#[test]
fn a_failed_encode_frees_the_request_at_once() {
    let mut mux = Mux::new(MuxConfig::fifo()).unwrap();
    admit(&mut mux, "big", 1);
    admit(&mut mux, "ok", 2);
    let Some(Transmit::Request { ticket, .. }) = mux.poll_transmit(0) else {
        panic!("nothing to transmit");
    };
    assert_eq!(mux.transmit_failed(ticket), Some(1));
    assert!(mux.poll_transmit(0).is_some());
    // The failed request expects no reply: the first reply is "ok"'s.
    assert_eq!(mux.handle_reply(None), Recipient::Caller(2));
    assert_eq!((mux.in_flight(), mux.abandoned()), (0, 0));
}

#[test]
fn fifo_discards_the_reply_of_a_cancelled_request_so_later_ones_do_not_shift() {
    let mut mux = Mux::new(MuxConfig::fifo()).unwrap();
    let a = admit(&mut mux, "a", 1);
    admit(&mut mux, "b", 2);
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    mux.cancel(a, Instant::now());
    assert_eq!(mux.in_flight(), 1);
    assert_eq!(mux.handle_reply(None), Recipient::Late);
    assert_eq!(mux.handle_reply(None), Recipient::Caller(2));
    assert_eq!(mux.handle_reply(None), Recipient::Unsolicited);
}

#[test]
fn fifo_forgets_a_request_cancelled_before_it_was_written() {
    let mut mux = Mux::new(MuxConfig::fifo()).unwrap();
    let mut offset = 0;
    admit(&mut mux, "a", 1);
    drain_requests(&mut mux, &mut offset);
    let b = admit(&mut mux, "b", 2);
    admit(&mut mux, "c", 3);
    assert_eq!(mux.cancel(b, Instant::now()), Cancelled::Forgotten);
    let written: Vec<_> = drain_requests(&mut mux, &mut offset)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(written, ["c"]);
    assert_eq!(mux.handle_reply(None), Recipient::Caller(1));
    assert_eq!(mux.handle_reply(None), Recipient::Caller(3));
    assert_eq!((mux.in_flight(), mux.abandoned()), (0, 0));
}

#[test]
fn fifo_timeouts_keep_the_position_until_the_late_reply() {
    let age = Duration::from_secs(10);
    let mut mux = Mux::new(MuxConfig::fifo().abandon_timeout(age)).unwrap();
    let t0 = Instant::now();
    mux.admit("a", 1, Some(t0)).unwrap();
    admit(&mut mux, "b", 2);
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    let e = expire(&mut mux, t0).unwrap();
    assert_eq!((e.waiter, e.sent), (1, true));
    assert_eq!(
        mux.poll_timeout(),
        Some(t0 + age),
        "the abandon timeout runs"
    );
    assert_eq!(mux.handle_reply(None), Recipient::Late);
    assert_eq!(mux.handle_reply(None), Recipient::Caller(2));
    // The late reply came in time: nothing is left to fire.
    assert_eq!(mux.poll_timeout(), None);
    assert!(mux.handle_timeout(t0 + 2 * age).is_none());
    assert_eq!(mux.stats().abandon_expired, 0);
}

/// The FIFO wedge: a reply that never comes (a `BLPOP k 0` whose caller timed out) would
/// hold every later reply behind it for ever. Past the abandon timeout the mux says so.
#[test]
fn fifo_an_abandoned_reply_that_never_comes_wedges_the_connection() {
    let age = Duration::from_secs(4);
    let mut mux = Mux::new(MuxConfig::fifo().abandon_timeout(age)).unwrap();
    let t0 = Instant::now();
    let blpop = admit(&mut mux, "BLPOP k 0", 1);
    admit(&mut mux, "GET a", 2);
    let mut offset = 0;
    drain_requests(&mut mux, &mut offset);
    admit(&mut mux, "GET b", 3);
    // The caller of BLPOP gives up (dropped, no deadline of its own) one second in.
    let abandoned_at = t0 + Duration::from_secs(1);
    assert_eq!(
        mux.cancel(blpop, abandoned_at),
        Cancelled::Abandoned {
            cancel_queued: false
        }
    );
    assert_eq!(mux.poll_timeout(), Some(abandoned_at + age));
    assert!(
        mux.handle_timeout(abandoned_at + age - Duration::from_millis(1))
            .is_none()
    );
    match mux.handle_timeout(abandoned_at + age) {
        Some(Fired::Wedged { abandon_timeout }) => assert_eq!(abandon_timeout, age),
        other => panic!("expected the wedge, got {other:?}"),
    }
    assert_eq!(mux.stats().abandon_expired, 1);
    // It fires once; the driver now fails the connection: "GET a" was written, "GET b" not.
    assert!(mux.handle_timeout(abandoned_at + 2 * age).is_none());
    let lost: Vec<(u8, bool)> = mux
        .connection_lost(offset)
        .into_iter()
        .map(|l| (l.waiter, l.sent))
        .collect();
    assert_eq!(lost, [(2, true), (3, false)]);
    assert_eq!((mux.in_flight(), mux.abandoned()), (0, 0));
}

#[test]
fn a_reply_before_any_request_was_written_is_unsolicited_in_fifo_mode() {
    let mut mux: Mux<&str, u8> = Mux::new(MuxConfig::fifo()).unwrap();
    assert_eq!(mux.handle_reply(None), Recipient::Unsolicited);
    admit(&mut mux, "a", 1);
    assert_eq!(mux.handle_reply(None), Recipient::Unsolicited);
    assert_eq!(mux.in_flight(), 1, "the unsent request is untouched");
}

#[test]
fn configurations_that_cannot_work_are_refused() {
    assert_eq!(
        Mux::<(), ()>::new(MuxConfig::ids().max_in_flight(0)).err(),
        Some(ConfigError::ZeroInFlight)
    );
    assert_eq!(
        Mux::<(), ()>::new(MuxConfig::fifo().abandon_timeout(Duration::ZERO)).err(),
        Some(ConfigError::ZeroAbandonTimeout)
    );
    assert_eq!(
        Mux::<(), ()>::new(ids(15).max_in_flight(17)).err(),
        Some(ConfigError::IdSpaceTooSmall {
            max_in_flight: 17,
            ids: 16
        })
    );
    assert!(Mux::<(), ()>::new(ids(15).max_in_flight(16)).is_ok());
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Op {
    /// A caller starts a request.
    Start,
    /// The driver writes what is queued.
    Write,
    /// The peer answers the `n`-th outstanding written request (any order in id mode).
    Reply(usize),
    /// The `n`-th live caller gives up.
    Cancel(usize),
    /// Time passes.
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Start),
        2 => Just(Op::Write),
        3 => any::<usize>().prop_map(Op::Reply),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Tick),
    ]
}

/// Drives a mux against a model peer and checks that every delivery goes to the caller whose
/// request the peer answered, that no slot leaks, and that bounds hold.
fn run_model(fifo: bool, max_tag: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = if fifo {
        MuxConfig::fifo()
    } else {
        ids(max_tag)
    };
    let max_in_flight = 4;
    let mut mux: Mux<u64, u64> = Mux::new(
        config
            .max_in_flight(max_in_flight)
            .max_abandoned(6)
            .quarantine(Duration::from_secs(3600))
            .abandon_timeout(Duration::from_secs(5)),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let t0 = Instant::now();
    let mut now = t0;
    let mut next_request = 0u64;
    // Live callers: request number -> ticket.
    let mut callers: Vec<(u64, Ticket)> = Vec::new();
    // What the peer received and has not answered: (tag, request number), in wire order.
    let mut at_peer: Vec<(Option<u32>, u64)> = Vec::new();
    let mut offset = 0;
    for op in ops {
        match op {
            Op::Start => {
                let deadline = next_request
                    .is_multiple_of(3)
                    .then(|| now + Duration::from_secs(2));
                match mux.admit(next_request, next_request, deadline) {
                    Ok(ticket) => callers.push((next_request, ticket)),
                    Err(AdmitError::Full { .. }) => {
                        prop_assert_eq!(callers.len(), max_in_flight);
                    }
                    Err(AdmitError::Blocked { .. }) => {}
                }
                next_request += 1;
            }
            Op::Write => {
                while let Some(t) = mux.poll_transmit(offset) {
                    offset += 1;
                    match t {
                        Transmit::Request { ticket, request } => {
                            at_peer.push((ticket.tag(), request));
                        }
                        Transmit::Cancel { tag } => {
                            // The peer acknowledges by answering that request now.
                            let i = at_peer.iter().position(|(t, _)| *t == Some(tag));
                            prop_assert!(i.is_some(), "cancel for a tag the peer never got");
                        }
                    }
                }
            }
            Op::Reply(n) if !at_peer.is_empty() => {
                let i = if fifo { 0 } else { n % at_peer.len() };
                let (tag, request) = at_peer.remove(i);
                match mux.handle_reply(tag) {
                    Recipient::Caller(waiter) => {
                        prop_assert_eq!(waiter, request, "reply went to the wrong caller");
                        let pos = callers.iter().position(|(r, _)| *r == waiter);
                        prop_assert!(pos.is_some());
                        if let Some(pos) = pos {
                            callers.remove(pos);
                        }
                    }
                    Recipient::Late => {
                        prop_assert!(!callers.iter().any(|(r, _)| *r == request));
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            Op::Reply(_) => {}
            Op::Cancel(n) if !callers.is_empty() => {
                let (_, ticket) = callers.remove(n % callers.len());
                mux.cancel(ticket, now);
            }
            Op::Cancel(_) => {}
            Op::Tick => {
                now += Duration::from_secs(1);
                while let Some(fired) = mux.handle_timeout(now) {
                    match fired {
                        Fired::Expired(expired) => {
                            let pos = callers.iter().position(|(r, _)| *r == expired.waiter);
                            prop_assert!(pos.is_some(), "timeout for a finished caller");
                            if let Some(pos) = pos {
                                callers.remove(pos);
                            }
                        }
                        Fired::Wedged { .. } => {
                            prop_assert!(fifo, "only FIFO mode wedges");
                            prop_assert!(!at_peer.is_empty(), "wedged with no reply owed");
                            // The driver fails the connection: everyone hears of it.
                            let lost = mux.connection_lost(offset);
                            prop_assert_eq!(lost.len(), callers.len());
                            callers.clear();
                            at_peer.clear();
                        }
                    }
                }
            }
        }
        prop_assert_eq!(mux.in_flight(), callers.len());
        prop_assert!(mux.in_flight() <= max_in_flight);
        // Starting stops at max_abandoned; every live request may be abandoned after that.
        prop_assert!(mux.abandoned() <= 6 + max_in_flight);
    }
    // Drain: write everything, answer everything; the table ends empty.
    while let Some(t) = mux.poll_transmit(offset) {
        if let Transmit::Request { ticket, request } = t {
            at_peer.push((ticket.tag(), request));
        }
    }
    for (tag, request) in at_peer {
        match mux.handle_reply(tag) {
            Recipient::Caller(w) => prop_assert_eq!(w, request),
            Recipient::Late => {}
            other => prop_assert!(false, "unexpected {:?} while draining", other),
        }
    }
    prop_assert_eq!((mux.in_flight(), mux.abandoned()), (0, 0));
    Ok(())
}

proptest! {
    #[test]
    fn ids_mode_never_misroutes_a_reply(max_tag in 3u32..12, ops in prop::collection::vec(op(), 1..200)) {
        run_model(false, max_tag, ops)?;
    }

    #[test]
    fn fifo_mode_never_misroutes_a_reply(ops in prop::collection::vec(op(), 1..200)) {
        run_model(true, 0, ops)?;
    }
}

#[test]
fn ten_thousand_ids_in_a_row_stay_o1() {
    // Not a timing test: a sanity check that wraparound over a large table terminates and
    // keeps handing out distinct ids.
    let mut mux: Mux<(), u32> = Mux::new(ids(20_000).max_in_flight(10_000)).unwrap();
    let mut seen = HashMap::new();
    for i in 0..10_000 {
        let t = admit(&mut mux, (), i);
        assert!(seen.insert(t.tag().unwrap(), i).is_none());
    }
    assert_eq!(mux.in_flight(), 10_000);
}
