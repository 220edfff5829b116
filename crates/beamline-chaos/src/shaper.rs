//! The sans-IO core of one direction of one connection.
//!
//! A [`Shaper`] holds the bytes read from the source and not yet written to the destination,
//! and decides, given the faults in force and `now`, what the driver may do next: write a
//! piece, wait until an instant, reset, close, or finish. It never touches a socket or reads
//! a clock, so every fault's arithmetic is tested here without either.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::fault::{Budget, SideFaults};
use crate::jitter::Jitter;

/// The most bytes one direction holds (read, not yet written). Beyond it the driver stops
/// reading, so a stalled destination slows the source as a real link would.
pub(crate) const HOLD_LIMIT: usize = 1 << 20;

/// A bandwidth-limited direction writes about this much of a second's allowance at once.
const PACING_SLICES_PER_SEC: u64 = 50;

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<'a> {
    /// A reset budget is spent: reset the connection.
    Reset,
    /// A close budget is spent: close the connection.
    Close,
    /// Write these bytes (a partial write is fine: report it to [`Shaper::on_written`]).
    Write(&'a [u8]),
    /// Nothing may be written before this instant.
    WaitUntil(Instant),
    /// Nothing to write: read (when [`Shaper::can_read`]) or wait for new faults.
    Idle,
    /// The source has ended and everything before its end was written: send the FIN.
    Finish,
}

#[derive(Debug)]
struct Chunk {
    /// When latency lets this chunk go.
    release: Instant,
    data: Vec<u8>,
    /// How much of `data` is already written.
    written: usize,
}

/// A byte budget being spent on this connection.
#[derive(Debug, Clone, Copy, Default)]
struct Countdown {
    /// The generation of the fault that set it (`None`: no fault).
    generation: Option<u64>,
    left: u64,
}

impl Countdown {
    /// Follows the fault: a new generation restarts the count, no fault stops it.
    fn follow(&mut self, budget: Option<Budget>) {
        match budget {
            None => self.generation = None,
            Some(b) if self.generation != Some(b.generation) => {
                *self = Countdown {
                    generation: Some(b.generation),
                    left: b.bytes,
                };
            }
            Some(_) => {}
        }
    }

    fn limit(&self) -> Option<u64> {
        self.generation.map(|_| self.left)
    }

    fn spent(&self) -> bool {
        self.limit() == Some(0)
    }

    fn spend(&mut self, n: u64) {
        self.left = self.left.saturating_sub(n);
    }
}

/// One direction's held bytes and the faults that shape them.
#[derive(Debug)]
pub(crate) struct Shaper {
    faults: SideFaults,
    /// A partition blackholes every direction, on top of its own faults.
    partitioned: bool,
    held: VecDeque<Chunk>,
    held_bytes: usize,
    /// The source sent its FIN; everything it sent is in `held`.
    ended: bool,
    /// The release time of the last chunk read: later chunks never overtake it.
    last_release: Option<Instant>,
    /// Bandwidth: the earliest instant the next piece may be written.
    paced_until: Option<Instant>,
    /// Slicing: the earliest instant the next slice may be written.
    sliced_until: Option<Instant>,
    reset: Countdown,
    close: Countdown,
    jitter: Jitter,
}

impl Shaper {
    pub(crate) fn new(faults: &SideFaults, partitioned: bool, jitter: Jitter) -> Shaper {
        let mut shaper = Shaper {
            faults: SideFaults::default(),
            partitioned: false,
            held: VecDeque::new(),
            held_bytes: 0,
            ended: false,
            last_release: None,
            paced_until: None,
            sliced_until: None,
            reset: Countdown::default(),
            close: Countdown::default(),
            jitter,
        };
        shaper.set_faults(faults, partitioned);
        shaper
    }

    /// New faults are in force from now on.
    pub(crate) fn set_faults(&mut self, faults: &SideFaults, partitioned: bool) {
        self.reset.follow(faults.reset_after);
        self.close.follow(faults.close_after);
        if faults.bandwidth.is_none() {
            self.paced_until = None;
        }
        if faults.slice.is_none() {
            self.sliced_until = None;
        }
        self.faults = faults.clone();
        self.partitioned = partitioned;
    }

