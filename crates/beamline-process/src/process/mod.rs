//! Processes: [`spawn`], the [`Addr`] you message them through, the [`Context`] a body runs
//! with, [`Pid`]s for links and monitors, and the [`Event`]s a body receives.

mod addr;
mod context;
mod core;
mod deadline;
mod event;
mod id;
mod idmap;
mod spawn;
mod task;

pub use self::addr::{Addr, Cast, Timeout};
pub(crate) use self::context::try_link_new;
pub use self::context::{Context, Recv};
pub(crate) use self::core::{Core, ExitHook, Process, StartAck, Watcher, next_key};
pub use self::event::{Event, Info, Reply};
pub use self::id::{Exited, MonitorRef, Pid, ProcessId};
pub use self::spawn::{SpawnConfig, spawn, spawn_with};
pub(crate) use self::task::start;

/// The mailbox capacity of a process unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 1024;
