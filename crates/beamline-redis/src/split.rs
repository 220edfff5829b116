//! Multi-key commands whose keys span slots (`MGET`, `MSET`, `DEL`, `EXISTS`, `UNLINK`,
//! `TOUCH`): one part per slot, sent in parallel, answers put back in the caller's order.

use beamline_resp::{Command, Value};
use tokio::time::Instant;

use crate::client::Route;
use crate::commands::{Keys, Merge};
use crate::{ClusterClient, ClusterError};

/// The keys of one slot, as a command of their own.
#[derive(Debug)]
pub(crate) struct Part {
    slot: u16,
    command: Command,
    /// Which of the caller's keys (by order) this part carries, in order.
    keys: Vec<usize>,
}

/// Splits `command` (keys at `positions`, in `slots`) into one part per slot, in the order
/// the slots first appear. With [`Keys::Pairs`] each key takes its value along.
pub(crate) fn split(
    command: &Command,
    keys: Keys,
    positions: &[usize],
    slots: &[u16],
) -> Vec<Part> {
    let args: Vec<&[u8]> = command.args().collect();
    let name = args.first().copied().unwrap_or_default();
    let mut parts: Vec<Part> = Vec::new();
    for (key, (&position, &slot)) in positions.iter().zip(slots).enumerate() {
        let index = match parts.iter().position(|part| part.slot == slot) {
            Some(index) => index,
            None => {
                parts.push(Part {
                    slot,
                    command: Command::new(name),
                    keys: Vec::new(),
                });
                parts.len() - 1
            }
        };
        let part = &mut parts[index];
        if let Some(arg) = args.get(position) {
            part.command.push(*arg);
        }
        if keys == Keys::Pairs
            && let Some(value) = args.get(position + 1)
        {
            part.command.push(*value);
        }
        part.keys.push(key);
    }
    parts
}

/// Sends every part at once (each with its own redirects and retries, all under the one
/// `deadline`) and merges the answers.
///
/// A part that fails makes the whole a [`ClusterError::Split`] saying how many parts
/// succeeded (and were applied). A part answered with an error reply makes that reply the
/// answer; a part whose answer does not have the expected shape is handed on as it is.
pub(crate) async fn send_parts(
    client: &ClusterClient,
    name: &str,
    parts: Vec<Part>,
    merge: Merge,
    resendable: bool,
    read: bool,
    deadline: Instant,
) -> Result<Value, ClusterError> {
    let total_keys: usize = parts.iter().map(|part| part.keys.len()).sum();
    let count = parts.len();
    let mut sends = Vec::with_capacity(count);
    let mut keys = Vec::with_capacity(count);
    for part in parts {
        sends.push(client.send(
            name,
            if read {
                Route::Read(part.slot)
            } else {
                Route::Slot(part.slot)
            },
            part.command,
            resendable,
            deadline,
        ));
        keys.push(part.keys);
    }
    let replies = match gather(name, futures::future::join_all(sends).await)? {
        Ok(replies) => replies,
        Err(error_reply) => return Ok(error_reply),
    };
    if merge != Merge::Array {
        return Ok(merge_whole(merge, replies));
    }
    let mut merged = vec![Value::Null; total_keys];
    for (reply, keys) in replies.into_iter().zip(keys) {
        let items = match reply {
            Value::Array(items) if items.len() == keys.len() => items,
            other => return Ok(other),
        };
        for (item, key) in items.into_iter().zip(keys) {
            if let Some(slot) = merged.get_mut(key) {
                *slot = item;
            }
        }
    }
    Ok(Value::Array(merged))
}

