//! Fuzz target: beamline-resp's RESP2 decoder (`beamline_resp::RespCodec`) on arbitrary bytes.
//!
//! The first input byte is a control byte: its low 6 bits pick how the rest is cut into
//! reads (1 to 64 bytes each, like a socket delivering it in pieces, or longer so that an
//! input takes at most 256 reads), bit 6 turns inline
//! commands on, bit 7 picks small limits (so that inputs cross them) or the defaults.
//! Properties checked on every input:
//! - decoding never panics, whatever the bytes;
//! - the input decodes the same whether it arrives whole or in pieces: the same values in
//!   the same order, ending the same way (more input needed, or the same typed error), with
//!   `decode` and with `decode_request` (Redis's request dialect), and `decode_request`
//!   agrees with `decode` on commands (arrays of bulk strings) as far as both read;
//! - no decode call allocates past what arrived: at most [`ALLOCATION_FACTOR`] times the
//!   bytes buffered, whatever sizes the headers declare (counted by a global allocator);
//! - every decoded value is within the limits (depth, bulk length), and one that can be
//!   encoded re-encodes and decodes to itself.
//!
//! Built by `cargo fuzz build` (`--cfg fuzzing`) it is a libFuzzer target. Built by a plain
//! `cargo build` (stable) it is a binary that replays corpus files and directories given as
//! arguments (default: `corpus/resp_decode` next to this crate), then a deterministic sweep
//! of generated inputs, through the same checks.
#![cfg_attr(fuzzing, no_main)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use beamline_resp::{Request, RespCodec, RespError, RespLimits, Value};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// The small limits: a frame, a bulk string, a nesting depth, a line.
const MAX_FRAME: usize = 4096;
const MAX_BULK: usize = 1024;
const MAX_DEPTH: usize = 8;
const MAX_LINE: usize = 256;

/// A decode call may allocate this many times the bytes buffered (plus a constant): the value
/// tree (40 bytes a value, each at least 3 bytes of input), the header list (16 bytes a
/// value, grown by doubling) and the frame's shared handle. A decoder that allocated for a
/// *declared* size (`*1000000000`, `$999999999`) would blow through it.
const ALLOCATION_FACTOR: usize = 64;
const ALLOCATION_SLACK: usize = 4096;

// ---- the counting allocator -----------------------------------------------------------------

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// The allocator only counts, then forwards every call unchanged to `System`, so it upholds
// exactly the contract `System` does. Counting touches only const-initialised thread-locals
// (no allocation, no re-entry); `try_with` tolerates threads that are shutting down.
#[allow(unsafe_code)]
// SAFETY: every method forwards its arguments unchanged to `System`, whose `GlobalAlloc`
// implementation is sound; the counting side effect cannot allocate or unwind.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same layout the caller gave us, which meets `alloc`'s requirements.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through `alloc`/`realloc` above) with
        // this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` is the caller's, who
        // upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn count(bytes: usize) {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATED.try_with(|n| n.set(n.get().saturating_add(bytes)));
        }
    });
}

/// Runs `f`, returning what it returned and the bytes it allocated on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATED.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    (result, ALLOCATED.with(Cell::get))
}

// ---- the checks -----------------------------------------------------------------------------

/// How a stream of input ended: more was needed, or a typed error.
#[derive(Debug, PartialEq, Eq)]
enum End {
    NeedsMore,
    /// The error, as compared: its `Debug` form, except that a frame refused as too large
    /// is one error whatever length it was refused at (that depends on how much had arrived).
    Error(String),
}

fn end_of(error: &RespError) -> End {
    End::Error(match error {
        RespError::FrameTooLarge { max, .. } => format!("FrameTooLarge {{ max: {max} }}"),
        RespError::Io(e) => panic!("the decoder reported an i/o error: {e}"),
        other => format!("{other:?}"),
    })
}

/// What a stream decoded to.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    values: Vec<Value>,
    end: End,
}

#[derive(Clone, Copy)]
enum Mode {
    Values,
    Requests,
}

fn limits(small: bool) -> RespLimits {
    if small {
        RespLimits::new()
            .max_frame_len(MAX_FRAME)
            .max_bulk_len(MAX_BULK)
            .max_depth(MAX_DEPTH)
            .max_line_len(MAX_LINE)
    } else {
        RespLimits::new()
    }
}

