//! The second pass of decoding: the headers the scan recorded become a [`Value`] (strings
//! sliced out of the frame, no copies) or a [`Request`]'s argument positions. Never recurses.

use bytes::{Bytes, BytesMut};

use super::Value;
use super::request::{Arguments, Request, split_args};
use super::scan::{Header, Span, is_space};

/// Builds the value whose headers (one complete frame's) are in `headers`, slicing strings
/// out of `frame`. Empties `headers`.
pub(super) fn value(headers: &mut Vec<Header>, frame: &Bytes) -> Value {
    let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
    let mut done = None;
    for header in headers.drain(..) {
        let mut value = match header {
            Header::Simple(span) => Value::Simple(frame.slice(span.range())),
            Header::Error(span) => Value::Error(frame.slice(span.range())),
            Header::Integer(n) => Value::Integer(n),
            Header::Bulk(span) => Value::Bulk(frame.slice(span.range())),
            Header::Null => Value::Null,
            Header::NullArray => Value::NullArray,
            Header::Array(0) => Value::Array(Vec::new()),
            Header::Array(n) => {
                open.push((Vec::with_capacity(n), n));
                continue;
            }
            Header::Inline(span) => Value::Array(
                words(frame, span)
                    .map(|word| Value::Bulk(frame.slice(word.range())))
                    .collect(),
            ),
        };
        // Hand the value to its array; a full array becomes a value in turn.
        loop {
            let Some((items, remaining)) = open.last_mut() else {
                done = Some(value);
                break;
            };
            items.push(value);
            *remaining -= 1;
            if *remaining > 0 {
                break;
            }
            match open.pop() {
                Some((items, _)) => value = Value::Array(items),
                None => break,
            }
        }
    }
    // The scan recorded exactly one complete value, so `done` is set.
    done.unwrap_or(Value::NullArray)
}

/// Builds a server's view of the frame whose headers (read in the request dialect) are in
/// `headers`: a command's argument positions (an inline command's arguments are first
/// rewritten in place, quotes removed and escapes decoded), or, for an empty request, the
/// empty [`Value`]. Empties `headers`.
pub(super) fn request(headers: &mut Vec<Header>, mut frame: BytesMut) -> Request {
    let spans: Option<Vec<Span>> = match headers.as_slice() {
        [Header::Inline(line)] => {
            let mut spans = Vec::new();
            let base = line.start as usize;
            let mut text = frame.get_mut(line.range()).unwrap_or_default();
            // The scan checked the quotes before the frame was taken.
            let _ = split_args(&mut text, |start, end| {
                spans.push(Span::new(base + start, base + end));
            });
            Some(spans)
        }
        [Header::Array(n), items @ ..] if *n > 0 && items.len() == *n => items
            .iter()
            .map(|item| match item {
                Header::Bulk(span) => Some(*span),
                _ => None,
            })
            .collect(),
        _ => None,
    };
    let frame = frame.freeze();
    match spans {
        Some(spans) if !spans.is_empty() => {
            headers.clear();
            Request::Command(Arguments::new(frame, spans))
        }
        _ => Request::Other(value(headers, &frame)),
    }
}

/// The words of an inline command's line: runs of bytes between spaces and tabs.
fn words(frame: &Bytes, line: Span) -> impl Iterator<Item = Span> + '_ {
    let text = frame.get(line.range()).unwrap_or_default();
    let base = line.start as usize;
    text.split(|b| is_space(*b))
        .scan(base, |at, word| {
            let from = *at;
            *at += word.len() + 1;
            Some((from, word.len()))
        })
        .filter(|&(_, len)| len > 0)
        .map(|(from, len)| Span::new(from, from + len))
}
