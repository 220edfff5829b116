//! [`Cidr`]: an address range, for the sources trusted to send PROXY headers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP address range: an address and how many of its leading bits count
/// (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1/32`). An IPv4-mapped IPv6 address
/// (`::ffff:10.1.2.3`, as a dual-stack listener sees IPv4 clients) is matched as its IPv4
/// address.
///
/// # Examples
/// ```
/// use beamline_server::Cidr;
///
/// let balancers: Cidr = "10.0.0.0/8".parse()?;
/// assert!(balancers.contains("10.20.30.40".parse()?));
/// assert!(!balancers.contains("192.0.2.1".parse()?));
/// let one: Cidr = "127.0.0.1".parse()?; // a bare address is a /32 (or /128)
/// assert!(one.contains("127.0.0.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a [`Cidr`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The address part is not an IP address.
    #[error("`{0}` is not an IP address")]
    Address(String),
    /// The prefix is not a number of bits the address has.
    #[error("`{text}` is not a prefix length from 0 to {max}")]
    Prefix {
        /// The prefix as written.
        text: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
}

impl Cidr {
    /// The range of `addr`'s first `prefix` bits (the other bits of `addr` are ignored).
    ///
    /// # Errors
    /// [`CidrError::Prefix`] if `prefix` exceeds the address's length.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        // An IPv4-mapped range is the IPv4 range it maps, as the addresses it is matched
        // against are.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && (96..=128).contains(&prefix)
        {
            return Self::new(IpAddr::V4(v4), prefix - 96);
        }
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > max {
            return Err(CidrError::Prefix {
                text: prefix.to_string(),
                max,
            });
        }
        Ok(Self {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        matches!(
            (self.addr, ip),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        ) && mask(ip, self.prefix) == self.addr
    }
}

/// `addr` with only its first `prefix` bits kept.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & bits))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::Address(addr_text.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p.parse::<u8>().map_err(|_| CidrError::Prefix {
                text: p.to_owned(),
                max,
            })?,
        };
        Self::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<IpAddr> for Cidr {
    /// The one address: a /32 or a /128.
    fn from(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }
}
