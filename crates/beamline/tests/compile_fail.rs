//! API mistakes that must stay compile errors (trybuild). One small case: each case
//! builds a crate against beamline, and the suite should stay fast.
#![cfg(all(feature = "client", feature = "resp"))]

/// A `resp::Command` is not a `Bytes`, so a client built without `.resp()` (beamline's
/// wire format) cannot be handed one, even through `.into()`: the mistake that used to
/// compile and then hang against a real Redis.
#[test]
fn a_command_given_to_a_wire_client_does_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/command_into_bytes.rs");
}
