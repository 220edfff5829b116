//! DNS discovery: a name resolved again on a timer that respects a minimum TTL, through a
//! resolver you can replace (tests inject changes with one).

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use futures::stream::{self, StreamExt};

use super::Change;

/// What a resolver found for a name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Resolution {
    /// The addresses (A and AAAA records), with the port asked for.
    pub addrs: Vec<SocketAddr>,
    /// How long the answer may be cached, when the resolver knows (the system resolver
    /// does not say: the refresh interval is used).
    pub ttl: Option<Duration>,
}

impl Resolution {
    /// An answer of `addrs`, with no TTL.
    pub fn new(addrs: impl IntoIterator<Item = SocketAddr>) -> Resolution {
        Resolution {
            addrs: addrs.into_iter().collect(),
            ttl: None,
        }
    }

    /// The answer's TTL.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Resolution {
        self.ttl = Some(ttl);
        self
    }
}

/// Resolves a name to addresses. [`SystemResolver`] asks the system (`getaddrinfo`); a test
/// implements it to change the answer at will.
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host`, each with `port`.
    fn resolve(&self, host: &str, port: u16)
    -> impl Future<Output = io::Result<Resolution>> + Send;
}

/// The system's resolver (`getaddrinfo`, through `tokio::net::lookup_host`): A and AAAA
/// records, as `/etc/hosts` and the configured DNS servers answer. It reports no TTL.
#[derive(Debug, Clone, Copy, Default)]
#[allow(clippy::exhaustive_structs)] // closed: a unit value, built by its name
pub struct SystemResolver;

impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Resolution> {
        let addrs = tokio::net::lookup_host((host, port)).await?;
        Ok(Resolution::new(addrs))
    }
}

/// An object-safe [`Resolver`], so [`Dns`] is one type whatever resolver it holds.
trait DynResolver: Send + Sync {
    fn resolve_boxed<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Resolution>> + Send + 'a>>;
}

impl<R: Resolver> DynResolver for R {
    fn resolve_boxed<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Resolution>> + Send + 'a>> {
        Box::pin(self.resolve(host, port))
    }
}

/// A name to resolve, and how often.
///
/// | setting | default |
/// |---|---|
/// | [`refresh`](Self::refresh) | 30 s: when the resolver gives no TTL |
/// | [`min_ttl`](Self::min_ttl) | 5 s: never resolved again sooner, whatever the TTL says |
/// | [`resolver`](Self::resolver) | [`SystemResolver`] |
///
/// # Guarantees
/// - **The minimum TTL holds**: two resolutions are at least `min_ttl` apart; an answer's
///   TTL (when the resolver gives one) sets the next refresh, but never below `min_ttl`.
/// - **A failed or empty answer changes nothing**: the endpoints stay as they were (a DNS
///   hiccup must not empty the set), and the name is tried again after `min_ttl`.
/// - **Changes are the difference**: an address that appears is inserted, one that
///   disappears is removed (it takes no new request and drains), the others are untouched.
pub struct Dns {
    host: String,
    port: u16,
    refresh: Duration,
    min_ttl: Duration,
    resolver: Arc<dyn DynResolver>,
}

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dns")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("refresh", &self.refresh)
            .field("min_ttl", &self.min_ttl)
            .finish_non_exhaustive()
    }
}

impl Dns {
    /// `host` (a name, or an IP literal) with `port`, through the system resolver.
    pub fn new(host: impl Into<String>, port: u16) -> Dns {
        Dns {
            host: host.into(),
            port,
            refresh: Duration::from_secs(30),
            min_ttl: Duration::from_secs(5),
            resolver: Arc::new(SystemResolver),
        }
    }

    /// How often the name is resolved again when the answer has no TTL.
    #[must_use]
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// The least time between two resolutions.
    #[must_use]
    pub fn min_ttl(mut self, min: Duration) -> Self {
        self.min_ttl = min;
        self
    }

    /// Resolves with `resolver` instead of the system's.
    #[must_use]
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// When to resolve again after `answer`: its TTL or the refresh interval, never less
    /// than the minimum TTL (which is all a failed or empty answer waits).
    fn next_after(&self, answer: Answer) -> Duration {
        match answer {
            Answer::Failed => self.min_ttl,
            Answer::Fresh(Some(ttl)) => ttl.max(self.min_ttl),
            Answer::Fresh(None) => self.refresh.max(self.min_ttl),
        }
    }

    /// Resolves at once, then on the timer, yielding each difference as changes.
    pub(crate) fn into_changes(self) -> Pin<Box<dyn Stream<Item = Change> + Send>> {
        let state = (self, BTreeSet::new(), Duration::ZERO);
        let batches = stream::unfold(state, |(dns, mut current, wait)| async move {
            tokio::time::sleep(wait).await;
            let (changes, answer) = match dns.resolver.resolve_boxed(&dns.host, dns.port).await {
                Ok(found) if !found.addrs.is_empty() => {
                    let fresh: BTreeSet<SocketAddr> = found.addrs.into_iter().collect();
                    let changes = difference(&current, &fresh);
                    current = fresh;
                    (changes, Answer::Fresh(found.ttl))
                }
                Ok(_) => {
                    tracing::warn!(
                        target: "beamline_balance::discover",
                        host = %dns.host, "DNS answer without addresses: keeping the endpoints"
                    );
                    (Vec::new(), Answer::Failed)
                }
                Err(error) => {
                    tracing::warn!(
                        target: "beamline_balance::discover",
                        host = %dns.host, %error, "DNS resolution failed: keeping the endpoints"
                    );
                    (Vec::new(), Answer::Failed)
                }
            };
            let wait = dns.next_after(answer);
            Some((stream::iter(changes), (dns, current, wait)))
        });
        Box::pin(batches.flatten())
    }
}

/// How a resolution went, for the timer.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Failed,
    Fresh(Option<Duration>),
}

/// The changes that turn `current` into `fresh`: removals first, then insertions.
pub(crate) fn difference(
    current: &BTreeSet<SocketAddr>,
    fresh: &BTreeSet<SocketAddr>,
) -> Vec<Change> {
    let removed = current.difference(fresh).copied().map(Change::Remove);
    let added = fresh.difference(current).copied().map(Change::Insert);
    removed.chain(added).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 7000))
    }

    #[test]
    fn the_difference_removes_what_left_and_inserts_what_came() {
        let current: BTreeSet<_> = [addr(1), addr(2)].into();
        let fresh: BTreeSet<_> = [addr(2), addr(3)].into();
        assert_eq!(
            difference(&current, &fresh),
            [Change::Remove(addr(1)), Change::Insert(addr(3))]
        );
        assert!(difference(&fresh, &fresh).is_empty());
    }

    #[test]
    fn the_refresh_never_comes_sooner_than_the_minimum_ttl() {
        let dns = Dns::new("kv", 7000)
            .refresh(Duration::from_secs(30))
            .min_ttl(Duration::from_secs(5));
        let s = Duration::from_secs;
        assert_eq!(dns.next_after(Answer::Fresh(Some(s(1)))), s(5));
        assert_eq!(dns.next_after(Answer::Fresh(Some(s(60)))), s(60));
        assert_eq!(dns.next_after(Answer::Fresh(None)), s(30));
        assert_eq!(dns.next_after(Answer::Failed), s(5));
        let eager = Dns::new("kv", 7000).refresh(s(1)).min_ttl(s(5));
        assert_eq!(eager.next_after(Answer::Fresh(None)), s(5));
    }
}
