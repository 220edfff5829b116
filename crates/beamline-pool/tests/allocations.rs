//! A checkout that finds an idle connection, and its return, allocate nothing: counted by a
//! global allocator that forwards to the system's and counts calls from the measuring thread.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;

use beamline_pool::{CheckPolicy, Manager, Pool, PoolConfig, SharedPool};

thread_local! {
    /// Allocations made by this thread while `COUNTING` is set.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

struct Counting;

// The allocator only counts, then forwards every call unchanged to `System`, so it upholds
// exactly the contract `System` does. Counting touches only const-initialised thread-locals
// (no allocation, no re-entry); `try_with` tolerates threads that are shutting down.
#[allow(unsafe_code)]
// SAFETY: every method forwards its arguments unchanged to `System`, whose `GlobalAlloc`
// implementation is sound; the counting side effect cannot allocate or unwind.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout the caller gave us, which meets `alloc`'s requirements.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through `alloc`/`realloc` above) with
        // this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` is the caller's, who
        // upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn count() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

/// Allocations this thread makes while polling `f` (not while other tasks run in between:
/// a checkout loop yields now and then, and the pool's maintenance may run there).
async fn allocations_in<F: Future<Output = ()>>(f: F) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        COUNTING.with(|on| on.set(true));
        let polled = f.as_mut().poll(cx);
        COUNTING.with(|on| on.set(false));
        polled
    })
    .await;
    ALLOCATIONS.with(Cell::get) - before
}

struct Numbers;

impl Manager for Numbers {
    type Connection = u64;
    type Error = io::Error;
    async fn create(&self) -> io::Result<u64> {
        Ok(7)
    }
    fn target(&self) -> String {
        "numbers".into()
    }
}

/// More checkouts than one cooperative budget (128): the first forced yield makes tokio's
/// scheduler allocate its list of deferred wakers once, which the warm-up pays for.
const WARM_UP: usize = 300;

/// Every guarantee on: timeouts, idle timeout, lifetime, min_idle, a check on every checkout.
fn config() -> PoolConfig {
    PoolConfig::new(4).min_idle(2).check(CheckPolicy::Always)
}

#[tokio::test(flavor = "current_thread")]
async fn an_exclusive_checkout_and_return_allocate_nothing() {
    let pool = Pool::start(Numbers, config()).await.unwrap();
    for _ in 0..WARM_UP {
        drop(pool.get().await.unwrap()); // open and warm up
    }
    let allocations = allocations_in(async {
        for _ in 0..1000 {
            let conn = pool.get().await.unwrap();
            assert_eq!(*conn, 7);
        }
    })
    .await;
    assert_eq!(allocations, 0);
    assert_eq!(pool.metrics().checkouts, 1000 + WARM_UP as u64);
}

#[tokio::test(flavor = "current_thread")]
async fn a_shared_checkout_and_return_allocate_nothing() {
    let pool = SharedPool::start(Numbers, config(), 4).await.unwrap();
    for _ in 0..WARM_UP {
        drop(pool.get().await.unwrap());
    }
    let allocations = allocations_in(async {
        for _ in 0..1000 {
            let share = pool.get().await.unwrap();
            assert_eq!(*share, 7);
        }
    })
    .await;
    assert_eq!(allocations, 0);
}
