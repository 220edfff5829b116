//! Intervals and verdicts: how sure a ratio is, and whether it clears its goal.
//!
//! A goal is **met** only when the ratio's interval lies wholly at or above it, **missed**
//! only when the interval lies wholly below it, and **within noise** otherwise: a point
//! estimate alone decides nothing.
//!
//! The ratio's interval depends on what the two sides carry:
//! - criterion groups: each side's 95% confidence interval, taken on a log scale as a
//!   half-width, the two added in quadrature (the errors of two separate measurements are
//!   independent) around the ratio of the point estimates: `r · exp(±√(h_b² + h_p²))` with
//!   `h = (ln hi − ln lo) / 2`;
//! - repeated rounds (harness-free benches): the ratio round by round, beamline's round `i`
//!   against the peer's round `i` (they ran back to back), then the median with the
//!   smallest and largest round (`median` samples) or the geometric mean with its 95%
//!   Student-t interval (`mean` samples);
//! - anything else (one figure each): the quotient of the two intervals, which is the point
//!   itself when neither side has one.

/// How a set of samples is summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Summary {
    /// Median, with min–max as the interval.
    Median,
    /// Mean, with its 95% Student-t interval.
    Mean,
}

impl Summary {
    pub(crate) fn parse(name: &str) -> Option<Summary> {
        match name {
            "median" => Some(Summary::Median),
            "mean" => Some(Summary::Mean),
            _ => None,
        }
    }
}

/// A value with the interval around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    pub(crate) point: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Interval {
    pub(crate) fn exact(point: f64) -> Interval {
        Interval {
            point,
            lo: point,
            hi: point,
        }
    }

    /// Whether the interval is a single point (nothing to say about noise).
    pub(crate) fn is_exact(&self) -> bool {
        self.lo == self.hi
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom.
pub(crate) fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        // Within 0.002 of the exact quantile from 31 degrees of freedom on.
        _ => 1.96 + 2.5 / df as f64,
    }
}

/// `values` summarised: the median with min–max, or the mean with its 95% t-interval.
pub(crate) fn summarise(values: &[f64], summary: Summary) -> Interval {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match summary {
        Summary::Median => Interval {
            point: median(values),
            lo: min,
            hi: max,
        },
        Summary::Mean => {
            let n = values.len();
            let mean = values.iter().sum::<f64>() / n as f64;
            if n < 2 {
                return Interval::exact(mean);
            }
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let half = t95(n - 1) * (var / n as f64).sqrt();
            Interval {
                point: mean,
                lo: mean - half,
                hi: mean + half,
            }
        }
    }
}

/// Ratios of paired rounds, summarised: median with min–max, or geometric mean with the
/// 95% t-interval of the mean log ratio.
pub(crate) fn paired_ratio(ratios: &[f64], summary: Summary) -> Interval {
    match summary {
        Summary::Median => summarise(ratios, Summary::Median),
        Summary::Mean => {
            let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
            let i = summarise(&logs, Summary::Mean);
            Interval {
                point: i.point.exp(),
                lo: i.lo.exp(),
                hi: i.hi.exp(),
            }
        }
    }
}

/// `beamline_over_peer`'s interval from two criterion intervals (log-scale half-widths
/// added in quadrature). `subject` and `peer` are times: the ratio is `peer / subject`.
pub(crate) fn criterion_ratio(subject: Interval, peer: Interval) -> Interval {
    let half = |i: Interval| {
        if i.lo > 0.0 && i.hi > 0.0 {
            (i.hi.ln() - i.lo.ln()) / 2.0
        } else {
            0.0
        }
    };
    let r = peer.point / subject.point;
    let h = half(subject).hypot(half(peer));
    Interval {
        point: r,
        lo: r * (-h).exp(),
        hi: r * h.exp(),
    }
}

/// The ratio `num / den` with the widest interval the two intervals allow.
pub(crate) fn quotient(num: Interval, den: Interval) -> Interval {
    Interval {
        point: num.point / den.point,
        lo: num.lo / den.hi,
        hi: num.hi / den.lo,
    }
}

/// A goal's verdict, given the ratio's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The whole interval is at or above the goal.
    Met,
    /// The whole interval is below the goal.
    Missed,
    /// The goal lies inside the interval.
    WithinNoise,
}

