//! The load's own checks, on made-up outcomes.

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
