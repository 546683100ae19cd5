//! `cmpp-gateway decode`: turns hex from a capture or a log line into readable JSON.

use std::io::Read;

use clap::Args;
use serde_json::{Map, Value};

use crate::protocol::{CommandId, Header, Packet, Pdu, Version, json};

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The PDU bytes in hex; spaces, newlines and a 0x prefix are allowed. Read from stdin when absent.
    pub hex: Vec<String>,
    /// Protocol version of the capture.
    #[arg(long = "version", default_value = "3.0", value_parser = parse_version)]
    pub protocol_version: Version,
    /// Decode a body without its 12-byte header, as this command (e.g. SUBMIT, CMPP_DELIVER_RESP, 0x80000004).
    #[arg(long, value_parser = parse_command)]
    pub body: Option<CommandId>,
}

fn parse_version(s: &str) -> Result<Version, String> {
    s.parse()
}

fn parse_command(s: &str) -> Result<CommandId, String> {
    if let Some(command) = CommandId::from_name(s) {
        return Ok(command);
    }
    let number = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    number.map(CommandId::from).map_err(|_| {
        format!(
            "unknown command {s:?}; use a name such as SUBMIT or a Command_Id such as 0x00000004"
        )
    })
}

pub fn run(args: &DecodeArgs) -> Result<(), String> {
    let input = if args.hex.is_empty() {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        s
    } else {
        args.hex.join(" ")
    };
    let bytes = parse_hex(&input)?;
    for value in decode(&bytes, args.protocol_version, args.body)? {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

/// Hex to bytes, accepting whitespace anywhere and one leading `0x`.
pub fn parse_hex(input: &str) -> Result<Vec<u8>, String> {
    let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = compact
        .strip_prefix("0x")
        .or_else(|| compact.strip_prefix("0X"))
        .unwrap_or(&compact);
    if digits.is_empty() {
        return Err("no hex given".into());
    }
    hex::decode(digits).map_err(|e| format!("invalid hex: {e}"))
}

/// Decodes a body alone, or one or more back-to-back PDUs, each to one JSON object.
pub fn decode(
    bytes: &[u8],
    version: Version,
    body: Option<CommandId>,
) -> Result<Vec<Value>, String> {
    if let Some(command) = body {
        let pdu = Pdu::decode_body(version, command, bytes)
            .map_err(|e| with_hint(e.to_string(), bytes, version, body))?;
        let mut map = Map::new();
        map.insert("Command_Id".into(), command.value().into());
        map.insert("Command".into(), command.to_string().into());
        map.extend(json::body(version, &pdu));
        return Ok(vec![Value::Object(map)]);
    }
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let at = |e: String| {
            let e = if offset > 0 {
                format!("PDU at byte {offset}: {e}")
            } else {
                e
            };
            with_hint(e, rest, version, None)
        };
        if rest.len() < 12 {
            return Err(at(format!(
                "{} bytes left, a PDU header needs 12",
                rest.len()
            )));
        }
        let header = Header::decode(rest).map_err(|e| at(e.to_string()))?;
        let len = header.total_length as usize;
        if len > rest.len() {
            return Err(at(format!(
                "Total_Length {len} but only {} bytes given",
                rest.len()
            )));
        }
        let packet = Packet::decode(version, &rest[..len]).map_err(|e| at(e.to_string()))?;
        out.push(json::packet(version, &packet, len));
        rest = &rest[len..];
    }
    Ok(out)
}

/// When bytes fail as one version but decode as the other, say so.
fn with_hint(reason: String, bytes: &[u8], version: Version, body: Option<CommandId>) -> String {
    let other = match version {
        Version::V20 => Version::V30,
        Version::V30 => Version::V20,
    };
    let fits_other = match body {
        Some(command) => Pdu::decode_body(other, command, bytes).is_ok(),
        None => Header::decode(bytes)
            .ok()
            .and_then(|h| bytes.get(..h.total_length as usize))
            .is_some_and(|frame| Packet::decode(other, frame).is_ok()),
    };
    if fits_other {
        format!("{reason} (it decodes as CMPP {other}: try --version {other})")
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_input_is_forgiving_about_layout() {
        assert_eq!(parse_hex("0x00 0a\n0B").unwrap(), vec![0, 10, 11]);
        assert!(parse_hex("").is_err());
        assert!(parse_hex("0g").unwrap_err().starts_with("invalid hex"));
    }

    #[test]
    fn commands_by_name_or_number() {
        assert_eq!(parse_command("submit"), Ok(CommandId::Submit));
        assert_eq!(parse_command("0x80000004"), Ok(CommandId::SubmitResp));
        assert_eq!(parse_command("5"), Ok(CommandId::Deliver));
        assert!(parse_command("nope").is_err());
    }

    #[test]
    fn a_2_0_capture_read_as_3_0_gets_a_hint() {
        let bytes =
            parse_hex("0000001e8000000100000017006c0b846e25bab6daa4ed1c466e0f4bd821").unwrap();
        let err = decode(&bytes, Version::V30, None).unwrap_err();
        assert!(err.contains("try --version 2.0"), "{err}");
        let ok = decode(&bytes, Version::V20, None).unwrap();
        assert_eq!(ok[0]["Status"], 0);
    }

    #[test]
    fn back_to_back_pdus_each_decode() {
        let bytes = parse_hex("0000000c00000008000000170000000d800000080000001700").unwrap();
        let values = decode(&bytes, Version::V30, None).unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(values[1]["Reserved"], 0);
        let truncated = &bytes[..bytes.len() - 1];
        assert!(
            decode(truncated, Version::V30, None)
                .unwrap_err()
                .contains("PDU at byte 12")
        );
    }
}