/// Feeds `data` to a fresh codec in reads that end at `cuts` (the last one at the end).
fn decode(data: &[u8], cuts: &[usize], inline: bool, small: bool, mode: Mode) -> Outcome {
    let mut codec = RespCodec::with_limits(limits(small)).inline_commands(inline);
    let mut src = BytesMut::new();
    let mut values = Vec::new();
    let mut at = 0;
    for &cut in cuts {
        src.extend_from_slice(&data[at..cut]);
        at = cut;
        loop {
            let buffered = src.len();
            // Where `src` starts in `data`.
            let start = at - buffered;
            let (decoded, allocated) = allocations(|| match mode {
                Mode::Values => codec.decode(&mut src),
                Mode::Requests => codec
                    .decode_request(&mut src)
                    .map(|r| r.map(Request::into_value)),
            });
            let bound = ALLOCATION_FACTOR * buffered + ALLOCATION_SLACK;
            assert!(
                allocated <= bound,
                "a decode call allocated {allocated} bytes with {buffered} buffered"
            );
            match decoded {
                Ok(Some(value)) => {
                    assert!(src.len() < buffered, "a value decoded from nothing");
                    values.push(value);
                }
                Ok(None) => break,
                Err(error) => {
                    // Only blank inline lines (skipped before the frame that failed) go: in
                    // the request dialect, whole lines without a word (blanks, or a NUL first).
                    let consumed = &data[start..start + buffered - src.len()];
                    let blank = match mode {
                        Mode::Values => consumed.iter().all(|b| b" \t\r\n".contains(b)),
                        Mode::Requests => consumed.ends_with(b"\n"),
                    };
                    assert!(
                        consumed.is_empty() || (inline && blank),
                        "a failed decode consumed {consumed:?}"
                    );
                    return Outcome {
                        values,
                        end: end_of(&error),
                    };
                }
            }
        }
    }
    Outcome {
        values,
        end: End::NeedsMore,
    }
}

fn check(data: &[u8]) {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    // At most 256 reads per input, so a long input is not fed one byte at a time (the cost
    // would grow with its square); the cut points still land anywhere.
    let piece = (usize::from(control & 0x3f) + 1).max(data.len().div_ceil(256));
    let inline = control & 0x40 != 0;
    let small = control & 0x80 != 0;
    let whole = decode(data, &[data.len()], inline, small, Mode::Values);
    let cuts: Vec<usize> = (piece..data.len())
        .step_by(piece)
        .chain([data.len()])
        .collect();
    let pieces = decode(data, &cuts, inline, small, Mode::Values);
    assert_eq!(
        pieces, whole,
        "pieces of {piece} decode otherwise than the whole"
    );
    let requests = decode(data, &cuts, inline, small, Mode::Requests);
    let whole_requests = decode(data, &[data.len()], inline, small, Mode::Requests);
    assert_eq!(
        requests, whole_requests,
        "pieces of {piece} decode otherwise than the whole (requests)"
    );
    // Where every frame is a command and inline lines are off, the dialects read the same
    // commands as far as both read (the request dialect refuses what Redis refuses, such as
    // a length written with a leading zero, which the strict one takes).
    if !inline && whole.values.iter().all(|v| v.clone().into_args().is_some()) {
        for (request, value) in requests.values.iter().zip(&whole.values) {
            assert_eq!(request, value, "decode_request disagrees with decode");
        }
    }
    for value in &whole.values {
        check_value(value, small);
    }
}

/// Within the limits, and (when encodable) re-encodes and decodes to itself.
fn check_value(value: &Value, small: bool) {
    let limits = limits(small);
    let (max_depth, max_bulk) = if small {
        (MAX_DEPTH, MAX_BULK)
    } else {
        (usize::MAX, usize::MAX)
    };
    // Depth and sizes, without recursing.
    let mut stack = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => {
                assert!(
                    items.is_empty() || depth < max_depth,
                    "deeper than the limit"
                );
                stack.extend(items.iter().map(|item| (item, depth + 1)));
            }
            Value::Bulk(b) => assert!(b.len() <= max_bulk, "a bulk over the limit"),
            _ => {}
        }
    }
    let mut wire = BytesMut::new();
    if RespCodec::with_limits(limits)
        .encode(value, &mut wire)
        .is_err()
    {
        // Only a simple string or error holding a lone `\r` cannot be re-encoded.
        return;
    }
    let again = RespCodec::with_limits(limits).decode(&mut wire);
    assert_eq!(again.ok().flatten().as_ref(), Some(value), "no round trip");
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

