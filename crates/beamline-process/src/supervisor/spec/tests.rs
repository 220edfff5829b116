use super::*;

fn spec() -> ChildSpec<()> {
    ChildSpec::permanent("x", |_ctx| async { Ok(()) })
}

#[test]
fn kind_sets_the_default_shutdown_but_keeps_an_explicit_one() {
    assert_eq!(spec().shutdown, Shutdown::WORKER_DEFAULT);
    assert_eq!(
        spec().kind(ChildKind::Supervisor).shutdown,
        Shutdown::Infinity
    );
    let explicit = spec()
        .shutdown(Shutdown::Brutal)
        .kind(ChildKind::Supervisor);
    assert_eq!(explicit.shutdown, Shutdown::Brutal);
    assert_eq!(explicit.kind, ChildKind::Supervisor);
}

#[test]
fn restart_types_follow_otp() {
    let crash = ExitReason::Killed;
    assert!(Restart::Permanent.restarts_after(&ExitReason::Normal));
    assert!(Restart::Transient.restarts_after(&crash));
    assert!(!Restart::Transient.restarts_after(&ExitReason::Normal));
    assert!(!Restart::Transient.restarts_after(&ExitReason::Shutdown));
    assert!(!Restart::Temporary.restarts_after(&crash));
}
