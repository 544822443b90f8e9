//! The driver's classifier of printer replies (status, ASB, process id,
//! XON/XOFF), through its codec.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use madoguchi_gateway::devices::printer::codec::HostCodec;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut codec = HostCodec::default();
    while let Ok(Some(reply)) = codec.decode(&mut buf) {
        let mut bytes = Vec::new();
        reply.encode(&mut bytes);
        assert!(!bytes.is_empty());
    }
    // Whatever is left is a prefix of a possible reply, never more than one.
    assert!(buf.len() < 7);
});
