//! CMPP_SUBMIT and CMPP_SUBMIT_RESP (spec §8.4.3). Terminal ids are oct[21] in 2.0 and oct[32]
//! plus a type byte in 3.0; the trailer is Reserve oct[8] in 2.0 and LinkID oct[20] in 3.0.

use bytes::{BufMut, BytesMut};

use super::body::Body;
use super::wire::{Reader, check_content, put_octet_string, put_status, put_terminal_type};
use super::{CommandId, DecodeError, EncodeError, MsgId, Version};

/// Most recipients one SUBMIT may carry (DestUsr_tl < 100).
pub const MAX_DESTINATIONS: usize = 99;

const SERVICE_ID_LEN: usize = 10;
const MSG_SRC_LEN: usize = 6;
const FEE_TYPE_LEN: usize = 2;
const FEE_CODE_LEN: usize = 6;
const TIME_LEN: usize = 17;
const SRC_ID_LEN: usize = 21;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    /// 0 from the SP; the ISMG assigns the real one in SUBMIT_RESP.
    pub msg_id: MsgId,
    pub pk_total: u8,
    pub pk_number: u8,
    pub registered_delivery: u8,
    pub msg_level: u8,
    pub service_id: String,
    pub fee_user_type: u8,
    pub fee_terminal_id: String,
    /// 3.0 only; reads as 0 in 2.0.
    pub fee_terminal_type: u8,
    pub tp_pid: u8,
    pub tp_udhi: u8,
    pub msg_fmt: u8,
    pub msg_src: String,
    pub fee_type: String,
    pub fee_code: String,
    pub valid_time: String,
    pub at_time: String,
    pub src_id: String,
    pub dest_terminal_ids: Vec<String>,
    /// 3.0 only; reads as 0 in 2.0.
    pub dest_terminal_type: u8,
    /// Msg_Content, UDH included when TP_udhi is set.
    pub msg_content: Vec<u8>,
    /// LinkID in 3.0, Reserve in 2.0.
    pub link_id: String,
}

impl Body for Submit {
    const COMMAND: CommandId = CommandId::Submit;

    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tid = version.terminal_id_len();
        let mut s = Submit {
            msg_id: MsgId(r.u64("Msg_Id")?),
            pk_total: r.u8("Pk_total")?,
            pk_number: r.u8("Pk_number")?,
            registered_delivery: r.u8("Registered_Delivery")?,
            msg_level: r.u8("Msg_level")?,
            service_id: r.octet_string("Service_Id", SERVICE_ID_LEN)?,
            fee_user_type: r.u8("Fee_UserType")?,
            fee_terminal_id: r.octet_string("Fee_terminal_Id", tid)?,
            fee_terminal_type: r.terminal_type(version, "Fee_terminal_type")?,
            tp_pid: r.u8("TP_pId")?,
            tp_udhi: r.u8("TP_udhi")?,
            msg_fmt: r.u8("Msg_Fmt")?,
            msg_src: r.octet_string("Msg_src", MSG_SRC_LEN)?,
            fee_type: r.octet_string("FeeType", FEE_TYPE_LEN)?,
            fee_code: r.octet_string("FeeCode", FEE_CODE_LEN)?,
            valid_time: r.octet_string("ValId_Time", TIME_LEN)?,
            at_time: r.octet_string("At_Time", TIME_LEN)?,
            src_id: r.octet_string("Src_Id", SRC_ID_LEN)?,
            ..Submit::default()
        };
        let count = r.u8("DestUsr_tl")?;
        if count == 0 || usize::from(count) > MAX_DESTINATIONS {
            return Err(DecodeError::DestinationCount {
                command: CommandId::Submit,
                count,
            });
        }
        s.dest_terminal_ids = (0..count)
            .map(|_| r.octet_string("Dest_terminal_Id", tid))
            .collect::<Result<_, _>>()?;
        s.dest_terminal_type = r.terminal_type(version, "Dest_terminal_type")?;
        let len = r.u8("Msg_Length")?;
        s.msg_content = r.bytes("Msg_Content", len.into())?.to_vec();
        s.link_id = r.octet_string(version.trailer_name(), version.trailer_len())?;
        Ok(s)
    }

    fn write(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let tid = version.terminal_id_len();
        let count = self.dest_terminal_ids.len();
        if count == 0 || count > MAX_DESTINATIONS {
            return Err(EncodeError::DestinationCount { count });
        }
        check_content(self.msg_fmt, &self.msg_content)?;
        buf.reserve(151 + tid * count + self.msg_content.len());
        buf.put_u64(self.msg_id.0);
        buf.put_slice(&[
            self.pk_total,
            self.pk_number,
            self.registered_delivery,
            self.msg_level,
        ]);
        put_octet_string(buf, "Service_Id", &self.service_id, SERVICE_ID_LEN)?;
        buf.put_u8(self.fee_user_type);
        put_octet_string(buf, "Fee_terminal_Id", &self.fee_terminal_id, tid)?;
        put_terminal_type(buf, version, self.fee_terminal_type);
        buf.put_slice(&[self.tp_pid, self.tp_udhi, self.msg_fmt]);
        put_octet_string(buf, "Msg_src", &self.msg_src, MSG_SRC_LEN)?;
        put_octet_string(buf, "FeeType", &self.fee_type, FEE_TYPE_LEN)?;
        put_octet_string(buf, "FeeCode", &self.fee_code, FEE_CODE_LEN)?;
        put_octet_string(buf, "ValId_Time", &self.valid_time, TIME_LEN)?;
        put_octet_string(buf, "At_Time", &self.at_time, TIME_LEN)?;
        put_octet_string(buf, "Src_Id", &self.src_id, SRC_ID_LEN)?;
        // Both casts are bounded by the checks above (≤ 99 destinations, ≤ 159 bytes).
        buf.put_u8(count as u8);
        for dest in &self.dest_terminal_ids {
            put_octet_string(buf, "Dest_terminal_Id", dest, tid)?;
        }
        put_terminal_type(buf, version, self.dest_terminal_type);
        buf.put_u8(self.msg_content.len() as u8);
        buf.put_slice(&self.msg_content);
        put_octet_string(
            buf,
            version.trailer_name(),
            &self.link_id,
            version.trailer_len(),
        )
    }
}

