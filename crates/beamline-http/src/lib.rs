//! hyper and axum served by beamline-server.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod conn;
mod ctx;
mod driver;
mod error;
mod exec;
mod io;
mod serve;
mod service;
mod stats;

pub use config::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONCURRENT_STREAMS,
    DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
    DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS, Http, MIN_MAX_HEADER_SIZE,
};
pub use conn::HttpConn;
pub use error::ServeError;
pub use serve::{HttpHandle, serve};
pub use stats::HttpStats;
