//! beamline facade (guide written below, once the pieces compile).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "resp")]
pub mod resp;

#[cfg(feature = "tower")]
pub use client::ResponseFuture;
#[cfg(feature = "client")]
pub use client::{
    BuildError, Client, ClientBuilder, ClientError, MuxConnection, Stack, Target, TransportError,
};

#[cfg(feature = "chaos")]
#[doc(inline)]
pub use beamline_chaos as chaos;
#[cfg(feature = "mux")]
#[doc(inline)]
pub use beamline_mux as mux;
#[cfg(feature = "process")]
#[doc(inline)]
pub use beamline_process as process;
#[cfg(feature = "reconnect")]
#[doc(inline)]
pub use beamline_reconnect as reconnect;
