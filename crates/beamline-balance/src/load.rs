//! PeakEWMA: a round-trip-time estimate that jumps up at once and comes down slowly, sans-IO.

use std::time::{Duration, Instant};

/// A peak-sensitive, exponentially weighted moving average of an endpoint's round-trip time
/// (Finagle's and linkerd's PeakEWMA; tower's `PeakEwma`).
///
/// - A round trip **slower** than the estimate replaces it at once (the peak): a server
///   that turns slow is seen on its first slow answer.
/// - A **faster** one pulls it down with weight `1 - e^(-Δt/τ)`, `Δt` the time since the
///   last update and `τ` the decay: it takes about `τ` for the estimate to believe a
///   recovery.
/// - With no answer at all, the estimate **decays towards zero** with the same `τ`, so an
///   endpoint that was slow, and got no traffic because of it, is eventually tried again.
///
/// The load the balancer compares is `estimate × (in flight + 1)`.
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use beamline_balance::PeakEwma;
///
/// let start = Instant::now();
/// let mut rtt = PeakEwma::new(Duration::from_millis(1), Duration::from_secs(10), start);
/// rtt.observe(Duration::from_millis(20), start); // one slow answer: the peak
/// assert_eq!(rtt.estimate(start), Duration::from_millis(20));
/// let later = start + Duration::from_secs(10);
/// rtt.observe(Duration::from_millis(1), later); // fast again: pulled down, not replaced
/// let now = rtt.estimate(later);
/// assert!(now > Duration::from_millis(1) && now < Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwma {
    /// The estimate at `updated`, in nanoseconds.
    estimate_ns: f64,
    updated: Instant,
    /// The decay `τ`, in nanoseconds.
    tau_ns: f64,
}

impl PeakEwma {
    /// An estimate starting at `initial`, decaying with `decay` (`τ`; a zero decay is taken
    /// as one nanosecond).
    pub fn new(initial: Duration, decay: Duration, now: Instant) -> PeakEwma {
        PeakEwma {
            estimate_ns: nanos(initial),
            updated: now,
            tau_ns: nanos(decay).max(1.0),
        }
    }

    /// The weight the old estimate keeps after `now - updated`.
    fn kept(&self, now: Instant) -> f64 {
        let elapsed = nanos(now.saturating_duration_since(self.updated));
        (-elapsed / self.tau_ns).exp()
    }

    /// The estimate now, in nanoseconds (decayed towards zero since the last update).
    pub fn estimate_ns(&self, now: Instant) -> f64 {
        self.estimate_ns * self.kept(now)
    }

    /// The estimate now.
    pub fn estimate(&self, now: Instant) -> Duration {
        Duration::from_nanos(self.estimate_ns(now).round() as u64)
    }

    /// The load of an endpoint with `in_flight` requests: `estimate × (in_flight + 1)`, so
    /// two idle endpoints compare by their round-trip times.
    pub fn cost(&self, in_flight: u32, now: Instant) -> f64 {
        self.estimate_ns(now) * (f64::from(in_flight) + 1.0)
    }

    /// One round trip of `rtt`, ended at `now`.
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = nanos(rtt);
        let kept = self.kept(now);
        let decayed = self.estimate_ns * kept;
        self.estimate_ns = if rtt > decayed {
            rtt
        } else {
            decayed + rtt * (1.0 - kept)
        };
        self.updated = self.updated.max(now);
    }

    /// A failure that counts against the endpoint, after `elapsed`: seen as a round trip of
    /// twice the estimate (at least `floor`), or `elapsed` if longer. A connection refused in
    /// a microsecond must not make an endpoint look fast.
    pub fn penalize(&mut self, elapsed: Duration, floor: Duration, now: Instant) {
        let doubled = 2.0 * self.estimate_ns(now).max(nanos(floor));
        let seen = nanos(elapsed).max(doubled);
        self.observe(Duration::from_nanos(seen.min(u64::MAX as f64) as u64), now);
    }
}

/// A duration in nanoseconds, as `f64`.
pub(crate) fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_slower_round_trip_is_taken_at_once_a_faster_one_slowly() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(MS, Duration::from_secs(10), t0);
        e.observe(MS * 20, t0);
        assert_eq!(e.estimate(t0), MS * 20);
        // 1 ms later a fast answer barely moves it.
        let t1 = t0 + MS;
        e.observe(MS, t1);
        assert!(e.estimate(t1) > MS * 19, "{:?}", e.estimate(t1));
    }

    #[test]
    fn with_no_answer_the_estimate_decays_towards_zero() {
        let t0 = Instant::now();
        let e = PeakEwma::new(MS * 100, Duration::from_secs(10), t0);
        let after_tau = e.estimate_ns(t0 + Duration::from_secs(10));
        let expected = 100e6 * (-1.0f64).exp();
        assert!((after_tau - expected).abs() < 1.0, "{after_tau}");
    }

    #[test]
    fn cost_is_estimate_times_in_flight_plus_one() {
        let t0 = Instant::now();
        let e = PeakEwma::new(MS * 2, Duration::from_secs(10), t0);
        assert_eq!(e.cost(0, t0), 2e6);
        assert_eq!(e.cost(3, t0), 8e6);
    }

    #[test]
    fn a_fast_failure_makes_an_endpoint_look_slower_not_faster() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(MS * 2, Duration::from_secs(10), t0);
        e.penalize(Duration::from_micros(5), MS, t0);
        assert_eq!(e.estimate(t0), MS * 4);
        e.penalize(MS * 50, MS, t0);
        assert_eq!(e.estimate(t0), MS * 50);
    }
}
