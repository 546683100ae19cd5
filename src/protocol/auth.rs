//! The MD5 authenticators of CONNECT (spec §8.4.1), exactly as PROTOCOL.md §4 fixes them.

use md5::{Digest, Md5};

use super::{EncodeError, Version};

/// Source_Addr is oct[6] on the wire; the hash covers exactly the bytes that are sent.
pub const SOURCE_ADDR_LEN: usize = 6;

/// The six bytes of Source_Addr for an SP id: NUL-padded when shorter, an error when longer.
pub fn source_addr_bytes(sp_id: &str) -> Result<[u8; SOURCE_ADDR_LEN], EncodeError> {
    let raw = sp_id.as_bytes();
    if raw.len() > SOURCE_ADDR_LEN {
        return Err(EncodeError::FieldTooLong {
            field: "Source_Addr",
            len: raw.len(),
            max: SOURCE_ADDR_LEN,
        });
    }
    let mut out = [0u8; SOURCE_ADDR_LEN];
    out[..raw.len()].copy_from_slice(raw);
    Ok(out)
}

/// CONNECT Timestamp: MMDDHHMMSS read as a decimal number.
pub fn connect_timestamp(month: u8, day: u8, hour: u8, minute: u8, second: u8) -> u32 {
    u32::from(month) * 100_000_000
        + u32::from(day) * 1_000_000
        + u32::from(hour) * 10_000
        + u32::from(minute) * 100
        + u32::from(second)
}

/// AuthenticatorSource = MD5(Source_Addr ‖ 9 × 0x00 ‖ secret ‖ Timestamp as "%010d").
pub fn authenticator_source(
    source_addr: &[u8; SOURCE_ADDR_LEN],
    secret: &[u8],
    timestamp: u32,
) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(source_addr);
    md5.update([0u8; 9]);
    md5.update(secret);
    md5.update(format!("{timestamp:010}"));
    md5.finalize().into()
}

/// AuthenticatorISMG = MD5(Status ‖ AuthenticatorSource ‖ secret); Status is 1 byte in 2.0, 4 in 3.0.
pub fn authenticator_ismg(
    version: Version,
    status: u32,
    authenticator_source: &[u8; 16],
    secret: &[u8],
) -> [u8; 16] {
    let mut md5 = Md5::new();
    match version {
        // A 2.0 status above 255 cannot be sent either; hash the byte that would be.
        Version::V20 => md5.update([status as u8]),
        Version::V30 => md5.update(status.to_be_bytes()),
    }
    md5.update(authenticator_source);
    md5.update(secret);
    md5.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    #[test]
    fn check_values_of_protocol_md() {
        let addr = source_addr_bytes("900001").unwrap();
        let source = authenticator_source(&addr, b"888888", 1_021_080_510);
        assert_eq!(source, hex16("90d00c1d517abd0b4f65f6bcf8535d16"));
        assert_eq!(
            authenticator_ismg(Version::V30, 0, &source, b"888888"),
            hex16("7942977274098cf210ab0c16c367bc8d")
        );
        assert_eq!(
            authenticator_ismg(Version::V20, 0, &source, b"888888"),
            hex16("6c0b846e25bab6daa4ed1c466e0f4bd8")
        );
    }

    #[test]
    fn timestamp_keeps_leading_zero_in_hash() {
        assert_eq!(connect_timestamp(3, 5, 8, 9, 10), 305_080_910);
        assert_eq!(connect_timestamp(10, 21, 8, 5, 10), 1_021_080_510);
        // "0305080910" and "305080910" must hash differently; the spec wants the zero.
        let addr = source_addr_bytes("900001").unwrap();
        let mut manual = Md5::new();
        manual.update(addr);
        manual.update([0u8; 9]);
        manual.update(b"s");
        manual.update(b"0305080910");
        let expected: [u8; 16] = manual.finalize().into();
        assert_eq!(authenticator_source(&addr, b"s", 305_080_910), expected);
    }

    #[test]
    fn short_sp_ids_are_padded_and_long_ones_refused() {
        assert_eq!(source_addr_bytes("9001").unwrap(), *b"9001\0\0");
        assert!(source_addr_bytes("9000011").is_err());
    }
}
