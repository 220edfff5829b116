//! Fuzz target: beamline-server's PROXY protocol (v1 and v2) header parser on arbitrary
//! bytes.
//!
//! Properties checked on every input:
//! - parsing never panics, whatever the bytes;
//! - a header never claims more bytes than it was given or than `MAX_HEADER_LEN`, and
//!   `Incomplete { needed }` always asks for more than it has, within the bound;
//! - the parse allocates at most the header's own TLV bytes (counted by a global allocator
//!   around the call): never past the bound, and nothing for a header without TLVs;
//! - deciding is monotonic: a prefix that is not a header stays not a header with more
//!   bytes; a header's own prefixes are `Incomplete`, never an error;
//! - every header re-encodes to bytes that parse back to the same addresses and TLVs;
//! - every error is a typed `ProxyError` with consistent fields.
//!
//! Built by `cargo fuzz build` (`--cfg fuzzing`) it is a libFuzzer target. Built by a plain
//! `cargo build` it is a binary that replays corpus files and directories given as
//! arguments (default: `corpus/proxy_header` next to this crate), then a deterministic sweep
//! of generated inputs, through the same checks.
#![cfg_attr(fuzzing, no_main)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use beamline_server::proxy::{MAX_HEADER_LEN, Parsed};
use beamline_server::{ProxyError, ProxyHeader, ProxyVersion};

/// Counts the bytes allocated while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only
// read and written with atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) != 0 {
            ALLOCATED.fetch_add(layout.size(), Relaxed);
        }
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Parses `input`, returning the result and the bytes allocated meanwhile.
fn parse_counted(input: &[u8]) -> (Result<Parsed, ProxyError>, usize) {
    ALLOCATED.store(0, Relaxed);
    COUNTING.store(1, Relaxed);
    let parsed = ProxyHeader::parse(input);
    COUNTING.store(0, Relaxed);
    (parsed, ALLOCATED.load(Relaxed))
}

fn check(input: &[u8]) {
    let (parsed, allocated) = parse_counted(input);
    match &parsed {
        Ok(Parsed::Header { header, len }) => {
            assert!(*len <= input.len() && *len <= MAX_HEADER_LEN, "len {len}");
            let tlv_bytes: usize = header.tlvs().map(|t| 3 + t.value.len()).sum();
            assert!(tlv_bytes < *len, "TLVs beyond the header");
            assert!(
                allocated <= tlv_bytes,
                "allocated {allocated} for {tlv_bytes} TLV bytes"
            );
            check_prefixes(&input[..*len]);
            check_round_trip(header);
        }
        Ok(Parsed::Incomplete { needed }) => {
            assert!(*needed > input.len() && *needed <= MAX_HEADER_LEN);
            assert_eq!(allocated, 0);
        }
        Ok(Parsed::NotProxy) => {
            assert_eq!(allocated, 0);
            // More bytes never turn it into a header; fewer may only wait.
            let half = &input[..input.len() / 2];
            assert!(matches!(
                ProxyHeader::parse(half),
                Ok(Parsed::NotProxy | Parsed::Incomplete { .. })
            ));
        }
        Err(e) => {
            assert_eq!(allocated, 0, "allocated for an error");
            check_error(e, input);
        }
        Ok(other) => panic!("unknown outcome {other:?}"),
    }
    // Deciding "not a header" from the first bytes is final: more bytes never change it.
    if let Ok(Parsed::NotProxy) = ProxyHeader::parse(&input[..input.len().min(12)]) {
        assert!(matches!(parsed, Ok(Parsed::NotProxy)));
    }
}

/// A header's own prefixes wait for more; they never fail or decide otherwise.
fn check_prefixes(header: &[u8]) {
    for cut in [0, 1, header.len() / 2, header.len().saturating_sub(1)] {
        if cut >= header.len() {
            continue;
        }
        match ProxyHeader::parse(&header[..cut]) {
            Ok(Parsed::Incomplete { needed }) => assert!(needed > cut && needed <= header.len()),
            other => panic!("a header cut at {cut} gave {other:?}"),
        }
    }
}

fn check_round_trip(header: &ProxyHeader) {
    let mut bytes = Vec::new();
    header.encode(&mut bytes);
    let again = match ProxyHeader::parse(&bytes) {
        Ok(Parsed::Header { header, len }) => {
            assert_eq!(len, bytes.len());
            header
        }
        other => panic!("{header:?} re-encoded to {bytes:?}, which parses as {other:?}"),
    };
    assert_eq!(again.version(), header.version());
    let v4_mapped = |a: Option<std::net::SocketAddr>| {
        a.map(|a| std::net::SocketAddr::new(a.ip().to_canonical(), a.port()))
    };
    assert_eq!(v4_mapped(again.source()), v4_mapped(header.source()));
    assert_eq!(v4_mapped(again.destination()), v4_mapped(header.destination()));
    if header.version() == ProxyVersion::V2 && header.source().is_some() {
        assert!(again.tlvs().eq(header.tlvs()));
    }
}

fn check_error(e: &ProxyError, input: &[u8]) {
    match e {
        ProxyError::Malformed { reason, .. } => assert!(!reason.is_empty()),
        ProxyError::TooLarge { len, max } => {
            assert!(len > max);
            assert!(*max == 107 || *max == MAX_HEADER_LEN);
            assert!(input.len() >= 16.min(*max));
        }
        other => panic!("the parser returned an I/O-level error: {other:?}"),
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};

    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/proxy_header");
    let args = std::env::args_os().skip(1).map(PathBuf::from);
    let replayed = beamline_testkit::replay_inputs(args, &default, check);

    // A deterministic sweep: valid headers of both versions (with TLVs and client bytes
    // after them), the same with bytes flipped or cut, and plain noise.
    let mut rng = beamline_testkit::Rng::new(0x243F_6A88_85A3_08D3);
    let mut next = move || rng.next_u64();
    let mut generated = 0;
    for round in 0..50_000u64 {
        let mut addr = || -> SocketAddr {
            if next() % 2 == 0 {
                SocketAddr::from(((next() as u32).to_be_bytes(), next() as u16))
            } else {
                SocketAddr::from(((u128::from(next()) << 64 | u128::from(next())).to_be_bytes(), next() as u16))
            }
        };
        let (src, dst) = (addr(), addr());
        let version = if next() % 2 == 0 {
            ProxyVersion::V1
        } else {
            ProxyVersion::V2
        };
        let mut header = if next() % 8 == 0 {
            ProxyHeader::local(version)
        } else {
            ProxyHeader::new(version, src, dst)
        };
        for _ in 0..(next() % 4) {
            let value = vec![(next() % 256) as u8; (next() % 64) as usize];
            header = header
                .with_tlv((next() % 256) as u8, &value)
                .unwrap_or_else(|e| panic!("a small TLV was refused: {e}"));
        }
        let mut stream = Vec::new();
        header.encode(&mut stream);
        stream.extend((0..next() % 16).map(|_| (next() % 256) as u8));
        match round % 4 {
            0 => {}
            1 => {
                for _ in 0..=(next() % 3) {
                    let at = (next() % stream.len() as u64) as usize;
                    stream[at] = (next() % 256) as u8;
                }
            }
            2 => stream.truncate((next() % (stream.len() as u64 + 1)) as usize),
            _ => {
                stream.clear();
                for _ in 0..(next() % 40) {
                    stream.extend_from_slice(&next().to_le_bytes());
                }
            }
        }
        check(&stream);
        generated += 1;
    }
    println!("proxy_header: {replayed} corpus inputs and {generated} generated inputs passed");
}
