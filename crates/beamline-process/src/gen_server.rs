//! [`GenServer`]: OTP's gen_server callbacks on top of the same processes as [`spawn`].
//!
//! A gen_server is a process whose body is a loop the library writes for you: `init`, then one
//! callback per message, then `terminate`. There is no separate call/cast plumbing: a *call* is
//! a message that carries a [`Reply`](crate::Reply) (sent with [`Addr::call`]), a *cast* is one
//! that does not (sent with [`Addr::cast`]); `handle` answers both.

use std::future::Future;

use crate::exit::ExitReason;
use crate::process::{Addr, Context, Event, Info, spawn};
use crate::unwind::catch_panic;

/// OTP's gen_server behaviour: implement the callbacks, run it with [`serve`] (as a child body)
/// or [`GenServer::spawn`].
///
/// Guarantees, as in OTP:
/// - `init` runs before any message is handled; messages sent meanwhile wait in the mailbox.
///   An `Err` from `init` ends the process with that reason (`terminate` is not called).
/// - `init` returning `Ok` acknowledges the start ([`Context::started`]): a supervisor that
///   starts the server as an [`acknowledged`](crate::ChildSpec::acknowledged) child starts
///   its next child only then, and an `init` that fails fails the supervisor's start.
/// - An `Err(reason)` from `handle` or `handle_info` ends the process with `reason`, after
///   `terminate(reason)`.
/// - A panic inside a callback is caught: `terminate` runs with
///   [`ExitReason::Panicked`] and the process ends with it. Calls in flight get
///   [`CallError::Exited`](crate::CallError::Exited).
/// - When the process traps exits ([`Context::trap_exit`]), an exit signal from its parent
///   (its supervisor shutting it down) ends it with the parent's reason, after `terminate`,
///   without calling `handle_info`. A process that does not trap exits is ended by such a
///   signal directly, and `terminate` does not run.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_process::{Context, ExitReason, GenServer, Reply};
///
/// #[derive(Default)]
/// struct Counter(u64);
///
/// enum Msg { Add(u64), Get(Reply<u64>) }
///
/// impl GenServer for Counter {
///     type Message = Msg;
///     async fn handle(&mut self, msg: Msg, _ctx: &mut Context<Msg>) -> Result<(), ExitReason> {
///         match msg {
///             Msg::Add(n) => self.0 += n,
///             Msg::Get(reply) => { let _ = reply.send(self.0); }
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let counter = Counter::default().spawn();
/// counter.cast(Msg::Add(5)).await.unwrap();
/// assert_eq!(counter.call(Msg::Get, Duration::from_secs(1)).await.unwrap(), 5);
/// # }
/// ```
pub trait GenServer: Send + Sized + 'static {
    /// What the mailbox holds. Requests that want an answer carry a [`Reply`](crate::Reply).
    type Message: Send + 'static;

    /// Runs once, before any message. Set up state, trap exits, link or monitor, register a
    /// name here; its `Ok` acknowledges the process's start to a supervisor waiting for it.
    ///
    /// # Errors
    /// An `Err` ends the process with that reason (and fails an acknowledged start).
    fn init(
        &mut self,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message (a call or a cast).
    ///
    /// # Errors
    /// An `Err` stops the server with that reason, after [`terminate`](Self::terminate).
    fn handle(
        &mut self,
        message: Self::Message,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send;

    /// Handles an exit signal (when trapping exits) or a `Down`. The default ignores it.
    ///
    /// # Errors
    /// An `Err` stops the server with that reason, after [`terminate`](Self::terminate).
    fn handle_info(
        &mut self,
        info: Info,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let _ = (info, ctx);
        async { Ok(()) }
    }

    /// Runs when the server stops for any reason other than `init` failing or an untrapped
    /// exit signal. The default does nothing.
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }

    /// Spawns the server as a process with the default mailbox.
    ///
    /// # Panics
    /// Only outside a tokio runtime, as [`spawn`].
    fn spawn(self) -> Addr<Self::Message> {
        spawn(move |ctx| serve(ctx, self))
    }
}

/// The gen_server loop: the body of a process running `server`. Use it as a child body,
/// `ChildSpec::permanent("id", |ctx| serve(ctx, MyServer::new()))`, or through
/// [`GenServer::spawn`].
///
/// # Errors
/// Ends with the server's exit reason; `Ok(())` is a normal exit.
pub async fn serve<S: GenServer>(
    mut ctx: Context<S::Message>,
    mut server: S,
) -> Result<(), ExitReason> {
    match catch_panic(server.init(&mut ctx)).await {
        Ok(Ok(())) => ctx.started(),
        Ok(Err(reason)) | Err(reason) => return Err(reason),
    }
    let reason = loop {
        let step = match ctx.recv().await {
            Event::Msg(message) => catch_panic(server.handle(message, &mut ctx)).await,
            Event::Info(Info::Exit { from, reason }) if ctx.parent() == Some(&from) => {
                break reason;
            }
            Event::Info(info) => catch_panic(server.handle_info(info, &mut ctx)).await,
        };
        match step {
            Ok(Ok(())) => {}
            Ok(Err(reason)) | Err(reason) => break reason,
        }
    };
    let reason = match catch_panic(server.terminate(&reason, &mut ctx)).await {
        Ok(()) => reason,
        // A crash in terminate is a new failure, and the one worth reporting.
        Err(panicked) => panicked,
    };
    match reason {
        ExitReason::Normal => Ok(()),
        reason => Err(reason),
    }
}
