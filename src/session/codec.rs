//! Frames CMPP on a byte stream for tokio: the thin adapter between sockets and `protocol`.
//! Total_Length is checked against both bounds before any body is buffered, so a hostile or
//! broken peer cannot make us allocate more than one maximum frame.
//!
//! Two decoders share the framing: [`CmppCodec`] reads strictly (the simulator, which must catch
//! a client's mistakes), [`LinkCodec`] leniently (the gateway's link, which must survive an
//! ISMG's): a frame with a sound header always comes out, decoded or raw ([`Lenient`]).

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::protocol::{
    DecodeError, EncodeError, HEADER_LEN, Lenient, MAX_PDU_LEN, Packet, Version, decode_lenient,
};

/// How many leading bytes of a bad frame an error keeps for the log line.
const HEAD_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a valid PDU; `head` is its first bytes in hex.
    #[error("malformed PDU ({source}); first bytes {head}")]
    Malformed { source: DecodeError, head: String },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A CMPP codec for one version, with a configurable maximum frame length.
#[derive(Debug, Clone)]
pub struct CmppCodec {
    version: Version,
    max_frame_len: u32,
}

impl CmppCodec {
    pub fn new(version: Version) -> Self {
        CmppCodec {
            version,
            max_frame_len: MAX_PDU_LEN,
        }
    }

    /// Frames above `max` bytes are rejected; values below the header length are raised to it.
    pub fn with_max_frame_len(mut self, max: u32) -> Self {
        self.max_frame_len = max.max(HEADER_LEN as u32);
        self
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Switches the version, e.g. after a 2.0 CONNECT_RESP was accepted.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }
}

fn malformed(source: DecodeError, bytes: &[u8]) -> CodecError {
    CodecError::Malformed {
        source,
        head: hex::encode(&bytes[..bytes.len().min(HEAD_BYTES)]),
    }
}

/// The length of the frame at the start of `src` once all of it is buffered; `None` while more
/// bytes are needed (room for them is reserved). A Total_Length outside the bounds is an error:
/// the stream cannot be resynchronised after it.
fn whole_frame(src: &mut BytesMut, max_frame_len: u32) -> Result<Option<usize>, CodecError> {
    let Some(prefix) = src.get(..4) else {
        return Ok(None);
    };
    let total_length = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if (total_length as usize) < HEADER_LEN {
        return Err(malformed(DecodeError::TooShort { total_length }, src));
    }
    if total_length > max_frame_len {
        return Err(malformed(
            DecodeError::TooLong {
                total_length,
                max: max_frame_len,
            },
            src,
        ));
    }
    let len = total_length as usize;
    if src.len() < len {
        src.reserve(len - src.len());
        return Ok(None);
    }
    Ok(Some(len))
}

impl Decoder for CmppCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        let Some(len) = whole_frame(src, self.max_frame_len)? else {
            return Ok(None);
        };
        match Packet::decode(self.version, &src[..len]) {
            Ok(packet) => {
                src.advance(len);
                Ok(Some(packet))
            }
            Err(e) => Err(malformed(e, &src[..len])),
        }
    }
}

/// The link's codec: [`CmppCodec`]'s framing and encoding, lenient reading.
#[derive(Debug, Clone)]
pub struct LinkCodec(CmppCodec);

impl LinkCodec {
    pub fn new(version: Version, max_frame_len: u32) -> Self {
        LinkCodec(CmppCodec::new(version).with_max_frame_len(max_frame_len))
    }

    pub fn version(&self) -> Version {
        self.0.version
    }
}

impl Decoder for LinkCodec {
    type Item = Lenient;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Lenient>, CodecError> {
        let Some(len) = whole_frame(src, self.0.max_frame_len)? else {
            return Ok(None);
        };
        // The frame is whole, so only an unsound header can fail here, and that was ruled out.
        let read =
            decode_lenient(self.0.version, &src[..len]).map_err(|e| malformed(e, &src[..len]));
        src.advance(len);
        read.map(Some)
    }
}

impl Encoder<Packet> for LinkCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.0.encode(&item, dst)
    }
}

impl Encoder<Packet> for CmppCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&item, dst)
    }
}

impl Encoder<&Packet> for CmppCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(item.encode(self.version, dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Pdu, SubmitResp};

    #[test]
    fn frames_arrive_in_pieces_and_back_to_back() {
        let mut codec = CmppCodec::new(Version::V30);
        let a = Packet::new(1, Pdu::ActiveTest)
            .to_bytes(Version::V30)
            .unwrap();
        let b = Packet::new(2, Pdu::SubmitResp(SubmitResp::default()))
            .to_bytes(Version::V30)
            .unwrap();
        let mut src = BytesMut::new();
        src.extend_from_slice(&a[..3]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(&a[3..]);
        src.extend_from_slice(&b[..20]);
        assert_eq!(codec.decode(&mut src).unwrap().unwrap().sequence_id, 1);
        assert!(codec.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(&b[20..]);
        assert_eq!(codec.decode(&mut src).unwrap().unwrap().sequence_id, 2);
        assert!(src.is_empty());
    }

    #[test]
    fn bounds_are_checked_before_the_body_arrives() {
        let mut codec = CmppCodec::new(Version::V30).with_max_frame_len(100);
        let mut src = BytesMut::from(&[0u8, 0, 0, 101][..]);
        match codec.decode(&mut src) {
            Err(CodecError::Malformed {
                source:
                    DecodeError::TooLong {
                        total_length: 101,
                        max: 100,
                    },
                head,
            }) => assert_eq!(head, "00000065"),
            other => panic!("expected TooLong, got {other:?}"),
        }
        // The buffer did not grow to hold the announced body.
        assert!(src.capacity() < 101);
        let mut src = BytesMut::from(&[0u8, 0, 0, 11][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(CodecError::Malformed {
                source: DecodeError::TooShort { total_length: 11 },
                ..
            })
        ));
    }
}
