//! Routing, hash tags, cross-slot refusal, multi-key splitting, pipelines, MOVED, ASK and seeds, on
//! one real cluster (3 primaries + 3 replicas) shared by the scenarios in turn: none of
//! them takes a node down, and each uses keys of its own.

// Scenario helpers are plain functions, not #[test]s: a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use beamline_chaos::Proxy;
use beamline_redis::{ClusterClient, ClusterError, ReadFrom, key_slot};
use beamline_resp::{Command, Value};
use beamline_testkit::{RedisCluster, RedisReply, free_port, open_fds};
use tokio::task::block_in_place;

fn cmd(args: &[&str]) -> Command {
    Command::from_args(args.iter().copied())
}

fn seeds(cluster: &RedisCluster) -> Vec<String> {
    cluster.addrs().iter().map(ToString::to_string).collect()
}

async fn client(cluster: &RedisCluster, max_redirects: usize) -> ClusterClient {
    ClusterClient::builder(seeds(cluster))
        .timeout(Duration::from_secs(5))
        // No periodic refresh during the test: a MOVED must be what updates the map.
        .refresh_interval(Duration::from_secs(600))
        .max_redirects(max_redirects)
        .connect()
        .await
        .expect("the cluster client starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_redirects_and_seeds_on_one_cluster() {
    let started = Instant::now();
    let cluster = block_in_place(RedisCluster::start);
    eprintln!("3 + 3 cluster up in {:?}", started.elapsed());
    let metrics = tokio::runtime::Handle::current().metrics();
    let (tasks, fds) = (metrics.num_alive_tasks(), open_fds());
    {
        let c = client(&cluster, 5).await;
        every_key_is_served_by_its_slot_owner(&cluster, &c).await;
        hash_tags_keep_keys_together(&cluster, &c).await;
        cross_slot_fails_before_sending(&cluster, &c).await;
        multi_key_commands_split_and_reassemble(&c).await;
        pipelines_go_per_node_and_answer_in_order(&cluster).await;
        moved_after_a_finished_migration(&cluster, &c).await;
        ask_in_the_middle_of_a_migration(&cluster, &c).await;
    }
    periodic_refresh_sees_a_change_nobody_tripped_over(&cluster).await;
    address_map_and_a_partitioned_primary(&cluster).await;
    reads_go_to_replicas_with_read_from(&cluster).await;
    keyless_commands_about_every_node_go_to_every_primary(&cluster).await;
    starts_with_seeds_partly_down(&cluster).await;
    sync_connect_waits_for_every_primary(&cluster).await;
    a_pool_per_node_opens_connections_as_load_needs(&cluster).await;
    nothing_is_left_behind(tasks, fds).await;
}

/// Every client above is dropped: their refresh tasks, connection drivers and sockets are
/// gone a moment later (a bounded wait).
async fn nothing_is_left_behind(tasks: usize, fds: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..200 {
        if metrics.num_alive_tasks() <= tasks && open_fds() <= fds {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), tasks, "tasks left behind");
    assert!(open_fds() <= fds, "{} fds open, {fds} before", open_fds());
}

/// Keys written through the client are on the node the cluster itself says owns their
/// slot (read there directly, without following redirects), over all three primaries,
/// and the client never needed a redirect to get there.
async fn every_key_is_served_by_its_slot_owner(cluster: &RedisCluster, c: &ClusterClient) {
    let keys: Vec<String> = (0..60).map(|i| format!("route:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let set = c.call(cmd(&["SET", key, &i.to_string()])).await.unwrap();
        assert_eq!(set, Value::ok(), "SET {key}");
    }
    let owners = block_in_place(|| {
        let mut owners = HashSet::new();
        for (i, key) in keys.iter().enumerate() {
            let slot = cluster.keyslot(key);
            assert_eq!(slot, key_slot(key.as_bytes()), "slot of {key}");
            let owner = cluster.primary_of(slot);
            let direct = cluster.command(owner, &["GET", key]);
            assert_eq!(direct.text(), Some(i.to_string()), "{key} on {owner}");
            owners.insert(owner);
        }
        owners
    });
    assert_eq!(owners.len(), 3, "the keys cover every primary");
    for (i, key) in keys.iter().enumerate() {
        let got = c.call(cmd(&["GET", key])).await.unwrap();
        assert_eq!(got, Value::bulk(i.to_string()));
    }
    assert_eq!(c.stats().moved, 0, "routed right the first time");
    assert_eq!(c.stats().asked, 0);
}

/// Hash tags: keys with the same `{tag}` share a slot (as `CLUSTER KEYSLOT` says), so a
/// multi-key command over them is one request to one node; an empty tag hashes the whole key.
async fn hash_tags_keep_keys_together(cluster: &RedisCluster, c: &ClusterClient) {
    let (a, b) = ("{user1000}.following", "{user1000}.followers");
    block_in_place(|| {
        assert_eq!(cluster.keyslot(a), cluster.keyslot(b));
        assert_eq!(key_slot(a.as_bytes()), cluster.keyslot(a));
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(cluster.keyslot("foo"), 12182);
        assert_eq!(key_slot(b"foo{}{bar}"), cluster.keyslot("foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    });
    assert_eq!(
        c.call(cmd(&["SADD", a, "x"])).await.unwrap(),
        Value::Integer(1)
    );
    assert_eq!(
        c.call(cmd(&["SADD", b, "x", "y"])).await.unwrap(),
        Value::Integer(2)
    );
    let stored = c
        .call(cmd(&["SUNIONSTORE", "{user1000}.all", a, b]))
        .await
        .unwrap();
    assert_eq!(stored, Value::Integer(2));
}

/// A command that cannot be split, over keys of different slots, fails with `CrossSlot`
/// before anything is sent, and `MULTI` with `ConnectionState`: no node ever saw either
/// command (`INFO commandstats`).
async fn cross_slot_fails_before_sending(cluster: &RedisCluster, c: &ClusterClient) {
    let (src, dst) = ("cross:src", "cross:dst");
    assert_ne!(key_slot(src.as_bytes()), key_slot(dst.as_bytes()));
    let err = c.call(cmd(&["SMOVE", src, dst, "m"])).await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::CrossSlot { command, slots: 2 } if command == "SMOVE"),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    // A transaction would take over a connection every request to the node shares.
    let err = c.call(cmd(&["MULTI"])).await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::ConnectionState { command } if command == "MULTI"),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    block_in_place(|| {
        for node in cluster.addrs() {
            let stats = cluster.command(node, &["INFO", "commandstats"]);
            let stats = stats.text().unwrap_or_default();
            assert!(
                !stats.contains("cmdstat_smove"),
                "{node} saw SMOVE: {stats}"
            );
            assert!(
                !stats.contains("cmdstat_multi"),
                "{node} saw MULTI: {stats}"
            );
        }
    });
}

/// `MSET`, `MGET`, `EXISTS`, `TOUCH`, `DEL`, `UNLINK` over keys of many slots: split by
/// slot, sent in parallel, answers put back in the caller's order (a missing key included).
async fn multi_key_commands_split_and_reassemble(c: &ClusterClient) {
    let keys: Vec<String> = (0..20).map(|i| format!("multi:{i}")).collect();
    let slots: HashSet<u16> = keys.iter().map(|k| key_slot(k.as_bytes())).collect();
    assert!(slots.len() > 10, "the keys spread over many slots");
    let mut mset = vec!["MSET"];
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    for (key, value) in keys.iter().zip(&values) {
        mset.push(key);
        mset.push(value);
    }
    assert_eq!(c.call(cmd(&mset)).await.unwrap(), Value::ok());
    let mut mget: Vec<&str> = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.insert(5, "multi:missing");
    let mut expected: Vec<Value> = values.iter().map(|v| Value::bulk(v.clone())).collect();
    expected.insert(4, Value::Null);
    assert_eq!(c.call(cmd(&mget)).await.unwrap(), Value::Array(expected));
    let mut exists = mget.clone();
    exists[0] = "EXISTS";
    assert_eq!(c.call(cmd(&exists)).await.unwrap(), Value::Integer(20));
    exists[0] = "TOUCH";
    assert_eq!(c.call(cmd(&exists)).await.unwrap(), Value::Integer(20));
    let mut del = vec!["DEL"];
    del.extend(keys[..10].iter().map(String::as_str));
    assert_eq!(c.call(cmd(&del)).await.unwrap(), Value::Integer(10));
    let mut unlink = vec!["UNLINK"];
    unlink.extend(keys[5..].iter().map(String::as_str));
    assert_eq!(c.call(cmd(&unlink)).await.unwrap(), Value::Integer(10));
    exists[0] = "EXISTS";
    assert_eq!(c.call(cmd(&exists)).await.unwrap(), Value::Integer(0));
}

/// A pipeline from a client that has no node connection yet: each command reaches its
/// slot's primary directly (each primary's `INCR` count grows by its own keys' share, no
/// `MOVED`), the commands for one node run in the caller's order (`SET`, `INCR`, `GET` of a
/// key answer `OK`, n + 1, n + 1), the answers come back in the caller's order, and a
/// command refused before sending fails alone.
async fn pipelines_go_per_node_and_answer_in_order(cluster: &RedisCluster) {
    let c = client(cluster, 5).await;
    let keys: Vec<String> = (0..60).map(|i| format!("pipe:{i}")).collect();
    let mut expected_incrs: HashMap<SocketAddr, u64> = HashMap::new();
    let before = block_in_place(|| {
        for key in &keys {
            *expected_incrs
                .entry(cluster.primary_of(key_slot(key.as_bytes())))
                .or_default() += 1;
        }
        cluster
            .primaries()
            .into_iter()
            .map(|node| (node, calls(cluster, node, "incr")))
            .collect::<HashMap<_, _>>()
    });
    assert_eq!(expected_incrs.len(), 3, "the keys cover every primary");
    let mut commands = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        commands.push(cmd(&["SET", key, &i.to_string()]));
        commands.push(cmd(&["INCR", key]));
        commands.push(cmd(&["GET", key]));
        if i == 30 {
            commands.push(cmd(&["RENAME", "pipe:0", "pipe:1"]));
        }
    }
    let answers = c.pipeline(commands).await;
    assert_eq!(answers.len(), 3 * 60 + 1);
    let mut answers = answers.into_iter();
    for i in 0..60i64 {
        let mut next = || answers.next().unwrap().unwrap();
        assert_eq!(next(), Value::ok(), "SET pipe:{i}");
        assert_eq!(next(), Value::Integer(i + 1), "INCR pipe:{i}");
        assert_eq!(next(), Value::bulk((i + 1).to_string()), "GET pipe:{i}");
        if i == 30 {
            let refused = answers.next().unwrap();
            assert!(
                matches!(refused, Err(ClusterError::CrossSlot { slots: 2, .. })),
                "{refused:?}"
            );
        }
    }
    assert_eq!(c.stats().moved, 0, "every command went to its owner first");
    block_in_place(|| {
        for (node, count) in &expected_incrs {
            assert_eq!(
                calls(cluster, *node, "incr") - before[node],
                *count,
                "INCRs on {node}"
            );
        }
    });
    let idempotent = c
        .pipeline_idempotent([cmd(&["SET", "pipe:0", "again"]), cmd(&["GET", "pipe:0"])])
        .await;
    let idempotent: Vec<Value> = idempotent.into_iter().map(Result::unwrap).collect();
    assert_eq!(idempotent, [Value::ok(), Value::bulk("again")]);
}

/// After a finished migration the old owner answers `MOVED`: the client moves the slot in
/// its map, resends there and gets the value; the next request goes straight to the new
/// owner. A client allowed no redirect fails with `TooManyRedirects`, not applied.
async fn moved_after_a_finished_migration(cluster: &RedisCluster, c: &ClusterClient) {
    let key = "migrate:moved";
    let slot = key_slot(key.as_bytes());
    assert_eq!(
        c.call(cmd(&["SET", key, "here"])).await.unwrap(),
        Value::ok()
    );
    let strict = client(cluster, 0).await;
    let to = block_in_place(|| {
        let migration = cluster.begin_migration(slot);
        assert!(cluster.migrate_keys(&migration) >= 1);
        let to = migration.to;
        cluster.finish_migration(migration);
        to
    });
    let err = strict.call(cmd(&["INCR", key])).await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::TooManyRedirects { redirects: 0, last, .. } if &**last == to.to_string().as_str()),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    let moved = c.stats().moved;
    assert_eq!(
        c.call(cmd(&["GET", key])).await.unwrap(),
        Value::bulk("here")
    );
    assert_eq!(c.stats().moved, moved + 1, "one MOVED followed");
    assert_eq!(c.primary_of(slot), Some(to.to_string()));
    assert_eq!(
        c.call(cmd(&["GET", key])).await.unwrap(),
        Value::bulk("here")
    );
    assert_eq!(c.stats().moved, moved + 1, "the map was updated");
}

/// In the middle of a migration the owner answers `ASK` for keys it no longer has; the
/// client sends `ASKING` + the command to the importing node, which answers only because
/// `ASKING` came right before (a plain `GET` there is refused with `MOVED`). The slot map
/// does not change.
async fn ask_in_the_middle_of_a_migration(cluster: &RedisCluster, c: &ClusterClient) {
    let (key, other) = ("{migrate:ask}a", "{migrate:ask}b");
    let slot = key_slot(key.as_bytes());
    assert_ne!(slot, key_slot(b"migrate:moved"));
    assert_eq!(
        c.call(cmd(&["SET", key, "moving"])).await.unwrap(),
        Value::ok()
    );
    let migration = block_in_place(|| {
        let migration = cluster.begin_migration(slot);
        assert!(cluster.migrate_keys(&migration) >= 1);
        migration
    });
    let asked = c.stats().asked;
    assert_eq!(
        c.call(cmd(&["GET", key])).await.unwrap(),
        Value::bulk("moving")
    );
    assert_eq!(c.stats().asked, asked + 1, "one ASK followed");
    // A new key of the migrating slot is created on the importing node, through ASK too.
    assert_eq!(
        c.call(cmd(&["SET", other, "new"])).await.unwrap(),
        Value::ok()
    );
    assert_eq!(
        c.call(cmd(&["MGET", key, other])).await.unwrap(),
        Value::Array(vec![Value::bulk("moving"), Value::bulk("new")])
    );
    assert_eq!(c.primary_of(slot), Some(migration.from.to_string()));
    block_in_place(|| {
        let refused = cluster.command(migration.to, &["GET", key]);
        assert!(
            matches!(&refused, RedisReply::Error(e) if e.starts_with("MOVED")),
            "{refused:?}"
        );
        cluster.finish_migration(migration);
    });
    assert_eq!(
        c.call(cmd(&["GET", other])).await.unwrap(),
        Value::bulk("new")
    );
}

/// With a short refresh interval and no request at all, a finished migration still reaches
/// the client's slot map: the periodic refresh, not a redirect, brought it.
async fn periodic_refresh_sees_a_change_nobody_tripped_over(cluster: &RedisCluster) {
    let c = ClusterClient::builder(seeds(cluster))
        .refresh_interval(Duration::from_millis(200))
        .connect()
        .await
        .expect("the cluster client starts");
    let slot = key_slot(b"periodic");
    assert!(![key_slot(b"migrate:moved"), key_slot(b"{migrate:ask}a")].contains(&slot));
    let before = c.primary_of(slot);
    let to = block_in_place(|| {
        let migration = cluster.begin_migration(slot);
        cluster.migrate_keys(&migration);
        let to = migration.to;
        cluster.finish_migration(migration);
        to
    });
    assert_ne!(before, Some(to.to_string()));
    // Bounded: the first periodic refresh comes within the minimum interval (1 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.primary_of(slot) != Some(to.to_string()) {
        assert!(
            Instant::now() < deadline,
            "no refresh saw the migration: {:?}",
            c.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.stats().moved, 0, "no request, no redirect");
    assert!(c.stats().refreshes >= 1);
}

/// The address map: one primary is dialled through a proxy (its announced address mapped
/// to the proxy's). Partitioned there, a request to it ends by its deadline, typed and
/// "may have been applied" (it was written); other primaries keep answering; after the
/// heal the held request is applied and its late answer is discarded, never handed to the
/// next caller on that connection.
async fn address_map_and_a_partitioned_primary(cluster: &RedisCluster) {
    let (key, counter) = ("{mapped}k", "{mapped}n");
    let slot = key_slot(key.as_bytes());
    let owner = block_in_place(|| cluster.primary_of(slot));
    let proxy = Proxy::start((Ipv4Addr::LOCALHOST, 0).into(), owner)
        .await
        .unwrap();
    let timeout = Duration::from_millis(800);
    let c = ClusterClient::builder(seeds(cluster))
        .map_address(owner.to_string(), proxy.local_addr().to_string())
        .timeout(timeout)
        .refresh_interval(Duration::from_secs(600))
        .connect()
        .await
        .expect("the cluster client starts");
    assert_eq!(
        c.call(cmd(&["SET", key, "via proxy"])).await.unwrap(),
        Value::ok()
    );
    assert_eq!(proxy.stats().accepted, 1, "the mapped address was dialled");
    assert!(proxy.stats().upstream_bytes > 0);
    assert_eq!(
        c.connected_nodes(),
        vec![owner.to_string()],
        "nodes keep their announced names"
    );

    proxy.partition();
    let started = Instant::now();
    let err = c.call(cmd(&["INCR", counter])).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            ClusterError::Timeout {
                maybe_applied: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "{took:?}"
    );
    let elsewhere = (0..100)
        .map(|i| format!("elsewhere:{i}"))
        .find(|k| c.primary_of(key_slot(k.as_bytes())) != Some(owner.to_string()))
        .expect("a key on another primary");
    assert_eq!(
        c.call(cmd(&["SET", &elsewhere, "1"])).await.unwrap(),
        Value::ok()
    );

    proxy.heal().unwrap();
    // The held INCR goes through now; its answer (`:1`) is read and dropped, so this GET
    // gets its own answer, the bulk string "1".
    assert_eq!(
        c.call(cmd(&["GET", counter])).await.unwrap(),
        Value::bulk("1")
    );
    assert_eq!(
        c.call(cmd(&["GET", key])).await.unwrap(),
        Value::bulk("via proxy")
    );
}

/// How many times `node` ran `command` (`INFO commandstats`).
fn calls(cluster: &RedisCluster, node: SocketAddr, command: &str) -> u64 {
    let stats = cluster.command(node, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .text()
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `ReadFrom::Replica`: reads are served by the slot's replica (its `GET` count grows, the
/// primary's does not), writes still go to the primary, and MGET's parts read from
/// replicas too.
async fn reads_go_to_replicas_with_read_from(cluster: &RedisCluster) {
    let (key, other) = ("replica:a", "replica:b");
    let slot = key_slot(key.as_bytes());
    let c = ClusterClient::builder(seeds(cluster))
        .timeout(Duration::from_secs(5))
        .refresh_interval(Duration::from_secs(600))
        .read_from(ReadFrom::Replica)
        .connect()
        .await
        .expect("the cluster client starts");
    for k in [key, other] {
        assert_eq!(c.call(cmd(&["SET", k, k])).await.unwrap(), Value::ok());
    }
    let (primary, replica) = block_in_place(|| {
        cluster.wait_for_replication();
        (cluster.primary_of(slot), cluster.replicas_of(slot)[0])
    });
    let gets = |node| block_in_place(|| calls(cluster, node, "get"));
    let (on_primary, on_replica) = (gets(primary), gets(replica));
    for _ in 0..5 {
        assert_eq!(c.call(cmd(&["GET", key])).await.unwrap(), Value::bulk(key));
    }
    assert_eq!(gets(primary), on_primary, "a read reached the primary");
    assert_eq!(
        gets(replica),
        on_replica + 5,
        "the replica served the reads"
    );
    assert_eq!(
        c.call(cmd(&["MGET", key, other])).await.unwrap(),
        Value::Array(vec![Value::bulk(key), Value::bulk(other)])
    );
    assert!(c.connected_nodes().contains(&replica.to_string()));
    assert_eq!(c.stats().moved, 0, "the replicas answered, no redirect");
}

/// `FLUSHALL` empties every primary, `DBSIZE` adds up every primary's count, and
/// `SCRIPT LOAD` loads the script on every primary, so `EVALSHA` works on keys of any node.
async fn keyless_commands_about_every_node_go_to_every_primary(cluster: &RedisCluster) {
    let c = client(cluster, 5).await;
    assert_eq!(c.call(cmd(&["FLUSHALL"])).await.unwrap(), Value::ok());
    block_in_place(|| {
        for primary in cluster.primaries() {
            let size = cluster.command(primary, &["DBSIZE"]);
            assert_eq!(size.integer(), Some(0), "{primary} after FLUSHALL");
        }
    });
    let keys: Vec<String> = (0..30).map(|i| format!("count:{i}")).collect();
    for key in &keys {
        assert_eq!(c.call(cmd(&["SET", key, key])).await.unwrap(), Value::ok());
    }
    let owners: HashSet<Option<String>> = keys
        .iter()
        .map(|k| c.primary_of(key_slot(k.as_bytes())))
        .collect();
    assert_eq!(owners.len(), 3, "the keys cover every primary");
    assert_eq!(c.call(cmd(&["DBSIZE"])).await.unwrap(), Value::Integer(30));
    let script = "return redis.call('GET', KEYS[1])";
    let sha = c.call(cmd(&["SCRIPT", "LOAD", script])).await.unwrap();
    let sha = sha.as_str().expect("a SHA").to_owned();
    for key in &keys {
        assert_eq!(
            c.call(cmd(&["EVALSHA", &sha, "1", key])).await.unwrap(),
            Value::bulk(key.clone()),
            "EVALSHA on the node of {key}"
        );
    }
}

/// Seeds that refuse connections, and one that accepts but never answers, do not keep the
/// client from starting on the one live seed, nor delay it; with no live seed the start
/// fails with `NoSeed`, naming each seed.
async fn starts_with_seeds_partly_down(cluster: &RedisCluster) {
    let refused = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port)).to_string();
    let (dead_a, dead_b) = (refused(free_port()), refused(free_port()));
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let live = cluster.addrs()[1].to_string();
    let started = Instant::now();
    let c = ClusterClient::builder([dead_a.clone(), silent_addr, dead_b.clone(), live])
        .timeout(Duration::from_secs(5))
        .refresh_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("starts on the live seed");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the silent seed delayed the start: {:?}",
        started.elapsed()
    );
    assert_eq!(
        c.call(cmd(&["SET", "seeds:k", "1"])).await.unwrap(),
        Value::ok()
    );
    assert_eq!(
        c.call(cmd(&["GET", "seeds:k"])).await.unwrap(),
        Value::bulk("1")
    );
    let err = ClusterClient::builder([dead_a, dead_b])
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClusterError::NoSeed { errors } if errors.len() == 2),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    drop(silent);
}