    fn blocked(&self) -> bool {
        self.faults.blackhole || self.partitioned
    }

    /// Whether the driver should read from the source now.
    pub(crate) fn can_read(&self) -> bool {
        !self.blocked() && !self.ended && self.held_bytes < HOLD_LIMIT
    }

    /// Bytes the source sent, read at `now`.
    pub(crate) fn on_read(&mut self, data: &[u8], now: Instant) {
        if data.is_empty() {
            return;
        }
        let mut release = now;
        if let Some((delay, jitter)) = self.faults.latency {
            release += delay + self.jitter.up_to(jitter);
        }
        if let Some(last) = self.last_release {
            release = release.max(last);
        }
        self.last_release = Some(release);
        self.held_bytes += data.len();
        self.held.push_back(Chunk {
            release,
            data: data.to_vec(),
            written: 0,
        });
    }

    /// The source sent its FIN.
    pub(crate) fn on_eof(&mut self) {
        self.ended = true;
    }

    /// What to do at `now`.
    pub(crate) fn next(&self, now: Instant) -> Next<'_> {
        if self.reset.spent() {
            return Next::Reset;
        }
        if self.close.spent() {
            return Next::Close;
        }
        if self.blocked() {
            return Next::Idle;
        }
        let Some(chunk) = self.held.front() else {
            return if self.ended { Next::Finish } else { Next::Idle };
        };
        let ready = [self.paced_until, self.sliced_until]
            .into_iter()
            .flatten()
            .fold(chunk.release, Instant::max);
        if ready > now {
            return Next::WaitUntil(ready);
        }
        let rest = &chunk.data[chunk.written..];
        let mut len = rest.len();
        if let Some((max, _)) = self.faults.slice {
            len = len.min(max.get());
        }
        if let Some(rate) = self.faults.bandwidth {
            len = len.min(clamp_len((rate.get() / PACING_SLICES_PER_SEC).max(1)));
        }
        for limit in [self.reset.limit(), self.close.limit()]
            .into_iter()
            .flatten()
        {
            len = len.min(clamp_len(limit));
        }
        Next::Write(&rest[..len])
    }

    /// `n` bytes of the piece [`Shaper::next`] offered were written at `now`.
    pub(crate) fn on_written(&mut self, n: usize, now: Instant) {
        let mut left = n;
        while left > 0 {
            let Some(chunk) = self.held.front_mut() else {
                break;
            };
            let take = left.min(chunk.data.len() - chunk.written);
            chunk.written += take;
            left -= take;
            if chunk.written == chunk.data.len() {
                self.held.pop_front();
            }
        }
        let n = n - left;
        self.held_bytes -= n;
        let n64 = n as u64;
        self.reset.spend(n64);
        self.close.spend(n64);
        if let Some(rate) = self.faults.bandwidth {
            let start = self.paced_until.map_or(now, |t| t.max(now));
            self.paced_until = Some(start + transmit_time(n64, rate.get()));
        }
        if let Some((_, delay)) = self.faults.slice {
            self.sliced_until = Some(now + delay);
        }
    }

    /// Bytes read and not yet written.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

