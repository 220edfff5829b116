use super::*;
use proptest::prelude::*;

fn conn(id: u32, expires: Millis) -> Conn<u32> {
    Conn {
        conn: id,
        expires,
        idle_since: 0,
        used: false,
    }
}

fn store(max_users: usize, conns: Vec<Conn<u32>>) -> (Shared<u32>, Tally) {
    let mut s = Shared::new(4, max_users);
    let mut t = Tally::default();
    for c in conns {
        t.opened();
        s.insert(c);
    }
    (s, t)
}

fn take(s: &mut Shared<u32>, t: &mut Tally, now: Millis) -> Option<SharedLease<u32>> {
    s.acquire(now, t, &mut Vec::new())
}

#[test]
fn users_go_to_the_least_loaded_connection_up_to_the_limit() {
    let (mut s, mut t) = store(2, vec![conn(1, 100), conn(2, 100)]);
    let a = take(&mut s, &mut t, 0).unwrap();
    let b = take(&mut s, &mut t, 0).unwrap();
    assert_ne!(
        *a.conn, *b.conn,
        "the second user goes to the idle connection"
    );
    let c = take(&mut s, &mut t, 0).unwrap();
    let d = take(&mut s, &mut t, 0).unwrap();
    assert!(take(&mut s, &mut t, 0).is_none(), "both at their limit");
    assert_eq!((s.users(0), s.in_use(0), s.idle()), (4, 2, 0));
    assert_eq!(s.connections_for(3), 2);
    let mut closed = Vec::new();
    for lease in [a, b, c, d] {
        s.release(lease, Verdict::Keep, 1, &mut t, &mut closed);
    }
    assert_eq!((s.users(0), s.in_use(0), s.idle()), (0, 0, 2));
    assert!(closed.is_empty());
}

#[test]
fn a_broken_connection_takes_no_new_user_and_closes_when_its_last_leaves() {
    let (mut s, mut t) = store(3, vec![conn(7, 100)]);
    let a = take(&mut s, &mut t, 0).unwrap();
    let b = take(&mut s, &mut t, 0).unwrap();
    let mut closed = Vec::new();
    s.release(
        a,
        Verdict::Close(CloseReason::Broken),
        1,
        &mut t,
        &mut closed,
    );
    assert!(take(&mut s, &mut t, 0).is_none());
    assert!(closed.is_empty(), "b still uses it");
    s.release(b, Verdict::Keep, 1, &mut t, &mut closed);
    assert_eq!(closed, vec![7]);
    assert_eq!(t.closed.get(CloseReason::Broken), 1);
    assert_eq!((t.open, s.users(0), s.in_use(0), s.idle()), (0, 0, 0, 0));
}

#[test]
fn an_expired_connection_drains() {
    let (mut s, mut t) = store(2, vec![conn(1, 10), conn(2, 100)]);
    let a = take(&mut s, &mut t, 5).unwrap();
    assert_eq!(*a.conn, 1);
    let b = take(&mut s, &mut t, 20).unwrap();
    assert_eq!(*b.conn, 2, "1 expired at 10: no new users");
    let mut closed = Vec::new();
    s.release(a, Verdict::Keep, 21, &mut t, &mut closed);
    assert_eq!(closed, vec![1]);
    assert_eq!(t.closed.get(CloseReason::MaxLifetime), 1);
    s.release(b, Verdict::Keep, 21, &mut t, &mut closed);
    assert_eq!(s.idle(), 1);
}

#[test]
fn detaching_leaves_other_users_their_share() {
    let (mut s, mut t) = store(2, vec![conn(1, 100)]);
    let a = take(&mut s, &mut t, 0).unwrap();
    let b = take(&mut s, &mut t, 0).unwrap();
    let mine = s.detach(a, &mut t);
    assert_eq!((t.open, t.detached, s.users(0), s.in_use(0)), (0, 1, 0, 0));
    let mut closed = Vec::new();
    s.release(b, Verdict::Keep, 1, &mut t, &mut closed);
    assert!(closed.is_empty(), "the detached owner still holds it");
    assert_eq!(Arc::into_inner(mine), Some(1));
}

#[test]
fn reaping_and_closing() {
    let (mut s, mut t) = store(2, vec![conn(1, 1000), conn(2, 1000), conn(3, 50)]);
    let busy = take(&mut s, &mut t, 0).unwrap();
    let mut closed = Vec::new();
    let reap = Reap {
        now: 60,
        idle_before: Some(30),
        min_idle: 0,
    };
    s.reap(reap, &mut t, &mut closed);
    closed.sort_unstable();
    assert_eq!(
        closed.len(),
        2,
        "3 expired, and the idle one of 1/2 timed out"
    );
    assert_eq!(t.closed.get(CloseReason::MaxLifetime), 1);
    assert_eq!(t.closed.get(CloseReason::IdleTimeout), 1);
    s.close_idle(&mut t, &mut closed);
    assert_eq!(t.open, 1, "the one in use closes when its user leaves");
    s.release(busy, Verdict::Keep, 61, &mut t, &mut closed);
    assert_eq!(t.open, 0);
    assert_eq!(t.closed.get(CloseReason::PoolClosed), 1);
}