// ---- the replay binary ----------------------------------------------------------------------

#[cfg(not(fuzzing))]
fn main() {
    use std::path::{Path, PathBuf};

    fn or_die<T>(result: std::io::Result<T>, path: &Path) -> T {
        result.unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    // Corpus files: the arguments (files, or directories walked in name order), by default
    // `corpus/resp_decode` if it exists.
    let mut pending: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if pending.is_empty() {
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/resp_decode");
        pending.extend(default.exists().then_some(default));
    }
    pending.reverse();
    let mut replayed = 0;
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            let entries = or_die(std::fs::read_dir(&path), &path);
            let mut inside: Vec<PathBuf> =
                entries.map(|entry| or_die(entry, &path).path()).collect();
            inside.sort_unstable_by(|a, b| b.cmp(a));
            pending.extend(inside);
        } else {
            check(&or_die(std::fs::read(&path), &path));
            replayed += 1;
        }
    }

    let mut generator = Generator(0x243F_6A88_85A3_08D3);
    let mut generated = 0;
    for round in 0..20_000u64 {
        let mut stream = vec![generator.byte()];
        match round % 4 {
            // Valid streams: values and commands, some cut short.
            0 | 1 => {
                let mut wire = BytesMut::new();
                let mut codec = RespCodec::new();
                for _ in 0..=generator.below(4) {
                    let value = generator.value(0);
                    codec
                        .encode(&value, &mut wire)
                        .or_else(|_| codec.encode(&Value::Null, &mut wire))
                        .unwrap_or_else(|e| panic!("encoding failed: {e}"));
                    if generator.below(2) == 0 {
                        let args: Vec<Vec<u8>> = (0..=generator.below(4))
                            .map(|_| generator.bytes(12))
                            .collect();
                        let _ = codec.encode(beamline_resp::Command::from_args(&args), &mut wire);
                    }
                }
                stream.extend_from_slice(&wire);
                if round % 4 == 1 {
                    let keep = generator.below(stream.len() as u64 + 1) as usize;
                    stream.truncate(keep.max(1));
                }
            }
            // The same, with bytes flipped.
            2 => {
                let mut wire = BytesMut::new();
                let value = generator.value(0);
                let _ = RespCodec::new().encode(&value, &mut wire);
                stream.extend_from_slice(&wire);
                for _ in 0..=generator.below(4) {
                    let at = 1 + generator.below(stream.len() as u64) as usize;
                    if let Some(byte) = stream.get_mut(at) {
                        *byte = generator.byte();
                    }
                }
            }
            // Typed garbage: RESP's own tokens in any order.
            _ => {
                const TOKENS: [&[u8]; 19] = [
                    b"*",
                    b"$",
                    b"+",
                    b"-",
                    b":",
                    b"\r\n",
                    b"\r",
                    b"\n",
                    b"-1",
                    b"0",
                    b"3",
                    b"99999999999999999999",
                    b"ab",
                    b"PING ",
                    // An inline command's quoting (the request dialect).
                    b"\"",
                    b"'",
                    b"\\",
                    b"\\x4",
                    b"\0",
                ];
                for _ in 0..generator.below(48) {
                    stream.extend_from_slice(TOKENS[generator.below(19) as usize]);
                }
            }
        }
        check(&stream);
        generated += 1;
    }
    println!("resp_decode: {replayed} corpus inputs and {generated} generated inputs passed");
}

/// A deterministic xorshift generator of bytes and RESP values.
#[cfg(not(fuzzing))]
struct Generator(u64);

#[cfg(not(fuzzing))]
impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        (0..self.below(max + 1)).map(|_| self.byte()).collect()
    }

    fn value(&mut self, depth: usize) -> Value {
        let line = |g: &mut Self| -> bytes::Bytes {
            g.bytes(16)
                .into_iter()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect::<Vec<u8>>()
                .into()
        };
        match self.below(if depth < 4 { 8 } else { 6 }) {
            0 => Value::Simple(line(self)),
            1 => Value::Error(line(self)),
            2 => Value::Integer(self.next() as i64),
            3 => Value::Bulk(self.bytes(40).into()),
            4 => Value::Null,
            5 => Value::NullArray,
            _ => Value::Array((0..self.below(6)).map(|_| self.value(depth + 1)).collect()),
        }
    }
}
