//! Memory per idle process, measured with a counting allocator against a raw tokio task with
//! the same idle body. A process that never receives a message should cost little beyond its
//! task: its mailbox allocates nothing until a message arrives.
//!
//! Every body holds 64 bytes of state, like a real connection handler: tokio allocates a task
//! in 128-byte steps (its task cell is 128-byte aligned on x86_64), so a body with no state at
//! all would fit the smallest cell as a raw task but not once wrapped, which says nothing
//! about real processes.
//!
//! This binary holds one test so that nothing else allocates while it measures.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use beamline_process::Info;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use beamline_process::{
    Addr, ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, ExitReason, spawn,
};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator unchanged; it only counts bytes on the side.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 10_000;

/// Stand-in for a connection's own state (a socket, a small parser state).
type State = [u8; 64];

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn per_unit<T>(make: impl FnMut(usize) -> T) -> (f64, Vec<T>) {
    let before = LIVE.load(Ordering::Relaxed);
    let units: Vec<T> = (0..N).map(make).collect();
    settle().await;
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 / N as f64;
    (bytes, units)
}

async fn raw() -> f64 {
    let (bytes, tasks) = per_unit(|_| {
        tokio::spawn(async move {
            let state: State = [0; 64];
            std::future::pending::<()>().await;
            black_box(state);
        })
    })
    .await;
    for t in &tasks {
        t.abort();
    }
    drop(tasks);
    settle().await;
    bytes
}

async fn idle_body(mut ctx: Context<()>) -> Result<(), ExitReason> {
    let state: State = [0; 64];
    loop {
        if let Event::Info(Info::Exit { reason, .. }) = ctx.recv().await {
            black_box(state);
            return Err(reason);
        }
    }
}

async fn process() -> f64 {
    let (bytes, procs): (f64, Vec<Addr<()>>) = per_unit(|_| spawn(idle_body)).await;
    for p in &procs {
        p.kill();
    }
    for p in &procs {
        p.exited().await;
    }
    drop(procs);
    settle().await;
    bytes
}

async fn supervised() -> f64 {
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    settle().await;
    let (bytes, children) = per_unit(|_| {
        sup.start_child(ChildSpec::temporary("idle", idle_body).trap_exit(true))
            .unwrap()
    })
    .await;
    drop(children);
    sup.shutdown(std::time::Duration::from_secs(1))
        .await
        .unwrap();
    settle().await;
    bytes
}

#[tokio::test]
async fn an_idle_process_costs_little_more_than_a_tokio_task() {
    let raw = raw().await;
    let process = process().await;
    let child = supervised().await;
    println!(
        "bytes per idle unit: raw tokio task {raw:.0}, process {process:.0} (+{:.0}), \
         DynamicSupervisor child {child:.0} (+{:.0})",
        process - raw,
        child - raw
    );
    // Regression guards, with headroom over what was measured when this was written
    // (+144 and +293 bytes; +309 once each child's entry named its incarnation).
    assert!(
        process - raw < 200.0,
        "process overhead: {process} vs {raw}"
    );
    assert!(
        child - raw < 360.0,
        "supervised child overhead: {child} vs {raw}"
    );
}
