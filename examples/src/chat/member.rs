//! A member: one connection, as its own process (the server's callback form). It turns the
//! lines its user types into messages to the room, and the room's messages into lines on
//! its socket.

use beamline::process::{Addr, Child, Info};
use beamline::server::{ExitReason, Flow, Handler, HandlerContext};
use bytes::{Bytes, BytesMut};

use super::room::{MemberMsg, RoomMsg};

const WELCOME: &[u8] = b"* welcome to beamline chat; commands: /nick NAME, /who, /quit\n";

/// One member's state; the server clones the prototype for each connection.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The room, through its supervisor: new connections join its current incarnation.
    room: Child<RoomMsg>,
    /// The incarnation this member joined (set on connect).
    joined: Option<Addr<RoomMsg>>,
    max_line_len: usize,
    /// A line went over `max_line_len`: its bytes are dropped up to its end.
    skipping: bool,
}

impl Member {
    pub(crate) fn new(room: Child<RoomMsg>, max_line_len: usize) -> Self {
        Self {
            room,
            joined: None,
            max_line_len,
            skipping: false,
        }
    }

    /// Acts on one line the user typed (without its line break).
    async fn line(
        &mut self,
        text: Bytes,
        conn: &mut HandlerContext<'_, MemberMsg>,
    ) -> Result<Flow, ExitReason> {
        let trimmed = text.trim_ascii();
        if trimmed.is_empty() {
            return Ok(Flow::Continue);
        }
        let id = conn.id();
        let message = if trimmed == b"/quit" {
            let _ = conn.send(b"* bye\n").await;
            return Ok(Flow::Close);
        } else if trimmed == b"/who" {
            RoomMsg::Who(id)
        } else if let Some(nick) = trimmed.strip_prefix(b"/nick ") {
            RoomMsg::Nick(id, String::from_utf8_lossy(nick.trim_ascii()).into_owned())
        } else if trimmed.starts_with(b"/") {
            conn.send(b"* unknown command; try /nick NAME, /who, /quit\n")
                .await?;
            return Ok(Flow::Continue);
        } else {
            RoomMsg::Say(id, text.slice_ref(trimmed))
        };
        self.tell_room(message, conn).await
    }

    /// Sends to the room, waiting for space in its mailbox (a member that talks faster than
    /// the room listens is slowed down, never the room).
    async fn tell_room(
        &mut self,
        message: RoomMsg,
        conn: &mut HandlerContext<'_, MemberMsg>,
    ) -> Result<Flow, ExitReason> {
        let delivered = match &self.joined {
            Some(room) => room.cast(message).await.is_ok(),
            None => false,
        };
        if delivered {
            return Ok(Flow::Continue);
        }
        let _ = conn.send(b"* the room has closed, bye\n").await;
        Ok(Flow::Close)
    }
}

impl Handler<MemberMsg> for Member {
    async fn on_connect(
        &mut self,
        conn: &mut HandlerContext<'_, MemberMsg>,
    ) -> Result<Flow, ExitReason> {
        conn.send(WELCOME).await?;
        let room = self.room.current();
        // Told if the room goes away; the room cannot be hurt by this member's exit
        // (it monitors members, nobody links).
        conn.context().monitor(&room.pid());
        if room.cast(RoomMsg::Join(conn.addr())).await.is_err() {
            let _ = conn.send(b"* the room is not available, try again\n").await;
            return Ok(Flow::Close);
        }
        self.joined = Some(room);
        Ok(Flow::Continue)
    }

    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_, MemberMsg>,
    ) -> Result<Flow, ExitReason> {
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            let mut line = data.split_to(end + 1).freeze();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            line.truncate(end);
            if line.len() > self.max_line_len {
                self.too_long(conn).await?;
                continue;
            }
            if self.line(line, conn).await? == Flow::Close {
                return Ok(Flow::Close);
            }
        }
        if data.len() > self.max_line_len {
            data.clear();
            if !self.skipping {
                self.skipping = true;
                self.too_long(conn).await?;
            }
        } else if self.skipping {
            data.clear();
        }
        Ok(Flow::Continue)
    }

    async fn on_message(
        &mut self,
        message: MemberMsg,
        conn: &mut HandlerContext<'_, MemberMsg>,
    ) -> Result<Flow, ExitReason> {
        let MemberMsg::Line(line) = message;
        // Blocks while the peer's window is full: meanwhile the mailbox fills, and the room
        // drops this member rather than wait for it.
        conn.send(&line).await?;
        Ok(Flow::Continue)
    }

    async fn on_info(
        &mut self,
        info: Info,
        conn: &mut HandlerContext<'_, MemberMsg>,
    ) -> Result<Flow, ExitReason> {
        match info {
            Info::Down { pid, .. } if self.joined.as_ref().is_some_and(|r| r.id() == pid.id()) => {
                let _ = conn.send(b"* the room has closed, bye\n").await;
                Ok(Flow::Close)
            }
            Info::Exit { reason, .. } if reason.is_abnormal() => Err(reason),
            _ => Ok(Flow::Continue),
        }
    }

    async fn on_shutdown(
        &mut self,
        conn: &mut HandlerContext<'_, MemberMsg>,
    ) -> Result<Flow, ExitReason> {
        let _ = conn.send(b"* server shutting down, bye\n").await;
        Ok(Flow::Close)
    }
}

impl Member {
    async fn too_long(&self, conn: &mut HandlerContext<'_, MemberMsg>) -> Result<(), ExitReason> {
        let notice = format!(
            "* line too long (at most {} bytes), dropped\n",
            self.max_line_len
        );
        conn.send(notice.as_bytes()).await?;
        Ok(())
    }
}
