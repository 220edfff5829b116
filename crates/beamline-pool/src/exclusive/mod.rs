//! The exclusive pool: one user per connection.

mod guard;
mod store;

pub use guard::PoolGuard;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project::pin_project;
use tokio::time::{Instant, Sleep};

use crate::clock::to_millis;
use crate::core::{Conn, Core, Deadline, Leased, Prepare, Prepared};
use crate::metrics::CloseReason;
use crate::{CheckPolicy, CheckoutError, Manager, PoolConfig, StartError};
use store::Exclusive;

type ExclusiveCore<M> = Core<M, Exclusive<<M as Manager>::Connection>>;

/// A pool of connections each used by one task at a time.
///
/// [`get`](Self::get) checks a connection out; the returned [`PoolGuard`] gives `&mut`
/// access to it and returns it when dropped. The handle is cheap to clone (an `Arc`) and
/// `Send + Sync`; every clone is the same pool.
///
/// # Guarantees
/// - **At most `max_size` connections** are open at once, counting attempts under way.
/// - **Strictly FIFO.** Checkouts that have to wait are served in arrival order, whether the
///   connection that serves them was given back or newly opened. A connection given back goes
///   to the longest waiter before anyone else can take it.
/// - **A checkout ends** with a connection, or an error that says why:
///   [`CheckoutError::Connect`] with the manager's own error when the attempt made for it
///   failed (never a timeout in its place), [`CheckoutError::CreatePanicked`] when
///   [`Manager::create`] panicked instead, [`CheckoutError::Timeout`] after the checkout
///   timeout (carrying the latest connect error if attempts are failing), or
///   [`CheckoutError::Closed`].
/// - **Nothing is lost when a checkout gives up.** A checkout that times out or is dropped
///   leaves the queue; a connection handed to it at that moment goes to the next waiter.
/// - **A suspect connection is never handed out again**: one whose user panicked while holding
///   it, one marked broken ([`PoolGuard::mark_broken`]), one [`Manager::is_broken`] flags, one
///   that failed [`Manager::check`] or [`Manager::recycle`], and one past its max lifetime are
///   closed, and a replacement is opened when a waiter or `min_idle` needs one.
/// - **Connect attempts back off** ([`PoolConfig::backoff`], jittered) after a failure, so a
///   down server is not hammered by a queue of checkouts.
/// - **`min_idle`** idle connections are kept open, refilled in the background after
///   checkouts and failures.
/// - **[`close`](Self::close)** fails every queued checkout with `Closed`, closes idle
///   connections at once and the others when they come back; later checkouts fail with
///   `Closed`.
///
/// # Examples
/// ```no_run
/// use std::io;
/// use beamline_pool::{Manager, Pool, PoolConfig};
/// use tokio::io::AsyncWriteExt;
/// use tokio::net::TcpStream;
///
/// struct Tcp(&'static str);
///
/// impl Manager for Tcp {
///     type Connection = TcpStream;
///     type Error = io::Error;
///     async fn create(&self) -> io::Result<TcpStream> { TcpStream::connect(self.0).await }
///     fn target(&self) -> String { self.0.to_string() }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::start(Tcp("127.0.0.1:7000"), PoolConfig::new(8).name("echo")).await?;
/// let mut conn = pool.get().await?;
/// conn.write_all(b"hello\n").await?;
/// drop(conn); // back in the pool
/// # Ok(()) }
/// ```
pub struct Pool<M: Manager> {
    core: Arc<ExclusiveCore<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<M: Manager> Pool<M> {
    /// Starts a pool on the current tokio runtime: validates `config`, starts the maintenance
    /// task, and opens connections as [`Start`](crate::Start) says (lazily by default).
    ///
    /// # Errors
    /// - [`StartError::Config`] for an invalid setting;
    /// - [`StartError::NoRuntime`] outside a tokio runtime;
    /// - [`StartError::Connect`] when an eager start could not open a connection (nothing is
    ///   left open).
    pub async fn start(manager: M, config: PoolConfig) -> Result<Self, StartError<M::Error>> {
        let store = Exclusive::new(config.max_size);
        Ok(Self {
            core: Core::start(manager, config, store).await?,
        })
    }

    /// Checks a connection out, waiting in FIFO order when none is idle.
    ///
    /// A used connection is [recycled](Manager::recycle) and, as the
    /// [`CheckPolicy`] says, [checked](Manager::check) before it is returned; one that fails
    /// is closed and the checkout goes on, keeping its place at the head of the queue.
    ///
    /// Cancel-safe: dropping the future gives up the checkout without losing a connection
    /// (one being recycled or checked at that moment is closed, its place kept).
    ///
    /// # Errors
    /// [`CheckoutError::Connect`] when the connect attempt made while this checkout was the
    /// longest waiter failed ([`CheckoutError::CreatePanicked`] when it panicked);
    /// [`CheckoutError::Timeout`] after the checkout timeout;
    /// [`CheckoutError::Closed`] when the pool is closed.
    pub async fn get(&self) -> Result<PoolGuard<'_, M>, CheckoutError<M::Error>> {
        let conn = self.core.get().await?;
        Ok(PoolGuard::new(Cow::Borrowed(self), conn))
    }

