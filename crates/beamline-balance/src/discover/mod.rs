//! Where the endpoints come from: a fixed list, DNS re-resolved on a timer, or your own
//! stream of changes.

mod dns;

pub use dns::{Dns, Resolution, Resolver, SystemResolver};

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;

use futures::Stream;
use futures::stream::{self, StreamExt};

/// One change to the set of endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: an endpoint is added or removed
pub enum Change {
    /// A new endpoint (an address already in the set is ignored).
    Insert(SocketAddr),
    /// An endpoint leaves: it takes no new request from this moment and drains the ones in
    /// flight (an address not in the set is ignored).
    Remove(SocketAddr),
}

/// Where a [`Balanced`](crate::Balanced) client's endpoints come from.
///
/// - [`Discovery::fixed`]: a list, for good.
/// - [`Discovery::dns`]: a name resolved at start and again on a timer ([`Dns`]: A and
///   AAAA records, a minimum TTL, a pluggable [`Resolver`]).
/// - [`Discovery::stream`]: your own stream of [`Change`]s (a service registry's watch).
///   When it ends, the set stays as it is.
pub struct Discovery {
    pub(crate) source: Source,
}

pub(crate) enum Source {
    Fixed(Vec<SocketAddr>),
    Dns(Dns),
    Stream(Pin<Box<dyn Stream<Item = Change> + Send>>),
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Fixed(addrs) => f.debug_tuple("Fixed").field(addrs).finish(),
            Source::Dns(dns) => f.debug_tuple("Dns").field(dns).finish(),
            Source::Stream(_) => f.debug_tuple("Stream").finish_non_exhaustive(),
        }
    }
}

impl Discovery {
    /// These endpoints, for good.
    pub fn fixed(addrs: impl IntoIterator<Item = SocketAddr>) -> Discovery {
        Discovery {
            source: Source::Fixed(addrs.into_iter().collect()),
        }
    }

    /// The addresses a name resolves to, resolved again on a timer (see [`Dns`]).
    pub fn dns(dns: Dns) -> Discovery {
        Discovery {
            source: Source::Dns(dns),
        }
    }

    /// Your own stream of changes, applied in order as they come.
    pub fn stream(changes: impl Stream<Item = Change> + Send + 'static) -> Discovery {
        Discovery {
            source: Source::Stream(Box::pin(changes)),
        }
    }

    /// Every source as one stream of changes (a fixed list: its inserts, then nothing).
    pub(crate) fn into_changes(self) -> Pin<Box<dyn Stream<Item = Change> + Send>> {
        match self.source {
            Source::Fixed(addrs) => Box::pin(stream::iter(addrs.into_iter().map(Change::Insert))),
            Source::Dns(dns) => dns.into_changes(),
            Source::Stream(changes) => changes.boxed(),
        }
    }
}

impl From<Vec<SocketAddr>> for Discovery {
    fn from(addrs: Vec<SocketAddr>) -> Discovery {
        Discovery::fixed(addrs)
    }
}

impl From<Dns> for Discovery {
    fn from(dns: Dns) -> Discovery {
        Discovery::dns(dns)
    }
}
