//! `tokio_util` codecs over [`super::escpos`]: [`HostCodec`] for the
//! driver (decodes replies, sends raw ESC/POS bytes), [`DeviceCodec`] for the
//! simulator (decodes commands, sends replies).

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::escpos::{Command, DecodedReply, Parsed, PrinterReply, decode_reply, parse_command};

/// Driver side: printer replies in, ESC/POS bytes out.
#[derive(Debug, Default)]
pub struct HostCodec {
    skipped: u64,
}

impl HostCodec {
    /// Bytes dropped so far because they belonged to no known reply.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Decoder for HostCodec {
    type Item = PrinterReply;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<PrinterReply>> {
        loop {
            match decode_reply(src) {
                DecodedReply::Reply(reply, len) => {
                    src.advance(len);
                    return Ok(Some(reply));
                }
                DecodedReply::Skip => {
                    src.advance(1);
                    self.skipped += 1;
                }
                DecodedReply::Incomplete => return Ok(None),
            }
        }
    }
}

impl Encoder<Bytes> for HostCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// Simulator side: ESC/POS commands in, replies out.
#[derive(Debug, Default)]
pub struct DeviceCodec;

impl Decoder for DeviceCodec {
    type Item = Command;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Command>> {
        match parse_command(src) {
            Parsed::Item(command, len) => {
                src.advance(len);
                Ok(Some(command))
            }
            Parsed::Incomplete => Ok(None),
        }
    }
}

impl Encoder<PrinterReply> for DeviceCodec {
    type Error = io::Error;

    fn encode(&mut self, item: PrinterReply, dst: &mut BytesMut) -> io::Result<()> {
        let mut out = Vec::with_capacity(7);
        item.encode(&mut out);
        dst.extend_from_slice(&out);
        Ok(())
    }
}