    /// [`get`](Self::get), with a guard that owns a handle to the pool (one `Arc` clone), so it
    /// can be moved into a spawned task.
    ///
    /// # Errors
    /// As for [`get`](Self::get).
    pub async fn get_owned(&self) -> Result<PoolGuard<'static, M>, CheckoutError<M::Error>> {
        let conn = self.core.get().await?;
        Ok(PoolGuard::new(Cow::Owned(self.clone()), conn))
    }

    crate::core::handle_methods!();
}

/// Before a connection reaches its caller: [`Manager::recycle`] if it was used, then
/// [`Manager::check`] as the [`CheckPolicy`] says. Either failing (or running past the
/// checkout's deadline) closes it; so does the checkout being dropped, or the callback
/// panicking, half-way through (see [`Preparing`]).
impl<M: Manager> Prepare<M> for Exclusive<M::Connection> {
    async fn prepare(
        core: &Arc<ExclusiveCore<M>>,
        leased: Leased<Conn<M::Connection>>,
        deadline: &mut Deadline,
    ) -> Prepared<Conn<M::Connection>> {
        let manager = &core.manager;
        let check = match core.config.check {
            CheckPolicy::Never => false,
            CheckPolicy::Always => true,
            CheckPolicy::IdleFor(idle) => {
                core.clock.now().saturating_sub(leased.lease.idle_since) >= to_millis(idle)
            }
        };
        let mut preparing = Preparing {
            core,
            leased: Some(leased),
            reason: CloseReason::RecycleFailed,
        };
        if preparing.conn().used {
            let outcome = Bounded::new(manager.recycle(&mut preparing.conn().conn), deadline).await;
            if let Some(failed) = failure(core, outcome, CloseReason::RecycleFailed) {
                return preparing.reject(failed);
            }
        }
        if check {
            preparing.reason = CloseReason::CheckFailed;
            let outcome = Bounded::new(manager.check(&mut preparing.conn().conn), deadline).await;
            if let Some(failed) = failure(core, outcome, CloseReason::CheckFailed) {
                return preparing.reject(failed);
            }
        }
        match preparing.leased.take() {
            Some(leased) => Prepared::Ready(leased.lease),
            None => unreachable!("a lease being prepared is held until it is handed on"),
        }
    }
}

/// A lease whose connection is being recycled or checked. If it is dropped still holding the
/// lease (the checkout was dropped mid-await, or the callback panicked), the connection is
/// closed for `reason` through the pool's books, as a failed recycle or check would be: its
/// state is unknown (a half-done reset, a PING whose answer is still on the wire), and its
/// place in the pool must not be lost.
struct Preparing<'a, M: Manager> {
    core: &'a Arc<ExclusiveCore<M>>,
    leased: Option<Leased<Conn<M::Connection>>>,
    reason: CloseReason,
}

