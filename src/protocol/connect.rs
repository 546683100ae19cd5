//! CMPP_CONNECT and CMPP_CONNECT_RESP (spec §8.4.1). CONNECT is identical in 2.0 and 3.0;
//! the response's Status is one byte in 2.0 and four in 3.0.

use bytes::{BufMut, BytesMut};

use super::auth::{SOURCE_ADDR_LEN, authenticator_ismg, authenticator_source, source_addr_bytes};
use super::body::Body;
use super::wire::{Reader, put_octet_string, put_status};
use super::{CommandId, DecodeError, EncodeError, Version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// SP_Id, at most 6 characters.
    pub source_addr: String,
    pub authenticator_source: [u8; 16],
    /// Version byte the SP speaks (0x30 for 3.0).
    pub version: u8,
    /// MMDDHHMMSS as a decimal number.
    pub timestamp: u32,
}

impl Connect {
    /// A CONNECT with its AuthenticatorSource computed from the secret.
    pub fn new(
        sp_id: &str,
        secret: &[u8],
        version: Version,
        timestamp: u32,
    ) -> Result<Connect, EncodeError> {
        let addr = source_addr_bytes(sp_id)?;
        Ok(Connect {
            source_addr: sp_id.to_owned(),
            authenticator_source: authenticator_source(&addr, secret, timestamp),
            version: version.byte(),
            timestamp,
        })
    }

    /// Whether the peer knows `secret` (the ISMG side of the check).
    pub fn verify(&self, secret: &[u8]) -> bool {
        source_addr_bytes(&self.source_addr)
            .map(|addr| {
                authenticator_source(&addr, secret, self.timestamp) == self.authenticator_source
            })
            .unwrap_or(false)
    }
}

impl Body for Connect {
    const COMMAND: CommandId = CommandId::Connect;

    fn read(_: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Connect {
            source_addr: r.octet_string("Source_Addr", SOURCE_ADDR_LEN)?,
            authenticator_source: r.array("AuthenticatorSource")?,
            version: r.u8("Version")?,
            timestamp: r.u32("Timestamp")?,
        })
    }

    fn write(&self, _: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_octet_string(buf, "Source_Addr", &self.source_addr, SOURCE_ADDR_LEN)?;
        buf.put_slice(&self.authenticator_source);
        buf.put_u8(self.version);
        buf.put_u32(self.timestamp);
        Ok(())
    }
}

/// CONNECT_RESP.Status values (spec §8.4.1.2); anything above 4 is "other".
pub mod connect_status {
    pub const OK: u32 = 0;
    pub const BAD_STRUCTURE: u32 = 1;
    pub const BAD_SOURCE_ADDR: u32 = 2;
    pub const AUTH_FAILED: u32 = 3;
    pub const VERSION_TOO_HIGH: u32 = 4;

    /// A person-readable meaning of a status.
    pub fn describe(status: u32) -> &'static str {
        match status {
            OK => "ok",
            BAD_STRUCTURE => "bad message structure",
            BAD_SOURCE_ADDR => "illegal Source_Addr",
            AUTH_FAILED => "authentication failed",
            VERSION_TOO_HIGH => "version too high",
            _ => "other error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResp {
    pub status: u32,
    /// 16 zero bytes when authentication failed.
    pub authenticator_ismg: [u8; 16],
    /// Highest version the ISMG supports.
    pub version: u8,
}

impl ConnectResp {
    /// The ISMG's answer to `connect`, with the authenticator computed as the spec says
    /// (all zeros on a non-zero status).
    pub fn answer(version: Version, status: u32, connect: &Connect, secret: &[u8]) -> ConnectResp {
        let authenticator_ismg = if status == connect_status::OK {
            authenticator_ismg(version, status, &connect.authenticator_source, secret)
        } else {
            [0; 16]
        };
        ConnectResp {
            status,
            authenticator_ismg,
            version: version.byte(),
        }
    }
}

impl Body for ConnectResp {
    const COMMAND: CommandId = CommandId::ConnectResp;

    fn read(version: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResp {
            status: r.status(version, "Status")?,
            authenticator_ismg: r.array("AuthenticatorISMG")?,
            version: r.u8("Version")?,
        })
    }

    fn write(&self, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_status(buf, version, "Status", self.status)?;
        buf.put_slice(&self.authenticator_ismg);
        buf.put_u8(self.version);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::body::decode_body;

    #[test]
    fn connect_round_trips_and_verifies() {
        let connect = Connect::new("900001", b"888888", Version::V30, 1_021_080_510).unwrap();
        assert!(connect.verify(b"888888"));
        assert!(!connect.verify(b"888889"));
        let mut buf = BytesMut::new();
        connect.write(Version::V30, &mut buf).unwrap();
        assert_eq!(buf.len(), 27);
        assert_eq!(decode_body::<Connect>(Version::V30, &buf).unwrap(), connect);
    }

    #[test]
    fn connect_resp_width_follows_version() {
        let connect = Connect::new("900001", b"888888", Version::V30, 1_021_080_510).unwrap();
        for (version, len) in [(Version::V20, 18), (Version::V30, 21)] {
            let resp = ConnectResp::answer(version, 0, &connect, b"888888");
            let mut buf = BytesMut::new();
            resp.write(version, &mut buf).unwrap();
            assert_eq!(buf.len(), len);
            assert_eq!(decode_body::<ConnectResp>(version, &buf).unwrap(), resp);
        }
        let refused =
            ConnectResp::answer(Version::V30, connect_status::AUTH_FAILED, &connect, b"x");
        assert_eq!(refused.authenticator_ismg, [0; 16]);
    }
}
