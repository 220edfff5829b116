use super::*;

fn noop() -> TaskContext<'static> {
    TaskContext::from_waker(Waker::noop())
}

/// Polls a blocked `cast` once; `Ready` means the message was queued.
fn push(p: &Process<u32>, msg: &mut Option<u32>, wait: &mut Option<Arc<AtomicBool>>) -> Poll<()> {
    match p.poll_push(msg, wait, &mut noop()) {
        Poll::Ready(Ok(())) => Poll::Ready(()),
        Poll::Ready(Err((reason, m))) => panic!("refused {m}: {reason}"),
        Poll::Pending => Poll::Pending,
    }
}

fn recv_msg(p: &Process<u32>) -> Option<u32> {
    match p.poll_recv(&mut noop()) {
        Poll::Ready(Envelope::Msg(m)) => Some(m),
        _ => None,
    }
}

#[test]
fn an_idle_process_record_stays_small() {
    // The per-process cost every idle connection pays (plus the Arc's two counters).
    assert!(std::mem::size_of::<Process<()>>() <= 144);
    assert!(std::mem::size_of::<Status>() <= 16);
    assert!(std::mem::size_of::<IdMap<Watcher>>() <= 32);
}

#[test]
fn a_notified_sender_that_gives_up_passes_the_slot_to_the_next() {
    let p = Process::<u32>::new(1, false);
    assert!(p.try_push(0, false).is_ok());
    let (mut a_msg, mut a_wait) = (Some(1), None);
    let (mut b_msg, mut b_wait) = (Some(2), None);
    assert!(push(&p, &mut a_msg, &mut a_wait).is_pending());
    assert!(push(&p, &mut b_msg, &mut b_wait).is_pending());
    // Receiving frees the slot and hands it to `a`, the first in line...
    assert_eq!(recv_msg(&p), Some(0));
    assert!(a_wait.as_ref().is_some_and(|n| n.load(Ordering::Relaxed)));
    // ...which gives up: the slot must go to `b`, not be lost.
    p.cancel_push(a_wait.as_ref().unwrap());
    assert!(b_wait.as_ref().is_some_and(|n| n.load(Ordering::Relaxed)));
    assert!(push(&p, &mut b_msg, &mut b_wait).is_ready());
    assert_eq!(recv_msg(&p), Some(2));
}

#[test]
fn a_new_cast_does_not_overtake_waiting_senders_but_try_cast_may() {
    let p = Process::<u32>::new(1, false);
    assert!(p.try_push(0, false).is_ok());
    let (mut a_msg, mut a_wait) = (Some(1), None);
    assert!(push(&p, &mut a_msg, &mut a_wait).is_pending());
    assert_eq!(recv_msg(&p), Some(0));
    // `cast`'s fast path queues behind `a`...
    assert!(matches!(p.try_push(9, true), Err(Rejected::Full(9))));
    // ...`try_cast` takes the free slot, and `a` goes back to the front of the line.
    assert!(p.try_push(8, false).is_ok());
    assert!(push(&p, &mut a_msg, &mut a_wait).is_pending());
    assert_eq!(recv_msg(&p), Some(8));
    assert!(push(&p, &mut a_msg, &mut a_wait).is_ready());
    assert_eq!(recv_msg(&p), Some(1));
}

#[test]
fn notices_bypass_the_capacity_and_keep_fifo_order_with_messages() {
    let p = Process::<u32>::new(1, false);
    assert!(p.try_push(1, false).is_ok());
    p.set_trap_exit(true);
    let other = Process::<u32>::new(1, false);
    Core::exit_signal(&*p, other.pid(), ExitReason::Shutdown, false);
    assert!(matches!(p.try_push(2, false), Err(Rejected::Full(2))));
    assert_eq!(recv_msg(&p), Some(1));
    assert!(matches!(
        p.poll_recv(&mut noop()),
        Poll::Ready(Envelope::Signal(s)) if matches!(*s, Info::Exit { reason: ExitReason::Shutdown, .. })
    ));
}

#[test]
fn an_exit_fails_waiting_senders_with_the_reason() {
    let p = Process::<u32>::new(1, false);
    assert!(p.try_push(0, false).is_ok());
    let (mut msg, mut wait) = (Some(1), None);
    assert!(p.poll_push(&mut msg, &mut wait, &mut noop()).is_pending());
    p.finish(ExitReason::Killed);
    assert!(matches!(
        p.poll_push(&mut msg, &mut wait, &mut noop()),
        Poll::Ready(Err((ExitReason::Killed, 1)))
    ));
}
