//! placeholder
#![forbid(unsafe_code)]
mod error;
mod exit;
mod gen_server;
mod process;
mod registry;
mod supervisor;
pub use error::{CallError, CastError, TryCastError};
pub use exit::ExitReason;
pub use gen_server::{GenServer, Info, serve};
pub use process::{
    Addr, Cast, Context, DEFAULT_CAPACITY, Event, Exited, MonitorRef, Pid, ProcessId, Recv, Reply,
    SpawnConfig, spawn, spawn_with,
};
pub use registry::{RegisterError, Registry};
pub use supervisor::{
    Child, ChildCounts, ChildId, ChildInfo, ChildKind, ChildSpec, DynamicSupervisor,
    DynamicSupervisorConfig, DynamicSupervisorMsg, Intensity, Restart, RestartIntensityExceeded,
    Shutdown, ShutdownReport, StartChildError, StartError, Strategy, Supervisor,
    SupervisorExited, SupervisorMsg, SupervisorSpec, TerminateChildError,
};
