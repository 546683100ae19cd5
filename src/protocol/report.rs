//! The status-report body carried in a DELIVER with Registered_Delivery = 1 (spec §8.4.5.1).
//! The spec says 71 bytes (Dest_terminal_Id oct[32]); the 2.0 layout, still sent by many 3.0
//! gateways, is 60 bytes (oct[21]). Decoding picks by length; encoding defaults to 71.

use bytes::{BufMut, BytesMut};

use super::wire::{Reader, put_octet_string};
use super::{CommandId, DecodeError, EncodeError, MsgId, Version};

const STAT_LEN: usize = 7;
const TIME_LEN: usize = 10;

/// Which of the two report body layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportLayout {
    /// 71 bytes, Dest_terminal_Id oct[32] (spec).
    #[default]
    Spec71,
    /// 60 bytes, Dest_terminal_Id oct[21] (2.0, and common in the wild).
    Compact60,
}

impl ReportLayout {
    pub fn body_len(self) -> usize {
        match self {
            ReportLayout::Spec71 => 71,
            ReportLayout::Compact60 => 60,
        }
    }

    fn dest_len(self) -> usize {
        self.body_len() - 39
    }

    /// The layout of a body of `len` bytes, if it is one of the two.
    pub fn from_len(len: usize) -> Option<ReportLayout> {
        match len {
            71 => Some(ReportLayout::Spec71),
            60 => Some(ReportLayout::Compact60),
            _ => None,
        }
    }

    /// The layout a given protocol version specifies.
    pub fn for_version(version: Version) -> ReportLayout {
        match version {
            Version::V20 => ReportLayout::Compact60,
            Version::V30 => ReportLayout::Spec71,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// The Msg_Id that SUBMIT_RESP returned: the correlation key.
    pub msg_id: MsgId,
    /// Opaque 7-character state; only `DELIVRD` means delivered.
    pub stat: String,
    /// YYMMDDHHMM.
    pub submit_time: String,
    /// YYMMDDHHMM.
    pub done_time: String,
    pub dest_terminal_id: String,
    pub smsc_sequence: u32,
}

impl StatusReport {
    /// Decodes a 71- or 60-byte body; any other length is an error carrying it.
    pub fn decode(body: &[u8]) -> Result<StatusReport, DecodeError> {
        let layout = ReportLayout::from_len(body.len())
            .ok_or(DecodeError::ReportLength { len: body.len() })?;
        // Reported as part of the DELIVER that carries it.
        let mut r = Reader::new(CommandId::Deliver, body);
        let report = StatusReport {
            msg_id: MsgId(r.u64("Msg_Id")?),
            stat: r.octet_string("Stat", STAT_LEN)?,
            submit_time: r.octet_string("Submit_time", TIME_LEN)?,
            done_time: r.octet_string("Done_time", TIME_LEN)?,
            dest_terminal_id: r.octet_string("Dest_terminal_Id", layout.dest_len())?,
            smsc_sequence: r.u32("SMSC_sequence")?,
        };
        r.finish()?;
        Ok(report)
    }

    pub fn encode(&self, layout: ReportLayout) -> Result<Vec<u8>, EncodeError> {
        let mut buf = BytesMut::with_capacity(layout.body_len());
        buf.put_u64(self.msg_id.0);
        put_octet_string(&mut buf, "Stat", &self.stat, STAT_LEN)?;
        put_octet_string(&mut buf, "Submit_time", &self.submit_time, TIME_LEN)?;
        put_octet_string(&mut buf, "Done_time", &self.done_time, TIME_LEN)?;
        put_octet_string(
            &mut buf,
            "Dest_terminal_Id",
            &self.dest_terminal_id,
            layout.dest_len(),
        )?;
        buf.put_u32(self.smsc_sequence);
        Ok(buf.to_vec())
    }

    /// Only DELIVRD is success; every other Stat except ACCEPTD is a final failure.
    pub fn is_delivered(&self) -> bool {
        self.stat == "DELIVRD"
    }

    /// ACCEPTD is intermediate: it must not end a message's life.
    pub fn is_final(&self) -> bool {
        self.stat != "ACCEPTD"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StatusReport {
        StatusReport {
            msg_id: MsgId(0xB2B9_DA80_0001_0000),
            stat: "DELIVRD".into(),
            submit_time: "1511051429".into(),
            done_time: "1511051430".into(),
            dest_terminal_id: "13800138000".into(),
            smsc_sequence: 7,
        }
    }

    #[test]
    fn both_layouts_round_trip() {
        for layout in [ReportLayout::Spec71, ReportLayout::Compact60] {
            let bytes = sample().encode(layout).unwrap();
            assert_eq!(bytes.len(), layout.body_len());
            assert_eq!(StatusReport::decode(&bytes).unwrap(), sample());
        }
    }

    #[test]
    fn other_lengths_are_flagged() {
        assert_eq!(
            StatusReport::decode(&[0; 70]),
            Err(DecodeError::ReportLength { len: 70 })
        );
    }

    #[test]
    fn acceptd_is_not_final() {
        let mut r = sample();
        assert!(r.is_delivered() && r.is_final());
        r.stat = "ACCEPTD".into();
        assert!(!r.is_delivered() && !r.is_final());
        r.stat = "UNDELIV".into();
        assert!(!r.is_delivered() && r.is_final());
    }
}
