//! The witness of the cooperative-scheduling tests: a timer that only fires if the task
//! under test yields.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// How far paused time must move for a [`Witness`]'s timer to be due.
pub const WITNESS_DELAY: Duration = Duration::from_millis(1);

/// A timer task on the current runtime that records how far a loop had got (`progress`)
/// when it fired.
///
/// Used under paused time (`#[tokio::test(start_paused = true)]`): [`Witness::start`]
/// registers the timer, [`Witness::make_due`] moves time past it; from then on it fires the
/// next time the runtime polls its time driver, which a current-thread runtime does only when
/// the running task yields. A loop that never yields never lets it fire.
#[derive(Debug)]
pub struct Witness {
    fired_at: Arc<AtomicUsize>,
}

impl Witness {
    /// Spawns the timer task and lets it register (one yield).
    ///
    /// # Panics
    /// Outside a tokio runtime with a time driver.
    pub async fn start(progress: &Arc<AtomicUsize>) -> Witness {
        let fired_at = Arc::new(AtomicUsize::new(usize::MAX));
        tokio::spawn({
            let (progress, fired_at) = (progress.clone(), fired_at.clone());
            async move {
                tokio::time::sleep(WITNESS_DELAY).await;
                fired_at.store(progress.load(SeqCst), SeqCst);
            }
        });
        tokio::task::yield_now().await;
        Witness { fired_at }
    }

    /// Moves paused time past the timer (it fires when the runtime next polls its driver).
    ///
    /// # Panics
    /// If time is not paused.
    pub async fn make_due(&self) {
        tokio::time::advance(WITNESS_DELAY).await;
    }

    /// The progress the loop had made when the timer fired, if it did.
    pub fn fired_at(&self) -> Option<usize> {
        match self.fired_at.load(SeqCst) {
            usize::MAX => None,
            at => Some(at),
        }
    }
}