/// Sends `command` to every primary of the current map at once and merges the answers
/// (`DBSIZE` added up, `FLUSHALL` `+OK` when every primary said so, `SCRIPT LOAD` the first
/// answer, the same SHA everywhere). A primary that fails makes the whole a
/// [`ClusterError::Split`], saying how many succeeded.
pub(crate) async fn to_every_primary(
    client: &ClusterClient,
    name: &str,
    command: Command,
    merge: Merge,
    resendable: bool,
    deadline: Instant,
) -> Result<Value, ClusterError> {
    let primaries: Vec<_> = client.inner.map().primaries().cloned().collect();
    let sends = primaries.into_iter().map(|node| {
        client.send(
            name,
            Route::Node(node),
            command.clone(),
            resendable,
            deadline,
        )
    });
    let replies = match gather(name, futures::future::join_all(sends).await)? {
        Ok(replies) => replies,
        Err(error_reply) => return Ok(error_reply),
    };
    Ok(merge_whole(merge, replies))
}

/// The parts' replies in order; or, instead, the whole's answer: the first part that failed
/// as a [`ClusterError::Split`] saying how many parts succeeded (and were applied), or the
/// first error reply (`Err` inside `Ok`).
fn gather(
    name: &str,
    answers: Vec<Result<Value, ClusterError>>,
) -> Result<Result<Vec<Value>, Value>, ClusterError> {
    let count = answers.len();
    let succeeded = answers.iter().filter(|answer| answer.is_ok()).count();
    let mut replies = Vec::with_capacity(count);
    for answer in answers {
        match answer {
            Ok(reply) => replies.push(reply),
            Err(failed) => {
                return Err(ClusterError::Split {
                    command: name.to_owned(),
                    parts: count,
                    succeeded,
                    failed: Box::new(failed),
                });
            }
        }
    }
    match replies.iter().find(|reply| reply.is_error()) {
        Some(error) => Ok(Err(error.clone())),
        None => Ok(Ok(replies)),
    }
}

/// The answer of a command whose parts' replies are not merged key by key: a sum, `+OK` when
/// every part said so (else the first other reply), or the first reply.
fn merge_whole(merge: Merge, replies: Vec<Value>) -> Value {
    match merge {
        Merge::Sum => Value::Integer(replies.iter().filter_map(Value::as_integer).sum()),
        Merge::Ok => match replies
            .into_iter()
            .find(|reply| reply.as_str() != Some("OK"))
        {
            Some(other) => other,
            None => Value::ok(),
        },
        Merge::Array | Merge::First => replies.into_iter().next().unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::key_slot;

    fn parts_of(args: &[&str], keys: Keys) -> Vec<(Vec<String>, Vec<usize>)> {
        let command = Command::from_args(args.iter().copied());
        let positions = crate::commands::key_positions(&command, keys);
        let slots: Vec<u16> = positions
            .iter()
            .map(|&i| key_slot(args[i].as_bytes()))
            .collect();
        split(&command, keys, &positions, &slots)
            .into_iter()
            .map(|part| {
                let args = part
                    .command
                    .args()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                (args, part.keys)
            })
            .collect()
    }

    #[test]
    fn keys_are_grouped_by_slot_in_order_of_first_appearance() {
        // "{a}x" and "{a}y" share a slot; "b" is elsewhere.
        assert_ne!(key_slot(b"a"), key_slot(b"b"));
        let parts = parts_of(&["MGET", "{a}x", "b", "{a}y"], Keys::All);
        assert_eq!(
            parts,
            vec![
                (
                    vec!["MGET".into(), "{a}x".into(), "{a}y".into()],
                    vec![0, 2]
                ),
                (vec!["MGET".into(), "b".into()], vec![1]),
            ]
        );
    }

    #[test]
    fn pairs_keep_their_values() {
        let parts = parts_of(&["MSET", "{a}x", "1", "b", "2", "{a}y", "3"], Keys::Pairs);
        assert_eq!(
            parts,
            vec![
                (
                    vec![
                        "MSET".into(),
                        "{a}x".into(),
                        "1".into(),
                        "{a}y".into(),
                        "3".into()
                    ],
                    vec![0, 2]
                ),
                (vec!["MSET".into(), "b".into(), "2".into()], vec![1]),
            ]
        );
    }
}