/// Every slot's word agrees with its entry (or says vacant), and no connection has more
/// than max_users users.
fn assert_consistent(s: &Shared<u32>, t: &Tally) {
    for key in 0..s.slots.words.len() {
        let word = s.slots.word(key);
        match s.entries.get(key) {
            Some(e) => {
                assert_eq!(generation(word), e.generation);
                assert_eq!(word & VACANT, 0);
                assert_eq!(word & DRAINING != 0, e.state != EntryState::Open);
                assert!(users(word) <= s.slots.max_users);
            }
            None => assert_ne!(word & VACANT, 0, "slot {key} is free"),
        }
    }
    assert_eq!(t.open, s.entries.len());
    let idle = s
        .entries
        .iter()
        .filter(|&(k, e)| e.state == EntryState::Open && s.users_of(k) == 0)
        .count();
    let in_use = s.entries.iter().filter(|&(k, _)| s.users_of(k) > 0).count();
    assert_eq!((s.idle(), s.in_use(0)), (idle, in_use));
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Millis),
    Acquire,
    FastAcquire,
    Release(usize, Option<CloseReason>),
    FastRelease(usize),
    Detach(usize),
    Reap(Millis),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (50u64..500).prop_map(Op::Insert),
        3 => Just(Op::Acquire),
        3 => Just(Op::FastAcquire),
        4 => (0usize..32, prop_oneof![Just(None), Just(Some(CloseReason::Broken))])
            .prop_map(|(i, r)| Op::Release(i, r)),
        4 => (0usize..32).prop_map(Op::FastRelease),
        1 => (0usize..32).prop_map(Op::Detach),
        1 => (0u64..200).prop_map(Op::Reap),
        2 => Just(Op::Tick),
    ]
}

proptest! {
    /// Any sequence of checkouts, returns (kept or broken), detaches, expiries and reaps
    /// keeps the counts consistent, never puts more than max_users on a connection, and
    /// always gives a new user the least-loaded open connection.
    #[test]
    fn bookkeeping_holds_under_any_sequence(ops in proptest::collection::vec(op(), 1..120)) {
        let mut s = Shared::new(8, 3);
        let mut t = Tally::default();
        let mut leases = Vec::new();
        let mut now = 0;
        let mut closed = Vec::new();
        for op in ops {
            match op {
                Op::Insert(life) => {
                    if t.open < 8 {
                        t.opened();
                        s.insert(conn(u32::try_from(t.created).unwrap(), now + life));
                    }
                }
                Op::Acquire => {
                    // Loads of the connections that can take a user now.
                    let open_loads: Vec<usize> = s.entries.iter()
                        .filter(|&(k, e)| e.state == EntryState::Open
                            && s.users_of(k) < s.slots.max_users && !s.expired(k, now))
                        .map(|(k, _)| s.users_of(k))
                        .collect();
                    match s.acquire(now, &mut t, &mut closed) {
                        Some(lease) => {
                            let load = s.users_of(lease.key) - 1;
                            prop_assert!(open_loads.iter().all(|&l| load <= l),
                                "took a connection with {load} users over {open_loads:?}");
                            leases.push(lease);
                        }
                        None => prop_assert!(open_loads.is_empty(), "{open_loads:?} had room"),
                    }
                }
                Op::Release(i, reason) if !leases.is_empty() => {
                    let lease = leases.swap_remove(i % leases.len());
                    let verdict = reason.map_or(Verdict::Keep, Verdict::Close);
                    s.release(lease, verdict, now, &mut t, &mut closed);
                }
                Op::FastAcquire => {
                    let open_loads: Vec<usize> = s.entries.iter()
                        .filter(|&(k, e)| e.state == EntryState::Open
                            && s.users_of(k) < s.slots.max_users)
                        .map(|(k, _)| s.users_of(k))
                        .collect();
                    match Shared::fast_acquire(&s.fast(), now) {
                        FastTake::Took { lease, .. } => {
                            let load = s.users_of(lease.key) - 1;
                            prop_assert!(open_loads.iter().all(|&l| load <= l));
                            prop_assert!(!s.expired(lease.key, now));
                            leases.push(lease);
                        }
                        FastTake::Empty => {}
                        FastTake::Expired(_) => prop_assert!(false, "the shared store closes nothing itself"),
                    }
                }
                Op::FastRelease(i) if !leases.is_empty() => {
                    let lease = leases.swap_remove(i % leases.len());
                    let before = s.users_of(lease.key);
                    let key = lease.key;
                    let gen_before = generation(s.slots.word(key));
                    match Shared::fast_release(&s.fast(), lease, now) {
                        Ok(tidy) => {
                            if generation(s.slots.word(key)) == gen_before {
                                prop_assert_eq!(s.users_of(key), before - 1);
                            }
                            if tidy {
                                s.tidy(&mut t, &mut closed);
                            }
                        }
                        // A detached connection's lease: the slow path's.
                        Err(lease) => s.release(lease, Verdict::Keep, now, &mut t, &mut closed),
                    }
                }
                Op::Detach(i) if !leases.is_empty() => {
                    let lease = leases.swap_remove(i % leases.len());
                    drop(s.detach(lease, &mut t));
                }
                Op::Reap(idle) => {
                    let reap = Reap { now, idle_before: now.checked_sub(idle), min_idle: 1 };
                    s.reap(reap, &mut t, &mut closed);
                }
                Op::Tick => now += 25,
                Op::Release(..) | Op::FastRelease(_) | Op::Detach(_) => {}
            }
            assert_consistent(&s, &t);
        }
        for lease in leases {
            s.release(lease, Verdict::Keep, now, &mut t, &mut closed);
        }
        assert_consistent(&s, &t);
        prop_assert_eq!(s.users(t.open), 0);
    }
}
