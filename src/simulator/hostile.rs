//! How broken or hostile ISMGs damage what they send, reproduced on request: a DELIVER whose
//! Msg_Length overruns its body or that carries bytes after LinkID, a SUBMIT sent to the SP.
//! Each damage is applied to the encoded bytes, so the rest of the simulator builds PDUs as usual.

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use crate::protocol::{HEADER_LEN, Packet, Pdu, Submit, Version};

/// Bytes after LinkID in a [`Damage::TrailingBytes`] DELIVER.
pub(crate) const DELIVER_TRAILER: usize = 8;
/// The byte the padding is made of, easy to spot in a hex dump.
const PAD: u8 = 0xEE;

/// What is wrong with a damaged DELIVER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Damage {
    /// Msg_Length claims 20 bytes more than the body holds: no reading of it fits.
    MsgLengthOverrun,
    /// Eight bytes after LinkID, counted in Total_Length.
    TrailingBytes,
}

/// `POST /faults/deliver`: one damaged DELIVER into an account's outbox. Like every DELIVER it
/// is resent after each login and after each answer other than Result 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DamagedDeliverRequest {
    pub damage: Damage,
    /// A status report (for an unknown Msg_Id) instead of an MO.
    #[serde(default)]
    pub report: bool,
    /// Which account; the first one when absent.
    #[serde(default)]
    pub sp_id: Option<String>,
}

/// `POST /faults/submit`: the ISMG sends a SUBMIT, which an SP never serves. By default one the
/// SP cannot even decode (DestUsr_tl 0), as some peers' encoders produce.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsmgSubmitRequest {
    /// A well-formed SUBMIT instead.
    #[serde(default)]
    pub valid: bool,
}

/// Applies `damage` to the DELIVER encoded in `buf[start..]` (version `version`).
pub(crate) fn damage_deliver(buf: &mut BytesMut, start: usize, version: Version, damage: Damage) {
    match damage {
        Damage::MsgLengthOverrun => {
            // Msg_Length sits after Msg_Id, Dest_Id, Service_Id, three flag bytes, the source
            // terminal (and its type byte in 3.0) and Registered_Delivery.
            let at = start + HEADER_LEN + msg_length_offset(version);
            if let Some(len) = buf.get_mut(at) {
                *len = len.saturating_add(20);
            }
        }
        Damage::TrailingBytes => pad(buf, start, DELIVER_TRAILER),
    }
}

fn msg_length_offset(version: Version) -> usize {
    match version {
        Version::V20 => 8 + 21 + 10 + 3 + 21 + 1,
        Version::V30 => 8 + 21 + 10 + 3 + 32 + 1 + 1,
    }
}

/// Appends `extra` bytes to the PDU encoded in `buf[start..]` and counts them in Total_Length.
pub(crate) fn pad(buf: &mut BytesMut, start: usize, extra: usize) {
    buf.resize(buf.len() + extra, PAD);
    let total = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&total.to_be_bytes());
}

/// The SUBMIT of [`IsmgSubmitRequest`], encoded in `version`.
pub(crate) fn ismg_submit(
    request: &IsmgSubmitRequest,
    sequence_id: u32,
    version: Version,
    buf: &mut BytesMut,
) {
    let submit = Submit {
        pk_total: 1,
        pk_number: 1,
        msg_src: "000000".into(),
        src_id: "10086".into(),
        dest_terminal_ids: vec!["13800138000".into()],
        msg_content: b"from the ISMG".to_vec(),
        ..Submit::default()
    };
    let start = buf.len();
    if Packet::new(sequence_id, Pdu::Submit(submit))
        .encode(version, buf)
        .is_err()
    {
        return;
    }
    if !request.valid {
        // No recipient is not a SUBMIT anyone can read.
        if let Some(count) = buf.get_mut(start + HEADER_LEN + dest_count_offset(version)) {
            *count = 0;
        }
    }
}

/// Where DestUsr_tl sits in a SUBMIT body: after Msg_Id, Pk_total, Pk_number,
/// Registered_Delivery, Msg_level, Service_Id, Fee_UserType, Fee_terminal_Id (and its type byte
/// in 3.0), TP_pId, TP_udhi, Msg_Fmt, Msg_src, FeeType, FeeCode, ValId_Time, At_Time and Src_Id.
fn dest_count_offset(version: Version) -> usize {
    let fee_terminal = match version {
        Version::V20 => 21,
        Version::V30 => 32 + 1,
    };
    8 + 1 + 1 + 1 + 1 + 10 + 1 + fee_terminal + 1 + 1 + 1 + 6 + 2 + 6 + 17 + 17 + 21
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CommandId, DecodeError, Deliver, Lenient, decode_lenient};

    fn deliver_bytes(version: Version) -> BytesMut {
        let mut buf = BytesMut::new();
        let d = Deliver {
            src_terminal_id: "13800138000".into(),
            msg_content: b"hi".to_vec(),
            ..Deliver::default()
        };
        Packet::new(1, Pdu::Deliver(d))
            .encode(version, &mut buf)
            .unwrap();
        buf
    }

    #[test]
    fn an_overrun_deliver_is_undecodable_in_both_versions() {
        for version in [Version::V20, Version::V30] {
            let mut buf = deliver_bytes(version);
            damage_deliver(&mut buf, 0, version, Damage::MsgLengthOverrun);
            assert!(
                matches!(
                    decode_lenient(version, &buf),
                    Ok(Lenient::Undecodable(u)) if matches!(u.error, DecodeError::Truncated { .. })
                ),
                "{version}"
            );
        }
    }

    #[test]
    fn padding_is_counted_in_total_length() {
        let mut buf = deliver_bytes(Version::V30);
        let before = buf.len();
        damage_deliver(&mut buf, 0, Version::V30, Damage::TrailingBytes);
        assert_eq!(buf.len(), before + DELIVER_TRAILER);
        assert_eq!(
            u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize,
            buf.len()
        );
    }

    #[test]
    fn the_ismg_submit_is_undecodable_unless_asked_for_a_valid_one() {
        for version in [Version::V20, Version::V30] {
            let mut buf = BytesMut::new();
            ismg_submit(&IsmgSubmitRequest { valid: false }, 4, version, &mut buf);
            assert!(matches!(
                crate::protocol::Packet::decode(version, &buf),
                Err(DecodeError::DestinationCount { count: 0, .. })
            ));
            let mut buf = BytesMut::new();
            ismg_submit(&IsmgSubmitRequest { valid: true }, 4, version, &mut buf);
            let packet = crate::protocol::Packet::decode(version, &buf).unwrap();
            assert_eq!(packet.pdu.command_id(), CommandId::Submit);
        }
    }
}
