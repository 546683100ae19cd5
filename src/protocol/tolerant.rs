//! Reading what ISMGs really send. A frame whose header is sound is never a reason to give up on
//! a connection: a body the strict layout rejects is read leniently where one reading is clearly
//! right, and otherwise handed back raw with its header, so the link can answer it and move on.
//!
//! The readings, tried in this order (the first that fits wins):
//! 1. the link's own version, exactly;
//! 2. ACTIVE_TEST_RESP without its Reserved byte (a 12-byte PDU): Reserved reads as 0;
//! 3. for fixed-size responses, the other version's layout exactly (a 21-byte 2.0 SUBMIT_RESP on a
//!    3.0 link). A response whose length is exactly the other version's size is that version far
//!    more often than ours padded by exactly the difference;
//! 4. the link's own version with bytes left after the last field (padding, a vendor trailer);
//! 5. for requests, the other version's layout exactly (a 2.0 DELIVER on a 3.0 link).
//!
//! Anything else is [`Lenient::Undecodable`].

use bytes::Bytes;

use super::{CommandId, DecodeError, HEADER_LEN, Header, Packet, Pdu, Version};

/// What was unusual about a PDU that was read anyway; each is counted by the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anomaly {
    /// Bytes after the last field, inside Total_Length.
    TrailingBytes { command: CommandId, extra: usize },
    /// The body has the other version's layout (e.g. a 2.0 SUBMIT_RESP on a 3.0 link).
    OtherVersion { command: CommandId, layout: Version },
    /// ACTIVE_TEST_RESP without its one Reserved byte.
    MissingReserved,
}

impl Anomaly {
    /// The metric label of this kind of anomaly.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::TrailingBytes { .. } => "trailing_bytes",
            Anomaly::OtherVersion { .. } => "other_version_layout",
            Anomaly::MissingReserved => "missing_reserved",
        }
    }
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Anomaly::TrailingBytes { command, extra } => {
                write!(f, "{command} with {extra} bytes after its last field")
            }
            Anomaly::OtherVersion { command, layout } => {
                write!(f, "{command} in the CMPP {layout} layout")
            }
            Anomaly::MissingReserved => write!(f, "CMPP_ACTIVE_TEST_RESP without Reserved"),
        }
    }
}

/// A frame with a sound header whose body no reading fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub header: Header,
    pub body: Bytes,
    /// Why the link's own version could not read it.
    pub error: DecodeError,
}

/// One frame, read as leniently as is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lenient {
    Exact(Packet),
    Tolerated(Packet, Anomaly),
    Undecodable(Undecodable),
}

