//! A real Redis Cluster: N primaries and their replicas as `redis-server` processes on free
//! loopback ports, for one test.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::resp::{self, RedisReply};
use crate::{free_port, unique};

mod migrate;
mod view;

use view::{Range, owner};

/// The `cluster-node-timeout` every node runs with: how long a node must be unreachable
/// before the others mark it failed. Short, so that a failover takes about a second or two
/// (detection after this timeout, then the replicas' election) instead of the default
/// 15 s.
pub const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long a started cluster may take to be created and to agree on its slot map.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a failover (automatic or manual) or the end of a migration may take to be seen
/// the same way by every live node.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// One command's bound (connect, write, read).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a wait polls the nodes.
const POLL: Duration = Duration::from_millis(25);

/// The result of a failover ([`RedisCluster::kill_primary`], [`RedisCluster::failover`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failover {
    /// The slot's primary before.
    pub from: SocketAddr,
    /// The slot's primary after.
    pub to: SocketAddr,
    /// When the old primary was dead (its process reaped), or the `CLUSTER FAILOVER` was
    /// sent: a request started later cannot have been answered by the old primary.
    pub at: Instant,
    /// From `at` until every live node agreed on the new primary and reported
    /// `cluster_state:ok`.
    pub took: Duration,
}

/// A slot in the middle of a migration ([`RedisCluster::begin_migration`]): `from` is
/// `MIGRATING` it to `to`, which is `IMPORTING` it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMigration {
    /// The slot.
    pub slot: u16,
    /// Its owner, migrating it.
    pub from: SocketAddr,
    /// The primary importing it.
    pub to: SocketAddr,
    to_id: String,
}

/// A Redis Cluster of real `redis-server --cluster-enabled yes` processes on 127.0.0.1,
/// created with `redis-cli --cluster create`, persistence off, files in a private temporary
/// directory, [`CLUSTER_NODE_TIMEOUT`] as the node timeout,
/// `cluster-replica-validity-factor 0` (a replica always may take over, however long its
/// primary has been gone), so failovers are quick and certain, and
/// `repl-diskless-sync-delay 0` and `repl-ping-replica-period 1`, so replicas sync at once
/// and show in `CLUSTER SLOTS` within a second: the cluster is up in about 3 s.
///
/// Every wait is bounded; a cluster that does not start or agree in time is a panic naming
/// what was waited for, with the tails of the nodes' logs. Dropping it kills every node and
/// removes the directory.
#[derive(Debug)]
pub struct RedisCluster {
    ports: Vec<u16>,
    children: Mutex<Vec<Option<Child>>>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Three primaries with one replica each, waited on until every node reports
    /// `cluster_state:ok`, agrees on the slot map and every replica is in sync.
    ///
    /// # Panics
    /// If `redis-server` or `redis-cli` is missing (the message names the install
    /// command), or the cluster is not up within 30 s.
    pub fn start() -> Self {
        Self::start_with(3, 1)
    }

