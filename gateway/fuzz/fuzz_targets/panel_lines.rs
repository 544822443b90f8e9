//! The button panel's line parser, through its codec.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use madoguchi_gateway::devices::panel::codec::PanelCodec;
use madoguchi_gateway::devices::panel::protocol::{MAX_LINE, PanelLine};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = PanelLine::parse(data) {
        // Accepted lines are canonical.
        let text = line.encode();
        assert_eq!(PanelLine::parse(text.trim_end().as_bytes()), Ok(line));
    }
    let mut buf = BytesMut::from(data);
    let mut codec = PanelCodec::default();
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
    assert!(buf.len() < MAX_LINE, "buffered input stays bounded");
});
