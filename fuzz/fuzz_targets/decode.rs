//! Feeds arbitrary bytes to every decoding entry point: whole PDUs in both versions, the framing
//! codec over split input, report bodies, UDH parsing and text decoding. Any panic is a bug.
#![no_main]

use bytes::BytesMut;
use cmpp_gateway::protocol::{Packet, Pdu, StatusReport, Version};
use cmpp_gateway::session::codec::CmppCodec;
use cmpp_gateway::text::{decode_text, parse_udh};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    for version in [Version::V20, Version::V30] {
        if let Ok(packet) = Packet::decode(version, data) {
            // Whatever decodes must survive re-encoding and decode to the same value.
            if let Ok(bytes) = packet.to_bytes(version) {
                assert_eq!(Packet::decode(version, &bytes).as_ref(), Ok(&packet));
            }
            if let Pdu::Deliver(d) = &packet.pdu {
                let _ = d.report();
                if let Ok((_, payload)) = parse_udh(d.tp_udhi, &d.msg_content) {
                    let _ = decode_text(d.msg_fmt, payload);
                }
            }
        }
        // The same bytes as a stream cut in two at a point chosen by the first byte.
        let cut = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
        let mut codec = CmppCodec::new(version);
        let mut buf = BytesMut::from(&data[..cut]);
        let mut pending = Some(&data[cut..]);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => match pending.take() {
                    Some(rest) => buf.extend_from_slice(rest),
                    None => break,
                },
                Err(_) => break,
            }
        }
    }
    let _ = StatusReport::decode(data);
    if let Some((&flags, rest)) = data.split_first() {
        let _ = parse_udh(flags, rest);
        let _ = decode_text(flags, rest);
    }
});
