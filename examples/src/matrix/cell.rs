//! The matrix's axes and their names: `tcp/pooled+mux/reset`, and the FIFO family
//! `tcp/fifo/abandoned-reply`.

use std::fmt;
use std::str::FromStr;

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP (rustls, ring), certificates from a test CA made for the cell.
    Tls,
}

/// How the client's requests share connections, each a shape of the facade's `Client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// One connection, one request in flight at a time (`max_in_flight(1)`).
    Single,
    /// An exclusive pool of non-multiplexed connections (`Pooling::Exclusive`,
    /// `max_in_flight(1)`): each connection lent to one call at a time.
    Pooled,
    /// One connection with request ids and many requests in flight (`Pooling::Single`).
    Mux,
    /// A shared pool of multiplexed connections (`Pooling::Shared`).
    PooledMux,
    /// One connection, FIFO order (no ids), many requests pipelined on it.
    Fifo,
    /// One connection, FIFO order, one request in flight at a time.
    FifoSingle,
    /// An exclusive pool of FIFO connections, one request in flight on each.
    FifoPooled,
    /// A shared pool of pipelined FIFO connections.
    PooledFifo,
}

/// What goes wrong while the cell's load runs (injected through `beamline-chaos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Nothing: the baseline, where every request must succeed.
    None,
    /// 20 ms ± 10 ms (10 ms floor plus up to 20 ms of seeded jitter) each way.
    Latency,
    /// Every connection is reset (a real RST) mid-stream, after a few KiB, while it lasts.
    Reset,
    /// The server goes away (graceful shutdown, nothing listening) and comes back on the
    /// same address.
    Restart,
    /// A 2 s partition (blackhole both ways, new connections held), then heal.
    Partition,
    /// The client reads slowly: the downstream direction is bandwidth-limited and sliced.
    SlowReader,
    /// FIFO cells only: the server swallows one request's reply and answers nothing more on
    /// that connection (a `BLPOP k 0`): every later reply on it would wait for ever. The
    /// client's abandon timeout must find the wedge and replace the connection.
    AbandonedReply,
}

/// One cell of the matrix: transport × client shape × fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    /// TCP or TLS.
    pub transport: Transport,
    /// The client's shape.
    pub shape: Shape,
    /// The fault injected.
    pub fault: Fault,
}

impl Transport {
    /// Every transport, in the matrix's order.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Tls];

    /// The name used in cell names.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

impl Shape {
    /// The shapes of the wire protocol (request ids), in the matrix's order.
    pub const ALL: [Shape; 4] = [Shape::Single, Shape::Pooled, Shape::Mux, Shape::PooledMux];

    /// The shapes of the FIFO protocol (no ids), in the matrix's order.
    pub const FIFO: [Shape; 4] = [
        Shape::Fifo,
        Shape::FifoSingle,
        Shape::FifoPooled,
        Shape::PooledFifo,
    ];

    /// The name used in cell names.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::Single => "single",
            Shape::Pooled => "pooled",
            Shape::Mux => "mux",
            Shape::PooledMux => "pooled+mux",
            Shape::Fifo => "fifo",
            Shape::FifoSingle => "fifo-single",
            Shape::FifoPooled => "fifo-pooled",
            Shape::PooledFifo => "pooled+fifo",
        }
    }

    /// Whether calls first check a connection out of a pool (which adds the checkout
    /// timeout to a request's worst case).
    pub const fn is_pooled(self) -> bool {
        matches!(
            self,
            Shape::Pooled | Shape::PooledMux | Shape::FifoPooled | Shape::PooledFifo
        )
    }

    /// Whether replies match requests by order (no ids on the wire).
    pub const fn is_fifo(self) -> bool {
        matches!(
            self,
            Shape::Fifo | Shape::FifoSingle | Shape::FifoPooled | Shape::PooledFifo
        )
    }
}

impl Fault {
    /// Every fault of the wire-protocol cells, in the matrix's order.
    pub const ALL: [Fault; 6] = [
        Fault::None,
        Fault::Latency,
        Fault::Reset,
        Fault::Restart,
        Fault::Partition,
        Fault::SlowReader,
    ];

