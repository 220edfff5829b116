//! The balanced client over real beamline servers behind beamline-chaos proxies: five
//! endpoints under every fault at once, a total outage, removal mid-load, servers answering typed errors.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]
#![cfg(all(feature = "balance", feature = "chaos", feature = "server"))]

mod five;
mod fleet;
mod outage;
mod rejected;
