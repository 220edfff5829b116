//! Admission: the one global connection limit, what happens beyond it ([`Overload`]), and the
//! optional per-peer-IP cap (keyed per IPv4 address and per IPv6 prefix).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the server does with connections beyond
/// [`max_connections`](crate::Server::max_connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

impl Refusal {
    /// The `reason` field of the "connection rejected" event.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::PerIp => "per_ip",
        }
    }
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
    /// Held for its drop, which frees the place under the per-IP cap.
    _ip: Option<IpSlot>,
}

/// The limits every acceptor of one server shares.
#[derive(Debug)]
pub(crate) struct Limits {
    slots: Arc<Semaphore>,
    overload: Overload,
    per_ip: Option<Arc<PerIp>>,
}

/// The default IPv6 prefix the per-IP cap counts as one client: a /64 is what one site (one
/// host, with privacy addresses) gets, and rotates addresses in at will.
pub(crate) const DEFAULT_IP_PREFIX_V6: u8 = 64;

impl Limits {
    /// `per_ip`: at most this many connections per IPv4 address and per IPv6 `/prefix_v6`.
    pub(crate) fn new(
        max_connections: usize,
        overload: Overload,
        per_ip: Option<u32>,
        prefix_v6: u8,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections)),
            overload,
            per_ip: per_ip.map(|max| {
                Arc::new(PerIp {
                    max,
                    prefix_v6,
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

    /// Admits under the per-IP cap, late: for a connection admitted without an address
    /// (behind a PROXY header) once its client's address is known.
    pub(crate) fn admit_ip(&self, admission: &mut Admission, ip: IpAddr) -> Result<(), Refusal> {
        if let Some(table) = &self.per_ip {
            admission._ip = Some(PerIp::enter(table, ip).ok_or(Refusal::PerIp)?);
        }
        Ok(())
    }
}

/// Live connections per client: an IPv4 address, or an IPv6 prefix. Touched once at
/// admission and once at exit, under a short lock; only servers that set a cap have one.
#[derive(Debug)]
struct PerIp {
    max: u32,
    prefix_v6: u8,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl PerIp {
    /// The key `ip` counts under: an IPv4-mapped IPv6 address is its IPv4 address (a
    /// dual-stack listener sees IPv4 clients that way), an IPv6 address its prefix.
    fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_v6))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    fn enter(table: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let ip = table.key(ip);
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
        let limits = Limits::new(2, Overload::Reject, None, 64);
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
        let limits = Limits::new(10, Overload::Reject, Some(1), 64);
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

    #[test]
    fn an_ipv6_peer_rotating_addresses_inside_its_64_counts_as_one() {
        let limits = Limits::new(100, Overload::Reject, Some(2), 64);
        let host = |n: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 9, n, 1, 2, n));
        let _a = limits.admit(None, Some(host(1))).unwrap();
        let _b = limits.admit(None, Some(host(2))).unwrap();
        for n in 3..50 {
            assert_eq!(
                limits.admit(None, Some(host(n))).unwrap_err(),
                Refusal::PerIp,
                "a fresh address inside the same /64"
            );
        }
        // Another /64 is another client.
        let other = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 10, 0, 0, 0, 1));
        let _c = limits.admit(None, Some(other)).unwrap();
    }

    #[test]
    fn the_ipv6_prefix_is_configurable_from_one_key_to_every_address() {
        let host = |n: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, n, 0, 0, 0, 1));
        // /48: the four /64s above are one client.
        let per_48 = Limits::new(100, Overload::Reject, Some(1), 48);
        let _a = per_48.admit(None, Some(host(1))).unwrap();
        assert_eq!(
            per_48.admit(None, Some(host(2))).unwrap_err(),
            Refusal::PerIp
        );
        // /128: every address is its own client.
        let per_128 = Limits::new(100, Overload::Reject, Some(1), 128);
        let _b = per_128.admit(None, Some(host(1))).unwrap();
        let _c = per_128.admit(None, Some(host(2))).unwrap();
        // /0: all of IPv6 is one client, IPv4 apart.
        let per_0 = Limits::new(100, Overload::Reject, Some(1), 0);
        let _d = per_0.admit(None, Some(host(1))).unwrap();
        assert_eq!(
            per_0.admit(None, Some(host(9))).unwrap_err(),
            Refusal::PerIp
        );
        let _e = per_0.admit(None, Some(A)).unwrap();
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let limits = Limits::new(100, Overload::Reject, Some(1), 64);
        let _v4 = limits.admit(None, Some(A)).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        assert_eq!(
            limits.admit(None, Some(mapped)).unwrap_err(),
            Refusal::PerIp
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pause_waits_for_a_place_before_accepting() {
        let limits = Arc::new(Limits::new(1, Overload::Pause, None, 64));
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
        let limits = Limits::new(1, Overload::Reject, None, 64);
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
