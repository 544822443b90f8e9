//! `tokio_util` codec for ZVT serial frames (used by both the driver and
//! the simulator).

use std::io;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Decoded, Frame, decode_frame};

/// Frames in, frames out. Line noise between frames is dropped; a damaged
/// block is an item ([`Frame::Corrupt`]) so the receiver can answer `NAK`.
#[derive(Debug, Default)]
pub struct ZvtCodec {
    skipped: u64,
}

impl ZvtCodec {
    /// Bytes of line noise dropped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Decoder for ZvtCodec {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Frame>> {
        loop {
            match decode_frame(src) {
                Decoded::Frame(frame, len) => {
                    src.advance(len);
                    return Ok(Some(frame));
                }
                Decoded::Skip(n) => {
                    src.advance(n);
                    self.skipped += n as u64;
                }
                Decoded::Incomplete => return Ok(None),
            }
        }
    }
}

impl Encoder<Frame> for ZvtCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> io::Result<()> {
        let mut out = Vec::new();
        item.encode(&mut out);
        dst.extend_from_slice(&out);
        Ok(())
    }
}
