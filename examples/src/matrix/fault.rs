//! Each fault as a `beamline-chaos` schedule (or, for a restart, the server going away and
//! coming back; for an abandoned reply, the FIFO server swallowing one), and the evidence
//! that it really happened.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use beamline::chaos::{Direction, Fault as Chaos, Proxy, Schedule};
use beamline::server::{DrainReport, ServerStats};
use tokio::time::{Instant, sleep_until};

use super::Timeline;
use super::cell::{Fault, Shape};
use super::load::Log;
use super::server::EchoServer;

/// The latency fault: a 10 ms floor plus up to 20 ms of seeded jitter, each way
/// (20 ms ± 10 ms).
const LATENCY_FLOOR: Duration = Duration::from_millis(10);
const LATENCY_JITTER: Duration = Duration::from_millis(20);
/// The reset fault: each connection is reset after this many more bytes in either
/// direction, mid-frame more often than not.
const RESET_AFTER: u64 = 4096;
/// The slow reader: what the client receives per second, per connection, and the largest
/// piece it receives at once.
const SLOW_RATE: u64 = 64 * 1024;
const SLOW_SLICE: usize = 256;
/// A request that took this long during a partition noticed it.
const NOTICED: Duration = Duration::from_millis(500);

/// What happened while the fault was injected.
#[derive(Debug, Default)]
pub(crate) struct Injected {
    /// The first server's drain report, when it was restarted.
    pub(crate) stopped: Option<DrainReport>,
    /// Bytes the proxy delivered to clients inside the slow-reader window, and how long
    /// that window was.
    pub(crate) slow_window: Option<(u64, Duration)>,
    /// The FIFO server's counts: replies swallowed, and wedged connections the client
    /// closed (read once the load is over).
    pub(crate) swallow: Option<(u64, u64)>,
}

/// The proxy actions of `fault`, as offsets from the start of the load.
pub(crate) fn schedule(fault: Fault, t: &Timeline) -> Schedule {
    let (at, lasting) = (t.fault_at, t.fault_for);
    match fault {
        Fault::None | Fault::Restart | Fault::AbandonedReply => Schedule::new(),
        Fault::Latency => Schedule::new().fault(
            at,
            lasting,
            Direction::Both,
            Chaos::Latency {
                delay: LATENCY_FLOOR,
                jitter: LATENCY_JITTER,
            },
        ),
        Fault::Reset => Schedule::new().fault(
            at,
            lasting,
            Direction::Both,
            Chaos::ResetAfter { bytes: RESET_AFTER },
        ),
        Fault::Partition => Schedule::new().partition(at, lasting),
        Fault::SlowReader => Schedule::new()
            .fault(
                at,
                lasting,
                Direction::Downstream,
                Chaos::Bandwidth {
                    bytes_per_sec: NonZeroU64::new(SLOW_RATE).unwrap_or(NonZeroU64::MIN),
                },
            )
            .fault(
                at,
                lasting,
                Direction::Downstream,
                Chaos::Slice {
                    max_bytes: NonZeroUsize::new(SLOW_SLICE).unwrap_or(NonZeroUsize::MIN),
                    delay: Duration::ZERO,
                },
            ),
    }
}

/// Injects `fault` from `epoch` on: runs its schedule against `proxy` and, for a restart,
/// stops `server` and puts a new one on the same address. Returns once the fault healed.
pub(crate) async fn inject(
    fault: Fault,
    proxy: &Proxy,
    server: &mut EchoServer,
    t: &Timeline,
    epoch: Instant,
) -> Result<Injected, String> {
    let mut injected = Injected::default();
    let heal = epoch + t.fault_at + t.fault_for;
    match fault {
        Fault::Restart => {
            sleep_until(epoch + t.fault_at).await;
            // Nothing listens while the server is away: a connect is refused, as it would
            // be without the proxy in between.
            proxy.refuse_new(true).map_err(|e| e.to_string())?;
            let report = server
                .stop()
                .await
                .map_err(|e| format!("stopping the server: {e}"))?;
            println!("  server stopped: {report:?}");
            injected.stopped = Some(report);
            sleep_until(heal).await;
            *server = server
                .restart()
                .map_err(|e| format!("restarting the server on {}: {e}", server.addr()))?;
            proxy.refuse_new(false).map_err(|e| e.to_string())?;
            println!("  server back on {}", server.addr());
        }
        Fault::SlowReader => {
            // Measure well inside the window, so the fault is in force at both ends.
            let margin = t.fault_for / 10;
            let observe = async {
                sleep_until(epoch + t.fault_at + margin).await;
                let before = proxy.stats().downstream_bytes;
                sleep_until(heal - margin).await;
                let after = proxy.stats().downstream_bytes;
                (after - before, t.fault_for - 2 * margin)
            };
            let plan = schedule(fault, t);
            let (run, window) = tokio::join!(plan.run(proxy), observe);
            run.map_err(|e| e.to_string())?;
            injected.slow_window = Some(window);
        }
        Fault::AbandonedReply => {
            sleep_until(epoch + t.fault_at).await;
            server
                .swallow()
                .ok_or("an abandoned reply needs the FIFO server")?
                .arm();
            sleep_until(heal).await;
        }
        _ => schedule(fault, t)
            .run(proxy)
            .await
            .map_err(|e| e.to_string())?,
    }
    Ok(injected)
}

