//! [`ExplosiveLines`]: user code that panics inside a connection's driver.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

/// `tokio_util`'s `LinesCodec`, except that decoding the line `boom` panics with the message
/// `codec exploded on boom` (silence it with [`quiet_panics`](crate::quiet_panics)). For the
/// tests that a codec's panic ends its connection with a typed cause instead of killing the
/// driver's task.
#[derive(Debug, Default)]
pub struct ExplosiveLines(LinesCodec);

impl Encoder<String> for ExplosiveLines {
    type Error = LinesCodecError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), LinesCodecError> {
        self.0.encode(line, dst)
    }
}

impl Decoder for ExplosiveLines {
    type Item = String;
    type Error = LinesCodecError;

    /// # Panics
    /// On the line `boom`, deliberately.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, LinesCodecError> {
        match self.0.decode(src)? {
            Some(line) if line == "boom" => panic!("codec exploded on {line}"),
            other => Ok(other),
        }
    }
}
