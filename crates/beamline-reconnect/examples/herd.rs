//! The thundering herd as CSV: 10,000 simulated clients lose their server at t = 0 and it
//! is back at t = 5 s; connection attempts per 100 ms window, one column per jitter kind.
//!
//! ```sh
//! cargo run -p beamline-reconnect --example herd > herd.csv
//! ```
//!
//! A summary (peak, mean over the busy span, peak/mean) goes to stderr.

use beamline_reconnect::herd::{self, HerdConfig};

fn main() -> Result<(), herd::HerdError> {
    let config = HerdConfig::default();
    let histograms = herd::simulate_all(&config)?;
    print!("{}", herd::to_csv(&histograms));
    eprintln!(
        "{} clients, server back at {:?}, {:?} windows\nbackoff: {:?}\ndecorrelated: {:?}",
        config.clients, config.outage, config.window, config.backoff, config.decorrelated
    );
    eprintln!("jitter        peak   mean(busy)  peak/mean  busy windows  reconnected");
    for h in &histograms {
        eprintln!(
            "{:<12} {:>5}  {:>10.1}  {:>9.2}  {:>12}  {:>11}",
            h.jitter.name(),
            h.peak(),
            h.mean_busy(),
            h.peak_to_mean(),
            h.busy_span().len(),
            h.reconnected,
        );
    }
    Ok(())
}
