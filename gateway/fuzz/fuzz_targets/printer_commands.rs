//! The simulator's ESC/POS command parser, directly and through its codec.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use madoguchi_gateway::devices::printer::codec::DeviceCodec;
use madoguchi_gateway::devices::printer::escpos::{Parsed, parse_command};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Parsed::Item(command, n) = parse_command(rest) {
        assert!(n >= 1 && n <= rest.len());
        let mut again = Vec::new();
        command.encode(&mut again);
        assert_eq!(again, rest[..n], "parse then encode is the identity");
        rest = &rest[n..];
    }
    let mut buf = BytesMut::from(data);
    let mut codec = DeviceCodec;
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
