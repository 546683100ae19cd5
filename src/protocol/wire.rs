//! Bounds-checked reading and NUL-padded writing of fixed-width fields: the only place that
//! touches raw offsets, so no other code can index past the end of a body.

use bytes::{BufMut, BytesMut};

use super::{CommandId, DecodeError, EncodeError, Version};

/// Reads one PDU body front to back; every read names its field for the error.
pub(crate) struct Reader<'a> {
    command: CommandId,
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(command: CommandId, body: &'a [u8]) -> Self {
        Reader {
            command,
            body,
            pos: 0,
        }
    }

    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let available = self.body.len() - self.pos;
        if len > available {
            return Err(DecodeError::Truncated {
                command: self.command,
                field,
                needed: len,
                available,
            });
        }
        let out = &self.body[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(field, N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A status field: one byte in 2.0, four in 3.0.
    pub(crate) fn status(
        &mut self,
        version: Version,
        field: &'static str,
    ) -> Result<u32, DecodeError> {
        match version.status_len() {
            1 => self.u8(field).map(u32::from),
            _ => self.u32(field),
        }
    }

    /// An Octet String: up to the first NUL, trailing spaces trimmed (some peers pad with spaces).
    pub(crate) fn octet_string(
        &mut self,
        field: &'static str,
        width: usize,
    ) -> Result<String, DecodeError> {
        Ok(octets_to_string(self.bytes(field, width)?))
    }

    /// A terminal-type byte that exists only in 3.0; 2.0 reads as 0.
    pub(crate) fn terminal_type(
        &mut self,
        version: Version,
        field: &'static str,
    ) -> Result<u8, DecodeError> {
        if version.has_terminal_type() {
            self.u8(field)
        } else {
            Ok(0)
        }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    /// Fails when bytes are left over: a declared length that disagrees is a structure error.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.pos == self.body.len() {
            Ok(())
        } else {
            Err(DecodeError::BodyLength {
                command: self.command,
                expected: self.pos,
                actual: self.body.len(),
            })
        }
    }
}

/// Text of a fixed-width field, read the lenient way described above.
pub(crate) fn octets_to_string(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end])
        .trim_end_matches(' ')
        .to_owned()
}

/// Writes `value` left-aligned and NUL-padded to `width`; longer values are an error, not cut.
pub(crate) fn put_octet_string(
    buf: &mut BytesMut,
    field: &'static str,
    value: &str,
    width: usize,
) -> Result<(), EncodeError> {
    put_padded(buf, field, value.as_bytes(), width)
}

pub(crate) fn put_padded(
    buf: &mut BytesMut,
    field: &'static str,
    value: &[u8],
    width: usize,
) -> Result<(), EncodeError> {
    if value.len() > width {
        return Err(EncodeError::FieldTooLong {
            field,
            len: value.len(),
            max: width,
        });
    }
    buf.put_slice(value);
    buf.put_bytes(0, width - value.len());
    Ok(())
}

pub(crate) fn put_status(
    buf: &mut BytesMut,
    version: Version,
    field: &'static str,
    value: u32,
) -> Result<(), EncodeError> {
    match version.status_len() {
        1 => {
            let byte = u8::try_from(value).map_err(|_| EncodeError::ValueOutOfRange {
                field,
                value: value.into(),
                max: u8::MAX.into(),
            })?;
            buf.put_u8(byte);
        }
        _ => buf.put_u32(value),
    }
    Ok(())
}

pub(crate) fn put_terminal_type(buf: &mut BytesMut, version: Version, value: u8) {
    if version.has_terminal_type() {
        buf.put_u8(value);
    }
}

/// Msg_Length limits of spec §8.4.3.1: fewer than 160 bytes for ASCII, at most 140 otherwise.
pub fn max_content_len(msg_fmt: u8) -> usize {
    if msg_fmt == 0 { 159 } else { 140 }
}

pub(crate) fn check_content(msg_fmt: u8, content: &[u8]) -> Result<(), EncodeError> {
    let max = max_content_len(msg_fmt);
    if content.len() > max {
        return Err(EncodeError::ContentTooLong {
            msg_fmt,
            len: content.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_strings_stop_at_nul_and_trim_spaces() {
        assert_eq!(octets_to_string(b"9001\0\0"), "9001");
        assert_eq!(octets_to_string(b"ab  "), "ab");
        assert_eq!(octets_to_string(b"abcdef"), "abcdef");
        assert_eq!(octets_to_string(b"\0abc"), "");
    }

    #[test]
    fn reader_reports_truncation_with_numbers() {
        let mut r = Reader::new(CommandId::Submit, &[1, 2, 3]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(
            r.u32("b"),
            Err(DecodeError::Truncated {
                command: CommandId::Submit,
                field: "b",
                needed: 4,
                available: 2
            })
        );
    }

    #[test]
    fn too_long_field_is_an_error() {
        let mut buf = BytesMut::new();
        assert!(put_octet_string(&mut buf, "Src_Id", "1234567", 6).is_err());
        put_octet_string(&mut buf, "Src_Id", "12", 6).unwrap();
        assert_eq!(&buf[..], b"12\0\0\0\0");
    }

    #[test]
    fn status_width_follows_version() {
        let mut buf = BytesMut::new();
        put_status(&mut buf, Version::V20, "Result", 8).unwrap();
        put_status(&mut buf, Version::V30, "Result", 8).unwrap();
        assert_eq!(&buf[..], &[8, 0, 0, 0, 8]);
        assert!(put_status(&mut buf, Version::V20, "Result", 256).is_err());
    }
}