/// Reads one whole frame (header included, exactly Total_Length bytes). Errors only when the
/// header itself is unsound; every body problem becomes [`Lenient::Undecodable`].
pub fn decode_lenient(version: Version, frame: &[u8]) -> Result<Lenient, DecodeError> {
    let header = Header::decode(frame)?;
    if header.total_length as usize != frame.len() {
        return Err(DecodeError::LengthMismatch {
            declared: header.total_length,
            actual: frame.len(),
        });
    }
    let command = header.command_id;
    let body = &frame[HEADER_LEN..];
    let packet = |pdu| Packet::new(header.sequence_id, pdu);
    let other = match version {
        Version::V20 => Version::V30,
        Version::V30 => Version::V20,
    };
    let own = Pdu::decode_body_prefix(version, command, body);
    let error = match own {
        Ok((pdu, 0)) => return Ok(Lenient::Exact(packet(pdu))),
        Ok((_, extra)) => DecodeError::BodyLength {
            command,
            expected: body.len() - extra,
            actual: body.len(),
        },
        Err(ref e) => e.clone(),
    };
    if command == CommandId::ActiveTestResp && body.is_empty() {
        let pdu = Pdu::ActiveTestResp(Default::default());
        return Ok(Lenient::Tolerated(packet(pdu), Anomaly::MissingReserved));
    }
    let other_exact = || match Pdu::decode_body_prefix(other, command, body) {
        Ok((pdu, 0)) => Some(Lenient::Tolerated(
            packet(pdu),
            Anomaly::OtherVersion {
                command,
                layout: other,
            },
        )),
        _ => None,
    };
    if command.is_response() {
        if let Some(read) = other_exact() {
            return Ok(read);
        }
    }
    if let Ok((pdu, extra)) = own {
        return Ok(Lenient::Tolerated(
            packet(pdu),
            Anomaly::TrailingBytes { command, extra },
        ));
    }
    if !command.is_response() {
        if let Some(read) = other_exact() {
            return Ok(read);
        }
    }
    Ok(Lenient::Undecodable(Undecodable {
        header,
        body: Bytes::copy_from_slice(body),
        error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ActiveTestResp, ConnectResp, Deliver, MsgId, SubmitResp};

    fn frame(version: Version, sequence_id: u32, pdu: Pdu) -> Vec<u8> {
        Packet::new(sequence_id, pdu)
            .to_bytes(version)
            .unwrap()
            .to_vec()
    }

    /// `frame` with `extra` bytes appended inside Total_Length.
    fn padded(mut frame: Vec<u8>, extra: usize) -> Vec<u8> {
        frame.extend(std::iter::repeat_n(0xEE, extra));
        let total = frame.len() as u32;
        frame[..4].copy_from_slice(&total.to_be_bytes());
        frame
    }

    fn deliver() -> Pdu {
        Pdu::Deliver(Deliver {
            msg_id: MsgId(77),
            src_terminal_id: "13800138000".into(),
            msg_content: b"hello".to_vec(),
            link_id: "L1".into(),
            ..Deliver::default()
        })
    }

    #[test]
    fn conforming_frames_are_exact() {
        let f = frame(Version::V30, 5, deliver());
        assert_eq!(
            decode_lenient(Version::V30, &f),
            Ok(Lenient::Exact(Packet::new(5, deliver())))
        );
    }

    #[test]
    fn trailing_bytes_after_link_id_are_skipped() {
        let f = padded(frame(Version::V30, 5, deliver()), 8);
        assert_eq!(
            decode_lenient(Version::V30, &f),
            Ok(Lenient::Tolerated(
                Packet::new(5, deliver()),
                Anomaly::TrailingBytes {
                    command: CommandId::Deliver,
                    extra: 8
                }
            ))
        );
    }

    #[test]
    fn a_2_0_submit_resp_on_a_3_0_link_is_read_in_its_layout() {
        let resp = Pdu::SubmitResp(SubmitResp {
            msg_id: MsgId(0xB2B9_DA80_0001_0000),
            result: 8,
        });
        let f = frame(Version::V20, 9, resp.clone());
        assert_eq!(f.len(), 21);
        assert_eq!(
            decode_lenient(Version::V30, &f),
            Ok(Lenient::Tolerated(
                Packet::new(9, resp),
                Anomaly::OtherVersion {
                    command: CommandId::SubmitResp,
                    layout: Version::V20
                }
            ))
        );
    }

    #[test]
    fn a_2_0_connect_resp_is_recognised_on_either_side() {
        let resp = Pdu::ConnectResp(ConnectResp {
            status: 0,
            authenticator_ismg: [7; 16],
            version: 0x20,
        });
        let f = frame(Version::V20, 1, resp.clone());
        assert_eq!(f.len(), 30);
        assert!(matches!(
            decode_lenient(Version::V30, &f),
            Ok(Lenient::Tolerated(p, Anomaly::OtherVersion { layout: Version::V20, .. })) if p.pdu == resp
        ));
        // And a 3.0 answer to a 2.0 client is not misread as a padded 2.0 one.
        let resp30 = Pdu::ConnectResp(ConnectResp {
            status: 0,
            authenticator_ismg: [7; 16],
            version: 0x30,
        });
        let f = frame(Version::V30, 1, resp30.clone());
        assert!(matches!(
            decode_lenient(Version::V20, &f),
            Ok(Lenient::Tolerated(p, Anomaly::OtherVersion { layout: Version::V30, .. })) if p.pdu == resp30
        ));
    }

    #[test]
    fn an_active_test_resp_without_reserved_is_accepted() {
        let f = hex::decode("0000000c8000000800000003").unwrap();
        assert_eq!(
            decode_lenient(Version::V30, &f),
            Ok(Lenient::Tolerated(
                Packet::new(3, Pdu::ActiveTestResp(ActiveTestResp::default())),
                Anomaly::MissingReserved
            ))
        );
    }

    #[test]
    fn a_deliver_whose_msg_length_overruns_its_body_is_undecodable_with_its_header() {
        let mut f = frame(Version::V30, 11, deliver());
        // Msg_Length (PDU offset 12 + 76) claims 200 bytes of content.
        f[12 + 76] = 200;
        let Ok(Lenient::Undecodable(u)) = decode_lenient(Version::V30, &f) else {
            panic!("expected undecodable");
        };
        assert_eq!(u.header.command_id, CommandId::Deliver);
        assert_eq!(u.header.sequence_id, 11);
        assert_eq!(&u.body[..], &f[12..]);
        assert!(
            matches!(u.error, DecodeError::Truncated { .. }),
            "{:?}",
            u.error
        );
    }

    #[test]
    fn only_an_unsound_header_is_an_error() {
        assert!(decode_lenient(Version::V30, &[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1]).is_err());
        let f = padded(frame(Version::V30, 1, Pdu::ActiveTest), 3);
        assert!(matches!(
            decode_lenient(Version::V30, &f),
            Ok(Lenient::Tolerated(
                _,
                Anomaly::TrailingBytes { extra: 3, .. }
            ))
        ));
    }
}