/// SUBMIT_RESP.Result codes (spec §8.4.3.2) that change what the sender does.
pub mod submit_result {
    pub const OK: u32 = 0;
    /// The PDU's structure is wrong (what an SP answers a SUBMIT it cannot read).
    pub const BAD_STRUCTURE: u32 = 1;
    /// The Command_Id is wrong (what an SP answers a SUBMIT it does not serve).
    pub const BAD_COMMAND: u32 = 2;
    pub const DUPLICATE_SEQUENCE: u32 = 3;
    /// Flow control: the only transient result; back off and resubmit.
    pub const FLOW_CONTROL: u32 = 8;

    /// A person-readable meaning of a Result (or DELIVER_RESP.Result, which shares 0–8).
    pub fn describe(result: u32) -> &'static str {
        match result {
            0 => "ok",
            1 => "bad message structure",
            2 => "bad Command_Id",
            3 => "duplicate Sequence_Id",
            4 => "bad message length",
            5 => "bad fee code",
            6 => "message too long",
            7 => "bad Service_Id",
            8 => "flow control",
            9 => "fee number not served by this gateway",
            10 => "bad Src_Id",
            11 => "bad Msg_src",
            12 => "bad Fee_terminal_Id",
            13 => "bad Dest_terminal_Id",
            14..=99 => "reserved protocol error",
            _ => "vendor-defined error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubmitResp {
    pub msg_id: MsgId,
    pub result: u32,
}

impl Body for SubmitResp {
    const COMMAND: CommandId = CommandId::SubmitResp;

    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SubmitResp {
            msg_id: MsgId(r.u64("Msg_Id")?),
            result: r.status(version, "Result")?,
        })
    }

    fn write(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u64(self.msg_id.0);
        put_status(buf, version, "Result", self.result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::body::decode_body;

    fn sample() -> Submit {
        Submit {
            pk_total: 1,
            pk_number: 1,
            registered_delivery: 1,
            service_id: "JSASXW".into(),
            msg_src: "900001".into(),
            fee_type: "01".into(),
            fee_code: "000000".into(),
            src_id: "106489910422101".into(),
            dest_terminal_ids: vec!["13800138000".into(), "8613900139000".into()],
            msg_content: b"hello".to_vec(),
            link_id: "L1".into(),
            ..Submit::default()
        }
    }

    #[test]
    fn lengths_follow_the_version_formula() {
        for (version, fixed, per_dest) in [(Version::V20, 126, 21), (Version::V30, 151, 32)] {
            let mut buf = BytesMut::new();
            sample().write(version, &mut buf).unwrap();
            assert_eq!(buf.len(), fixed + per_dest * 2 + 5, "{version}");
            assert_eq!(decode_body::<Submit>(version, &buf).unwrap(), sample());
        }
    }

    #[test]
    fn destination_count_is_checked_both_ways() {
        let mut s = sample();
        s.dest_terminal_ids.clear();
        assert_eq!(
            s.write(Version::V30, &mut BytesMut::new()),
            Err(EncodeError::DestinationCount { count: 0 })
        );
        s.dest_terminal_ids = vec!["1".into(); 100];
        assert!(s.write(Version::V30, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn content_limits_are_enforced_on_encode() {
        let mut s = sample();
        s.msg_content = vec![b'a'; 160];
        assert_eq!(
            s.write(Version::V30, &mut BytesMut::new()),
            Err(EncodeError::ContentTooLong {
                msg_fmt: 0,
                len: 160,
                max: 159
            })
        );
        s.msg_fmt = 8;
        s.msg_content = vec![0; 141];
        assert!(s.write(Version::V30, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn trailing_bytes_are_a_length_error() {
        let mut buf = BytesMut::new();
        sample().write(Version::V30, &mut buf).unwrap();
        let expected = buf.len();
        buf.put_u8(0);
        assert_eq!(
            decode_body::<Submit>(Version::V30, &buf),
            Err(DecodeError::BodyLength {
                command: CommandId::Submit,
                expected,
                actual: expected + 1
            })
        );
    }
}
