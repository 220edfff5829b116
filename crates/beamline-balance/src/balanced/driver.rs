//! The balanced client's one background task: applies discovery's changes, makes each
//! endpoint's client (retrying with a backoff), and replaces clients past their max age.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use beamline_reconnect::{BackoffConfig, SplitMix64};
use futures::{Stream, StreamExt};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::{MakeEndpoint, Member, Shared, now};
use crate::core::{EndpointId, Removed};
use crate::discover::Change;
use crate::endpoint::Endpoint;

/// A client made for the endpoint of `id`.
struct Made<E> {
    id: EndpointId,
    member: Arc<Member<E>>,
    client: E,
}

/// What the driver owns.
pub(crate) struct Driver<M: MakeEndpoint> {
    pub(crate) shared: Arc<Shared<M::Endpoint>>,
    pub(crate) make: Arc<M>,
    pub(crate) backoff: BackoffConfig,
    pub(crate) max_age: Option<Duration>,
    pub(crate) max_age_jitter: f64,
    pub(crate) rng: SplitMix64,
    making: JoinSet<Made<M::Endpoint>>,
    /// The make task of each endpoint still without a client, by endpoint and by task.
    tasks: HashMap<EndpointId, AbortHandle>,
    task_owner: HashMap<tokio::task::Id, EndpointId>,
    /// When each endpoint's client reaches its max age.
    ages: Vec<(Instant, EndpointId)>,
    /// A new client being made for an address whose client aged out: new id → old id.
    replacing: HashMap<EndpointId, EndpointId>,
}

impl<M: MakeEndpoint> Driver<M> {
    pub(crate) fn new(
        shared: Arc<Shared<M::Endpoint>>,
        make: M,
        backoff: BackoffConfig,
        max_age: Option<Duration>,
        max_age_jitter: f64,
        seed: u64,
    ) -> Self {
        Driver {
            shared,
            make: Arc::new(make),
            backoff,
            max_age,
            max_age_jitter,
            rng: SplitMix64::new(seed),
            making: JoinSet::new(),
            tasks: HashMap::new(),
            task_owner: HashMap::new(),
            ages: Vec::new(),
            replacing: HashMap::new(),
        }
    }

    /// Runs until aborted (when the client closes). When discovery ends, the set stays.
    pub(crate) async fn run(mut self, mut changes: Pin<Box<dyn Stream<Item = Change> + Send>>) {
        let mut discovering = true;
        loop {
            let next_age = self.ages.iter().map(|(at, _)| *at).min();
            tokio::select! {
                change = changes.next(), if discovering => match change {
                    Some(Change::Insert(addr)) => self.insert(addr),
                    Some(Change::Remove(addr)) => self.remove(addr),
                    None => discovering = false,
                },
                Some(done) = self.making.join_next_with_id(), if !self.making.is_empty() => {
                    match done {
                        Ok((task, made)) => {
                            self.task_owner.remove(&task);
                            self.made(made);
                        }
                        Err(error) => self.make_failed(error),
                    }
                }
                () = sleep_until(next_age), if next_age.is_some() => self.age_out(),
                else => std::future::pending::<()>().await,
            }
        }
    }

    fn insert(&mut self, addr: SocketAddr) {
        let member = Arc::new(Member {
            addr,
            client: OnceLock::new(),
        });
        let id = {
            let mut table = self.shared.table();
            if table.by_addr.contains_key(&addr) {
                return;
            }
            let id = table.core.insert(Arc::clone(&member), now());
            table.by_addr.insert(addr, id);
            id
        };
        self.spawn_make(id, member);
        tracing::info!(
            target: "beamline_balance",
            balancer = %self.shared.name, endpoint = %addr, ?id, "endpoint added"
        );
    }

    fn remove(&mut self, addr: SocketAddr) {
        let Some(id) = self.shared.table().by_addr.remove(&addr) else {
            return;
        };
        tracing::info!(
            target: "beamline_balance",
            balancer = %self.shared.name, endpoint = %addr,
            "endpoint removed: it takes no new request and drains"
        );
        self.retire(id);
        let newer: Vec<EndpointId> = self
            .replacing
            .iter()
            .filter(|(_, old)| **old == id)
            .map(|(new, _)| *new)
            .collect();
        for new in newer {
            self.replacing.remove(&new);
            self.retire(new);
        }
    }

