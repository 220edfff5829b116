//! State changes are `tracing` events carrying the attempt number, the delay and the error.
//!
//! Its own test binary: a thread-scoped subscriber shares tracing's global callsite cache
//! with whatever else runs in the process, so it must run alone.

#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_reconnect::{
    BackoffConfig, FramedConnection, Jitter, OfflinePolicy, Reconnect, ReconnectConfig,
};
use tokio::io::DuplexStream;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records each event's fields as `name=value ` text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }

    /// An error with its sources, as tracing-subscriber's `fmt` prints it.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.push_str(&format!("{}={value}", field.name()));
        let mut source = value.source();
        while let Some(cause) = source {
            self.0.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        self.0.push(' ');
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn state_changes_are_traced_with_attempt_delay_and_error() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    // Refused once, then a connection over an in-memory pipe.
    let tries = Arc::new(AtomicU32::new(0));
    let peers: Arc<Mutex<Vec<DuplexStream>>> = Arc::default();
    let connect = {
        let (tries, peers) = (tries.clone(), peers.clone());
        move || {
            let (tries, peers) = (tries.clone(), peers.clone());
            async move {
                if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
                }
                let (client, server) = tokio::io::duplex(1024);
                peers.lock().unwrap().push(server);
                let lines = tokio_util::codec::LinesCodec::new_with_max_length(8 * 1024);
                Ok(FramedConnection::<String, String>::new(
                    tokio_util::codec::Framed::new(client, lines),
                ))
            }
        }
    };
    let config = ReconnectConfig::new(OfflinePolicy::FailFast)
        .name("traced")
        .backoff(
            BackoffConfig::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(1))
                .jitter(Jitter::None),
        );
    let conn = Reconnect::start(connect, config).await.unwrap();
    let mut states = conn.state_changes();
    tokio::time::timeout(
        Duration::from_secs(60),
        states.wait_for(|s| s.is_connected()),
    )
    .await
    .unwrap()
    .unwrap();
    drop(states);
    let events = capture.0.lock().unwrap().clone();
    let backing_off = events
        .iter()
        .find(|e| e.contains("backing off"))
        .unwrap_or_else(|| panic!("no backing-off event in {events:#?}"));
    assert!(backing_off.contains("attempt=2"), "{backing_off}");
    assert!(backing_off.contains("delay_ms=100"), "{backing_off}");
    assert!(backing_off.contains("refused"), "{backing_off}");
    assert!(backing_off.contains("name=traced"), "{backing_off}");
    let failed = events
        .iter()
        .find(|e| e.contains("connect failed"))
        .unwrap_or_else(|| panic!("no connect-failed event in {events:#?}"));
    assert!(failed.contains("attempt=1"), "{failed}");
    assert!(
        events
            .iter()
            .any(|e| e.contains("reconnect: connected") && e.contains("attempt=2")),
        "{events:#?}"
    );
    conn.close();
    assert!(
        capture
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("reconnect: closed") && e.contains("close was requested")),
    );
}
