//! A Redis Cluster client on beamline's composed client: slot routing, `MOVED` / `ASK`
//! redirects, topology refresh, and failover that says which requests may have been applied.
//!
//! A Redis Cluster shards 16,384 hash slots over several primaries, each with replicas that
//! take over when it dies. [`ClusterClient`] keeps the slot map, sends each command to the
//! primary of its key's slot over one reconnecting, FIFO-multiplexed beamline `Client` per
//! node (made when a request first needs the node, dropped when the node leaves the map),
//! and handles what the cluster answers while it changes.
//!
//! ```text
//! ClusterClient ─► slot map (CLUSTER SLOTS, majority of several nodes, refreshed)
//!      │               ▲ MOVED / lost node / every 30 s: single-flight, ≤ 1 per second
//!      └─► per node: Client (Reconnect ─► FIFO mux ─► TCP), ClusterCodec (RESP + ASKING pairs)
//! ```
//!
//! # Components
//! - [`key_slot`]: CRC16 (XMODEM) of the key or its `{hash tag}`, modulo 16,384.
//! - [`ClusterClient`], built by [`ClusterBuilder`] from one or more seeds and an optional
//!   address map (announced address → address to dial).
//! - [`ReadFrom`]: primaries only, replicas preferred, or replicas only for reads.
//! - [`ClusterError`]: what a request failed with, and
//!   [`may_have_been_applied`](ClusterError::may_have_been_applied).
//!
//! # Routing
//! A command's keys are found by a small command table (documented in `commands.rs`): the
//! first argument for the common one-key commands, every argument for `DEL`/`EXISTS`/`MGET`
//! and company, every other argument for `MSET`, `numkeys` for `EVAL`/`FCALL`. A command the
//! table does not know is taken to be a write keyed by its first argument; one without
//! arguments goes to any primary. Keyless commands (`PING`, `INFO`, `TIME`...) go to one
//! primary chosen at random, except the few that concern every node, which go to every
//! primary at once: `DBSIZE` (the counts added up), `FLUSHALL` and `FLUSHDB` (`+OK` when
//! every primary said so), `SCRIPT LOAD` (so `EVALSHA` finds the script wherever its keys
//! are) and `SCRIPT FLUSH`. Read-only commands go where [`ReadFrom`] says: the primary (the
//! default), or a replica of the slot's primary over a connection of its own, each read
//! sent after `READONLY`, adjacent to it as `ASKING` is.
//!
//! A blocking command (`BLPOP k 0`, `XREAD BLOCK`, `WAIT`) is sent like any other, so it
//! holds its node's shared FIFO connection until its answer: every request behind it on that
//! node waits too. Give it a server-side timeout shorter than the request's, or send it with
//! a `beamline_client::Client` of its own. If the request times out (or its caller gives up)
//! first, the node's connection is wedged behind the reply that has not come: twice the
//! request timeout ([`timeout`](ClusterBuilder::timeout)) later the per-node client closes
//! and replaces it, and the requests behind it end saying whether they were written.
//!
//! # Guarantees
//! Each is held by a test against a real cluster of `redis-server` processes
//! (`beamline_testkit::RedisCluster`), named here.
//! - **A command reaches the primary of its key's slot**; hash tags keep keys together
//!   (`tests/routing.rs`: `every_key_is_served_by_its_slot_owner`, `hash_tags_keep_keys_together`).
//! - **Keys that span slots fail before anything is sent** with [`ClusterError::CrossSlot`],
//!   except `MGET`, `MSET`, `DEL`, `EXISTS`, `UNLINK`, `TOUCH`, which are split by slot,
//!   sent in parallel and answered in the caller's order (`cross_slot_fails_before_sending`,
//!   `multi_key_commands_split_and_reassemble`).
//! - **A pipeline goes per node and answers in the caller's order**:
//!   [`pipeline`](ClusterClient::pipeline) sends every command to its slot's primary at
//!   once, the commands for one node back to back in the caller's order, and returns one
//!   answer or typed error per command, in order; a command refused before sending fails
//!   alone (`pipelines_go_per_node_and_answer_in_order` counts each primary's `INCR`s).
//! - **No request changes a connection other requests share**: `MULTI`, `WATCH`,
//!   `SELECT`, `SUBSCRIBE`, `CLIENT REPLY` and the other connection-state commands fail
//!   with [`ClusterError::ConnectionState`] before sending (`cross_slot_fails_before_sending`
//!   checks `MULTI` too).
//! - **`DBSIZE`, `FLUSHALL`, `FLUSHDB`, `SCRIPT LOAD`, `SCRIPT FLUSH` reach every primary**
//!   (`keyless_commands_about_every_node_go_to_every_primary`).
//! - **With [`ReadFrom::Replica`] reads are served by replicas and writes by primaries**
//!   (`reads_go_to_replicas_with_read_from` counts each node's `GET`s); with
//!   [`ReadFrom::PreferReplica`] a dead replica's reads go to the primary
//!   (`tests/failover.rs`: `prefer_replica_reads_fall_back_to_the_primary_when_the_replica_dies`).
//! - **`MOVED` moves the slot in the map and resends there**, and asks for a refresh;
//!   **at most [`max_redirects`](ClusterBuilder::max_redirects) redirects** (default 5),
//!   then [`ClusterError::TooManyRedirects`] (`moved_after_a_finished_migration`).
//! - **`ASK` sends `ASKING` and the command back to back on one connection**, with nothing
//!   between them: both are one request of the FIFO multiplexer, encoded together into one
//!   contiguous write by the per-node codec, whose decoder hands the caller the command's
//!   reply as the one answer (`ask_in_the_middle_of_a_migration`; the codec's unit tests).
//! - **`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN` are retried** with full-jitter
//!   backoff (10 ms doubling to 200 ms) until the request's deadline (during the failover
//!   of `kill_primary_under_load_from_64_callers` the cluster answers `CLUSTERDOWN`).
//! - **Every request ends by its deadline** ([`timeout`](ClusterBuilder::timeout), over
//!   every redirect and retry) **with its own reply or a typed error** that says whether it
//!   may have been applied. No caller gets another caller's reply: each per-node client
//!   matches replies by order and discards abandoned ones
//!   (`tests/failover.rs`: `kill_primary_under_load_from_64_callers`, which checks every
//!   reply against its own key).
//! - **After a node dies, only idempotent requests are sent again**: a request whose
//!   connection died after it was written ends [`ClusterError::ConnectionLost`] unless it
//!   is read-only by the table or sent with [`call_idempotent`](ClusterClient::call_idempotent);
//!   a request that was never written is re-routed after a refresh and completes. No
//!   non-idempotent request is applied twice (the same test counts each request's own key
//!   with `INCR`).
//! - **Writes resume on a dead primary's slots within the cluster's failover time plus
//!   1 s** (`kill_primary_under_load_from_64_callers` measures it from the kill): a request
//!   whose primary's connection fails asks a replica of that shard next, which answers
//!   `MOVED` back to the dead primary (applying nothing) until the cluster promotes it, and
//!   takes the write from that moment, before any refresh; the first such answer moves the
//!   whole shard to it in the map ([`ClusterStats::stood_in`](crate::ClusterStats) counts them).
//! - **A failover moves the whole shard at once**: a `MOVED` to a replica of the slot's
//!   shard swaps the roles for every slot of the shard, so after a manual `CLUSTER FAILOVER`
//!   only the requests already on their way to the old primary are redirected
//!   (`manual_failover_moves_writes_to_the_new_primary` bounds the `MOVED`s by twice the
//!   callers; before, it was one per slot touched until the next refresh, about a thousand).
//! - **The topology refresh is single-flight, at most once a
//!   [`refresh_min_interval`](ClusterBuilder::refresh_min_interval), bounded in time, and
//!   periodic**; it asks [`refresh_fanout`](ClusterBuilder::refresh_fanout) nodes at once and
//!   keeps the view most of them report; it is triggered by redirects and by requests that
//!   find a node's connection down (the failover test bounds the number of refreshes).
//! - **A pool per node opens connections as load needs them**:
//!   [`connections_per_node`](ClusterBuilder::connections_per_node) gives each node a shared
//!   pool of FIFO connections, another opened only when every open one is at its in-flight
//!   bound (`a_pool_per_node_opens_connections_as_load_needs`: 8 `BLPOP`s, 2 per
//!   connection, block on 4 connections).
//! - **The client starts when any seed answers** (`starts_with_seeds_partly_down`), and
//!   fails with [`ClusterError::NoSeed`] naming each seed's failure when none does. With
//!   [`sync_connect`](ClusterBuilder::sync_connect) it starts only when every slot is
//!   served and every primary connected, or fails [`ClusterError::NotReady`] at its
//!   timeout naming what was missing (`sync_connect_waits_for_every_primary`).
//!
//! # Examples
//! ```no_run
//! use beamline_redis::{ClusterClient, key_slot};
//! use beamline_resp::{Command, Value};
//!
//! # async fn run() -> Result<(), beamline_redis::ClusterError> {
//! let cluster = ClusterClient::builder(["127.0.0.1:7000", "127.0.0.1:7001"])
//!     .timeout(std::time::Duration::from_secs(5))
//!     .connect()
//!     .await?;
//! cluster.call(Command::new("SET").arg("{user1}.name").arg("ada")).await?;
//! cluster.call(Command::new("SET").arg("{user1}.lang").arg("en")).await?;
//! assert_eq!(key_slot(b"{user1}.name"), key_slot(b"{user1}.lang"));
//! let both = cluster
//!     .call(Command::new("MGET").arg("{user1}.name").arg("{user1}.lang"))
//!     .await?;
//! assert_eq!(both, Value::Array(vec![Value::bulk("ada"), Value::bulk("en")]));
//! # Ok(())
//! # }
//! ```
//!
//! # Tracing
//! One event per refresh (`debug`) and per failed refresh (`warn`), with the client's
//! `name`; nothing per request. [`ClusterClient::stats`] counts redirects, refreshes and
//! resends without a subscriber.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod client;
mod codec;
mod commands;
mod config;
mod error;
mod nodes;
mod pipeline;
mod refresh;
mod request;
mod slot;
mod split;
mod topology;

pub use client::{ClusterClient, ClusterStats};
pub use config::{ClusterBuilder, DEFAULT_MAX_REDIRECTS, DEFAULT_REQUEST_TIMEOUT, ReadFrom};
pub use error::ClusterError;
pub use slot::{SLOTS, key_slot};
