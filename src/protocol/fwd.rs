//! CMPP_FWD_RESP (spec §8.5.4.2). FWD itself runs between ISMGs and is kept as raw bytes;
//! the response is decoded because captures between gateways contain it.

use bytes::{BufMut, BytesMut};

use super::body::Body;
use super::wire::{Reader, put_status};
use super::{CommandId, DecodeError, EncodeError, MsgId, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FwdResp {
    pub msg_id: MsgId,
    pub pk_total: u8,
    pub pk_number: u8,
    /// 0–8 as in SUBMIT_RESP, 9 = wrong forwarding decision.
    pub result: u32,
}

impl Body for FwdResp {
    const COMMAND: CommandId = CommandId::FwdResp;

    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(FwdResp {
            msg_id: MsgId(r.u64("Msg_Id")?),
            pk_total: r.u8("Pk_total")?,
            pk_number: r.u8("Pk_number")?,
            result: r.status(version, "Result")?,
        })
    }

    fn write(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u64(self.msg_id.0);
        buf.put_slice(&[self.pk_total, self.pk_number]);
        put_status(buf, version, "Result", self.result)
    }
}
