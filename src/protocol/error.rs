//! Typed errors of the codec. Each carries the numbers needed to see what was wrong.

use super::CommandId;

/// Why bytes received from a peer are not a valid PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Total_Length {total_length} is below the 12-byte header")]
    TooShort { total_length: u32 },
    #[error("Total_Length {total_length} exceeds the maximum frame length of {max} bytes")]
    TooLong { total_length: u32, max: u32 },
    #[error("Total_Length {declared} does not match the {actual} bytes given")]
    LengthMismatch { declared: u32, actual: usize },
    #[error("{command} body is {actual} bytes, expected {expected}")]
    BodyLength {
        command: CommandId,
        expected: usize,
        actual: usize,
    },
    #[error("{command} body ends inside {field}: {needed} bytes needed, {available} left")]
    Truncated {
        command: CommandId,
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{command} DestUsr_tl is {count}, expected 1 to 99")]
    DestinationCount { command: CommandId, count: u8 },
    #[error("status report body is {len} bytes, expected 71 (spec) or 60 (2.0 layout)")]
    ReportLength { len: usize },
    #[error("{command} has no body layout in this codec")]
    Unsupported { command: CommandId },
}

/// Why a value cannot be put on the wire; nothing is truncated silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{field} is {len} bytes, the field holds at most {max}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} value {value} does not fit its {max}-maximum field in this version")]
    ValueOutOfRange {
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("SUBMIT needs 1 to 99 destinations, got {count}")]
    DestinationCount { count: usize },
    #[error("Msg_Content is {len} bytes; Msg_Fmt {msg_fmt} allows at most {max} per PDU")]
    ContentTooLong { msg_fmt: u8, len: usize, max: usize },
    #[error("{command} is not encodable by this codec")]
    Unsupported { command: CommandId },
}