    /// The name used in cell names.
    pub const fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Latency => "latency",
            Fault::Reset => "reset",
            Fault::Restart => "restart",
            Fault::Partition => "partition",
            Fault::SlowReader => "slow-reader",
            Fault::AbandonedReply => "abandoned-reply",
        }
    }
}

impl Cell {
    /// Every cell: the 48 wire-protocol cells, transport-major (`tcp/single/none`,
    /// `tcp/single/latency`, ...), then the FIFO family over TCP
    /// (`tcp/fifo/abandoned-reply`, ...).
    pub fn all() -> Vec<Cell> {
        let mut cells = Vec::with_capacity(52);
        for transport in Transport::ALL {
            for shape in Shape::ALL {
                for fault in Fault::ALL {
                    cells.push(Cell {
                        transport,
                        shape,
                        fault,
                    });
                }
            }
        }
        for shape in Shape::FIFO {
            cells.push(Cell {
                transport: Transport::Tcp,
                shape,
                fault: Fault::AbandonedReply,
            });
        }
        cells
    }

    /// A seed derived from the name (FNV-1a), so every cell has its own and a rerun of one
    /// cell replays it.
    pub fn seed(&self) -> u64 {
        self.to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.transport.name(),
            self.shape.name(),
            self.fault.name()
        )
    }
}

/// A cell name that is not `<transport>/<shape>/<fault>` with known parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cell `{name}`: want <transport>/<shape>/<fault>, e.g. tcp/pooled+mux/reset")]
pub struct CellParseError {
    /// What was given.
    pub name: String,
}

impl FromStr for Cell {
    type Err = CellParseError;

    fn from_str(name: &str) -> Result<Cell, CellParseError> {
        let bad = || CellParseError {
            name: name.to_owned(),
        };
        let mut parts = name.split('/');
        let (Some(t), Some(s), Some(f), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        // Only the combinations the matrix has: `tcp/fifo/latency` is no cell.
        Cell::all()
            .into_iter()
            .find(|c| c.transport.name() == t && c.shape.name() == s && c.fault.name() == f)
            .ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_two_distinct_cells_that_parse_back() {
        let cells = Cell::all();
        assert_eq!(cells.len(), 52);
        let names: std::collections::HashSet<String> =
            cells.iter().map(ToString::to_string).collect();
        assert_eq!(names.len(), 52);
        for cell in &cells {
            assert_eq!(cell.to_string().parse::<Cell>().unwrap(), *cell);
        }
        assert_eq!(cells[0].to_string(), "tcp/single/none");
        assert!(names.contains("tls/pooled+mux/slow-reader"));
        for fifo in [
            "tcp/fifo/abandoned-reply",
            "tcp/fifo-single/abandoned-reply",
            "tcp/fifo-pooled/abandoned-reply",
            "tcp/pooled+fifo/abandoned-reply",
        ] {
            assert!(names.contains(fifo), "{fifo}");
        }
        for cell in &cells {
            assert_eq!(
                cell.shape.is_fifo(),
                cell.fault == Fault::AbandonedReply,
                "{cell}"
            );
        }
    }

    #[test]
    fn bad_names_are_named_in_the_error() {
        for bad in [
            "",
            "tcp",
            "tcp/single",
            "udp/single/none",
            "tcp/pool/none",
            "tcp/single/fire",
            "tcp/single/none/extra",
            "tcp/fifo/none",
            "tls/fifo/abandoned-reply",
            "tcp/mux/abandoned-reply",
        ] {
            let err = bad.parse::<Cell>().unwrap_err();
            assert_eq!(err.name, bad);
            assert!(err.to_string().contains("tcp/pooled+mux/reset"));
        }
    }

    #[test]
    fn seeds_differ_per_cell_and_repeat() {
        let cells = Cell::all();
        let seeds: std::collections::HashSet<u64> = cells.iter().map(Cell::seed).collect();
        assert_eq!(seeds.len(), cells.len());
        assert_eq!(cells[3].seed(), cells[3].seed());
    }
}