/// Checks that `fault` left the traces it must leave, so a cell cannot pass because its
/// fault never fired. Returns what is missing.
pub(crate) fn verify(
    fault: Fault,
    shape: Shape,
    t: &Timeline,
    injected: &Injected,
    proxy_resets: u64,
    server: &ServerStats,
    log: &Log,
) -> Vec<String> {
    let window = t.fault_at..t.fault_at + t.fault_for;
    let mut missing = Vec::new();
    match fault {
        Fault::None => {
            if proxy_resets > 0 {
                missing.push(format!(
                    "the proxy reset {proxy_resets} connections with no fault in force"
                ));
            }
        }
        Fault::Latency => {
            // Requests wholly inside the window (after a margin for the schedule's start)
            // crossed the link twice: never faster than two floors.
            let inside = t.fault_at + Duration::from_millis(50)..window.end;
            let delayed: Vec<Duration> = log
                .samples
                .iter()
                .filter(|s| inside.contains(&s.start) && s.start + s.latency <= window.end)
                .map(|s| s.latency)
                .collect();
            if delayed.is_empty() {
                missing.push("no request completed while the latency was in force".into());
            }
            if let Some(fast) = delayed.iter().find(|l| **l < 2 * LATENCY_FLOOR) {
                missing.push(format!(
                    "a request took {fast:?} under a {LATENCY_FLOOR:?} floor each way"
                ));
            }
        }
        Fault::Reset => {
            if proxy_resets == 0 {
                missing.push("no connection was reset: the fault never fired".into());
            }
        }
        Fault::Restart => {
            if injected.stopped.is_none() {
                missing.push("the server was never stopped".into());
            }
            if server.accepted == 0 {
                missing.push("no client came back to the restarted server".into());
            }
        }
        Fault::Partition => {
            let noticed = log.failed_at.iter().filter(|s| window.contains(*s)).count()
                + log
                    .samples
                    .iter()
                    .filter(|s| window.contains(&s.start) && s.latency >= NOTICED)
                    .count();
            if noticed == 0 {
                missing.push("no request noticed the partition".into());
            }
        }
        Fault::AbandonedReply => {
            match injected.swallow {
                Some((1, closed)) if closed >= 1 => {}
                Some((1, _)) => missing.push(
                    "the wedged connection was never closed by the client: the abandon timeout never fired".into(),
                ),
                Some((swallowed, _)) => missing.push(format!(
                    "the server swallowed {swallowed} replies, not one"
                )),
                None => missing.push("the FIFO server's counts were not read".into()),
            }
            if !log.failed_at.iter().any(|s| window.contains(s)) {
                missing.push("no request noticed the swallowed reply".into());
            }
        }
        Fault::SlowReader => match injected.slow_window {
            Some((bytes, during)) => {
                // Each connection gets at most the rate, plus one ~20 ms piece of start-up.
                let conns = if shape.is_pooled() { 4 } else { 1 };
                let per_conn = SLOW_RATE as f64 * (during.as_secs_f64() + 0.02);
                let bound = (per_conn * f64::from(conns)) as u64 + SLOW_SLICE as u64;
                if bytes == 0 {
                    missing.push("nothing reached the slow reader".into());
                }
                if bytes > bound {
                    missing.push(format!(
                        "{bytes} bytes reached the slow reader in {during:?}, over the {bound} its limit allows"
                    ));
                }
            }
            None => missing.push("the slow-reader window was not measured".into()),
        },
    }
    missing
}

#[cfg(test)]
mod tests {
    use beamline::chaos::{Action, FaultKind};

    use super::*;
    use crate::matrix::load::Sample;

