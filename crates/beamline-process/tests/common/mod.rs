//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Once;

/// Deliberate panics in these tests carry this prefix; the hook keeps them out of the output
/// while every other panic (a real test failure) still prints.
pub const DELIBERATE: &str = "deliberate";

/// Installs (once per test binary) a panic hook that stays quiet for deliberate panics.
pub fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !message.starts_with(DELIBERATE) {
                default(info);
            }
        }));
    });
}
