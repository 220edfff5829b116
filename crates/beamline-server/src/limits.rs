//! Admission: the one global connection limit, what happens beyond it ([`Overload`]), and the
//! optional per-peer-IP cap.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the server does with connections beyond
/// [`max_connections`](crate::Server::max_connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overload {
    /// Stop accepting until a connection ends. New connections wait in the kernel's listen
    /// backlog (backpressure: clients see a slow connect, not an error); beyond the backlog
    /// the kernel drops their SYNs and they retry.
    #[default]
    Pause,
    /// Accept and close at once (the client sees EOF), counted in
    /// [`ServerStats::rejected`](crate::ServerStats::rejected). Use it when a fast "no" beats
    /// a slow "maybe".
    Reject,
}

/// Why an accepted connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    MaxConnections,
    PerIp,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaxConnections => "max_connections reached",
            Self::PerIp => "per-IP connection cap reached",
        })
    }
}

/// A connection's place under the limits; dropping it (when the connection's process ends,
/// however it ends) frees the place.
#[derive(Debug)]
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
    _ip: Option<IpSlot>,
}

/// The limits every acceptor of one server shares.
#[derive(Debug)]
pub(crate) struct Limits {
    slots: Arc<Semaphore>,
    overload: Overload,
    per_ip: Option<Arc<PerIp>>,
}

impl Limits {
    pub(crate) fn new(max_connections: usize, overload: Overload, per_ip: Option<u32>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections)),
            overload,
            per_ip: per_ip.map(|max| {
                Arc::new(PerIp {
                    max,
                    counts: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// Under [`Overload::Pause`], waits for a free place before the acceptor accepts (so the
    /// kernel backlog holds the excess); under `Reject`, returns `None` at once. Cancel-safe.
    pub(crate) async fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        match self.overload {
            Overload::Pause => self.slots.clone().acquire_owned().await.ok(),
            Overload::Reject => None,
        }
    }

    /// Admits an accepted connection from `ip` with the place reserved before accepting, or
    /// takes one now.
    pub(crate) fn admit(
        &self,
        reserved: Option<OwnedSemaphorePermit>,
        ip: Option<IpAddr>,
    ) -> Result<Admission, Refusal> {
        let permit = match reserved {
            Some(permit) => permit,
            None => self
                .slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| Refusal::MaxConnections)?,
        };
        let ip = match (&self.per_ip, ip) {
            (Some(table), Some(ip)) => Some(PerIp::enter(table, ip).ok_or(Refusal::PerIp)?),
            _ => None,
        };
        Ok(Admission {
            _permit: permit,
            _ip: ip,
        })
    }
}

/// Live connections per peer IP. Touched once at admission and once at exit, under a short
/// lock; only servers that set a cap have one.
#[derive(Debug)]
struct PerIp {
    max: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl PerIp {
    fn enter(table: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut counts = table.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= table.max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: table.clone(),
            ip,
        })
    }
}

#[derive(Debug)]
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .table
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn reject_refuses_beyond_the_global_limit_until_a_place_frees() {
        let limits = Limits::new(2, Overload::Reject, None);
        let a = limits.admit(None, Some(A)).unwrap();
        let _b = limits.admit(None, Some(B)).unwrap();
        assert_eq!(
            limits.admit(None, Some(A)).unwrap_err(),
            Refusal::MaxConnections
        );
        drop(a);
        limits.admit(None, Some(A)).unwrap();
    }

    #[test]
    fn the_per_ip_cap_counts_each_address_and_frees_on_drop() {
        let limits = Limits::new(10, Overload::Reject, Some(1));
        let a = limits.admit(None, Some(A)).unwrap();
        let _b = limits.admit(None, Some(B)).unwrap();
        assert_eq!(limits.admit(None, Some(A)).unwrap_err(), Refusal::PerIp);
        // A refusal for the IP gives its global place back.
        assert_eq!(limits.slots.available_permits(), 8);
        drop(a);
        let _a = limits.admit(None, Some(A)).unwrap();
        // Unix peers have no IP: only the global limit applies.
        let _unix = limits.admit(None, None).unwrap();
        let table = limits.per_ip.as_ref().unwrap();
        assert_eq!(table.counts.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_waits_for_a_place_before_accepting() {
        let limits = Arc::new(Limits::new(1, Overload::Pause, None));
        let first = limits.reserve().await.unwrap();
        let held = limits.admit(Some(first), Some(A)).unwrap();
        let waiter = {
            let limits = limits.clone();
            tokio::spawn(async move { limits.reserve().await.is_some() })
        };
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(
            !waiter.is_finished(),
            "a full server must not reserve a place"
        );
        drop(held);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn reject_never_reserves_ahead() {
        let limits = Limits::new(1, Overload::Reject, None);
        let reserved = ready_now(limits.reserve());
        assert!(reserved.is_none());
    }

    /// Polls a future that is ready at once.
    fn ready_now<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("not ready at once"),
        }
    }
}
