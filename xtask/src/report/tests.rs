use std::time::{Duration, SystemTime};

use super::render::{BEGIN, END, describe};
use super::*;

/// Shaped like criterion 0.8's files (trimmed to the fields xtask reads, plus extras).
fn bench_json(function: &str, value: Option<&str>, throughput: &str) -> String {
    let value = value.map_or("null".to_owned(), |v| format!("\"{v}\""));
    format!(
        r#"{{"group_id":"process/cast","function_id":"{function}","value_str":{value},
           "throughput":{throughput},"full_id":"process/cast/{function}",
           "directory_name":"process_cast/{function}","title":"process/cast/{function}"}}"#
    )
}

fn estimates_json(mean: f64, slope: Option<f64>) -> String {
    let est = |x: f64| {
        format!(
            r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},
               "point_estimate":{x},"standard_error":1.0}}"#,
            x * 0.98,
            x * 1.02
        )
    };
    let slope = slope.map_or("null".to_owned(), est);
    format!(
        r#"{{"mean":{},"median":{},"median_abs_dev":{},"slope":{slope},"std_dev":{}}}"#,
        est(mean),
        est(mean),
        est(1.0),
        est(1.0)
    )
}

#[test]
fn parses_criterion_files_and_prefers_the_slope() {
    let r = parse_result(
        &bench_json("beamline", None, r#"{"Elements":1000}"#),
        &estimates_json(120.0, Some(100.0)),
    )
    .unwrap();
    assert_eq!(r.group, "process/cast");
    assert_eq!(r.function, "beamline");
    assert_eq!(r.value, None);
    assert_eq!(r.estimate.point, 100.0);
    assert_eq!((r.estimate.lo, r.estimate.hi), (98.0, 102.0));
    assert_eq!(r.throughput, Some(Throughput::Elements(1000)));
    let r = parse_result(
        &bench_json("tokio-mpsc", Some("64"), "null"),
        &estimates_json(90.0, None),
    )
    .unwrap();
    assert_eq!(r.estimate.point, 90.0);
    assert_eq!(r.value.as_deref(), Some("64"));
    assert_eq!(r.throughput, None);
}

#[test]
fn malformed_files_are_errors_not_panics() {
    assert!(parse_result("{", &estimates_json(1.0, None)).is_err());
    assert!(parse_result(&bench_json("x", None, "null"), r#"{"mean":{}}"#).is_err());
    assert!(parse_result(r#"{"function_id":"x"}"#, &estimates_json(1.0, None)).is_err());
}

/// A criterion result of `ns` ± `pct` percent.
fn result(group: &str, function: &str, ns: f64, pct: f64) -> BenchResult {
    BenchResult {
        group: group.into(),
        function: function.into(),
        value: None,
        estimate: stats::Interval {
            point: ns,
            lo: ns * (1.0 - pct / 100.0),
            hi: ns * (1.0 + pct / 100.0),
        },
        throughput: Some(Throughput::Elements(1)),
        external: None,
        written: None,
        stamp: stamp("abc1234", "2026-11-25"),
    }
}

fn stamp(commit: &str, date: &str) -> Stamp {
    Stamp {
        commit: commit.into(),
        date: date.into(),
    }
}

fn header() -> Header {
    Header {
        command: "cargo xtask bench".into(),
        stamp: stamp("abc1234", "2026-11-25"),
        machine: Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            rustc: "rustc 1.95.0".into(),
        },
    }
}

fn full(results: &[BenchResult]) -> Update<'_> {
    Update {
        results,
        memory: &[],
        sections: &[],
        replace_all: true,
    }
}

#[test]
fn table_shows_ratio_interval_goal_verdict_and_stamp() {
    let results = [
        result("process/cast", "beamline", 100.0, 1.0),
        result("process/cast", "tokio-mpsc", 95.0, 1.0),
        result("process/call", "beamline", 250.0, 1.0),
        result("process/call", "kameo", 1000.0, 1.0),
        result("server/echo-1conn", "beamline", 100.0, 2.0),
        result("server/echo-1conn", "raw-tokio", 94.0, 2.0),
    ];
    let goals = parse_goals(
        "# comment\nprocess/cast tokio-mpsc 0.90 cast throughput vs raw mpsc\n\
         process/call kameo 2.0 call vs kameo\npool/get deadpool 1.25 get+drop vs deadpool\n\
         server/echo-1conn raw-tokio 0.95 echo",
    )
    .unwrap();
    let (md, warnings) = render("", full(&results), &goals, &header());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(md.starts_with(BEGIN) && md.trim_end().ends_with(END));
    assert!(md.contains("Test CPU (2 cores)") && md.contains("commit `abc1234`"));
    assert!(md.contains("### process"));
    assert!(
        md.contains("| process/cast | 100.0 ns ± 1% (10.00 M elem/s) | tokio-mpsc |"),
        "{md}"
    );
    assert!(
        md.contains("**0.95×** (0.94–0.96) | ≥ 0.90× ✅ met | `abc1234` 2026-11-25 |"),
        "{md}"
    );
    assert!(
        md.contains("**4.00×** (3.94–4.06) | ≥ 2.00× ✅ met"),
        "{md}"
    );
    // 0.94 ± ~2.8% against 0.95: within noise, neither met nor missed.
    assert!(
        md.contains("**0.94×** (0.91–0.97) | ≥ 0.95× ➖ within noise"),
        "{md}"
    );
    // A goal whose bench did not run is listed, so a missing bench is visible.
    assert!(
        md.contains("| pool/get | deadpool | ≥ 1.25× | get+drop vs deadpool |"),
        "{md}"
    );
}

#[test]
fn missed_goals_and_unpaired_results_are_shown() {
    let results = [
        result("mux/codec", "beamline", 200.0, 1.0),
        result("mux/codec", "tokio-util", 100.0, 1.0),
        result("reconnect/delay", "full-jitter", 12.0, 1.0),
    ];
    let goals = parse_goals("mux/codec tokio-util 1.0 encode+decode").unwrap();
    let (md, _) = render("", full(&results), &goals, &header());
    assert!(
        md.contains("**0.50×** (0.49–0.51) | ≥ 1.00× ❌ missed"),
        "{md}"
    );
    assert!(md.contains("### Without a beamline row"), "{md}");
    assert!(
        md.contains("| reconnect/delay/full-jitter | 12.0 ns"),
        "{md}"
    );
}

#[test]
fn goal_patterns_apply_where_no_exact_goal_does() {
    let goals = parse_goals(
        "kv/*-p16 redis-server 0.95 each test\nkv/geomean-p16 redis-server 1.05 the mean\n",
    )
    .unwrap();
    assert_eq!(
        goal_for(&goals, "kv/set-p16", "redis-server")
            .unwrap()
            .min_ratio,
        0.95
    );
    assert_eq!(
        goal_for(&goals, "kv/geomean-p16", "redis-server")
            .unwrap()
            .min_ratio,
        1.05
    );
    assert!(goal_for(&goals, "kv/set-p1", "redis-server").is_none());
    assert!(goal_for(&goals, "kv/set-p16", "kv").is_none());
    assert!(glob("a*b*c", "aXXbYc") && glob("*", "") && glob("ab", "ab"));
    assert!(!glob("a*b", "ab-") && !glob("a*bc", "abc-bd"));
}

fn external(json: &str) -> Vec<BenchResult> {
    parse_external(json)
        .unwrap()
        .into_iter()
        .map(|r| BenchResult {
            stamp: stamp("abc1234", "2026-11-25"),
            ..r
        })
        .collect()
}

#[test]
fn external_measurements_pair_and_orient_their_ratio() {
    let rows = external(
        r#"[{"group":"kv/set","function":"beamline-kv","value":null,"metric":"requests/s","amount":1500000.0,"higher_is_better":true},
            {"group":"kv/set","function":"redis-server","metric":"requests/s","amount":1000000.0,"higher_is_better":true},
            {"group":"server/idle-memory","function":"beamline","metric":"bytes/connection","amount":5800.0,"higher_is_better":false},
            {"group":"server/idle-memory","function":"raw-tokio","metric":"bytes/connection","amount":4960.0,"higher_is_better":false}]"#,
    );
    assert_eq!(rows[0].ratio_over(&rows[1]).point, 1.5);
    assert!((rows[2].ratio_over(&rows[3]).point - 4960.0 / 5800.0).abs() < 1e-12);
    let goals = parse_goals("kv/set redis-server 1.0 at least redis-server's rate").unwrap();
    let (md, _) = render("", full(&rows), &goals, &header());
    assert!(md.contains("| kv/set | 1.50 M requests/s (one run) | redis-server | 1.00 M requests/s (one run) | **1.50×** | ≥ 1.00× ✅ met |"), "{md}");
    assert!(md.contains("**0.86×**"), "{md}");
}

#[test]
fn sampled_rounds_pair_round_by_round() {
    // Rounds 1..5: kv's rate and redis-server's, taken back to back.
    let rows = external(
        r#"[{"group":"kv/get-p16","function":"beamline-kv","metric":"requests/s","samples":[100,110,90,120,100],"summary":"median","higher_is_better":true},
            {"group":"kv/get-p16","function":"redis-server","metric":"requests/s","samples":[100,100,100,100,80],"summary":"median","higher_is_better":true},
            {"group":"client/latency-p99","function":"beamline","metric":"ms","samples":[1.0,1.0,1.0],"summary":"mean","higher_is_better":false},
            {"group":"client/latency-p99","function":"redis-rs","metric":"ms","samples":[2.0,2.0,2.0],"summary":"mean","higher_is_better":false}]"#,
    );
    // Per-round ratios 1.0, 1.1, 0.9, 1.2, 1.25: median 1.1, min 0.9, max 1.25.
    let r = rows[0].ratio_over(&rows[1]);
    assert_eq!((r.point, r.lo, r.hi), (1.1, 0.9, 1.25));
    assert_eq!(describe(&rows[0]), "100.0 requests/s (90.00–120.0, 5 runs)");
    let r = rows[2].ratio_over(&rows[3]);
    assert_eq!((r.point, r.lo, r.hi), (2.0, 2.0, 2.0));
    assert_eq!(describe(&rows[3]), "2.000 ms ± 0% (3 rounds)");
    let goals = parse_goals("kv/get-p16 redis-server 0.95 x").unwrap();
    let (md, _) = render("", full(&rows[..2]), &goals, &header());
    assert!(
        md.contains("**1.10×** (0.90–1.25) | ≥ 0.95× ➖ within noise"),
        "{md}"
    );
}

#[test]
fn external_files_reject_bad_rows() {
    assert!(parse_external("{}").is_err());
    assert!(parse_external(r#"[{"group":"g","function":"f","metric":"m"}]"#).is_err());
    assert!(parse_external(r#"[{"group":"g","function":"f","metric":"m","amount":-1}]"#).is_err());
    assert!(parse_external(r#"[{"function":"f","metric":"m","amount":1}]"#).is_err());
    assert!(
        parse_external(
            r#"[{"group":"g","function":"f","metric":"m","samples":[1],"summary":"mode"}]"#
        )
        .is_err()
    );
    assert!(
        parse_external(
            r#"[{"group":"g","function":"f","metric":"m","samples":[],"summary":"mean"}]"#
        )
        .is_err()
    );
    assert!(
        load_external(Path::new("/nonexistent/beamline-bench"))
            .unwrap()
            .is_empty()
    );
    assert!(
        parse_memory(
            r#"[{"group":"g","function":"f","ops":0,"allocations_per_op":[1],"peak_bytes":[1]}]"#
        )
        .is_err()
    );
}

#[test]
fn empty_results_say_so() {
    let sections = [Section {
        name: "extra".into(),
        markdown: "### extra\n\nbody\n".into(),
        written: None,
        stamp: stamp("abc1234", "2026-11-25"),
    }];
    let update = Update {
        results: &[],
        memory: &[],
        sections: &sections,
        replace_all: true,
    };
    let (md, _) = render("", update, &[], &header());
    assert!(md.contains("No results found yet"));
    assert!(
        md.contains("<!-- xtask:section extra -->\n### extra\n\n_Measured at `abc1234` on 2026-11-25._\n\nbody\n"),
        "{md}"
    );
}

#[test]
fn goals_reject_bad_lines() {
    assert!(parse_goals("process/cast tokio-mpsc").is_err());
    assert!(parse_goals("process/cast tokio-mpsc fast").is_err());
    assert_eq!(parse_goals("\n# only comments\n").unwrap(), vec![]);
}

#[test]
fn a_filtered_run_rewrites_its_own_groups_and_keeps_the_rest_with_their_stamps() {
    let first_run = [
        result("pool/get_drop_1task", "beamline", 80.0, 2.0),
        result("pool/get_drop_1task", "deadpool", 180.0, 2.0),
        result("process/cast", "beamline", 100.0, 2.0),
        result("process/cast", "tokio-mpsc", 200.0, 2.0),
    ];
    let memory = [MemoryResult {
        group: "process/cast".into(),
        function: "beamline".into(),
        ops: 10,
        allocations_per_op: vec![0.0, 0.0, 0.0],
        peak_bytes: vec![1000.0, 1100.0, 2000.0],
        written: None,
        stamp: stamp("abc1234", "2026-11-25"),
    }];
    let sections = [Section {
        name: "kv".into(),
        markdown: "### kv\n\nold kv\n".into(),
        written: None,
        stamp: stamp("abc1234", "2026-11-25"),
    }];
    let update = Update {
        results: &first_run,
        memory: &memory,
        sections: &sections,
        replace_all: true,
    };
    let (block, _) = render("", update, &[], &header());
    let doc = splice("# Benchmarks\n\nprose\n", &block);
    assert!(
        doc.contains(
            "| process/cast | beamline | 0 | 1.1 kB (1.0 kB–2.0 kB) | `abc1234` 2026-11-25 |"
        ),
        "{doc}"
    );

    // Later, `cargo xtask bench pool` at another commit: only pool's rows change.
    let mut second = [
        result("pool/get_drop_1task", "beamline", 70.0, 2.0),
        result("pool/get_drop_1task", "deadpool", 210.0, 2.0),
    ];
    for r in &mut second {
        r.stamp = stamp("def5678", "2026-11-27");
    }
    let update = Update {
        results: &second,
        memory: &[],
        sections: &[],
        replace_all: false,
    };
    let (block, warnings) = render(&doc, update, &[], &header());
    assert!(warnings.is_empty(), "{warnings:?}");
    let doc = splice(&doc, &block);
    assert!(doc.starts_with("# Benchmarks\n\nprose\n"));
    assert!(
        doc.contains("**3.00×** (2.92–3.09) | — | `def5678` 2026-11-27 |"),
        "{doc}"
    );
    assert!(
        !doc.contains("**2.25×**"),
        "the old pool row is gone: {doc}"
    );
    assert!(
        doc.contains("**2.00×** (1.94–2.06) | — | `abc1234` 2026-11-25 |"),
        "{doc}"
    );
    assert!(doc.contains("| process/cast | beamline | 0 |"), "{doc}");
    assert!(
        doc.contains("_Measured at `abc1234` on 2026-11-25._\n\nold kv"),
        "{doc}"
    );
    assert_eq!(doc.matches("### pool").count(), 1, "{doc}");

    // Rendering the same again changes nothing: the format parses back.
    let (again, _) = render(&doc, update, &[], &header());
    assert_eq!(splice(&doc, &again), doc);

    // A full run drops what it did not measure.
    let (block, _) = render(
        &doc,
        Update {
            replace_all: true,
            ..update
        },
        &[],
        &header(),
    );
    assert!(
        !block.contains("process/cast") && !block.contains("old kv"),
        "{block}"
    );
}

#[test]
fn rows_from_before_the_stamps_are_dropped_with_a_warning() {
    let legacy = format!(
        "{BEGIN}\n### process\n\n| benchmark | beamline | peer | peer's result | ratio | goal |\n\
         |---|---|---|---|---|---|\n| process/cast | 1 ns | tokio-mpsc | 2 ns | **2.00×** | — |\n\n\
         ### reconnect: the thundering herd\n\n| jitter | peak |\n|---|---|\n| none | 10000 |\n{END}\n"
    );
    let results = [result("pool/x", "beamline", 1.0, 1.0)];
    let update = Update {
        replace_all: false,
        ..full(&results)
    };
    let (md, warnings) = render(&legacy, update, &[], &header());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("1 rows"), "{warnings:?}");
    assert!(
        !md.contains("process/cast") && md.contains("| pool/x |"),
        "{md}"
    );
}

#[test]
fn stamps_parse_back() {
    let s = stamp("26d2e91-dirty", "2026-11-24");
    assert_eq!(Stamp::parse_cell(&s.cell()), Some(s));
    assert_eq!(Stamp::parse_cell("no stamp"), None);
}

#[test]
fn splice_replaces_between_markers_and_keeps_prose() {
    let old = format!("# Benchmarks\n\nProse before.\n\n{BEGIN}\nold table\n{END}\nProse after.\n");
    let new = format!("{BEGIN}\nnew table\n{END}\n");
    let out = splice(&old, &new);
    assert_eq!(
        out,
        format!("# Benchmarks\n\nProse before.\n\n{BEGIN}\nnew table\n{END}\nProse after.\n")
    );
    // No markers yet: appended after a blank line.
    let out = splice("# Benchmarks\n", &new);
    assert_eq!(out, format!("# Benchmarks\n\n{new}"));
}

#[test]
fn load_walks_the_criterion_tree_and_records_when_it_was_written() {
    let dir = std::env::temp_dir().join(format!("xtask-report-test-{}", std::process::id()));
    let new = dir.join("process_cast").join("beamline").join("new");
    fs::create_dir_all(&new).unwrap();
    fs::write(
        new.join("benchmark.json"),
        bench_json("beamline", None, "null"),
    )
    .unwrap();
    fs::write(new.join("estimates.json"), estimates_json(42.0, None)).unwrap();
    // `base` holds an older run and must be ignored.
    let base = dir.join("process_cast").join("beamline").join("base");
    fs::create_dir_all(&base).unwrap();
    fs::write(
        base.join("benchmark.json"),
        bench_json("beamline", None, "null"),
    )
    .unwrap();
    fs::write(base.join("estimates.json"), estimates_json(1.0, None)).unwrap();
    let results = load(&dir).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].estimate.point, 42.0);
    let written = results[0].written.unwrap();
    assert!(written > SystemTime::now() - Duration::from_secs(60));
    assert!(
        load(Path::new("/nonexistent/criterion"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn civil_dates() {
    assert_eq!(civil_date(0), "1970-01-01");
    assert_eq!(civil_date(11_016), "2000-02-29");
    assert_eq!(civil_date(20_780), "2026-11-23");
}