fn clamp_len(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// How long `bytes` take at `rate` bytes per second.
fn transmit_time(bytes: u64, rate: u64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU64, NonZeroUsize};

    use proptest::prelude::*;

    use super::*;
    use crate::fault::{Fault, Side};

    fn faults(list: &[Fault]) -> SideFaults {
        let mut f = SideFaults::default();
        for (i, fault) in list.iter().enumerate() {
            f.set(*fault, i as u64 + 1);
        }
        f
    }

    fn shaper(list: &[Fault]) -> Shaper {
        Shaper::new(&faults(list), false, Jitter::for_connection(9, 0, Side::Up))
    }

    /// Drives `s` like the driver does, with an instant clock that jumps to every wait, and
    /// returns each write with its instant, and how the run ended.
    fn drain(s: &mut Shaper, mut now: Instant) -> (Vec<(Instant, Vec<u8>)>, Option<&'static str>) {
        let mut writes = Vec::new();
        loop {
            match s.next(now) {
                Next::Write(piece) => {
                    let piece = piece.to_vec();
                    s.on_written(piece.len(), now);
                    writes.push((now, piece));
                }
                Next::WaitUntil(t) => {
                    assert!(t > now, "a wait must move time forward");
                    now = t;
                }
                Next::Idle => return (writes, None),
                Next::Finish => return (writes, Some("finish")),
                Next::Reset => return (writes, Some("reset")),
                Next::Close => return (writes, Some("close")),
            }
        }
    }

    fn joined(writes: &[(Instant, Vec<u8>)]) -> Vec<u8> {
        writes.iter().flat_map(|(_, w)| w.clone()).collect()
    }

    fn bandwidth(bytes_per_sec: u64) -> Fault {
        Fault::Bandwidth {
            bytes_per_sec: NonZeroU64::new(bytes_per_sec).unwrap(),
        }
    }

    /// Reads `input` at one instant under `list`, drains, and returns what was written and
    /// how the run ended.
    fn pass(list: &[Fault], input: &[&[u8]]) -> (Vec<u8>, Option<&'static str>) {
        let mut s = shaper(list);
        let t0 = Instant::now();
        for chunk in input {
            s.on_read(chunk, t0);
        }
        let (writes, end) = drain(&mut s, t0);
        (joined(&writes), end)
    }

    #[test]
    fn without_faults_bytes_pass_at_once_and_eof_finishes() {
        let mut s = shaper(&[]);
        let t0 = Instant::now();
        s.on_read(b"hello", t0);
        s.on_eof();
        let (writes, end) = drain(&mut s, t0);
        assert_eq!(writes, vec![(t0, b"hello".to_vec())]);
        assert_eq!(end, Some("finish"));
        assert!(!s.can_read());
    }

    #[test]
    fn latency_holds_each_chunk_at_least_the_delay() {
        let d = Duration::from_millis(50);
        let mut s = shaper(&[Fault::latency(d)]);
        let t0 = Instant::now();
        s.on_read(b"a", t0);
        assert_eq!(s.next(t0), Next::WaitUntil(t0 + d));
        assert_eq!(s.next(t0 + d), Next::Write(b"a"));
    }

    #[test]
    fn jitter_adds_within_bounds_keeps_order_and_follows_the_seed() {
        let fault = Fault::Latency {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(30),
        };
        let releases = |seed| {
            let mut s = Shaper::new(
                &faults(&[fault]),
                false,
                Jitter::for_connection(seed, 0, Side::Down),
            );
            let t0 = Instant::now();
            for i in 0..50u64 {
                s.on_read(&[i as u8], t0 + Duration::from_millis(i));
            }
            s.held.iter().map(|c| c.release - t0).collect::<Vec<_>>()
        };
        let a = releases(42);
        assert_eq!(a, releases(42), "same seed, same delays");
        assert_ne!(a, releases(43), "another seed, other delays");
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "order kept");
        for (i, r) in a.iter().enumerate() {
            let read_at = Duration::from_millis(i as u64);
            assert!(*r >= read_at + Duration::from_millis(10));
            // Only the order-keeping clamp may push a chunk past its own maximum.
            assert!(*r <= Duration::from_millis(49 + 40));
        }
    }

    #[test]
    fn bandwidth_paces_writes_to_the_rate() {
        let mut s = shaper(&[bandwidth(10_000)]);
        let t0 = Instant::now();
        s.on_read(&[7u8; 2000], t0);
        let (writes, _) = drain(&mut s, t0);
        // 200-byte pieces (20 ms worth), 20 ms apart: 2000 bytes take 180 ms to start the last.
        assert!(writes.iter().all(|(_, w)| w.len() == 200));
        assert_eq!(writes.len(), 10);
        assert_eq!(writes[9].0 - t0, Duration::from_millis(180));
    }

    #[test]
    fn clearing_bandwidth_releases_at_once() {
        let mut s = shaper(&[bandwidth(1)]);
        let t0 = Instant::now();
        s.on_read(b"abc", t0);
        assert_eq!(s.next(t0), Next::Write(b"a"));
        s.on_written(1, t0);
        assert_eq!(s.next(t0), Next::WaitUntil(t0 + Duration::from_secs(1)));
        s.set_faults(&SideFaults::default(), false);
        assert_eq!(s.next(t0), Next::Write(b"bc"));
    }

    #[test]
    fn slicing_bounds_pieces_and_spaces_them() {
        let mut s = shaper(&[Fault::Slice {
            max_bytes: NonZeroUsize::new(3).unwrap(),
            delay: Duration::from_millis(2),
        }]);
        let t0 = Instant::now();
        s.on_read(b"abcdefgh", t0);
        let (writes, _) = drain(&mut s, t0);
        let pieces: Vec<_> = writes.iter().map(|(_, w)| w.as_slice()).collect();
        assert_eq!(pieces, [&b"abc"[..], b"def", b"gh"]);
        assert_eq!(writes[2].0 - t0, Duration::from_millis(4));
    }

    #[test]
    fn blackhole_holds_everything_then_delivers_in_order() {
        let mut s = shaper(&[Fault::Blackhole]);
        let t0 = Instant::now();
        assert!(!s.can_read());
        s.set_faults(&SideFaults::default(), false);
        s.on_read(b"one ", t0);
        s.set_faults(&faults(&[Fault::Blackhole]), false);
        assert_eq!(s.next(t0), Next::Idle);
        assert!(!s.can_read());
        s.set_faults(&SideFaults::default(), false);
        s.on_read(b"two", t0);
        let (writes, _) = drain(&mut s, t0);
        assert_eq!(joined(&writes), b"one two");
    }

    #[test]
    fn a_partition_blocks_like_a_blackhole() {
        let mut s = Shaper::new(
            &SideFaults::default(),
            true,
            Jitter::for_connection(0, 0, Side::Up),
        );
        assert!(!s.can_read());
        assert_eq!(s.next(Instant::now()), Next::Idle);
        s.set_faults(&SideFaults::default(), false);
        assert!(s.can_read());
    }

    #[test]
    fn reset_after_writes_exactly_the_budget_then_resets() {
        let out = pass(&[Fault::ResetAfter { bytes: 5 }], &[b"abc", b"defgh"]);
        assert_eq!(out, (b"abcde".to_vec(), Some("reset")));
    }

    #[test]
    fn reset_at_once_beats_a_blackhole_and_a_close_on_the_same_byte() {
        let s = shaper(&[Fault::Blackhole, Fault::reset()]);
        assert_eq!(s.next(Instant::now()), Next::Reset);
        let both = [
            Fault::CloseAfter { bytes: 2 },
            Fault::ResetAfter { bytes: 2 },
        ];
        assert_eq!(pass(&both, &[b"xyz"]), (b"xy".to_vec(), Some("reset")));
    }

    #[test]
    fn close_after_writes_exactly_the_budget_then_closes() {
        let out = pass(&[Fault::CloseAfter { bytes: 4 }], &[b"0123456789"]);
        assert_eq!(out, (b"0123".to_vec(), Some("close")));
    }

    #[test]
    fn budgets_count_from_the_apply_and_reapplying_restarts_them() {
        let mut s = shaper(&[]);
        let t0 = Instant::now();
        s.on_read(b"before", t0);
        let _ = drain(&mut s, t0);
        s.set_faults(&faults(&[Fault::ResetAfter { bytes: 4 }]), false);
        s.on_read(b"ab", t0);
        let _ = drain(&mut s, t0);
        // The same fault (same generation) seen again keeps counting ...
        s.set_faults(&faults(&[Fault::ResetAfter { bytes: 4 }]), false);
        s.on_read(b"cd", t0);
        let (_, end) = drain(&mut s, t0);
        assert_eq!(end, Some("reset"));
        // ... a new apply (new generation) starts over.
        let mut again = SideFaults::default();
        again.set(Fault::ResetAfter { bytes: 4 }, 99);
        s.set_faults(&again, false);
        assert!(matches!(s.next(t0), Next::Idle));
        // And clearing it stops it.
        s.set_faults(&SideFaults::default(), false);
        s.on_read(b"efghijk", t0);
        let (writes, end) = drain(&mut s, t0);
        assert_eq!(joined(&writes), b"efghijk");
        assert_eq!(end, None);
    }

    #[test]
    fn reading_stops_at_the_hold_limit() {
        let mut s = shaper(&[Fault::latency(Duration::from_secs(1))]);
        let t0 = Instant::now();
        while s.can_read() {
            s.on_read(&[0; 64 * 1024], t0);
        }
        assert_eq!(s.held_bytes(), HOLD_LIMIT);
        let (writes, _) = drain(&mut s, t0);
        assert_eq!(joined(&writes).len(), HOLD_LIMIT);
        assert!(s.can_read());
    }

    #[test]
    fn partial_writes_are_resumed_where_they_stopped() {
        let mut s = shaper(&[]);
        let t0 = Instant::now();
        s.on_read(b"abcdef", t0);
        s.on_written(2, t0);
        assert_eq!(s.next(t0), Next::Write(b"cdef"));
        s.on_written(4, t0);
        assert_eq!(s.next(t0), Next::Idle);
    }

    fn any_fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            (0u64..20, 0u64..20).prop_map(|(d, j)| Fault::Latency {
                delay: Duration::from_millis(d),
                jitter: Duration::from_millis(j),
            }),
            (1u64..100_000).prop_map(|r| Fault::Bandwidth {
                bytes_per_sec: NonZeroU64::new(r).unwrap_or(NonZeroU64::MIN),
            }),
            (1usize..64, 0u64..3).prop_map(|(m, d)| Fault::Slice {
                max_bytes: NonZeroUsize::new(m).unwrap_or(NonZeroUsize::MIN),
                delay: Duration::from_millis(d),
            }),
        ]
    }

    proptest! {
        /// Whatever shaping faults are in force and however the source's bytes arrive, the
        /// destination receives them all, intact and in order, and pieces respect slicing.
        #[test]
        fn shaping_delivers_every_byte_in_order(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 1..20),
            list in prop::collection::vec(any_fault(), 0..3),
            seed in any::<u64>(),
        ) {
            let f = faults(&list);
            let mut s = Shaper::new(&f, false, Jitter::for_connection(seed, 0, Side::Up));
            let mut now = Instant::now();
            let mut out = Vec::new();
            for chunk in &chunks {
                s.on_read(chunk, now);
                let (writes, _) = drain(&mut s, now);
                if let Some((max, _)) = f.slice {
                    prop_assert!(writes.iter().all(|(_, w)| w.len() <= max.get()));
                }
                if let Some((t, _)) = writes.last() {
                    now = now.max(*t);
                }
                out.extend(joined(&writes));
            }
            s.on_eof();
            let (writes, end) = drain(&mut s, now);
            out.extend(joined(&writes));
            prop_assert_eq!(end, Some("finish"));
            prop_assert_eq!(out, chunks.concat());
        }

        /// A byte budget lets through exactly `min(budget, sent)` bytes.
        #[test]
        fn budgets_are_exact(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 1..10),
            budget in 0u64..600,
            reset in any::<bool>(),
        ) {
            let fault = if reset {
                Fault::ResetAfter { bytes: budget }
            } else {
                Fault::CloseAfter { bytes: budget }
            };
            let mut s = shaper(&[fault]);
            let now = Instant::now();
            let mut out = Vec::new();
            let mut end = None;
            for chunk in &chunks {
                s.on_read(chunk, now);
                let (writes, e) = drain(&mut s, now);
                out.extend(joined(&writes));
                if e.is_some() {
                    end = e;
                    break;
                }
            }
            let sent = chunks.concat();
            let expect = sent.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
            prop_assert_eq!(&out[..], &sent[..expect]);
            let fired = (budget as usize) <= sent.len();
            prop_assert_eq!(end.is_some(), fired);
            if fired {
                prop_assert_eq!(end, Some(if reset { "reset" } else { "close" }));
            }
        }
    }
}
