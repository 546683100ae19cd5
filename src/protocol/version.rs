//! CMPP 2.0 and 3.0 share one code path; this type carries every field width that differs.

use std::fmt;
use std::str::FromStr;

/// The protocol version spoken on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Version {
    /// CMPP 2.0 (Version byte 0x20; 0x21 is also seen for 2.1).
    V20,
    /// CMPP 3.0 (Version byte 0x30).
    #[default]
    V30,
}

impl Version {
    /// The Version byte sent in CONNECT and CONNECT_RESP.
    pub fn byte(self) -> u8 {
        match self {
            Version::V20 => 0x20,
            Version::V30 => 0x30,
        }
    }

    /// Maps a Version byte by its major nibble, so 0x21 (2.1) reads as 2.0.
    pub fn from_byte(byte: u8) -> Option<Version> {
        match byte >> 4 {
            2 => Some(Version::V20),
            3 => Some(Version::V30),
            _ => None,
        }
    }

    /// Width of Dest_terminal_Id, Src_terminal_Id and Fee_terminal_Id.
    pub(crate) fn terminal_id_len(self) -> usize {
        match self {
            Version::V20 => 21,
            Version::V30 => 32,
        }
    }

    /// 3.0 added a *_terminal_type byte after each terminal id.
    pub(crate) fn has_terminal_type(self) -> bool {
        self == Version::V30
    }

    /// Width of the trailer of SUBMIT and DELIVER: Reserve oct[8] in 2.0, LinkID oct[20] in 3.0.
    pub(crate) fn trailer_len(self) -> usize {
        match self {
            Version::V20 => 8,
            Version::V30 => 20,
        }
    }

    /// Spec name of that trailer.
    pub fn trailer_name(self) -> &'static str {
        match self {
            Version::V20 => "Reserve",
            Version::V30 => "LinkID",
        }
    }

    /// Width of the status fields (CONNECT_RESP.Status, SUBMIT_RESP.Result, …): u8 in 2.0, u32 in 3.0.
    pub(crate) fn status_len(self) -> usize {
        match self {
            Version::V20 => 1,
            Version::V30 => 4,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V20 => "2.0",
            Version::V30 => "3.0",
        })
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "2" | "2.0" | "20" => Ok(Version::V20),
            "3" | "3.0" | "30" => Ok(Version::V30),
            other => Err(format!(
                "unknown CMPP version {other:?}; expected 2.0 or 3.0"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_bytes_and_names() {
        assert_eq!(Version::from_byte(0x21), Some(Version::V20));
        assert_eq!(Version::from_byte(0x30), Some(Version::V30));
        assert_eq!(Version::from_byte(0x40), None);
        assert_eq!("2.0".parse::<Version>(), Ok(Version::V20));
        assert!("4.0".parse::<Version>().is_err());
        assert_eq!(Version::V30.to_string(), "3.0");
    }
}
