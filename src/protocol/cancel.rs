//! CMPP_CANCEL and CMPP_CANCEL_RESP (spec §8.4.6). Success_Id is one byte in 2.0, four in 3.0.

use bytes::{BufMut, BytesMut};

use super::body::Body;
use super::wire::{Reader, put_status};
use super::{CommandId, DecodeError, EncodeError, MsgId, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancel {
    pub msg_id: MsgId,
}

impl Body for Cancel {
    const COMMAND: CommandId = CommandId::Cancel;

    fn read(_: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Cancel {
            msg_id: MsgId(r.u64("Msg_Id")?),
        })
    }

    fn write(&self, _: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u64(self.msg_id.0);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CancelResp {
    /// 0 cancelled, 1 failed.
    pub success_id: u32,
}

impl Body for CancelResp {
    const COMMAND: CommandId = CommandId::CancelResp;

    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CancelResp {
            success_id: r.status(version, "Success_Id")?,
        })
    }

    fn write(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_status(buf, version, "Success_Id", self.success_id)
    }
}
