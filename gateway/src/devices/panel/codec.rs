//! `tokio_util` codec for the panel's lines (both directions share it).

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::protocol::{LineError, MAX_LINE, PanelLine};

/// Decodes lines into `Result<PanelLine, LineError>` (a bad line is an
/// item, not a transport error, so the stream goes on) and encodes
/// [`PanelLine`]s. Input longer than [`MAX_LINE`] without a newline is
/// reported once and discarded up to the next newline (resync).
#[derive(Debug, Default)]
pub struct PanelCodec {
    discarding: bool,
}

impl Decoder for PanelCodec {
    type Item = Result<PanelLine, LineError>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        loop {
            let Some(end) = src.iter().position(|b| *b == b'\n') else {
                if src.len() >= MAX_LINE {
                    src.clear();
                    if !self.discarding {
                        self.discarding = true;
                        return Ok(Some(Err(LineError::TooLong)));
                    }
                }
                return Ok(None);
            };
            let line = src.split_to(end + 1);
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let body = &line[..end];
            if body.is_empty() || body == b"\r" {
                continue;
            }
            return Ok(Some(PanelLine::parse(body)));
        }
    }
}

impl Encoder<PanelLine> for PanelCodec {
    type Error = io::Error;

    fn encode(&mut self, item: PanelLine, dst: &mut BytesMut) -> io::Result<()> {
        dst.extend_from_slice(item.encode().as_bytes());
        Ok(())
    }
}
