//! Fuzz target: beamline's wire format decoder on arbitrary bytes.
//!
//! The first input byte picks how the rest is cut into reads (1 to 256 bytes each), like a
//! socket delivering it in pieces. Properties checked on every input:
//! - decoding never panics, whatever the bytes;
//! - every decoded frame's payload is within the limit, and re-encodes to the same bytes;
//! - the read buffer never grows for a frame over the limit (the limit is checked from the
//!   header, before anything is reserved), and otherwise by at most one allowed frame
//!   (doubled, for the allocator's growth policy);
//! - every error is one of the typed [`FrameError`]s, with consistent fields.
//!
//! Built by `cargo fuzz build` (nightly, `--cfg fuzzing`) it is a libFuzzer target. Built by
//! a plain `cargo build` (stable) it is a binary that replays corpus files and directories
//! given as arguments (default: `corpus/decode` next to this crate), then a deterministic
//! sweep of generated inputs, through the same checks.
#![cfg_attr(fuzzing, no_main)]

use beamline_mux::{Frame, FrameCodec, FrameError, HEADER_LEN};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// A small limit, so that inputs easily cross it.
const MAX: usize = 1024;

fn check(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) + 1;
    let mut codec = FrameCodec::with_max_frame_len(MAX);
    let mut src = BytesMut::new();
    for chunk in data.chunks(cut) {
        src.extend_from_slice(chunk);
        loop {
            let before = src.capacity();
            match codec.decode(&mut src) {
                Ok(Some(frame)) => check_frame(&frame),
                Ok(None) => {
                    // Growth is for one frame within the limit; the allocator may double.
                    let bound = 2 * (before + HEADER_LEN + MAX);
                    assert!(src.capacity() <= bound, "buffer grew to {}", src.capacity());
                    break;
                }
                Err(e) => {
                    check_error(&e, before, &src);
                    return;
                }
            }
        }
    }
    match codec.decode_eof(&mut src) {
        Ok(Some(frame)) => check_frame(&frame),
        Ok(None) => assert!(src.is_empty()),
        Err(e) => check_error(&e, src.capacity(), &src),
    }
}

fn check_frame(frame: &Frame) {
    assert!(frame.payload.len() <= MAX);
    let mut again = BytesMut::new();
    FrameCodec::with_max_frame_len(MAX)
        .encode(frame, &mut again)
        .unwrap_or_else(|e| panic!("a decoded frame does not re-encode: {e}"));
    let back = FrameCodec::with_max_frame_len(MAX).decode(&mut again);
    assert_eq!(back.ok().flatten().as_ref(), Some(frame));
}

fn check_error(e: &FrameError, capacity_before: usize, src: &BytesMut) {
    match e {
        FrameError::TooLarge { len, max } => {
            assert!(*len > MAX && *max == MAX);
            assert!(src.capacity() <= capacity_before, "grew for a refused frame");
        }
        FrameError::UnknownKind { kind } => assert!(*kind > 5),
        FrameError::Truncated { have, need } => assert!(have < need),
        other => panic!("unexpected error {other:?}"),
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    use std::path::{Path, PathBuf};

    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode");
    let args = std::env::args_os().skip(1).map(PathBuf::from);
    let replayed = beamline_testkit::replay_inputs(args, &default, check);

    // A deterministic sweep: valid streams, then the same streams with bytes flipped, and
    // plain noise.
    let mut rng = beamline_testkit::Rng::new(0x243F_6A88_85A3_08D3);
    let mut next = move || rng.next_u64();
    let mut generated = 0;
    for round in 0..20_000u64 {
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&[(next() % 256) as u8]);
        let mut codec = FrameCodec::with_max_frame_len(MAX);
        for _ in 0..(next() % 5) {
            let kind = beamline_mux::FrameKind::from_u8((next() % 6) as u8)
                .unwrap_or(beamline_mux::FrameKind::Request);
            let len = (next() % (MAX as u64 + 1)) as usize;
            let frame = Frame::new(kind, next() as u32, vec![(next() % 256) as u8; len]);
            codec
                .encode(frame, &mut stream)
                .unwrap_or_else(|e| panic!("encoding a valid frame failed: {e}"));
        }
        match round % 3 {
            0 => {}
            1 => {
                for _ in 0..=(next() % 4) {
                    let len = stream.len() as u64;
                    let at = (next() % len) as usize;
                    stream[at] = (next() % 256) as u8;
                }
            }
            _ => {
                stream.clear();
                for _ in 0..(next() % 64) {
                    stream.extend_from_slice(&next().to_le_bytes());
                }
            }
        }
        check(&stream);
        generated += 1;
    }
    println!("decode: {replayed} corpus inputs and {generated} generated inputs passed");
}
