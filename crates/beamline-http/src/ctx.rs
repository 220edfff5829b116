//! What one connection's parts share: its request counts (in flight, ended), the bytes
//! received, the upgrade and kill flags with the wakers they need, and the HTTP/2 streams
//! waiting to run inside the connection's process.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use beamline_server::Activity;
use futures::task::AtomicWaker;

use crate::HttpConn;
use crate::stats::{HttpStats, Stats};

/// A task of the connection (an HTTP/2 stream), run by the connection's own driver.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

const UPGRADING: u8 = 1;
const IO_DROPPED: u8 = 2;
const KILLED: u8 = 4;
const TASKS_QUEUED: u8 = 8;
const HTTP2: u8 = 16;
const READ_NOTIFIED: u8 = 32;

/// One connection's shared state. Its counters have one writer at a time (everything of a
/// connection runs in its process's task, upgraded streams aside), so they count with a load
/// and a store, no locked instruction.
pub(crate) struct ConnCtx {
    pub(crate) stats: Arc<Stats>,
    pub(crate) activity: Activity,
    pub(crate) conn: HttpConn,
    started: AtomicU64,
    ended: AtomicU64,
    /// Whether the requests the steps had not counted were added to the server's count.
    flushed: AtomicBool,
    bytes: AtomicU64,
    flags: AtomicU8,
    /// The upgraded stream's reader and writer, woken when the connection is killed.
    pub(crate) read_waker: AtomicWaker,
    pub(crate) write_waker: AtomicWaker,
    /// The driver, waiting for an upgraded stream to be dropped.
    pub(crate) owner: AtomicWaker,
    tasks: Mutex<Vec<Task>>,
}

impl ConnCtx {
    pub(crate) fn new(stats: Arc<Stats>, activity: Activity, conn: HttpConn) -> Self {
        Self {
            stats,
            activity,
            conn,
            started: AtomicU64::new(0),
            flushed: AtomicBool::new(false),
            ended: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            flags: AtomicU8::new(0),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
            owner: AtomicWaker::new(),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn bump(counter: &AtomicU64) -> u64 {
        let n = counter.load(Relaxed) + 1;
        counter.store(n, Relaxed);
        n
    }

    /// A request was handed to the service.
    pub(crate) fn request_started(&self) {
        let n = Self::bump(&self.started);
        if n.is_multiple_of(HttpStats::REQUESTS_STEP) {
            self.stats.requests(HttpStats::REQUESTS_STEP);
        }
    }

    /// A request ended (its response sent, or given up).
    pub(crate) fn request_ended(&self) {
        Self::bump(&self.ended);
    }

    /// Requests handed to the service so far, and ended so far.
    pub(crate) fn requests(&self) -> (u64, u64) {
        (self.started.load(Relaxed), self.ended.load(Relaxed))
    }

    /// Adds the requests the steps have not counted yet. Once: the connection's function
    /// calls it as it returns (before its process's exit is published, so a drain that has
    /// returned has every request counted), and the end-of-connection guard calls it again
    /// for a connection that was killed instead.
    pub(crate) fn flush_requests(&self) {
        if !self.flushed.swap(true, Relaxed) {
            self.stats
                .requests(self.started.load(Relaxed) % HttpStats::REQUESTS_STEP);
        }
    }

    pub(crate) fn add_bytes(&self, n: usize) {
        let total = self.bytes.load(Relaxed) + n as u64;
        self.bytes.store(total, Relaxed);
    }

    /// Bytes received so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    fn set(&self, flag: u8) {
        self.flags.fetch_or(flag, Relaxed);
    }

    fn has(&self, flag: u8) -> bool {
        self.flags.load(Relaxed) & flag != 0
    }

    /// The connection speaks HTTP/2 (seen on its first request).
    pub(crate) fn http2(&self) {
        self.set(HTTP2);
    }

    pub(crate) fn is_http2(&self) -> bool {
        self.has(HTTP2)
    }

    /// A `101 Switching Protocols` is on its way: the socket may outlive the HTTP connection.
    pub(crate) fn upgrading(&self) {
        self.set(UPGRADING);
    }

    pub(crate) fn is_upgrading(&self) -> bool {
        self.has(UPGRADING)
    }

    /// Bytes arrived on an upgraded stream, perhaps in another task: wakes the driver (once
    /// until it runs), so the server's read timeout sees them when they come, not late.
    pub(crate) fn upgraded_read(&self) {
        if self.flags.fetch_or(READ_NOTIFIED, Relaxed) & READ_NOTIFIED == 0 {
            self.owner.wake();
        }
    }

    /// The driver ran: the next read on an upgraded stream wakes it again.
    pub(crate) fn reads_seen(&self) {
        self.flags.fetch_and(!READ_NOTIFIED, Relaxed);
    }

    /// The socket wrapper was dropped (by hyper, or by whoever held the upgraded stream).
    pub(crate) fn io_dropped(&self) {
        self.set(IO_DROPPED);
        self.owner.wake();
    }

    pub(crate) fn is_io_dropped(&self) -> bool {
        self.has(IO_DROPPED)
    }

    /// The connection's process ended: an upgraded stream still held elsewhere must stop.
    pub(crate) fn kill(&self) {
        self.set(KILLED);
        self.read_waker.wake();
        self.write_waker.wake();
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.has(KILLED)
    }

    /// Queues an HTTP/2 stream for the driver (called from inside the driver's poll).
    pub(crate) fn spawn(&self, task: Task) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
        self.set(TASKS_QUEUED);
    }

    /// The queued tasks, if any (one load when there are none: HTTP/1 never queues).
    pub(crate) fn take_tasks(&self) -> Option<Vec<Task>> {
        if !self.has(TASKS_QUEUED) {
            return None;
        }
        self.flags.fetch_and(!TASKS_QUEUED, Relaxed);
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        Some(std::mem::take(&mut *tasks))
    }
}

impl std::fmt::Debug for ConnCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnCtx")
            .field("conn", &self.conn)
            .field("requests", &self.requests())
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}
