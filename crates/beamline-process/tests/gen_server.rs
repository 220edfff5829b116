//! `GenServer`: init, handle, handle_info, terminate, and how each ending is reported.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::time::Duration;

use beamline_process::{
    CallError, ChildSpec, Context, ExitReason, GenServer, Info, Reply, Strategy, Supervisor,
    SupervisorSpec, serve, spawn,
};
use common::{DELIBERATE, quiet_deliberate_panics};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

const SECOND: Duration = Duration::from_secs(1);

enum Msg {
    Add(u64),
    Get(Reply<u64>),
    Stop(ExitReason),
    Panic(Reply<u64>),
    Watch(beamline_process::Pid),
}

struct Counter {
    total: u64,
    log: UnboundedSender<String>,
    trap: bool,
}

impl GenServer for Counter {
    type Message = Msg;

    async fn init(&mut self, ctx: &mut Context<Msg>) -> Result<(), ExitReason> {
        ctx.trap_exit(self.trap);
        let _ = self.log.send("init".into());
        Ok(())
    }

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Msg>) -> Result<(), ExitReason> {
        match msg {
            Msg::Add(n) => self.total += n,
            Msg::Get(reply) => {
                let _ = reply.send(self.total);
            }
            Msg::Stop(reason) => return Err(reason),
            Msg::Panic(_reply) => panic!("{DELIBERATE}: in handle"),
            Msg::Watch(pid) => {
                ctx.monitor(&pid);
            }
        }
        Ok(())
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut Context<Msg>) -> Result<(), ExitReason> {
        let line = match info {
            Info::Down { reason, .. } => format!("down {reason}"),
            Info::Exit { reason, .. } => format!("exit {reason}"),
        };
        let _ = self.log.send(line);
        Ok(())
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Context<Msg>) {
        let _ = self.log.send(format!("terminate {reason}"));
    }
}

fn counter(log: &UnboundedSender<String>, trap: bool) -> Counter {
    Counter {
        total: 0,
        log: log.clone(),
        trap,
    }
}

#[tokio::test]
async fn calls_and_casts_go_through_handle_after_init() {
    let (tx, mut log) = unbounded_channel();
    let c = counter(&tx, false).spawn();
    c.cast(Msg::Add(2)).await.unwrap();
    c.cast(Msg::Add(3)).await.unwrap();
    assert_eq!(c.call(Msg::Get, SECOND).await.unwrap(), 5);
    assert_eq!(log.recv().await.unwrap(), "init");
}

#[tokio::test]
async fn an_error_from_handle_runs_terminate_then_ends_the_process_with_it() {
    let (tx, mut log) = unbounded_channel();
    let c = counter(&tx, false).spawn();
    c.cast(Msg::Stop(ExitReason::Shutdown)).await.unwrap();
    assert!(matches!(c.exited().await, ExitReason::Shutdown));
    assert_eq!(log.recv().await.unwrap(), "init");
    assert_eq!(log.recv().await.unwrap(), "terminate shutdown");

    let c = counter(&tx, false).spawn();
    c.cast(Msg::Stop(ExitReason::Normal)).await.unwrap();
    assert!(matches!(c.exited().await, ExitReason::Normal));
}

#[tokio::test]
async fn a_panic_in_handle_runs_terminate_and_fails_the_call_in_flight() {
    quiet_deliberate_panics();
    let (tx, mut log) = unbounded_channel();
    let c = counter(&tx, false).spawn();
    match c.call(Msg::Panic, Duration::from_secs(3600)).await {
        Err(CallError::Exited {
            reason: ExitReason::Panicked(m),
            ..
        }) => assert!(m.contains("in handle")),
        other => panic!("expected Exited(Panicked), got {other:?}"),
    }
    assert_eq!(log.recv().await.unwrap(), "init");
    assert!(log.recv().await.unwrap().starts_with("terminate panicked"));
}

