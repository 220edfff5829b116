//! beamline facade (guide written below, once the pieces compile).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "resp")]
pub mod resp;
