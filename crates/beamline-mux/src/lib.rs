//! WIP
#![forbid(unsafe_code)]

mod frame;
mod mux;
mod tagged;

pub use frame::{DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, FrameError, FrameKind, HEADER_LEN};
pub use mux::{
    Cancelled, ConfigError, DEFAULT_MAX_ABANDONED, DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUARANTINE,
    Delivery, Expired, Lost, Mode, Mux, MuxConfig, MuxStats, StartError, Ticket, Transmit,
};
pub use tagged::Tagged;
