//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

/// Deliberate panics in these tests carry this prefix; the hook keeps them out of the output
/// while every other panic (a real test failure) still prints.
pub const DELIBERATE: &str = "deliberate";

/// Installs (once per test binary) a panic hook that stays quiet for deliberate panics.
pub fn quiet_deliberate_panics() {
    beamline_testkit::quiet_panics(|message| message.starts_with(DELIBERATE));
}
