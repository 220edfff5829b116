//! Support code shared by beamline's runnable examples.
//!
//! Each example is a file in `examples/` declared in `examples/Cargo.toml` and run with
//! `cargo run --release --example NAME`; its header comment says how to try it with real
//! tools (`redis-cli`, `redis-benchmark`, `openssl s_client`, `nc`). An example's logic
//! lives in this library, so that tests, benches and `cargo xtask demo` can start it
//! in-process, and each example file stays one screen of code.
//!
//! - [`kv`]: a RESP2 key-value server that `redis-cli` and `redis-benchmark` talk to.
//! - [`chat`]: a line-based chat room where every member is a process and a slow member is
//!   dropped, never waited for.
//! - [`cli`]: the listen-address flags and tracing set-up the programs share.
//! - [`http`]: an axum app served by beamline-http, with the limits a public server sets.
//! - [`redis_client`]: Redis clients in a supervision tree (as an Elixir app starts Redix),
//!   callers doing SET/GET through them against a real Redis.
//! - [`tagged`]: your own protocol with request ids, end to end: a server of
//!   `Server::serve_fn` + `serve_tagged`, a client of `ClientBuilder::tagged`.
//! - [`demo`]: what `cargo xtask demo` runs: 1,000 `Client`s, the kv server killed and
//!   restarted under them, reconnects with and without jitter.
//! - [`cluster_load`]: checked SET/GET/INCRBY load on a real Redis Cluster through
//!   beamline-redis's `ClusterClient`, shared by the matrix's `cluster/*` cells and the
//!   cluster demo.
//! - [`cluster_demo`]: what `cargo xtask demo cluster` runs: a real Redis Cluster, 64
//!   callers, `kill -9` of a primary midway, per-node throughput and the takeover.
//! - [`matrix`]: the integration matrix's cells that `cargo xtask test` runs, each a
//!   `Client` shape through a fault-injecting proxy to an in-process server.

pub mod chat;
pub mod cli;
pub mod cluster_demo;
pub mod cluster_load;
pub mod demo;
pub mod http;
pub mod kv;
pub mod matrix;
pub mod redis_client;
pub mod tagged;