    /// Takes `id` out of the table (it drains) and stops making its client.
    fn retire(&mut self, id: EndpointId) {
        if let Some(task) = self.tasks.remove(&id) {
            task.abort();
        }
        self.ages.retain(|(_, aged)| *aged != id);
        let removed = self.shared.table().core.remove(id);
        if let Some(Removed::Now(member)) = removed {
            member.close();
        }
    }

    /// Starts making the client of `id`, retrying with the backoff until it succeeds or the
    /// endpoint is removed (which aborts the task).
    fn spawn_make(&mut self, id: EndpointId, member: Arc<Member<M::Endpoint>>) {
        let make = Arc::clone(&self.make);
        let name = Arc::clone(&self.shared.name);
        let backoff = self.backoff.build_seeded(self.rng.next());
        let task = self.making.spawn(async move {
            let Ok(mut backoff) = backoff else {
                // Validated at start: never reached.
                return std::future::pending().await;
            };
            loop {
                match make.make(member.addr).await {
                    Ok(client) => return Made { id, member, client },
                    Err(error) => {
                        let delay = backoff.next_delay(now()).unwrap_or_else(|_| {
                            backoff.reset();
                            Duration::from_secs(1)
                        });
                        tracing::warn!(
                            target: "beamline_balance",
                            balancer = %name, endpoint = %member.addr, %error, ?delay,
                            "making the endpoint's client failed: trying again"
                        );
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
        self.task_owner.insert(task.id(), id);
        self.tasks.insert(id, task);
    }

    /// A make task panicked: try again (with a fresh backoff), unless it was aborted.
    fn make_failed(&mut self, error: tokio::task::JoinError) {
        let Some(id) = self.task_owner.remove(&error.id()) else {
            return;
        };
        self.tasks.remove(&id);
        let member = self.shared.table().core.get(id).cloned();
        if let Some(member) = member.filter(|_| error.is_panic()) {
            tracing::error!(
                target: "beamline_balance",
                balancer = %self.shared.name, endpoint = %member.addr,
                "making the endpoint's client panicked: trying again"
            );
            self.spawn_make(id, member);
        }
    }

    fn made(&mut self, made: Made<M::Endpoint>) {
        let Made { id, member, client } = made;
        self.tasks.remove(&id);
        if self.shared.table().core.get(id).is_none() {
            client.close();
            return;
        }
        if let Err(client) = member.client.set(client) {
            client.close();
            return;
        }
        tracing::info!(
            target: "beamline_balance",
            balancer = %self.shared.name, endpoint = %member.addr, "endpoint client made"
        );
        if let Some(age) = self.max_age {
            let unit = (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let age = age.mul_f64(1.0 - self.max_age_jitter * unit);
            self.ages.push((Instant::now() + age, id));
        }
        if let Some(old) = self.replacing.remove(&id) {
            self.shared.table().by_addr.insert(member.addr, id);
            self.retire(old);
        }
        self.shared.changed.notify_waiters();
    }

    /// Replaces every client past its max age: a new client is made for the same address
    /// and, once it is, the old one drains.
    fn age_out(&mut self) {
        let now_t = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.ages.drain(..).partition(|(at, _)| *at <= now_t);
        self.ages = later;
        for (_, old) in due {
            let replacement = {
                let mut table = self.shared.table();
                let Some(addr) = table.core.get(old).map(|m| m.addr) else {
                    continue;
                };
                if table.by_addr.get(&addr) != Some(&old) {
                    continue;
                }
                let member = Arc::new(Member {
                    addr,
                    client: OnceLock::new(),
                });
                let new = table.core.insert(Arc::clone(&member), now());
                (new, member)
            };
            tracing::info!(
                target: "beamline_balance",
                balancer = %self.shared.name, endpoint = %replacement.1.addr,
                "connection max age reached: replacing the endpoint's client"
            );
            self.replacing.insert(replacement.0, old);
            self.spawn_make(replacement.0, replacement.1);
        }
    }
}

/// Sleeps until `at` (never, for `None`: its `select!` branch is disabled then).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
