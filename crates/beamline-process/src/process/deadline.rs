//! Call timeouts that do not register a new timer per call.
//!
//! A fresh `tokio::time::timeout` per call locks the runtime's timer wheel twice (insert, then
//! cancel): about as much as the whole call round trip. A `call` almost never times out, so
//! instead each thread keeps a few already-registered `Sleep`s and moves one to the new
//! deadline. Moving a registered timer *later* is a single atomic compare-and-swap in tokio
//! (`Sleep::reset` only touches the wheel when the deadline moves earlier). A returned `Sleep`
//! stays registered at its old deadline; when that passes, the timer fires once with nobody
//! interested (a spurious wake-up, which every future tolerates) and the `Sleep` is dropped
//! rather than reused.
//!
//! Timers belong to one runtime, so the pool remembers whose timers it holds and is emptied
//! when the thread starts serving another runtime.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep};

/// Timers kept per thread; enough for the calls a thread has in flight at once in practice.
const POOL_MAX: usize = 32;

/// Roughly 30 years: tokio's own stand-in for "no deadline" when `now + timeout` overflows.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

struct Pool {
    runtime: Option<Id>,
    sleeps: Vec<Pin<Box<Sleep>>>,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            runtime: None,
            sleeps: Vec::new(),
        })
    };
}

/// A deadline `timeout` from now. Resolves when it passes.
pub(crate) struct Deadline {
    runtime: Id,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// # Panics
    /// Outside a tokio runtime, or in one without a time driver (as `tokio::time::timeout`).
    pub(crate) fn after(timeout: Duration) -> Self {
        let runtime = Handle::current().id();
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or_else(|| now + FAR_FUTURE);
        let pooled = POOL
            .try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.runtime == Some(runtime) {
                    pool.sleeps.pop()
                } else {
                    None
                }
            })
            .ok()
            .flatten();
        let sleep = match pooled {
            Some(mut sleep) if !sleep.is_elapsed() => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            _ => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Self {
            runtime,
            sleep: Some(sleep),
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else {
            return;
        };
        if sleep.is_elapsed() {
            return;
        }
        let runtime = self.runtime;
        // During thread teardown the pool may be gone: then the timer is simply dropped.
        let _ = POOL.try_with(move |pool| {
            let Ok(mut pool) = pool.try_borrow_mut() else {
                return;
            };
            if pool.runtime != Some(runtime) {
                pool.sleeps.clear();
                pool.runtime = Some(runtime);
            }
            if pool.sleeps.len() < POOL_MAX {
                pool.sleeps.push(sleep);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_even_when_reused() {
        let start = Instant::now();
        Deadline::after(Duration::from_secs(2)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // A timer returned before its deadline is reused and moved later, then earlier.
        drop(Deadline::after(Duration::from_secs(10)));
        let start = Instant::now();
        Deadline::after(Duration::from_secs(20)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        drop(Deadline::after(Duration::from_secs(60)));
        let start = Instant::now();
        Deadline::after(Duration::from_millis(5)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn huge_timeouts_do_not_overflow() {
        let d = Deadline::after(Duration::MAX);
        let fired = tokio::time::timeout(Duration::from_secs(3600), d).await;
        assert!(fired.is_err());
    }

    #[test]
    fn pool_is_not_shared_across_runtimes() {
        for _ in 0..3 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                drop(Deadline::after(Duration::from_secs(5)));
                let start = Instant::now();
                Deadline::after(Duration::from_secs(1)).await;
                assert_eq!(start.elapsed(), Duration::from_secs(1));
            });
        }
    }
}
