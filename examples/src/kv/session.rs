//! What one connection remembers between its commands, and the messages its process
//! receives from others.

use beamline::process::Addr;
use beamline::resp::Value;
use bytes::Bytes;

use super::pubsub::Subscriptions;

/// What other processes tell a connection's process.
#[derive(Debug)]
pub(crate) enum KvMsg {
    /// The command it is blocked in is answered (served by a push, unblocked by CLIENT
    /// UNBLOCK): `ticket` names the wait, so a late answer to an older wait is ignored.
    Served { ticket: u64, reply: Value },
    /// A message on a channel it subscribed to, already encoded (one frame shared by every
    /// subscriber).
    Published(Bytes),
}

/// CLIENT REPLY: whether the connection's replies are sent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplyMode {
    /// CLIENT REPLY OFF.
    pub(crate) off: bool,
    /// CLIENT REPLY SKIP was the last command: the next one's reply is not sent.
    pub(crate) skip_next: bool,
    /// This command's reply is not sent.
    skip: bool,
}

impl ReplyMode {
    /// Whether the reply of the command just run is sent; moves SKIP along.
    pub(crate) fn sends(&mut self) -> bool {
        let sends = !self.off && !self.skip;
        self.skip = std::mem::take(&mut self.skip_next);
        sends
    }
}

/// MULTI: the commands queued for EXEC.
#[derive(Debug, Default)]
pub(crate) struct Multi {
    /// Each queued command's arguments (copies: the request frames are gone by EXEC).
    pub(crate) queued: Vec<Vec<Bytes>>,
    /// Their total size, bounded by the request limit.
    pub(crate) bytes: usize,
    /// A command was refused while queueing (unknown, wrong arity, too much queued): EXEC
    /// aborts.
    pub(crate) refused: bool,
}

/// What one connection remembers between its commands.
#[derive(Debug)]
pub(crate) struct Session {
    /// CLIENT ID: the connection's process id.
    pub(crate) id: u64,
    /// CLIENT SETNAME.
    pub(crate) name: Option<Bytes>,
    /// QUIT was received: reply, then close.
    pub(crate) quit: bool,
    /// Inside MULTI.
    pub(crate) multi: Option<Multi>,
    /// WATCH: each watched key and its digest when watched; EXEC runs only if none changed.
    pub(crate) watched: Vec<(Bytes, u64)>,
    pub(crate) reply_mode: ReplyMode,
    /// Channels and patterns it subscribed to.
    pub(crate) subscriptions: Subscriptions,
    /// Its process's address, for publishers and for pushes that wake it (none in unit
    /// tests that run commands without a process).
    pub(crate) addr: Option<Addr<KvMsg>>,
}

impl Session {
    pub(crate) fn new(id: u64, addr: Option<Addr<KvMsg>>) -> Self {
        Self {
            id,
            name: None,
            quit: false,
            multi: None,
            watched: Vec::new(),
            reply_mode: ReplyMode::default(),
            subscriptions: Subscriptions::default(),
            addr,
        }
    }

    /// Whether a command refused now makes EXEC abort.
    pub(crate) fn refuse_in_multi(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.refused = true;
        }
    }
}
