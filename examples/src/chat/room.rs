//! The room: one process that knows every member and broadcasts by message passing.
//!
//! The room never waits for a member. It offers each line to each member's mailbox with
//! `try_cast`; a member whose mailbox is full (its socket is slower than the room) is
//! dropped on the spot, killed, and announced to the others. It watches members with
//! monitors, never links, so a member that panics, quits or loses its connection is a `Down`
//! notice here, not a failure.

use beamline::process::Info;
use std::collections::BTreeMap;

use beamline::process::{Addr, Context, Event, ExitReason, ProcessId, TryCastError};
use bytes::Bytes;

/// The longest nickname.
pub(crate) const MAX_NICK_LEN: usize = 24;

/// What members tell the room.
#[derive(Debug)]
pub(crate) enum RoomMsg {
    /// A new member, by its address (the connection's process).
    Join(Addr<MemberMsg>),
    /// A line of chat from a member.
    Say(ProcessId, Bytes),
    /// A member wants a new nickname.
    Nick(ProcessId, String),
    /// A member asks who is here.
    Who(ProcessId),
}

/// What the room tells a member: one line to write to its socket, `\n` included.
#[derive(Debug)]
pub(crate) enum MemberMsg {
    Line(Bytes),
}

#[derive(Debug)]
struct Member {
    nick: String,
    addr: Addr<MemberMsg>,
}

/// Who a line is for.
#[derive(Debug, Clone, Copy)]
enum To {
    Everyone,
    AllBut(ProcessId),
    Only(ProcessId),
}

/// Why a member left.
#[derive(Debug)]
enum Left {
    /// Its process ended (quit, closed, lost its connection, panicked).
    Exited(ExitReason),
    /// Its mailbox was full: it could not keep up.
    TooSlow,
}

/// The room's state: its members, by process id.
#[derive(Debug, Default)]
struct Room {
    members: BTreeMap<ProcessId, Member>,
}

/// The room process's body.
pub(crate) async fn run(mut ctx: Context<RoomMsg>) -> Result<(), ExitReason> {
    let mut room = Room::default();
    loop {
        match ctx.recv().await {
            Event::Msg(RoomMsg::Join(addr)) => {
                ctx.monitor(&addr.pid());
                room.join(addr);
            }
            Event::Msg(RoomMsg::Say(from, text)) => room.say(from, &text),
            Event::Msg(RoomMsg::Nick(from, nick)) => room.nick(from, nick),
            Event::Msg(RoomMsg::Who(from)) => room.who(from),
            Event::Info(Info::Down { pid, reason, .. }) => {
                room.leave(pid.id(), Left::Exited(reason))
            }
            // The room traps no exits: a supervisor's shutdown ends it before this.
            Event::Info(Info::Exit { .. }) => {}
        }
    }
}

impl Room {
    fn join(&mut self, addr: Addr<MemberMsg>) {
        let id = addr.id();
        let nick = format!("guest{}", id.as_u64());
        let others: Vec<&str> = self.members.values().map(|m| m.nick.as_str()).collect();
        let welcome = match others.len() {
            0 => format!("* you are {nick}; nobody else is here yet\n"),
            n => format!(
                "* you are {nick}; {n} here with you: {}\n",
                others.join(", ")
            ),
        };
        self.members.insert(id, Member { nick, addr });
        self.deliver(To::Only(id), line(welcome));
        if let Some(nick) = self.nick_of(id) {
            let joined = line(format!("* {nick} joined\n"));
            self.deliver(To::AllBut(id), joined);
        }
    }

    fn say(&mut self, from: ProcessId, text: &[u8]) {
        let Some(nick) = self.nick_of(from) else {
            return;
        };
        let mut said = Vec::with_capacity(nick.len() + text.len() + 4);
        said.push(b'<');
        said.extend_from_slice(nick.as_bytes());
        said.extend_from_slice(b"> ");
        said.extend_from_slice(text);
        said.push(b'\n');
        self.deliver(To::AllBut(from), Bytes::from(said));
    }