#[tokio::test]
async fn handle_info_receives_down_notices() {
    let (tx, mut log) = unbounded_channel();
    let c = counter(&tx, false).spawn();
    let target = spawn(|mut ctx: Context<()>| async move {
        ctx.recv().await;
        Err(ExitReason::Shutdown)
    });
    c.cast(Msg::Watch(target.pid())).await.unwrap();
    c.call(Msg::Get, SECOND).await.unwrap(); // the monitor is in place
    target.cast(()).await.unwrap();
    assert_eq!(log.recv().await.unwrap(), "init");
    assert_eq!(log.recv().await.unwrap(), "down shutdown");
}

#[tokio::test]
async fn an_init_error_ends_the_process_without_terminate() {
    struct Refuses(UnboundedSender<String>);
    impl GenServer for Refuses {
        type Message = ();
        async fn init(&mut self, _ctx: &mut Context<()>) -> Result<(), ExitReason> {
            Err(ExitReason::error(std::io::Error::other("port in use")))
        }
        async fn handle(&mut self, _: (), _ctx: &mut Context<()>) -> Result<(), ExitReason> {
            Ok(())
        }
        async fn terminate(&mut self, _: &ExitReason, _ctx: &mut Context<()>) {
            let _ = self.0.send("terminate".into());
        }
    }
    let (tx, mut log) = unbounded_channel();
    let addr = Refuses(tx).spawn();
    assert_eq!(addr.exited().await.to_string(), "error: port in use");
    assert!(log.recv().await.is_none(), "terminate did not run");
}

#[tokio::test]
async fn a_supervised_server_that_traps_exits_terminates_on_shutdown() {
    let (tx, mut log) = unbounded_channel();
    let log_for_spec = tx.clone();
    let spec = ChildSpec::permanent("counter", move |ctx| {
        serve(ctx, counter(&log_for_spec, true))
    });
    let handle = spec.handle();
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec))
        .await
        .unwrap();
    handle.cast(Msg::Add(1)).await.unwrap();
    assert_eq!(handle.call(Msg::Get, SECOND).await.unwrap(), 1);
    sup.shutdown().await.unwrap();
    assert_eq!(log.recv().await.unwrap(), "init");
    // The parent's exit signal ends the server (with its reason) without handle_info.
    assert_eq!(log.recv().await.unwrap(), "terminate shutdown");
    assert!(matches!(
        handle.current().exit_reason(),
        Some(ExitReason::Shutdown)
    ));
    drop(tx);
}

/// `ChildSpec::gen_server`: a GenServer as a child in one line, started as OTP's
/// `start_link` does (the supervisor's start returns after `init`), restarted with fresh
/// state after a crash; an `init` that fails fails the supervisor's start.
#[tokio::test]
async fn a_gen_server_child_is_one_line_acknowledged_after_init() {
    let (tx, mut log) = unbounded_channel();
    let log_for_spec = tx.clone();
    let spec = ChildSpec::gen_server("counter", move || counter(&log_for_spec, false));
    let handle = spec.handle();
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec))
        .await
        .unwrap();
    // Acknowledged: init has run by the time the supervisor's start returned.
    assert_eq!(log.try_recv().unwrap(), "init");
    handle.cast(Msg::Add(2)).await.unwrap();
    assert_eq!(
        handle
            .call(Msg::Get, beamline_process::Timeout::Infinity)
            .await
            .unwrap(),
        2
    );
    let first = handle.current();
    first.cast(Msg::Stop(ExitReason::Killed)).await.unwrap();
    first.exited().await;
    sup.count_children().await.unwrap(); // ordered after the restart
    assert_eq!(handle.call(Msg::Get, SECOND).await.unwrap(), 0);

    struct Refuses;
    impl GenServer for Refuses {
        type Message = ();
        async fn init(&mut self, _ctx: &mut Context<()>) -> Result<(), ExitReason> {
            Err(ExitReason::error(std::io::Error::other("port in use")))
        }
        async fn handle(&mut self, _: (), _ctx: &mut Context<()>) -> Result<(), ExitReason> {
            Ok(())
        }
    }
    let refused = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::gen_server("db", || Refuses)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, beamline_process::StartError::Child { child, .. } if child.as_str() == "db"),
        "{refused:?}"
    );
    drop(tx);
}
