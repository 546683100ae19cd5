//! CMPP_DELIVER and CMPP_DELIVER_RESP (spec §8.4.5): MO messages and status reports.

use bytes::{BufMut, BytesMut};

use super::body::Body;
use super::wire::{Reader, check_content, put_octet_string, put_status, put_terminal_type};
use super::{CommandId, DecodeError, EncodeError, MsgId, ReportLayout, StatusReport, Version};

const DEST_ID_LEN: usize = 21;
const SERVICE_ID_LEN: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deliver {
    /// The ISMG's id for this DELIVER; echoed in DELIVER_RESP. For a report it is *not* the SUBMIT's id.
    pub msg_id: MsgId,
    /// The SP number the user sent to (report: usually the SUBMIT's Src_Id).
    pub dest_id: String,
    pub service_id: String,
    pub tp_pid: u8,
    /// Receive test is `(tp_udhi & 0x41) != 0`: gateways send 1 or 0x40.
    pub tp_udhi: u8,
    pub msg_fmt: u8,
    /// MO: the sender. Report: the SUBMIT's destination.
    pub src_terminal_id: String,
    /// 3.0 only; reads as 0 in 2.0.
    pub src_terminal_type: u8,
    /// 0 = MO message, 1 = status report.
    pub registered_delivery: u8,
    /// The raw Msg_Content: text bytes, or the report body (see [`Deliver::report`]).
    pub msg_content: Vec<u8>,
    /// LinkID in 3.0, Reserve in 2.0.
    pub link_id: String,
}

impl Deliver {
    pub fn is_report(&self) -> bool {
        self.registered_delivery == 1
    }

    /// The report body, when this DELIVER is a report.
    pub fn report(&self) -> Option<Result<StatusReport, DecodeError>> {
        self.is_report()
            .then(|| StatusReport::decode(&self.msg_content))
    }

    /// A DELIVER carrying `report` in the given body layout.
    pub fn with_report(
        mut self,
        report: &StatusReport,
        layout: ReportLayout,
    ) -> Result<Deliver, EncodeError> {
        self.registered_delivery = 1;
        self.msg_content = report.encode(layout)?;
        Ok(self)
    }
}

impl Body for Deliver {
    const COMMAND: CommandId = CommandId::Deliver;

    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut d = Deliver {
            msg_id: MsgId(r.u64("Msg_Id")?),
            dest_id: r.octet_string("Dest_Id", DEST_ID_LEN)?,
            service_id: r.octet_string("Service_Id", SERVICE_ID_LEN)?,
            tp_pid: r.u8("TP_pid")?,
            tp_udhi: r.u8("TP_udhi")?,
            msg_fmt: r.u8("Msg_Fmt")?,
            src_terminal_id: r.octet_string("Src_terminal_Id", version.terminal_id_len())?,
            src_terminal_type: r.terminal_type(version, "Src_terminal_type")?,
            registered_delivery: r.u8("Registered_Delivery")?,
            ..Deliver::default()
        };
        let len = r.u8("Msg_Length")?;
        d.msg_content = r.bytes("Msg_Content", len.into())?.to_vec();
        d.link_id = r.octet_string(version.trailer_name(), version.trailer_len())?;
        Ok(d)
    }

    fn write(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        check_content(self.msg_fmt, &self.msg_content)?;
        buf.put_u64(self.msg_id.0);
        put_octet_string(buf, "Dest_Id", &self.dest_id, DEST_ID_LEN)?;
        put_octet_string(buf, "Service_Id", &self.service_id, SERVICE_ID_LEN)?;
        buf.put_slice(&[self.tp_pid, self.tp_udhi, self.msg_fmt]);
        put_octet_string(
            buf,
            "Src_terminal_Id",
            &self.src_terminal_id,
            version.terminal_id_len(),
        )?;
        put_terminal_type(buf, version, self.src_terminal_type);
        buf.put_u8(self.registered_delivery);
        // Bounded by check_content (≤ 159).
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

/// DELIVER_RESP.Result codes the SP sends (spec §8.4.5.2).
pub mod deliver_result {
    pub const OK: u32 = 0;
    /// The DELIVER could not be decoded.
    pub const BAD_STRUCTURE: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliverResp {
    /// The DELIVER's own Msg_Id.
    pub msg_id: MsgId,
    pub result: u32,
}

impl Body for DeliverResp {
    const COMMAND: CommandId = CommandId::DeliverResp;

    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DeliverResp {
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

    #[test]
    fn report_deliver_round_trips_in_both_versions() {
        let report = StatusReport {
            msg_id: MsgId(42),
            stat: "UNDELIV".into(),
            submit_time: "2611251200".into(),
            done_time: "2611251201".into(),
            dest_terminal_id: "13800138000".into(),
            smsc_sequence: 1,
        };
        for (version, fixed) in [(Version::V20, 73), (Version::V30, 97)] {
            let layout = ReportLayout::for_version(version);
            let d = Deliver {
                msg_id: MsgId(7),
                src_terminal_id: "13800138000".into(),
                ..Deliver::default()
            }
            .with_report(&report, layout)
            .unwrap();
            let mut buf = BytesMut::new();
            d.write(version, &mut buf).unwrap();
            assert_eq!(buf.len(), fixed + layout.body_len());
            let back = decode_body::<Deliver>(version, &buf).unwrap();
            assert_eq!(back.report(), Some(Ok(report.clone())));
        }
    }

    #[test]
    fn mo_has_no_report() {
        let d = Deliver {
            msg_content: b"hi".to_vec(),
            ..Deliver::default()
        };
        assert_eq!(d.report(), None);
    }
}
