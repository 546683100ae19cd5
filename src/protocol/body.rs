//! The contract every PDU body type fulfils; `Pdu` dispatches on it.

use bytes::BytesMut;

use super::wire::Reader;
use super::{CommandId, DecodeError, EncodeError, Version};

pub(crate) trait Body: Sized {
    const COMMAND: CommandId;

    /// Reads the fields; the caller checks that nothing is left over.
    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    fn write(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError>;
}

/// Decodes a whole body of type `B`, rejecting bytes left over.
#[cfg(test)]
pub(crate) fn decode_body<B: Body>(version: Version, body: &[u8]) -> Result<B, DecodeError> {
    let mut r = Reader::new(B::COMMAND, body);
    let value = B::read(version, &mut r)?;
    r.finish()?;
    Ok(value)
}

/// Decodes the fields of `B` from the start of `body`; returns the value and how many bytes
/// were left over after its last field (peers that pad PDUs).
pub(crate) fn decode_body_prefix<B: Body>(
    version: Version,
    body: &[u8],
) -> Result<(B, usize), DecodeError> {
    let mut r = Reader::new(B::COMMAND, body);
    let value = B::read(version, &mut r)?;
    Ok((value, r.remaining()))
}
