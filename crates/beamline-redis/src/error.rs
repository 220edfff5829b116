//! What a cluster request can fail with, and whether it may have been applied.

use std::sync::Arc;
use std::time::Duration;

use beamline_client::{ClientError, WasSent};

/// Why a [`ClusterClient`](crate::ClusterClient) request failed.
///
/// The question after a failure is whether the command may have been applied:
/// [`may_have_been_applied`](Self::may_have_been_applied) answers it for every variant.
/// `false` means it certainly was not (sending it again is safe, even for `INCR`); `true`
/// means it may have been.
///
/// | variant | applied? | what happened |
/// |---|---|---|
/// | `CrossSlot` | no | the command's keys span slots and it cannot be split: refused before sending |
/// | `ConnectionState` | no | `MULTI`, `SELECT`, `SUBSCRIBE`...: it would change a connection other requests share |
/// | `EmptyCommand` | no | a command without even a name |
/// | `TooManyRedirects` | `maybe_applied` | more than the allowed `MOVED`/`ASK` redirects |
/// | `ConnectionLost` | yes (maybe) | the node's connection died after the command was written; not resent, because it is not idempotent |
/// | `Timeout` | `maybe_applied` | the request's deadline passed (the last obstacle is named) |
/// | `Node` | see source | the node's client refused the request in a way no retry helps |
/// | `Split` | maybe | a multi-key command split by slot: some part failed, the others may have been applied |
/// | `NoSeed` | no | no seed answered `CLUSTER SLOTS` at start |
/// | `NotReady` | no | `sync_connect`: not every slot served, or not every primary reachable, by the timeout |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The command's keys are in different slots, and it is not one the client splits
    /// (`MGET`, `MSET`, `DEL`, `EXISTS`, `UNLINK`, `TOUCH`). Nothing was sent. Use a hash
    /// tag (`{user1}.a`, `{user1}.b`) to put keys in one slot.
    #[error(
        "{command}: the keys span {slots} slots and the command cannot be split; nothing was sent"
    )]
    CrossSlot {
        /// The command's name.
        command: String,
        /// How many distinct slots its keys are in.
        slots: usize,
    },
    /// The command changes the state of its connection (`MULTI`, `SELECT`, `SUBSCRIBE`,
    /// `CLIENT REPLY`, ...), which every request to the node shares. Nothing was sent.
    #[error("{command} changes the state of a connection other requests share; nothing was sent")]
    ConnectionState {
        /// The command's name.
        command: String,
    },
    /// The command had no arguments at all, not even a name. Nothing was sent.
    #[error("an empty command; nothing was sent")]
    EmptyCommand,
    /// More than the allowed number of `MOVED` / `ASK` redirects (the slot keeps moving,
    /// or two nodes disagree on its owner).
    #[error("{command}: gave up after {redirects} redirects (last to {last})")]
    TooManyRedirects {
        /// The command's name.
        command: String,
        /// How many redirects were followed.
        redirects: usize,
        /// Where the last one pointed.
        last: Arc<str>,
        /// Whether an earlier attempt may have been applied (a resent idempotent command
        /// whose first connection was lost); a redirect itself means "not applied here".
        maybe_applied: bool,
    },
    /// The connection to `node` was lost after the command was written, before its answer:
    /// it may have been applied. It was not sent again because it is not idempotent (not
    /// read-only by the command table, and not sent with
    /// [`call_idempotent`](crate::ClusterClient::call_idempotent)).
    #[error(
        "{command}: the connection to {node} was lost after the command was written; it may have been applied"
    )]
    ConnectionLost {
        /// The command's name.
        command: String,
        /// The node whose connection died.
        node: Arc<str>,
        /// What the node's client reported.
        #[source]
        source: Box<ClientError>,
    },
    /// The request's deadline passed before it got an answer. `last` says what it was
    /// waiting out (a node that could not be reached, `CLUSTERDOWN`, `TRYAGAIN`, an answer
    /// that did not come...).
    #[error("{command}: no answer within {timeout:?} (last: {last}){}", if *.maybe_applied { "; it may have been applied" } else { "; it was not applied" })]
    Timeout {
        /// The command's name.
        command: String,
        /// The request timeout.
        timeout: Duration,
        /// The last obstacle.
        last: String,
        /// Whether any attempt may have reached a node and been applied.
        maybe_applied: bool,
    },
    /// The node's client failed the request in a way a retry does not help (it could not be
    /// encoded, the client was closed). [`WasSent`] on it says whether it was sent.
    #[error("{command}: {node} failed the request")]
    Node {
        /// The command's name.
        command: String,
        /// The node.
        node: Arc<str>,
        /// What its client reported.
        #[source]
        source: Box<ClientError>,
    },
    /// A multi-key command split by slot: at least one part failed (`failed` is the first
    /// failure). The parts that succeeded were applied.
    #[error("{command}: {succeeded} of {parts} parts succeeded")]
    Split {
        /// The command's name.
        command: String,
        /// How many parts it was split into.
        parts: usize,
        /// How many answered.
        succeeded: usize,
        /// The first part's failure.
        #[source]
        failed: Box<ClusterError>,
    },
    /// No seed answered `CLUSTER SLOTS` with a usable slot map when the client started.
    #[error("no seed answered CLUSTER SLOTS: {}", .errors.join("; "))]
    NoSeed {
        /// Each seed's failure.
        errors: Vec<String>,
    },
    /// With [`sync_connect`](crate::ClusterBuilder::sync_connect): the cluster was not
    /// whole (every slot served, every primary reachable) within the timeout. The last
    /// check's findings are inside.
    #[error(
        "the cluster was not ready within {timeout:?}: {served} of 16384 slots served; {}",
        .unreachable.join("; ")
    )]
    NotReady {
        /// How long the client waited.
        timeout: Duration,
        /// How many slots had a primary in the last slot map.
        served: usize,
        /// Each primary the client could not connect to, with why.
        unreachable: Vec<String>,
    },
}