/// `sync_connect`: `connect` returns only when every slot is served and every primary is
/// connected. One primary is mapped to a port nobody listens on: the plain client starts at
/// once anyway; the waiting one fails `NotReady` at its timeout naming that primary, and,
/// when a proxy to the primary appears on the port 400 ms in, starts then and writes there.
async fn sync_connect_waits_for_every_primary(cluster: &RedisCluster) {
    let key = "{sync}k";
    let owner = block_in_place(|| cluster.primary_of(key_slot(key.as_bytes())));
    let port = free_port();
    let mapped = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let builder = || {
        ClusterClient::builder(seeds(cluster))
            .map_address(owner.to_string(), mapped.to_string())
            .refresh_interval(Duration::from_secs(600))
    };
    let started = Instant::now();
    let plain = builder()
        .timeout(Duration::from_millis(600))
        .connect()
        .await
        .expect("the plain client starts on a seed's map");
    assert!(started.elapsed() < Duration::from_millis(500));
    drop(plain);

    let started = Instant::now();
    let err = builder()
        .timeout(Duration::from_millis(600))
        .sync_connect(true)
        .connect()
        .await
        .unwrap_err();
    let waited = started.elapsed();
    match &err {
        ClusterError::NotReady {
            served,
            unreachable,
            ..
        } => {
            assert_eq!(*served, 16384, "{err}");
            assert_eq!(unreachable.len(), 1, "{err}");
            assert!(unreachable[0].starts_with(&owner.to_string()), "{err}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert!(!err.may_have_been_applied());
    assert!(
        waited >= Duration::from_millis(300) && waited <= Duration::from_millis(600 + 500),
        "gave up after {waited:?}"
    );

    let appears = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Proxy::start(mapped, owner).await.unwrap()
    });
    let started = Instant::now();
    let c = builder()
        .timeout(Duration::from_secs(5))
        .sync_connect(true)
        .connect()
        .await
        .expect("starts once the primary can be reached");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let proxy = appears.await.unwrap();
    // The node's connection, and maybe a refresh's `CLUSTER SLOTS` (dialled the same way).
    assert!(
        proxy.stats().accepted >= 1,
        "connected before connect returned"
    );
    assert_eq!(c.call(cmd(&["SET", key, "1"])).await.unwrap(), Value::ok());
    drop(c);
    proxy.shutdown().await;
}

/// `connections_per_node(4)` with 2 requests in flight per connection: 8 blocking `BLPOP`s
/// to one node hold 4 connections (the node reports 4 blocked clients while they wait, one
/// per connection, each with a second `BLPOP` queued behind it), and every one is answered.
async fn a_pool_per_node_opens_connections_as_load_needs(cluster: &RedisCluster) {
    let key = "{pooled}list";
    let owner = block_in_place(|| cluster.primary_of(key_slot(key.as_bytes())));
    let c = ClusterClient::builder(seeds(cluster))
        .connections_per_node(4)
        .max_in_flight(2)
        .timeout(Duration::from_secs(5))
        .refresh_interval(Duration::from_secs(600))
        .connect()
        .await
        .unwrap();
    let blpops: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call(cmd(&["BLPOP", key, "0.6"])).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let blocked = block_in_place(|| {
        cluster
            .command(owner, &["INFO", "clients"])
            .text()
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("blocked_clients:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
    });
    assert_eq!(blocked, Some(4), "one blocked BLPOP per pooled connection");
    for blpop in blpops {
        assert_eq!(blpop.await.unwrap().unwrap(), Value::NullArray);
    }
}
