//! The 12-byte header, the PDU enum and a whole packet (header + body).

use bytes::{BufMut, Bytes, BytesMut};

use super::body::{Body, decode_body_prefix};
use super::{
    ActiveTestResp, Cancel, CancelResp, CommandId, Connect, ConnectResp, DecodeError, Deliver,
    DeliverResp, EncodeError, FwdResp, Query, QueryResp, Submit, SubmitResp, Version,
};

/// Total_Length, Command_Id, Sequence_Id.
pub const HEADER_LEN: usize = 12;

/// The largest legal 3.0 PDU: a SUBMIT to 99 recipients with 159 bytes of content.
pub const MAX_PDU_LEN: u32 = 163 + 32 * 99 + 159;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub total_length: u32,
    pub command_id: CommandId,
    pub sequence_id: u32,
}

impl Header {
    /// Reads the header at the start of `bytes`; checks only that Total_Length covers a header.
    pub fn decode(bytes: &[u8]) -> Result<Header, DecodeError> {
        let word = |at: usize| {
            bytes
                .get(at..at + 4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        let (Some(total_length), Some(command_id), Some(sequence_id)) = (word(0), word(4), word(8))
        else {
            return Err(DecodeError::LengthMismatch {
                declared: word(0).unwrap_or(0),
                actual: bytes.len(),
            });
        };
        if (total_length as usize) < HEADER_LEN {
            return Err(DecodeError::TooShort { total_length });
        }
        Ok(Header {
            total_length,
            command_id: command_id.into(),
            sequence_id,
        })
    }
}

/// One PDU body. The Command_Id follows from the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    Connect(Connect),
    ConnectResp(ConnectResp),
    Terminate,
    TerminateResp,
    Submit(Submit),
    SubmitResp(SubmitResp),
    Deliver(Deliver),
    DeliverResp(DeliverResp),
    Query(Query),
    QueryResp(QueryResp),
    Cancel(Cancel),
    CancelResp(CancelResp),
    ActiveTest,
    ActiveTestResp(ActiveTestResp),
    FwdResp(FwdResp),
    /// A command this codec has no layout for (CMPP_FWD, the route commands, vendor ids): kept raw.
    Other {
        command_id: u32,
        body: Bytes,
    },
}

impl Pdu {
    pub fn command_id(&self) -> CommandId {
        match self {
            Pdu::Connect(_) => CommandId::Connect,
            Pdu::ConnectResp(_) => CommandId::ConnectResp,
            Pdu::Terminate => CommandId::Terminate,
            Pdu::TerminateResp => CommandId::TerminateResp,
            Pdu::Submit(_) => CommandId::Submit,
            Pdu::SubmitResp(_) => CommandId::SubmitResp,
            Pdu::Deliver(_) => CommandId::Deliver,
            Pdu::DeliverResp(_) => CommandId::DeliverResp,
            Pdu::Query(_) => CommandId::Query,
            Pdu::QueryResp(_) => CommandId::QueryResp,
            Pdu::Cancel(_) => CommandId::Cancel,
            Pdu::CancelResp(_) => CommandId::CancelResp,
            Pdu::ActiveTest => CommandId::ActiveTest,
            Pdu::ActiveTestResp(_) => CommandId::ActiveTestResp,
            Pdu::FwdResp(_) => CommandId::FwdResp,
            Pdu::Other { command_id, .. } => CommandId::from(*command_id),
        }
    }

    /// Decodes a body (the bytes after the header) of the given command.
    pub fn decode_body(
        version: Version,
        command: CommandId,
        body: &[u8],
    ) -> Result<Pdu, DecodeError> {
        match Pdu::decode_body_prefix(version, command, body)? {
            (pdu, 0) => Ok(pdu),
            (_, left) => Err(DecodeError::BodyLength {
                command,
                expected: body.len() - left,
                actual: body.len(),
            }),
        }
    }

    /// Decodes the command's fields from the start of `body`; returns the PDU and the number of
    /// bytes left after its last field (0 for a conforming PDU).
    pub fn decode_body_prefix(
        version: Version,
        command: CommandId,
        body: &[u8],
    ) -> Result<(Pdu, usize), DecodeError> {
        fn typed<B: Body>(
            version: Version,
            body: &[u8],
            wrap: fn(B) -> Pdu,
        ) -> Result<(Pdu, usize), DecodeError> {
            decode_body_prefix::<B>(version, body).map(|(b, left)| (wrap(b), left))
        }
        match command {
            CommandId::Connect => typed(version, body, Pdu::Connect),
            CommandId::ConnectResp => typed(version, body, Pdu::ConnectResp),
            CommandId::Terminate => Ok((Pdu::Terminate, body.len())),
            CommandId::TerminateResp => Ok((Pdu::TerminateResp, body.len())),
            CommandId::Submit => typed(version, body, Pdu::Submit),
            CommandId::SubmitResp => typed(version, body, Pdu::SubmitResp),
            CommandId::Deliver => typed(version, body, Pdu::Deliver),
            CommandId::DeliverResp => typed(version, body, Pdu::DeliverResp),
            CommandId::Query => typed(version, body, Pdu::Query),
            CommandId::QueryResp => typed(version, body, Pdu::QueryResp),
            CommandId::Cancel => typed(version, body, Pdu::Cancel),
            CommandId::CancelResp => typed(version, body, Pdu::CancelResp),
            CommandId::ActiveTest => Ok((Pdu::ActiveTest, body.len())),
            CommandId::ActiveTestResp => typed(version, body, Pdu::ActiveTestResp),
            CommandId::FwdResp => typed(version, body, Pdu::FwdResp),
            CommandId::Fwd | CommandId::Other(_) => Ok((
                Pdu::Other {
                    command_id: command.value(),
                    body: Bytes::copy_from_slice(body),
                },
                0,
            )),
        }
    }

