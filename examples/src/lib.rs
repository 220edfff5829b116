//! Support code shared by beamline's runnable examples.
//!
//! Each example is a file in `examples/` declared in `examples/Cargo.toml` and run with
//! `cargo run --release --example NAME`; its header comment says how to try it with real
//! tools (`redis-cli`, `openssl s_client`, `nc`). What two or more examples share (a RESP
//! codec, tracing set-up) lives in this library so each example stays one screen of code.

pub mod matrix;
pub mod redis_client;
