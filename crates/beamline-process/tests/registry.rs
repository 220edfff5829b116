//! `Registry`: register, look up, names freed on exit.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use beamline_process::{Addr, Context, ExitReason, RegisterError, Registry, spawn};

fn idle() -> Addr<u32> {
    spawn(|mut ctx: Context<u32>| async move {
        loop {
            ctx.recv().await;
        }
    })
}

#[tokio::test]
async fn register_lookup_and_unregister() {
    let reg: Registry<u32> = Registry::new();
    let a = idle();
    reg.register("a".to_string(), &a).unwrap();
    reg.register("alias".to_string(), &a).unwrap();
    assert_eq!(reg.lookup("a"), Some(a.clone()));
    assert_eq!(reg.len(), 2);
    let mut names = reg.names();
    names.sort();
    assert_eq!(names, ["a", "alias"]);
    assert_eq!(reg.unregister("alias"), Some(a.clone()));
    assert_eq!(reg.lookup("alias"), None);
    assert_eq!(reg.unregister("alias"), None);
}

#[tokio::test]
async fn a_name_held_by_a_live_process_is_refused() {
    let reg: Registry<u32> = Registry::new();
    let a = idle();
    let b = idle();
    reg.register("x".to_string(), &a).unwrap();
    match reg.register("x".to_string(), &b) {
        Err(RegisterError::Taken { name, holder }) => {
            assert_eq!(name, "x");
            assert_eq!(holder, a.id());
        }
        other => panic!("expected Taken, got {other:?}"),
    }
    assert_eq!(reg.lookup("x"), Some(a));
}

#[tokio::test]
async fn the_name_is_freed_when_the_process_exits() {
    let reg: Registry<u32> = Registry::new();
    let a = idle();
    reg.register("x".to_string(), &a).unwrap();
    a.kill();
    a.exited().await;
    assert_eq!(reg.lookup("x"), None);
    assert!(reg.is_empty(), "the entry itself is gone, not just hidden");
    let b = idle();
    reg.register("x".to_string(), &b).unwrap();
    assert_eq!(reg.lookup("x"), Some(b));
}

#[tokio::test]
async fn an_unregistered_name_does_not_come_back_or_vanish_for_the_next_holder() {
    let reg: Registry<u32> = Registry::new();
    let a = idle();
    reg.register("x".to_string(), &a).unwrap();
    reg.unregister("x");
    let b = idle();
    reg.register("x".to_string(), &b).unwrap();
    a.kill();
    a.exited().await;
    assert_eq!(reg.lookup("x"), Some(b), "a's exit must not free b's name");
}

#[tokio::test]
async fn registering_an_exited_process_fails() {
    let reg: Registry<u32, &'static str> = Registry::new();
    let a = idle();
    a.kill();
    a.exited().await;
    match reg.register("x", &a) {
        Err(RegisterError::Exited {
            name: "x",
            reason: ExitReason::Killed,
        }) => {}
        other => panic!("expected Exited, got {other:?}"),
    }
    assert!(reg.is_empty());
}
