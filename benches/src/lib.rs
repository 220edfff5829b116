//! Shared set-up for beamline's criterion benches.
//!
//! Conventions every bench file follows, so `cargo xtask bench` can pair results:
//! - one criterion group per measurement, named `<layer>/<what>` (`process/cast`);
//! - the beamline function's id starts with `beamline`; every other id in the group is a
//!   peer measured in the same run (`tokio-mpsc`, `kameo`, `deadpool`);
//! - throughput is declared (`Throughput::Elements`) wherever a rate is the natural unit.
//!
//! Code the bench files share (runtimes, loopback peers) lives in this library.