/// The [`WasSent`] of every beamline client error: `false` exactly when
/// [`may_have_been_applied`](ClusterError::may_have_been_applied) is, so a layer that retries
/// any beamline error by this trait retries a cluster request only when that is safe. For a
/// cluster request `false` also covers one a node refused with an answer that applies nothing
/// (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`...): it was delivered, and resending it still
/// cannot apply it twice, which is what the trait's `false` promises.
impl WasSent for ClusterError {
    fn was_sent(&self) -> bool {
        self.may_have_been_applied()
    }
}

impl ClusterError {
    /// Whether the command may have been applied by a node. `false` means it certainly was
    /// not: sending it again is safe.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            ClusterError::CrossSlot { .. }
            | ClusterError::ConnectionState { .. }
            | ClusterError::EmptyCommand
            | ClusterError::NoSeed { .. }
            | ClusterError::NotReady { .. } => false,
            ClusterError::TooManyRedirects { maybe_applied, .. }
            | ClusterError::Timeout { maybe_applied, .. } => *maybe_applied,
            ClusterError::ConnectionLost { .. } => true,
            ClusterError::Node { source, .. } => source.was_sent(),
            ClusterError::Split {
                succeeded, failed, ..
            } => *succeeded > 0 || failed.may_have_been_applied(),
        }
    }

    /// Whether the request's deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClusterError::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_says_whether_it_may_have_been_applied() {
        let cross = ClusterError::CrossSlot {
            command: "SUNION".into(),
            slots: 2,
        };
        assert!(!cross.may_have_been_applied());
        assert!(cross.to_string().contains("nothing was sent"), "{cross}");
        let timeout = |maybe_applied| ClusterError::Timeout {
            command: "INCR".into(),
            timeout: Duration::from_secs(1),
            last: "CLUSTERDOWN".into(),
            maybe_applied,
        };
        assert!(timeout(true).may_have_been_applied());
        assert!(!timeout(false).may_have_been_applied());
        assert!(timeout(false).is_timeout());
        let split = ClusterError::Split {
            command: "DEL".into(),
            parts: 2,
            succeeded: 0,
            failed: Box::new(timeout(false)),
        };
        assert!(!split.may_have_been_applied());
        let split = ClusterError::Split {
            command: "DEL".into(),
            parts: 2,
            succeeded: 1,
            failed: Box::new(timeout(false)),
        };
        assert!(split.may_have_been_applied());
        // WasSent answers as may_have_been_applied, for code generic over beamline errors.
        assert!(split.was_sent());
        assert!(!cross.was_sent());
        assert!(timeout(true).was_sent());
        assert!(!timeout(false).was_sent());
        let not_ready = ClusterError::NotReady {
            timeout: Duration::from_secs(1),
            served: 16384,
            unreachable: vec!["127.0.0.1:7000: refused".into()],
        };
        assert!(!not_ready.was_sent());
        assert!(
            not_ready.to_string().contains("127.0.0.1:7000"),
            "{not_ready}"
        );
    }
}