    /// Appends the body to `buf`.
    pub fn encode_body(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Pdu::Connect(b) => b.write(version, buf),
            Pdu::ConnectResp(b) => b.write(version, buf),
            Pdu::Submit(b) => b.write(version, buf),
            Pdu::SubmitResp(b) => b.write(version, buf),
            Pdu::Deliver(b) => b.write(version, buf),
            Pdu::DeliverResp(b) => b.write(version, buf),
            Pdu::Query(b) => b.write(version, buf),
            Pdu::QueryResp(b) => b.write(version, buf),
            Pdu::Cancel(b) => b.write(version, buf),
            Pdu::CancelResp(b) => b.write(version, buf),
            Pdu::ActiveTestResp(b) => b.write(version, buf),
            Pdu::FwdResp(b) => b.write(version, buf),
            Pdu::Terminate | Pdu::TerminateResp | Pdu::ActiveTest => Ok(()),
            Pdu::Other { body, .. } => {
                buf.put_slice(body);
                Ok(())
            }
        }
    }
}

/// A whole PDU as sent on the wire: the Sequence_Id plus the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub sequence_id: u32,
    pub pdu: Pdu,
}

impl Packet {
    pub fn new(sequence_id: u32, pdu: Pdu) -> Packet {
        Packet { sequence_id, pdu }
    }

    /// Decodes exactly one PDU; `frame` must be the whole PDU, header included.
    pub fn decode(version: Version, frame: &[u8]) -> Result<Packet, DecodeError> {
        let header = Header::decode(frame)?;
        if header.total_length as usize != frame.len() {
            return Err(DecodeError::LengthMismatch {
                declared: header.total_length,
                actual: frame.len(),
            });
        }
        let pdu = Pdu::decode_body(version, header.command_id, &frame[HEADER_LEN..])?;
        Ok(Packet {
            sequence_id: header.sequence_id,
            pdu,
        })
    }

    /// Appends the whole PDU to `buf`. On error `buf` is left as it was.
    pub fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        encode_pdu(self.sequence_id, &self.pdu, version, buf)
    }

    /// The PDU as one buffer.
    pub fn to_bytes(&self, version: Version) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode(version, &mut buf)?;
        Ok(buf.freeze())
    }
}

/// Appends a whole PDU with this Sequence_Id to `buf` without taking ownership of the body, so a
/// request kept for resending is encoded again without a copy. On error `buf` is left as it was.
pub fn encode_pdu(
    sequence_id: u32,
    pdu: &Pdu,
    version: Version,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_u32(0); // Total_Length, patched below once the body is written.
    buf.put_u32(pdu.command_id().value());
    buf.put_u32(sequence_id);
    if let Err(e) = pdu.encode_body(version, buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = buf.len() - start;
    let Ok(total) = u32::try_from(len) else {
        buf.truncate(start);
        return Err(EncodeError::FieldTooLong {
            field: "Total_Length",
            len,
            max: u32::MAX as usize,
        });
    };
    buf[start..start + 4].copy_from_slice(&total.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_pdus_are_twelve_bytes() {
        for pdu in [Pdu::Terminate, Pdu::TerminateResp, Pdu::ActiveTest] {
            let bytes = Packet::new(9, pdu.clone()).to_bytes(Version::V30).unwrap();
            assert_eq!(bytes.len(), 12);
            assert_eq!(Packet::decode(Version::V30, &bytes).unwrap().pdu, pdu);
        }
    }

    #[test]
    fn a_body_on_a_header_only_pdu_is_rejected() {
        let frame = hex::decode("0000000d000000080000000100").unwrap();
        assert_eq!(
            Packet::decode(Version::V30, &frame),
            Err(DecodeError::BodyLength {
                command: CommandId::ActiveTest,
                expected: 0,
                actual: 1
            })
        );
    }

    #[test]
    fn declared_length_must_match() {
        let frame = hex::decode("0000000d0000000800000001").unwrap();
        assert_eq!(
            Packet::decode(Version::V30, &frame),
            Err(DecodeError::LengthMismatch {
                declared: 13,
                actual: 12
            })
        );
        assert_eq!(
            Packet::decode(Version::V30, &[0, 0, 0, 5, 0, 0, 0, 8, 0, 0, 0, 1]),
            Err(DecodeError::TooShort { total_length: 5 })
        );
    }

    #[test]
    fn unknown_commands_are_kept_raw() {
        let frame = hex::decode("0000000e0000001000000001abcd").unwrap();
        let packet = Packet::decode(Version::V30, &frame).unwrap();
        assert_eq!(
            packet.pdu,
            Pdu::Other {
                command_id: 0x10,
                body: Bytes::from_static(&[0xab, 0xcd])
            }
        );
        assert_eq!(&packet.to_bytes(Version::V30).unwrap()[..], &frame[..]);
    }

    #[test]
    fn failed_encode_leaves_buffer_untouched() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        let bad = Packet::new(1, Pdu::Submit(Submit::default()));
        assert!(bad.encode(Version::V30, &mut buf).is_err());
        assert_eq!(&buf[..], b"xy");
    }

    #[test]
    fn max_pdu_len_is_the_spec_value() {
        assert_eq!(MAX_PDU_LEN, 3490);
    }
}
