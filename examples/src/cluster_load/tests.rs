//! The load's own checks, on made-up replies and outcomes.

use super::*;

#[test]
fn keys_amounts_and_values_are_unique_per_request() {
    assert_ne!(key(None, 1, 2, 3), key(None, 1, 3, 2));
    assert_ne!(key(None, 1, 2, 3), key(None, 2, 2, 3));
    assert_ne!(amount(1, 0), amount(0, 1));
    assert_ne!(amount(2, 5), amount(5, 2));
    let tagged = key(Some("probe"), 9, 1, 1);
    assert_eq!(key_slot(tagged.as_bytes()), key_slot(b"probe"));
    assert_eq!(
        key_slot(key(Some("probe"), 9, 7, 100).as_bytes()),
        key_slot(b"probe")
    );
}

fn incr(seq: u32, applied: Applied) -> IncrRecord {
    IncrRecord {
        tag: None,
        caller: 1,
        seq,
        slot: 10,
        started: Duration::from_millis(u64::from(seq)),
        applied,
    }
}

#[test]
fn incrs_applied_once_as_their_result_says() {
    let once = |seq| Value::bulk(amount(1, seq).to_string());
    let incrs = [
        incr(0, Applied::Ok),
        incr(1, Applied::Maybe),
        incr(2, Applied::Maybe),
        incr(3, Applied::No),
    ];
    let values = [once(0), once(1), Value::Null, Value::Null];
    let v = verify_incrs(&incrs, &values, |_, _| false);
    assert_eq!((v.stored, v.maybe_applied, v.lost), (1, 1, 0));
    assert!(v.violations.is_empty(), "{:?}", v.violations);

    // Twice, or not applied when it said so, or lost where nothing allows it.
    let twice = Value::bulk((2 * amount(1, 0)).to_string());
    let v = verify_incrs(&incrs[..1], &[twice], |_, _| true);
    assert!(
        v.violations[0].contains("applied twice"),
        "{:?}",
        v.violations
    );
    let v = verify_incrs(&incrs[3..], &[once(3)], |_, _| true);
    assert!(
        v.violations[0].contains("not applied"),
        "{:?}",
        v.violations
    );
    let v = verify_incrs(&incrs[..1], &[Value::Null], |_, _| false);
    assert!(v.violations[0].contains("not stored"), "{:?}", v.violations);
    // Lost in a failover, where the rule allows it: counted, not broken.
    let v = verify_incrs(&incrs[..1], &[Value::Null], |_, started| {
        started < Duration::from_secs(1)
    });
    assert_eq!((v.lost, v.violations.len()), (1, 0));
}

#[test]
fn a_missing_read_is_right_only_where_writes_may_be_lost() {
    let m = MissingRead {
        caller: 1,
        seq: 3,
        slot: 7,
        set_started: Duration::from_millis(5),
    };
    assert!(verify_reads(&[m], |slot, _| slot == 7).is_empty());
    assert_eq!(verify_reads(&[m], |slot, _| slot == 8).len(), 1);
}

#[test]
fn writes_resume_at_the_first_success_on_an_affected_slot() {
    let o = |kind, slot, started_ms, end| Outcome {
        kind,
        slot,
        started: Duration::from_millis(started_ms),
        took: Duration::from_millis(10),
        end,
    };
    let failed = End::Failed {
        kind: "timeout",
        maybe_applied: true,
    };
    let log = LoadLog {
        outcomes: vec![
            o(OpKind::Set, 1, 50, End::Ok),
            o(OpKind::Incr, 1, 120, failed),
            o(OpKind::Get, 1, 150, End::Ok),
            o(OpKind::Set, 2, 160, End::Ok),
            o(OpKind::Incr, 1, 300, End::Ok),
        ],
        ..LoadLog::default()
    };
    let at = Duration::from_millis(100);
    assert_eq!(
        log.writes_resumed(at, |s| s == 1),
        Some(Duration::from_millis(210))
    );
    assert_eq!(log.writes_resumed(at, |s| s == 3), None);
    assert_eq!(log.ok(), 4);
    assert_eq!(log.errors()["timeout"], 1);
}

