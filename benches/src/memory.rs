//! Memory beside speed: a counting global allocator for every bench binary, and the
//! allocation figures `cargo xtask bench` folds into BENCHMARKS.md.
//!
//! Every binary that links this library allocates through [`Counting`], which forwards to
//! the system allocator. Outside a [`count`] window it only reads one flag per call (the
//! criterion timings are not counted); inside one it counts calls and tracks the bytes live
//! above the window's start, so a window reports how many allocations a workload made and
//! the most memory it held at once. Every thread's allocations are counted (workers, the
//! bench's own server tasks), which is what the workload costs the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use serde_json::{Value, json};

use crate::external::pretty;
use crate::{median, results_dir};

/// The global allocator of the bench binaries: the system allocator, counted inside a
/// [`count`] window.
#[derive(Debug)]
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated minus bytes freed since the window opened (negative when older memory is
/// freed inside it).
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
/// One window at a time.
static WINDOW: Mutex<()> = Mutex::new(());

/// Counts an allocation of `bytes` that `ptr` answered, when counting.
fn counted(ptr: *mut u8, bytes: usize) -> *mut u8 {
    if !ptr.is_null() && ENABLED.load(Relaxed) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        grew(bytes);
    }
    ptr
}

fn grew(bytes: usize) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    let live = LIVE.fetch_add(bytes, Relaxed).saturating_add(bytes);
    PEAK.fetch_max(live, Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(i64::try_from(bytes).unwrap_or(i64::MAX), Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and
// returns its result; the counting around it only touches atomics (it never allocates, so it
// cannot re-enter the allocator). Exercised by `count_sees_allocations_and_the_peak` below.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        counted(unsafe { System.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        counted(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation here is).
        unsafe { System.dealloc(ptr, layout) };
        if ENABLED.load(Relaxed) {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s size contract.
        let new = counted(unsafe { System.realloc(ptr, layout, new_size) }, new_size);
        if !new.is_null() && ENABLED.load(Relaxed) {
            shrank(layout.size());
        }
        new
    }
}

/// What one [`count`] window saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Calls to allocate or reallocate.
    pub allocations: u64,
    /// The most bytes held at once above what was held when the window opened.
    pub peak_bytes: u64,
}

/// Runs `f` with counting on; returns its result and what it allocated. Windows never
/// overlap (a second caller waits).
pub fn count<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    let _window = WINDOW
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ALLOCATIONS.store(0, Relaxed);
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    ENABLED.store(true, Relaxed);
    let out = f();
    ENABLED.store(false, Relaxed);
    let usage = Usage {
        allocations: ALLOCATIONS.load(Relaxed),
        peak_bytes: u64::try_from(PEAK.load(Relaxed)).unwrap_or(0),
    };
    (out, usage)
}

/// One side's figures over the rounds of [`measure`].
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// The criterion group whose workload this is (`process/cast`).
    pub group: String,
    /// `beamline...` or the peer's id, as in the group.
    pub function: String,
    /// Operations per measured iteration (allocations are divided by it).
    pub ops: u64,
    /// Allocations per operation, one figure per round.
    pub allocations_per_op: Vec<f64>,
    /// Peak bytes held during the iteration, one figure per round.
    pub peak_bytes: Vec<f64>,
}

/// Rounds of [`measure`]: enough for a median with its min–max (a ~94% interval for the
/// median with 5 rounds).
pub const ROUNDS: usize = 5;

/// Measures one iteration of each side's workload (`ops` operations; `run(i)` runs the
/// workload of `functions[i]`) for [`ROUNDS`] rounds, after one unmeasured iteration each
/// (connections, lazy buffers). The sides take turns, and the order alternates from round
/// to round.
pub fn measure(
    group: &str,
    ops: u64,
    functions: &[&str],
    mut run: impl FnMut(usize),
) -> Vec<Memory> {
    let n = functions.len();
    for i in 0..n {
        run(i);
    }
    let mut out: Vec<Memory> = functions
        .iter()
        .map(|function| Memory {
            group: group.to_owned(),
            function: (*function).to_owned(),
            ops,
            allocations_per_op: Vec::with_capacity(ROUNDS),
            peak_bytes: Vec::with_capacity(ROUNDS),
        })
        .collect();
    for round in 0..ROUNDS {
        for k in 0..n {
            let i = if round % 2 == 0 { k } else { n - 1 - k };
            let ((), usage) = count(|| run(i));
            out[i]
                .allocations_per_op
                .push(usage.allocations as f64 / ops.max(1) as f64);
            out[i].peak_bytes.push(usage.peak_bytes as f64);
        }
    }
    out
}

/// `rows` as the JSON `cargo xtask bench` reads from `target/beamline-bench/memory/`.
pub fn json(rows: &[Memory]) -> String {
    let rows: Vec<Value> = rows
        .iter()
        .map(|m| {
            json!({
                "group": m.group,
                "function": m.function,
                "ops": m.ops,
                "allocations_per_op": m.allocations_per_op,
                "peak_bytes": m.peak_bytes,
            })
        })
        .collect();
    pretty(&Value::Array(rows))
}

/// Writes `rows` to `target/beamline-bench/memory/<name>.json` and prints them.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write(name: &str, rows: &[Memory]) -> std::io::Result<PathBuf> {
    for m in rows {
        println!(
            "memory {:<34} {:<28} {:>9.2} allocations/op, peak {:>10.0} B (median of {})",
            m.group,
            m.function,
            median(&m.allocations_per_op),
            median(&m.peak_bytes),
            m.peak_bytes.len()
        );
    }
    let dir = results_dir().join("memory");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, json(rows))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_sees_allocations_and_the_peak() {
        let (len, usage) = count(|| {
            let a = vec![0u8; 64 * 1024];
            let mut b: Vec<u64> = Vec::with_capacity(4);
            b.extend(0..1024); // grows by reallocation
            let len = a.len() + b.len();
            drop(a);
            len
        });
        assert_eq!(len, 64 * 1024 + 1024);
        // Other tests' threads may allocate meanwhile: at least ours are counted.
        assert!(usage.allocations >= 2, "{usage:?}");
        assert!(usage.peak_bytes >= 64 * 1024, "{usage:?}");
        // Outside a window nothing is counted (holding the window lock keeps others out).
        let _window = WINDOW.lock().unwrap();
        let before = ALLOCATIONS.load(Relaxed);
        let v = vec![1u8; 100];
        assert_eq!(ALLOCATIONS.load(Relaxed), before);
        drop(v);
    }

    #[test]
    fn measure_alternates_and_divides_by_the_ops() {
        let mut kept = Vec::new();
        let rows = measure("layer/what", 2, &["beamline", "peer"], |i| {
            if i == 0 {
                kept.push(Box::new([0u8; 512]));
            } else {
                let _ = std::hint::black_box(vec![0u8; 10]);
            }
        });
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].allocations_per_op.len(), ROUNDS);
        // Every thread is counted: another test's thread freeing older memory inside a
        // window lowers that round's live bytes (seen in CI: one round's peak 462 B). The
        // report shows the median of the rounds, so that is what must see the 512 bytes.
        assert!(median(&rows[0].peak_bytes) >= 512.0, "{rows:?}");
        assert!(
            rows[1].allocations_per_op.iter().all(|&a| a >= 0.5),
            "{rows:?}"
        );
        let parsed: Value = serde_json::from_str(&json(&rows)).unwrap();
        assert_eq!(parsed[1]["function"], "peer");
        assert_eq!(parsed[0]["ops"], 2);
    }
}
