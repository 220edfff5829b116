//! Pub/Sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB CHANNELS |
//! NUMSUB | NUMPAT. The connection's process is the subscriber ([`Hub`](super::super::pubsub::Hub)).

use beamline::resp::Value;
use bytes::Bytes;

use super::super::pubsub::{Hub, Kind};
use super::super::session::Session;
use super::reply::{Outcome, integer, unknown_subcommand, wrong_arity};
use super::{Call, Keys, PUBSUB, Reply, Spec, plain, rich};

pub(super) const SPECS: &[Spec] = &[
    rich("subscribe", -2, Keys::None, PUBSUB, |c| {
        subscribe(c, Kind::Channel)
    }),
    rich("psubscribe", -2, Keys::None, PUBSUB, |c| {
        subscribe(c, Kind::Pattern)
    }),
    rich("unsubscribe", -1, Keys::None, PUBSUB, |c| {
        unsubscribe(c, Kind::Channel)
    }),
    rich("punsubscribe", -1, Keys::None, PUBSUB, |c| {
        unsubscribe(c, Kind::Pattern)
    }),
    plain("publish", 3, Keys::None, publish),
    plain("pubsub", -2, Keys::None, pubsub),
];

fn names(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Channel => ("subscribe", "unsubscribe"),
        Kind::Pattern => ("psubscribe", "punsubscribe"),
    }
}

/// The `[kind, name, count]` reply of each (un)subscription.
fn confirmation(what: &'static str, name: Option<Bytes>, count: usize) -> Value {
    Value::Array(vec![
        Value::bulk(what),
        name.map_or(Value::Null, Value::Bulk),
        integer(count),
    ])
}

fn subscribe(c: &mut Call<'_, '_>, kind: Kind) -> Reply {
    let (word, _) = names(kind);
    let mut replies = Vec::with_capacity(c.args.len() - 1);
    for name in &c.args[1..] {
        let name = Bytes::copy_from_slice(name);
        let subs = &mut c.session.subscriptions;
        let set = match kind {
            Kind::Channel => &mut subs.channels,
            Kind::Pattern => &mut subs.patterns,
        };
        if set.insert(name.clone())
            && let Some(addr) = &c.session.addr
        {
            c.shared
                .hub
                .subscribe(kind, &name, addr, &c.session.subscriptions.backlog);
        }
        replies.push(confirmation(
            word,
            Some(name),
            c.session.subscriptions.count(),
        ));
    }
    Reply::Many(replies)
}

/// Removes one subscription; whether there was one.
fn drop_one(hub: &Hub, session: &mut Session, kind: Kind, name: &[u8]) -> bool {
    let subs = &mut session.subscriptions;
    let set = match kind {
        Kind::Channel => &mut subs.channels,
        Kind::Pattern => &mut subs.patterns,
    };
    let had = set.remove(name);
    if had && let Some(addr) = &session.addr {
        hub.unsubscribe(kind, name, addr.id());
    }
    had
}

fn unsubscribe(c: &mut Call<'_, '_>, kind: Kind) -> Reply {
    let (_, word) = names(kind);
    let names: Vec<Bytes> = if c.args.len() > 1 {
        c.args[1..]
            .iter()
            .map(|n| Bytes::copy_from_slice(n))
            .collect()
    } else {
        let subs = &c.session.subscriptions;
        match kind {
            Kind::Channel => subs.channels.iter().cloned().collect(),
            Kind::Pattern => subs.patterns.iter().cloned().collect(),
        }
    };
    if names.is_empty() {
        return confirmation(word, None, c.session.subscriptions.count()).into();
    }
    let replies = names
        .into_iter()
        .map(|name| {
            drop_one(&c.shared.hub, c.session, kind, &name);
            confirmation(word, Some(name), c.session.subscriptions.count())
        })
        .collect();
    Reply::Many(replies)
}

/// Removes every subscription of a connection that ends.
pub(crate) fn leave(hub: &Hub, session: &mut Session) {
    let subs = &session.subscriptions;
    let channels: Vec<Bytes> = subs.channels.iter().cloned().collect();
    let patterns: Vec<Bytes> = subs.patterns.iter().cloned().collect();
    for name in channels {
        drop_one(hub, session, Kind::Channel, &name);
    }
    for name in patterns {
        drop_one(hub, session, Kind::Pattern, &name);
    }
}

fn publish(c: &mut Call<'_, '_>) -> Outcome {
    Ok(integer(c.shared.hub.publish(c.args[1], c.args[2])))
}

/// PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT
fn pubsub(c: &mut Call<'_, '_>) -> Outcome {
    let sub = c.args[1].to_ascii_lowercase();
    let hub = &c.shared.hub;
    match (&sub[..], c.args.len()) {
        (b"channels", 2 | 3) => {
            let channels = hub.channels(c.args.get(2).copied());
            Ok(Value::Array(
                channels.into_iter().map(Value::Bulk).collect(),
            ))
        }
        (b"numsub", _) => {
            let mut out = Vec::new();
            for channel in &c.args[2..] {
                out.push(Value::Bulk(Bytes::copy_from_slice(channel)));
                out.push(integer(hub.numsub(channel)));
            }
            Ok(Value::Array(out))
        }
        (b"numpat", 2) => Ok(integer(hub.numpat())),
        (b"channels" | b"numpat", _) => Err(wrong_arity(&format!(
            "pubsub|{}",
            String::from_utf8_lossy(&sub)
        ))),
        _ => Err(unknown_subcommand(c.args[1], "PUBSUB")),
    }
}
