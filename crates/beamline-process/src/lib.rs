//! placeholder
#![forbid(unsafe_code)]
mod error;
mod exit;
mod process;
pub use error::{CallError, CastError, TryCastError};
pub use exit::ExitReason;
pub use process::{
    Addr, Cast, Context, DEFAULT_CAPACITY, Event, Exited, MonitorRef, Pid, ProcessId, Recv, Reply,
    SpawnConfig, spawn, spawn_with,
};
