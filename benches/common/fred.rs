//! fred set up for equal work, shared by `common/redis_pair.rs` (one server) and `cluster.rs`
//! (a cluster): the bench's request timeout as fred's `default_command_timeout`, and
//! `TCP_NODELAY` on (fred leaves it to the OS otherwise; beamline and redis-rs set it). The
//! benches' equal-work tables name these settings. Included with `#[path]`.

use std::time::Duration;

use fred::prelude::{Builder, Config, TcpConfig};

/// A fred builder for `config` with the bench's `timeout` and `TCP_NODELAY`.
pub(crate) fn equal_work(config: Config, timeout: Duration) -> Builder {
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|p| p.default_command_timeout = timeout)
        .with_connection_config(|c| {
            c.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            };
        });
    builder
}
