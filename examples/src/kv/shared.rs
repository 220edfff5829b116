//! What every connection of one kv server shares.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use beamline::resp::{RespCodec, RespLimits};
use tokio::time::Instant;

use super::blocking::Blocking;
use super::pubsub::Hub;
use super::settings::{Applied, Settings};
use super::store::Store;

/// The server's counters (INFO).
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) started: Instant,
    pub(crate) connected: AtomicUsize,
}

/// What every connection of one kv server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) blocking: Blocking,
    pub(crate) hub: Hub,
    pub(crate) settings: Settings,
    /// The request decoder's settings (limits, inline commands), cloned by each new
    /// connection; CONFIG SET changes the limits for connections opened afterwards.
    codec: RwLock<RespCodec>,
    /// The longest string a command may make (`proto-max-bulk-len`).
    max_string: AtomicUsize,
    /// The most bytes a request may take (`client-query-buffer-limit`), which also bounds
    /// what MULTI queues.
    max_request: AtomicUsize,
    pub(crate) stats: Stats,
}

impl Shared {
    pub(crate) fn new(
        store: Arc<Store>,
        codec: RespCodec,
        max_bulk_len: usize,
        max_request_len: usize,
        settings: Settings,
        pubsub_limit: usize,
    ) -> Self {
        Self {
            max_string: AtomicUsize::new(max_bulk_len),
            max_request: AtomicUsize::new(max_request_len),
            store,
            blocking: Blocking::default(),
            hub: Hub::new(pubsub_limit),
            settings,
            codec: RwLock::new(codec),
            stats: Stats {
                started: Instant::now(),
                connected: AtomicUsize::new(0),
            },
        }
    }

    /// A decoder for a new connection.
    pub(crate) fn codec(&self) -> RespCodec {
        self.codec
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The longest string a command may make (`proto-max-bulk-len`).
    pub(crate) fn max_string(&self) -> usize {
        self.max_string.load(Ordering::Relaxed)
    }

    /// The most bytes a request may take.
    pub(crate) fn max_request(&self) -> usize {
        self.max_request.load(Ordering::Relaxed)
    }

    /// Applies what a CONFIG SET changed.
    pub(crate) fn apply(&self, applied: &Applied) {
        if let Some(limit) = applied.pubsub_limit {
            self.hub
                .set_limit(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        if applied.max_bulk_len.is_none() && applied.max_request_len.is_none() {
            return;
        }
        let mut codec = self.codec.write().unwrap_or_else(PoisonError::into_inner);
        let mut limits: RespLimits = codec.limits();
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = applied.max_bulk_len {
            limits = limits.max_bulk_len(size(n));
            self.max_string.store(size(n), Ordering::Relaxed);
        }
        if let Some(n) = applied.max_request_len {
            limits = limits.max_frame_len(size(n));
            self.max_request.store(size(n), Ordering::Relaxed);
        }
        *codec = RespCodec::with_limits(limits).inline_commands(true);
    }
}