    fn nick(&mut self, from: ProcessId, wanted: String) {
        let valid = !wanted.is_empty()
            && wanted.len() <= MAX_NICK_LEN
            && wanted
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let reply = if !valid {
            format!("* a nickname is 1 to {MAX_NICK_LEN} letters, digits, '-' or '_'\n")
        } else if self.members.values().any(|m| m.nick == wanted) {
            format!("* {wanted} is taken\n")
        } else if let Some(member) = self.members.get_mut(&from) {
            let old = std::mem::replace(&mut member.nick, wanted.clone());
            self.deliver(To::Everyone, line(format!("* {old} is now {wanted}\n")));
            return;
        } else {
            return;
        };
        self.deliver(To::Only(from), line(reply));
    }

    fn who(&mut self, from: ProcessId) {
        let nicks: Vec<&str> = self.members.values().map(|m| m.nick.as_str()).collect();
        let list = line(format!("* here: {}\n", nicks.join(", ")));
        self.deliver(To::Only(from), list);
    }

    fn leave(&mut self, id: ProcessId, why: Left) {
        // `None`: already gone (a member dropped as too slow is killed, which also
        // reports `Down`).
        if let Some(notice) = self.remove(id, why) {
            self.deliver(To::Everyone, notice);
        }
    }

    /// Offers `line` to each addressee without waiting; members that cannot take it leave,
    /// and their notices are delivered in turn (which may drop others: a worklist, not
    /// recursion).
    fn deliver(&mut self, to: To, line: Bytes) {
        let mut work = vec![(to, line)];
        while let Some((to, line)) = work.pop() {
            let mut gone = Vec::new();
            for (&id, member) in &self.members {
                let addressed = match to {
                    To::Everyone => true,
                    To::AllBut(except) => id != except,
                    To::Only(only) => id == only,
                };
                if !addressed {
                    continue;
                }
                match member.addr.try_cast(MemberMsg::Line(line.clone())) {
                    Ok(()) => {}
                    Err(TryCastError::Full { .. }) => gone.push((id, Left::TooSlow)),
                    Err(TryCastError::Exited { reason, .. }) => {
                        gone.push((id, Left::Exited(reason)));
                    }
                    Err(_) => gone.push((id, Left::Exited(ExitReason::Normal))),
                }
            }
            for (id, why) in gone {
                if let Some(notice) = self.remove(id, why) {
                    work.push((To::Everyone, notice));
                }
            }
        }
    }

    /// Removes a member (killing it if it was too slow: it cannot read its mailbox while
    /// stuck writing); the notice for the others.
    fn remove(&mut self, id: ProcessId, why: Left) -> Option<Bytes> {
        let member = self.members.remove(&id)?;
        let nick = member.nick;
        Some(line(match why {
            Left::TooSlow => {
                member.addr.kill();
                format!("* {nick} was dropped: too slow to keep up\n")
            }
            Left::Exited(reason) if reason.is_abnormal() => {
                format!("* {nick} left (connection lost)\n")
            }
            Left::Exited(_) => format!("* {nick} left\n"),
        }))
    }

    fn nick_of(&self, id: ProcessId) -> Option<String> {
        self.members.get(&id).map(|m| m.nick.clone())
    }
}