impl Verdict {
    pub(crate) fn of(ratio: Interval, min_ratio: f64) -> Verdict {
        if ratio.lo >= min_ratio {
            Verdict::Met
        } else if ratio.hi < min_ratio {
            Verdict::Missed
        } else {
            Verdict::WithinNoise
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Verdict::Met => "✅ met",
            Verdict::Missed => "❌ missed",
            Verdict::WithinNoise => "➖ within noise",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * a.abs().max(1.0)
    }

    #[test]
    fn a_goal_is_met_or_missed_only_outside_the_interval() {
        let ratio = |lo, point, hi| Interval { point, lo, hi };
        assert_eq!(Verdict::of(ratio(1.01, 1.10, 1.20), 1.0), Verdict::Met);
        // The lower end exactly at the goal clears it.
        assert_eq!(Verdict::of(ratio(1.0, 1.10, 1.20), 1.0), Verdict::Met);
        assert_eq!(Verdict::of(ratio(0.80, 0.85, 0.94), 0.95), Verdict::Missed);
        // server/echo-1conn's case: 0.94x ± 3% against 0.95 is noise, not a miss.
        assert_eq!(
            Verdict::of(ratio(0.91, 0.94, 0.97), 0.95),
            Verdict::WithinNoise
        );
        // ... and a win inside the noise is not a win either.
        assert_eq!(
            Verdict::of(ratio(0.98, 1.02, 1.06), 1.0),
            Verdict::WithinNoise
        );
        // No interval: the point decides.
        assert_eq!(Verdict::of(Interval::exact(0.99), 1.0), Verdict::Missed);
        assert_eq!(Verdict::of(Interval::exact(1.0), 1.0), Verdict::Met);
    }

    #[test]
    fn criterion_intervals_combine_on_a_log_scale() {
        // beamline 100 ns in [100/1.1, 110] (log half-width ln 1.1), the peer 200 ns exactly.
        let subject = Interval {
            point: 100.0,
            lo: 100.0 / 1.1,
            hi: 110.0,
        };
        let r = criterion_ratio(subject, Interval::exact(200.0));
        assert!(close(r.point, 2.0));
        assert!(close(r.lo, 2.0 / 1.1) && close(r.hi, 2.2), "{r:?}");
        // Two equal log half-widths h add to h·√2.
        let r = criterion_ratio(subject, subject);
        let h = 1.1f64.ln() * 2f64.sqrt();
        assert!(close(r.point, 1.0));
        assert!(close(r.lo, (-h).exp()) && close(r.hi, h.exp()), "{r:?}");
    }

    #[test]
    fn paired_rounds_give_median_with_min_max_or_a_t_interval() {
        let r = paired_ratio(&[1.2, 0.9, 1.0, 1.1, 1.05], Summary::Median);
        assert_eq!((r.point, r.lo, r.hi), (1.05, 0.9, 1.2));
        // Geometric mean of e^-0.1, e^0, e^0.1: 1, and the t-interval of the logs.
        let logs = [-0.1f64, 0.0, 0.1];
        let ratios: Vec<f64> = logs.iter().map(|l| l.exp()).collect();
        let r = paired_ratio(&ratios, Summary::Mean);
        let half = 4.303 * (0.01f64 / 3.0).sqrt();
        assert!(close(r.point, 1.0), "{r:?}");
        assert!(
            close(r.lo, (-half).exp()) && close(r.hi, half.exp()),
            "{r:?}"
        );
    }

    #[test]
    fn summaries_and_the_t_table() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(t95(19), 2.093);
        assert!((t95(60) - 2.000).abs() < 0.003);
        assert!((t95(1000) - 1.962).abs() < 0.003);
        let s = summarise(&[10.0, 12.0, 14.0], Summary::Mean);
        assert!(close(s.point, 12.0));
        assert!(
            close(s.hi - s.point, 4.303 * (4.0f64 / 3.0).sqrt()),
            "{s:?}"
        );
        assert_eq!(summarise(&[5.0], Summary::Mean), Interval::exact(5.0));
        let q = quotient(
            Interval {
                point: 10.0,
                lo: 9.0,
                hi: 11.0,
            },
            Interval {
                point: 5.0,
                lo: 4.0,
                hi: 6.0,
            },
        );
        assert_eq!((q.point, q.lo, q.hi), (2.0, 1.5, 2.75));
    }
}