    #[test]
    fn every_schedule_heals_what_it_broke() {
        let t = Timeline::standard();
        let end = t.fault_at + t.fault_for;
        for fault in [
            Fault::Latency,
            Fault::Reset,
            Fault::Partition,
            Fault::SlowReader,
        ] {
            let s = schedule(fault, &t);
            assert_eq!(
                s.steps().first().map(|s| s.at),
                Some(t.fault_at),
                "{fault:?}"
            );
            assert_eq!(s.duration(), end, "{fault:?}");
            let heals = s.steps().iter().filter(|s| s.at == end).count();
            let breaks = s.steps().iter().filter(|s| s.at == t.fault_at).count();
            assert_eq!(heals, breaks, "{fault:?}: every break has its heal");
        }
        let partition = schedule(Fault::Partition, &t);
        assert!(matches!(partition.steps()[1].action, Action::Heal));
        let slow = schedule(Fault::SlowReader, &t);
        assert!(slow.steps().iter().any(|s| matches!(
            s.action,
            Action::Clear {
                kind: FaultKind::Bandwidth,
                ..
            }
        )));
        assert!(schedule(Fault::None, &t).steps().is_empty());
    }

    #[test]
    fn evidence_is_required_of_every_fault() {
        let t = Timeline::standard();
        let quiet = Log::default();
        let stats = ServerStats::default();
        let none = Injected::default();
        for fault in [
            Fault::Latency,
            Fault::Reset,
            Fault::Restart,
            Fault::Partition,
            Fault::SlowReader,
            Fault::AbandonedReply,
        ] {
            let missing = verify(fault, Shape::Mux, &t, &none, 0, &stats, &quiet);
            assert!(!missing.is_empty(), "{fault:?} passed without a trace");
        }
        assert!(verify(Fault::None, Shape::Mux, &t, &none, 0, &stats, &quiet).is_empty());
        assert!(!verify(Fault::None, Shape::Mux, &t, &none, 1, &stats, &quiet).is_empty());
    }

    #[test]
    fn latency_evidence_rejects_a_request_under_the_floor() {
        let t = Timeline::standard();
        let at = |ms: u64, lat: u64| Sample {
            start: t.fault_at + Duration::from_millis(ms),
            latency: Duration::from_millis(lat),
        };
        let mut log = Log {
            samples: vec![at(100, 25), at(200, 41)],
            ..Log::default()
        };
        let stats = ServerStats::default();
        let none = Injected::default();
        assert!(verify(Fault::Latency, Shape::Single, &t, &none, 0, &stats, &log).is_empty());
        log.samples.push(at(300, 3));
        let missing = verify(Fault::Latency, Shape::Single, &t, &none, 0, &stats, &log);
        assert!(missing[0].contains("3ms"), "{missing:?}");
    }

    #[test]
    fn slow_reader_evidence_bounds_the_rate() {
        let t = Timeline::standard();
        let stats = ServerStats::default();
        let log = Log::default();
        let during = Duration::from_secs(1);
        let slow = |bytes| Injected {
            slow_window: Some((bytes, during)),
            ..Injected::default()
        };
        let ok = verify(
            Fault::SlowReader,
            Shape::Mux,
            &t,
            &slow(60_000),
            0,
            &stats,
            &log,
        );
        assert!(ok.is_empty(), "{ok:?}");
        assert!(
            !verify(
                Fault::SlowReader,
                Shape::Mux,
                &t,
                &slow(200_000),
                0,
                &stats,
                &log
            )
            .is_empty()
        );
        assert!(
            verify(
                Fault::SlowReader,
                Shape::Pooled,
                &t,
                &slow(200_000),
                0,
                &stats,
                &log
            )
            .is_empty()
        );
        assert!(!verify(Fault::SlowReader, Shape::Mux, &t, &slow(0), 0, &stats, &log).is_empty());
    }

    #[test]
    fn an_abandoned_reply_needs_one_swallow_and_the_wedge_closed_by_the_client() {
        let t = Timeline::for_fault(Fault::AbandonedReply);
        let stats = ServerStats::default();
        let noticed = Log {
            failed_at: vec![t.fault_at + Duration::from_secs(1)],
            ..Log::default()
        };
        let seen = |swallow| Injected {
            swallow: Some(swallow),
            ..Injected::default()
        };
        let verdict = |swallow, log: &Log| {
            verify(
                Fault::AbandonedReply,
                Shape::Fifo,
                &t,
                &seen(swallow),
                0,
                &stats,
                log,
            )
        };
        assert!(verdict((1, 1), &noticed).is_empty());
        let never_closed = verdict((1, 0), &noticed);
        assert!(never_closed[0].contains("never closed"), "{never_closed:?}");
        assert!(!verdict((0, 0), &noticed).is_empty());
        assert!(!verdict((1, 1), &Log::default()).is_empty());
    }
}