fn line(text: String) -> Bytes {
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use beamline::process::{SpawnConfig, spawn, spawn_with};
    use tokio::sync::mpsc;

    use super::*;

    /// A member process that hands every line it gets to the test.
    fn listener() -> (Addr<MemberMsg>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let addr = spawn(move |mut ctx: Context<MemberMsg>| async move {
            loop {
                if let Event::Msg(MemberMsg::Line(line)) = ctx.recv().await {
                    let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                }
            }
        });
        (addr, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a line within 5 s")
            .expect("the listener is alive")
    }

    fn nick(addr: &Addr<MemberMsg>) -> String {
        format!("guest{}", addr.id().as_u64())
    }

    #[tokio::test]
    async fn a_member_that_panics_leaves_and_the_room_goes_on() {
        let room = spawn(run);
        let (a, mut a_lines) = listener();
        room.cast(RoomMsg::Join(a.clone())).await.unwrap();
        assert!(next(&mut a_lines).await.starts_with("* you are"));
        // Panics on its first message (the room's welcome).
        let doomed = spawn(|mut ctx: Context<MemberMsg>| async move {
            let _ = ctx.recv().await;
            panic!("a member's bug");
        });
        room.cast(RoomMsg::Join(doomed.clone())).await.unwrap();
        assert_eq!(
            next(&mut a_lines).await,
            format!("* {} joined", nick(&doomed))
        );
        assert_eq!(
            next(&mut a_lines).await,
            format!("* {} left (connection lost)", nick(&doomed))
        );
        assert!(matches!(
            doomed.exit_reason(),
            Some(ExitReason::Panicked(_))
        ));
        // The room still serves: a new member and a message between the two.
        let (b, mut b_lines) = listener();
        room.cast(RoomMsg::Join(b.clone())).await.unwrap();
        assert_eq!(
            next(&mut b_lines).await,
            format!("* you are {}; 1 here with you: {}", nick(&b), nick(&a))
        );
        room.cast(RoomMsg::Say(a.id(), Bytes::from("still here")))
            .await
            .unwrap();
        assert_eq!(next(&mut a_lines).await, format!("* {} joined", nick(&b)));
        assert_eq!(
            next(&mut b_lines).await,
            format!("<{}> still here", nick(&a))
        );
        assert!(room.is_alive());
    }

    #[tokio::test]
    async fn a_member_whose_mailbox_is_full_is_dropped_and_killed() {
        let room = spawn(run);
        let (a, mut a_lines) = listener();
        room.cast(RoomMsg::Join(a.clone())).await.unwrap();
        let _ = next(&mut a_lines).await;
        // Never reads its mailbox, which holds one message.
        let stuck = spawn_with(
            SpawnConfig::new().capacity(NonZeroUsize::MIN),
            |_ctx: Context<MemberMsg>| std::future::pending::<Result<(), ExitReason>>(),
        );
        room.cast(RoomMsg::Join(stuck.clone())).await.unwrap();
        assert_eq!(
            next(&mut a_lines).await,
            format!("* {} joined", nick(&stuck))
        );
        // The welcome filled its mailbox; the next line cannot be offered.
        room.cast(RoomMsg::Say(a.id(), Bytes::from("hello")))
            .await
            .unwrap();
        assert_eq!(
            next(&mut a_lines).await,
            format!("* {} was dropped: too slow to keep up", nick(&stuck))
        );
        assert!(matches!(stuck.exited().await, ExitReason::Killed));
        room.cast(RoomMsg::Who(a.id())).await.unwrap();
        assert_eq!(next(&mut a_lines).await, format!("* here: {}", nick(&a)));
    }

    #[tokio::test]
    async fn nicknames_are_checked_and_unique() {
        let room = spawn(run);
        let (a, mut a_lines) = listener();
        let (b, mut b_lines) = listener();
        room.cast(RoomMsg::Join(a.clone())).await.unwrap();
        room.cast(RoomMsg::Join(b.clone())).await.unwrap();
        let _ = (
            next(&mut a_lines).await,
            next(&mut a_lines).await,
            next(&mut b_lines).await,
        );
        room.cast(RoomMsg::Nick(a.id(), "ada".into()))
            .await
            .unwrap();
        assert_eq!(
            next(&mut b_lines).await,
            format!("* {} is now ada", nick(&a))
        );
        room.cast(RoomMsg::Nick(b.id(), "ada".into()))
            .await
            .unwrap();
        assert_eq!(next(&mut b_lines).await, "* ada is taken");
        for bad in ["", "has space", "way-too-long-for-a-nickname", "é"] {
            room.cast(RoomMsg::Nick(b.id(), bad.into())).await.unwrap();
            assert_eq!(
                next(&mut b_lines).await,
                "* a nickname is 1 to 24 letters, digits, '-' or '_'",
                "{bad:?}"
            );
        }
        // A member that asks for a name after leaving is ignored.
        a.kill();
        assert_eq!(next(&mut b_lines).await, "* ada left (connection lost)");
        room.cast(RoomMsg::Nick(a.id(), "ghost".into()))
            .await
            .unwrap();
        room.cast(RoomMsg::Who(b.id())).await.unwrap();
        assert_eq!(next(&mut b_lines).await, format!("* here: {}", nick(&b)));
    }
}