impl<M: Manager> Preparing<'_, M> {
    fn conn(&mut self) -> &mut Conn<M::Connection> {
        match &mut self.leased {
            Some(leased) => &mut leased.lease,
            None => unreachable!("a lease being prepared is held until it is handed on"),
        }
    }

    /// Closes the connection (it failed) and ends the attempt with `outcome`.
    fn reject<C>(mut self, outcome: Prepared<C>) -> Prepared<C> {
        if let Some(leased) = self.leased.take() {
            self.core.reject(leased, self.reason);
        }
        outcome
    }
}

impl<M: Manager> Drop for Preparing<'_, M> {
    fn drop(&mut self) {
        if let Some(leased) = self.leased.take() {
            let reason = if std::thread::panicking() {
                CloseReason::Panicked
            } else {
                self.reason
            };
            self.core.reject(leased, reason);
        }
    }
}

/// How a recycle or check that did not succeed ends the attempt (`None`: it succeeded).
fn failure<M: Manager, C>(
    core: &ExclusiveCore<M>,
    outcome: Option<Result<(), M::Error>>,
    reason: CloseReason,
) -> Option<Prepared<C>> {
    match outcome {
        Some(Ok(())) => None,
        Some(Err(error)) => {
            tracing::debug!(pool = %core.name, reason = reason.name(), error = &error as &(dyn std::error::Error + 'static), "connection discarded on checkout");
            Some(Prepared::Discarded)
        }
        None => Some(Prepared::TimedOut),
    }
}

/// A future bounded by the checkout deadline, whose timer starts only if the future does not
/// finish on its first poll: a no-op `recycle` costs no clock read. `None` when the deadline
/// passed first.
#[pin_project]
struct Bounded<'d, F> {
    #[pin]
    future: F,
    #[pin]
    timer: Option<Sleep>,
    deadline: &'d mut Deadline,
}

impl<'d, F> Bounded<'d, F> {
    fn new(future: F, deadline: &'d mut Deadline) -> Self {
        Self {
            future,
            timer: None,
            deadline,
        }
    }
}

impl<F: Future> Future for Bounded<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if this.timer.is_none() {
            let Some(at) = this.deadline.at(Instant::now()) else {
                return Poll::Pending;
            };
            this.timer.set(Some(tokio::time::sleep_until(at)));
        }
        match this.timer.as_pin_mut().map(|t| t.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(None),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{FastTake, Step, Store};
    use std::convert::Infallible;

    struct Numbers;

    impl Manager for Numbers {
        type Connection = u32;
        type Error = Infallible;
        async fn create(&self) -> Result<u32, Infallible> {
            Ok(7)
        }
        fn target(&self) -> String {
            "numbers".into()
        }
    }

    /// The interleaving the gate exists for, played step by step on one thread: a return
    /// sees the gate clear, then a checkout queues (finding nothing), then the return leaves
    /// its connection in its shard. Re-reading the gate afterwards is what hands the
    /// connection to the queued checkout.
    #[tokio::test(start_paused = true)]
    async fn a_fast_return_racing_a_queueing_checkout_still_serves_it() {
        let config = PoolConfig::new(1).check(CheckPolicy::Never);
        let pool = Pool::start(Numbers, config).await.unwrap();
        let core = &pool.core;
        let conn = core
            .lease(false, &mut Deadline::new(None))
            .await
            .unwrap()
            .lease;
        // The returning thread: the gate is clear ...
        assert!(core.gate.0.is_clear());
        // ... when another checkout queues: nothing idle, max_size reached.
        let Step::Wait(id) = core.checkout(false) else {
            panic!("nothing to take")
        };
        assert!(!core.gate.0.is_clear());
        // The return goes on and leaves the connection in its shard.
        let now = core.clock.now();
        assert!(Exclusive::fast_release(&core.fast, conn, now).is_ok());
        assert_eq!(core.lock().store.idle(), 1, "idle, while a checkout waits");
        // Re-reading the gate sends the return to settle under the pool lock.
        assert!(!core.gate.0.is_clear());
        core.settle();
        let served = core.lock().waiters.try_take(id);
        assert!(matches!(served, Some(Ok(c)) if c.conn == 7));
        assert!(matches!(
            Exclusive::fast_acquire(&core.fast, now),
            FastTake::Empty
        ));
    }
}
