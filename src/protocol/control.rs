//! The link-control bodies: ACTIVE_TEST_RESP's one Reserved byte (not widened in 3.0).
//! TERMINATE, TERMINATE_RESP and ACTIVE_TEST are header-only and have no body type.

use bytes::{BufMut, BytesMut};

use super::body::Body;
use super::wire::Reader;
use super::{CommandId, DecodeError, EncodeError, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActiveTestResp {
    pub reserved: u8,
}

impl Body for ActiveTestResp {
    const COMMAND: CommandId = CommandId::ActiveTestResp;

    fn read(_: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ActiveTestResp {
            reserved: r.u8("Reserved")?,
        })
    }

    fn write(&self, _: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u8(self.reserved);
        Ok(())
    }
}