    /// `primaries` primaries with `replicas` replicas each (`primaries` ≥ 3, as
    /// `redis-cli --cluster create` requires).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_with(primaries: usize, replicas: usize) -> Self {
        let count = primaries * (1 + replicas);
        let dir = std::env::temp_dir().join(format!(
            "beamline-cluster-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut cluster = RedisCluster {
            ports: Vec::new(),
            children: Mutex::new(Vec::new()),
            dir,
        };
        // Every child belongs to the cluster as soon as it exists, so a panic below (whose
        // unwinding drops the cluster) kills every node started so far.
        for _ in 0..count {
            let port = cluster_port();
            let child = cluster.spawn(port);
            cluster.ports.push(port);
            cluster.lock().push(Some(child));
        }
        for index in 0..count {
            // A port taken between the check and the bind: the node exits, try another.
            for attempt in 0..=5 {
                let port = cluster.ports[index];
                let ready = match cluster.lock()[index].as_mut() {
                    Some(child) => wait_ready(child, port, &cluster.dir),
                    None => Err(io::Error::other("not running")),
                };
                match ready {
                    Ok(()) => break,
                    Err(e) if attempt >= 5 => panic!("cluster node {index} did not start: {e}"),
                    Err(_) => {
                        if let Some(mut child) = cluster.lock()[index].take() {
                            let _ = (child.kill(), child.wait());
                        }
                        let port = cluster_port();
                        let child = cluster.spawn(port);
                        cluster.ports[index] = port;
                        cluster.lock()[index] = Some(child);
                    }
                }
            }
        }
        cluster.create(replicas);
        cluster.wait_until("the new cluster to agree on its slot map", |view| {
            view.iter()
                .all(|range| range.replicas.len() == replicas && range.primary.port() != 0)
        });
        cluster
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Child>>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&self, port: u16) -> Child {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args([
                "--cluster-node-timeout",
                &CLUSTER_NODE_TIMEOUT.as_millis().to_string(),
            ])
            .args(["--cluster-replica-validity-factor", "0"])
            // A replica's first sync starts at once instead of after diskless sync's
            // default 5 s wait for more replicas.
            .args(["--repl-diskless-sync-delay", "0"])
            // CLUSTER SLOTS lists a replica only once its replication offset is not 0,
            // which an idle primary's pings move: every second rather than every 10 s.
            .args(["--repl-ping-replica-period", "1"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(log_path(&self.dir, port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
                "redis-server not found: run `apt-get install -y redis-server` \
                 (`cargo xtask test` installs it when it can)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        }
    }

    /// `redis-cli --cluster create` over every node, bounded by [`START_TIMEOUT`].
    fn create(&self, replicas: usize) {
        let out = self.dir.join("create.log");
        let file = std::fs::File::create(&out)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
        let err_file = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let mut command = Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for addr in self.addrs() {
            command.arg(addr.to_string());
        }
        command
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
                "redis-cli not found: run `apt-get install -y redis-tools` \
                 (`cargo xtask test` installs it when it can)"
            ),
            Err(e) => panic!("cannot start redis-cli: {e}"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) => {
                    let _ = (child.kill(), child.wait());
                    panic!(
                        "redis-cli --cluster create did not finish within {START_TIMEOUT:?}: {}\n{}",
                        tail(&out, 10),
                        self.logs()
                    );
                }
                Err(e) => panic!("cannot wait for redis-cli: {e}"),
            }
        };
        if !status.success() {
            panic!(
                "redis-cli --cluster create failed ({status}): {}\n{}",
                tail(&out, 10),
                self.logs()
            );
        }
    }

    /// Every node's address, primaries and replicas, in start order (the seeds a client
    /// may be given).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.ports.iter().map(|&port| addr(port)).collect()
    }

    /// The addresses of the nodes still running.
    pub fn live_addrs(&self) -> Vec<SocketAddr> {
        let mut children = self.lock();
        self.ports
            .iter()
            .zip(children.iter_mut())
            .filter_map(|(&port, child)| {
                matches!(child.as_mut().map(Child::try_wait), Some(Ok(None))).then(|| addr(port))
            })
            .collect()
    }

    /// The current primaries, as a live node sees them.
    pub fn primaries(&self) -> Vec<SocketAddr> {
        let mut primaries: Vec<SocketAddr> =
            self.view().iter().map(|range| range.primary).collect();
        primaries.sort();
        primaries.dedup();
        primaries
    }

    /// The primary serving `slot`, as a live node sees it.
    ///
    /// # Panics
    /// If no live node answers, or none serves the slot.
    pub fn primary_of(&self, slot: u16) -> SocketAddr {
        self.range_of(slot).primary
    }

    /// The replicas of the primary serving `slot`.
    pub fn replicas_of(&self, slot: u16) -> Vec<SocketAddr> {
        self.range_of(slot).replicas
    }

    fn range_of(&self, slot: u16) -> Range {
        self.view()
            .into_iter()
            .find(|range| (range.start..=range.end).contains(&slot))
            .unwrap_or_else(|| panic!("no node serves slot {slot}"))
    }