fn plan(errors_allowed: bool) -> CallerPlan {
    CallerPlan {
        caller: 2,
        seed: 5,
        first_seq: 0,
        tag: None,
        until: Until::Count(0),
        pace: None,
        deadline: Duration::from_secs(1),
        errors_allowed,
        epoch: Instant::now(),
        observer: None,
    }
}

fn judged(
    plan: &CallerPlan,
    kind: OpKind,
    seq: u32,
    set: Applied,
    result: Result<Value, ClusterError>,
) -> (End, Vec<String>) {
    let mut log = LoadLog::default();
    let last_set = Some(LastSet {
        seq: seq.saturating_sub(1),
        started: Duration::ZERO,
        applied: set,
    });
    let end = judge(plan, kind, seq, last_set, &result, &mut log, &|| {
        "r".to_owned()
    });
    (end, log.violations)
}

#[test]
fn a_reply_must_be_the_requests_own() {
    let p = plan(true);
    let incr = |v| judged(&p, OpKind::Incr, 5, Applied::Ok, Ok(v));
    assert_eq!(incr(Value::Integer(amount(2, 5))).0, End::Ok);
    let (end, broken) = incr(Value::Integer(amount(2, 4)));
    assert_eq!((end, broken.len()), (End::Broken, 1));
    let (end, broken) = incr(Value::error("ERR boom"));
    assert!(
        end == End::Broken && broken[0].contains("error reply"),
        "{broken:?}"
    );

    let value = Value::bulk(set_value(5, 2, 3));
    let get = |set, v| judged(&p, OpKind::Get, 4, set, Ok(v));
    assert_eq!(get(Applied::Ok, value.clone()).0, End::Ok);
    assert_eq!(get(Applied::Maybe, Value::Null).0, End::Ok);
    assert_eq!(get(Applied::Ok, Value::bulk("v:other")).0, End::Broken);
    // Its SET said "not applied", yet the value is there: one broken invariant, said once.
    let (end, broken) = get(Applied::No, value);
    assert_eq!(end, End::Broken);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].contains("not applied"), "{broken:?}");
}

#[test]
fn only_the_errors_a_fault_explains_are_allowed() {
    let timeout = || ClusterError::Timeout {
        command: "GET".into(),
        timeout: Duration::from_secs(2),
        last: "CLUSTERDOWN".into(),
        maybe_applied: false,
    };
    let lost = || ClusterError::ConnectionLost {
        command: "INCRBY".into(),
        node: Arc::from("127.0.0.1:7000"),
        source: Box::new(beamline::ClientError::Timeout {
            name: Arc::from("n"),
            sent: true,
        }),
    };
    let (allowed, forbidden) = (plan(true), plan(false));
    let (end, broken) = judged(&allowed, OpKind::Get, 1, Applied::Ok, Err(timeout()));
    assert!(broken.is_empty(), "{broken:?}");
    assert_eq!(
        end,
        End::Failed {
            kind: "timeout",
            maybe_applied: false
        }
    );
    assert!(
        judged(&allowed, OpKind::Incr, 2, Applied::Ok, Err(lost()))
            .1
            .is_empty()
    );
    // A read is resent after a lost connection, never failed with it.
    assert_eq!(
        judged(&allowed, OpKind::Get, 1, Applied::Ok, Err(lost()))
            .1
            .len(),
        1
    );
    let other = ClusterError::EmptyCommand;
    assert_eq!(
        judged(&allowed, OpKind::Set, 0, Applied::Ok, Err(other))
            .1
            .len(),
        1
    );
    // With no fault in force, any error breaks the cell.
    assert_eq!(
        judged(&forbidden, OpKind::Get, 1, Applied::Ok, Err(timeout()))
            .1
            .len(),
        1
    );
    assert_eq!(error_kind(&lost()), "connection_lost");
}
