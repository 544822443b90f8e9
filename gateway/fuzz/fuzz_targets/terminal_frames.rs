//! The payment terminal's block decoder, APDU parser and message parsers.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use madoguchi_gateway::devices::terminal::codec::ZvtCodec;
use madoguchi_gateway::devices::terminal::frame::{Apdu, Frame, Reply, Request};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut codec = ZvtCodec::default();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        if let Frame::Block(bytes) = frame
            && let Ok(apdu) = Apdu::parse(&bytes)
        {
            assert_eq!(apdu.encode(), bytes);
            let _ = Request::from_apdu(&apdu);
            let _ = Reply::from_apdu(&apdu);
        }
    }
    if let Ok(apdu) = Apdu::parse(data) {
        let _ = Request::from_apdu(&apdu);
        let _ = Reply::from_apdu(&apdu);
    }
});