    /// Sends one command to the node at `addr` on a fresh connection and returns its reply.
    ///
    /// # Panics
    /// If the node cannot be reached or answers garbage within 2 s.
    pub fn command(&self, addr: SocketAddr, args: &[&str]) -> RedisReply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        resp::command(addr, &args, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("{addr}: {args:?} failed: {e}\n{}", self.logs()))
    }

    /// The cluster's hash slot of `key`, as the server computes it (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        let node = self.any_live();
        let reply = self.command(node, &["CLUSTER", "KEYSLOT", key]);
        reply
            .integer()
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or_else(|| panic!("CLUSTER KEYSLOT {key}: {reply:?}"))
    }

    /// Kills the node at `addr` at once (SIGKILL: no goodbye to clients or peers).
    ///
    /// # Panics
    /// If `addr` is not one of this cluster's nodes.
    pub fn kill(&self, addr: SocketAddr) {
        let index = self.index_of(addr);
        if let Some(mut child) = self.lock()[index].take() {
            let _ = (child.kill(), child.wait());
        }
    }

    /// Kills (SIGKILL) the primary serving `slot` and waits, at most 30 s, until its replica
    /// has taken over: every live node reports `cluster_state:ok` and the same slot map,
    /// with another primary for `slot`.
    ///
    /// # Panics
    /// If no replica takes over in time (with the nodes' log tails).
    pub fn kill_primary(&self, slot: u16) -> Failover {
        let from = self.primary_of(slot);
        self.kill(from);
        let at = Instant::now();
        self.wait_until(
            "a replica to take over after kill -9 of its primary",
            |view| owner(view, slot).is_some_and(|owner| owner != from),
        );
        Failover {
            from,
            to: self.primary_of(slot),
            at,
            took: at.elapsed(),
        }
    }

    /// A manual failover: `CLUSTER FAILOVER` on a replica of `slot`'s primary, then waits,
    /// at most 30 s, until every live node sees the replica as the primary of `slot`, the old
    /// primary as its replica, and `cluster_state:ok`.
    ///
    /// # Panics
    /// If the slot's primary has no replica, the command is refused, or the failover is
    /// not seen everywhere in time.
    pub fn failover(&self, slot: u16) -> Failover {
        let range = self.range_of(slot);
        let Some(&replica) = range.replicas.first() else {
            panic!("the primary of slot {slot} has no replica to fail over to");
        };
        let at = Instant::now();
        let reply = self.command(replica, &["CLUSTER", "FAILOVER"]);
        assert!(reply.is_ok(), "CLUSTER FAILOVER on {replica}: {reply:?}");
        let from = range.primary;
        self.wait_until("a manual failover to be seen by every node", |view| {
            view.iter().any(|r| {
                (r.start..=r.end).contains(&slot)
                    && r.primary == replica
                    && r.replicas.contains(&from)
            })
        });
        Failover {
            from,
            to: replica,
            at,
            took: at.elapsed(),
        }
    }

    /// The node id of the node at `addr` (`CLUSTER MYID`).
    pub fn node_id(&self, addr: SocketAddr) -> String {
        let reply = self.command(addr, &["CLUSTER", "MYID"]);
        reply
            .text()
            .unwrap_or_else(|| panic!("CLUSTER MYID on {addr}: {reply:?}"))
    }

    /// The last lines of every node's log, for a failure message.
    pub fn logs(&self) -> String {
        self.ports
            .iter()
            .map(|&port| format!("[{port}] {}", tail(&log_path(&self.dir, port), 6)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn index_of(&self, node: SocketAddr) -> usize {
        self.ports
            .iter()
            .position(|&port| addr(port) == node)
            .unwrap_or_else(|| panic!("{node} is not a node of this cluster"))
    }

    fn any_live(&self) -> SocketAddr {
        self.live_addrs()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no node of the cluster is running"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.lock().iter_mut() {
            if let Some(mut child) = child.take() {
                let _ = (child.kill(), child.wait());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn log_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("redis-{port}.log"))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (p, p + 10000) found on 127.0.0.1 in 100 tries")
}

/// Waits (at most 10 s) until the node on `port` answers PING from this very process.
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "redis-server on port {port} exited at start ({status}): {}",
                tail(&log_path(dir, port), 5)
            )));
        }
        let pid = resp::command(addr(port), &[b"INFO", b"server"], COMMAND_TIMEOUT)
            .ok()
            .and_then(|reply| reply.text())
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .and_then(|pid| pid.trim().parse::<u32>().ok())
            });
        if pid == Some(child.id()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("redis-server on port {port} did not answer within 10 s"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
