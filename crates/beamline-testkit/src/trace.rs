//! A `tracing` subscriber that records every event as text, for tests that check what is
//! told.

use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records each event as `LEVEL name=value name=value …` (the message is the `message`
/// field). Install it with `tracing::subscriber::set_default(capture.clone())` in a test
/// binary of its own: a thread-scoped subscriber shares tracing's global callsite cache with
/// whatever else runs in the process.
#[derive(Clone, Debug, Default)]
pub struct TraceCapture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }

    /// An error with its sources, as tracing-subscriber's `fmt` prints it.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.push_str(&format!(" {}={value}", field.name()));
        let mut source = value.source();
        while let Some(cause) = source {
            self.0.push_str(&format!(": {cause}"));
            source = cause.source();
        }
    }
}

impl Subscriber for TraceCapture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(event.metadata().level().to_string());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl TraceCapture {
    /// Every event so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The events that contain every one of `words`.
    pub fn with(&self, words: &[&str]) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| words.iter().all(|w| e.contains(w)))
            .collect()
    }
}
