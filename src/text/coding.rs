//! Text ↔ bytes per CMPP Msg_Fmt (PROTOCOL.md §7.1).

use encoding_rs::{GBK, UTF_16BE};
use thiserror::Error;

/// CMPP Msg_Fmt values the gateway produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Msg_Fmt 0: one byte per character, no GSM 7-bit packing on the CMPP wire.
    Ascii,
    /// Msg_Fmt 4: opaque bytes.
    Binary,
    /// Msg_Fmt 8: UTF-16BE without BOM.
    Ucs2,
    /// Msg_Fmt 15: GBK, one byte for ASCII, two for Chinese.
    Gbk,
}

impl Coding {
    /// The Msg_Fmt byte for this coding.
    pub fn msg_fmt(self) -> u8 {
        match self {
            Coding::Ascii => 0,
            Coding::Binary => 4,
            Coding::Ucs2 => 8,
            Coding::Gbk => 15,
        }
    }

    /// The coding we would *send* for a Msg_Fmt; `None` for values we never produce (3, vendor
    /// values). Decoding accepts more: see [`decode_text`].
    pub fn from_msg_fmt(v: u8) -> Option<Coding> {
        match v {
            0 => Some(Coding::Ascii),
            4 => Some(Coding::Binary),
            8 => Some(Coding::Ucs2),
            15 => Some(Coding::Gbk),
            _ => None,
        }
    }

    /// The name used in configuration and in Redis entries (`coding` field).
    pub fn name(self) -> &'static str {
        match self {
            Coding::Ascii => "ascii",
            Coding::Binary => "binary",
            Coding::Ucs2 => "ucs2",
            Coding::Gbk => "gbk",
        }
    }

    /// Inverse of [`Coding::name`], case-insensitive.
    pub fn parse(name: &str) -> Option<Coding> {
        [Coding::Ascii, Coding::Binary, Coding::Ucs2, Coding::Gbk]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

/// Why a text cannot be encoded or split.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// `position` counts characters, not bytes, so it matches what the sender typed.
    #[error("character {ch:?} at position {position} is not ASCII (use ucs2 or gbk)")]
    NotAscii { position: usize, ch: char },
    #[error("character {ch:?} cannot be encoded in {coding}")]
    Unmappable { coding: &'static str, ch: char },
    #[error("binary content (Msg_Fmt 4) is given as bytes, not text")]
    BinaryIsNotText,
    #[error("message needs {parts} parts; a concatenation UDH numbers at most 255")]
    TooManySegments { parts: usize },
    /// The configured ASCII part size would leave no payload or push a part over 159 bytes.
    #[error(
        "ascii_segment_chars = {chars} is out of range (1..=153, 2..=153 with a 16-bit reference)"
    )]
    InvalidAsciiSegmentSize { chars: usize },
}

/// ASCII when every char is ASCII, else UCS2; GBK instead of UCS2 when `prefer_gbk` and the text is
/// representable in GBK.
pub fn choose_coding(text: &str, prefer_gbk: bool) -> Coding {
    if text.is_ascii() {
        Coding::Ascii
    } else if prefer_gbk && gbk_round_trips(text) {
        Coding::Gbk
    } else {
        Coding::Ucs2
    }
}

/// Encode a whole text for `coding`.
///
/// Never sends something the handset would decode differently: non-ASCII under Msg_Fmt 0 is an
/// error (not UTF-8 bytes, cf. the `submit_v30_utf8_in_msgfmt0_bug` vector), and so is a character
/// GBK lacks (encoding_rs would silently substitute an HTML entity such as `&#128512;`) or would
/// return as a different character (18 private-use characters, e.g. U+E78D arrives as U+FE10).
pub fn encode_text(text: &str, coding: Coding) -> Result<Vec<u8>, TextError> {
    match coding {
        Coding::Ascii => match text.chars().enumerate().find(|(_, ch)| !ch.is_ascii()) {
            Some((position, ch)) => Err(TextError::NotAscii { position, ch }),
            None => Ok(text.as_bytes().to_vec()),
        },
        // encoding_rs cannot encode UTF-16 (it yields UTF-8), so do it by hand.
        Coding::Ucs2 => Ok(text.encode_utf16().flat_map(u16::to_be_bytes).collect()),
        Coding::Gbk => {
            let (bytes, _, had_errors) = GBK.encode(text);
            if had_errors || GBK.decode_without_bom_handling(&bytes).0 != text {
                // Only on the error path: find which character it was, for the message. GBK is
                // stateless, so checking characters one at a time gives the same verdict.
                let mut buf = [0u8; 4];
                let ch = text
                    .chars()
                    .find(|ch| !gbk_round_trips(ch.encode_utf8(&mut buf)))
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(TextError::Unmappable { coding: "gbk", ch });
            }
            Ok(bytes.into_owned())
        }
        Coding::Binary => Err(TextError::BinaryIsNotText),
    }
}

/// Whether GBK carries `text` exactly. Besides the characters GBK lacks (`had_errors`), encoding_rs
/// maps 18 private-use characters (U+E78D…U+E796, U+E81E, …) to codes that decode as their
/// GB18030-2022 standard equivalents (U+FE10, U+9FB4, …); those would arrive as different text.
fn gbk_round_trips(text: &str) -> bool {
    let (bytes, _, had_errors) = GBK.encode(text);
    !had_errors && GBK.decode_without_bom_handling(&bytes).0 == text
}

/// Received Msg_Content after decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Text(String),
    /// Kept as received: binary formats, and Msg_Fmt 0 content that is neither ASCII nor UTF-8.
    Binary(Vec<u8>),
}

/// Decode received Msg_Content (without UDH) according to its Msg_Fmt. Never fails: whatever a
/// peer sends must still reach the MO stream.
pub fn decode_text(msg_fmt: u8, bytes: &[u8]) -> Decoded {
    match msg_fmt {
        0 => decode_ascii(bytes),
        3 | 4 => Decoded::Binary(bytes.to_vec()),
        8 => decode_ucs2(bytes),
        15 => Decoded::Text(GBK.decode_without_bom_handling(bytes).0.into_owned()),
        // Unknown values (vendor 9, GSM TP-DCS leaking through): PROTOCOL.md §7.1 says read the
        // alphabet from DCS bits 2–3.
        other => match (other >> 2) & 0b11 {
            0b00 => decode_ascii(bytes),
            0b10 => decode_ucs2(bytes),
            _ => Decoded::Binary(bytes.to_vec()),
        },
    }
}

/// Msg_Fmt 0 should be ASCII, but some senders put UTF-8 (or Latin-1) there. Keep UTF-8 as text;
/// anything else stays bytes so that nothing ≥ 0x80 is lost to a replacement character.
fn decode_ascii(bytes: &[u8]) -> Decoded {
    match std::str::from_utf8(bytes) {
        Ok(text) => Decoded::Text(text.to_owned()),
        Err(_) => Decoded::Binary(bytes.to_vec()),
    }
}

/// UCS2 is UTF-16BE without BOM: no BOM sniffing (a leading FF FE must not flip the byte order);
/// an odd length or a lone surrogate becomes U+FFFD.
fn decode_ucs2(bytes: &[u8]) -> Decoded {
    Decoded::Text(UTF_16BE.decode_without_bom_handling(bytes).0.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Coding; 4] = [Coding::Ascii, Coding::Binary, Coding::Ucs2, Coding::Gbk];

    #[test]
    fn msg_fmt_and_names_round_trip() {
        for c in ALL {
            assert_eq!(Coding::from_msg_fmt(c.msg_fmt()), Some(c));
            assert_eq!(Coding::parse(c.name()), Some(c));
            assert_eq!(Coding::parse(&c.name().to_uppercase()), Some(c));
        }
        assert_eq!(
            ALL.map(Coding::msg_fmt),
            [0, 4, 8, 15],
            "Msg_Fmt values from §7.1"
        );
        assert_eq!(Coding::from_msg_fmt(3), None);
        assert_eq!(Coding::from_msg_fmt(9), None);
        assert_eq!(Coding::parse("utf8"), None);
    }

    #[test]
    fn choose_coding_prefers_ascii_then_gbk_only_on_request() {
        assert_eq!(choose_coding("hello", true), Coding::Ascii);
        assert_eq!(choose_coding("", false), Coding::Ascii);
        assert_eq!(choose_coding("你好", false), Coding::Ucs2);
        assert_eq!(choose_coding("你好", true), Coding::Gbk);
        // GBK has no emoji: fall back to UCS2 rather than lose it.
        assert_eq!(choose_coding("你好😀", true), Coding::Ucs2);
    }

    #[test]
    fn encodes_each_coding() {
        assert_eq!(encode_text("Hi", Coding::Ascii), Ok(b"Hi".to_vec()));
        assert_eq!(
            encode_text("中a😀", Coding::Ucs2),
            Ok(vec![0x4E, 0x2D, 0x00, 0x61, 0xD8, 0x3D, 0xDE, 0x00])
        );
        assert_eq!(encode_text("中a", Coding::Gbk), Ok(vec![0xD6, 0xD0, 0x61]));
        // encoding_rs maps the euro sign to the single byte 0x80 in GBK mode.
        assert_eq!(encode_text("€", Coding::Gbk), Ok(vec![0x80]));
    }

    #[test]
    fn encode_errors_carry_the_character() {
        assert_eq!(
            encode_text("abé", Coding::Ascii),
            Err(TextError::NotAscii {
                position: 2,
                ch: 'é'
            })
        );
        assert_eq!(
            encode_text("中😀", Coding::Gbk),
            Err(TextError::Unmappable {
                coding: "gbk",
                ch: '😀'
            })
        );
        assert_eq!(
            encode_text("x", Coding::Binary),
            Err(TextError::BinaryIsNotText)
        );
        let message = TextError::Unmappable {
            coding: "gbk",
            ch: '😀',
        }
        .to_string();
        assert!(
            message.contains("gbk") && message.contains('😀'),
            "{message}"
        );
    }

    #[test]
    fn gbk_rejects_private_use_characters_it_cannot_return() {
        // U+E78D encodes as A6 D9, which decodes as U+FE10: refuse rather than alter the text.
        assert_eq!(
            encode_text("中\u{E78D}", Coding::Gbk),
            Err(TextError::Unmappable {
                coding: "gbk",
                ch: '\u{E78D}'
            })
        );
        assert_eq!(choose_coding("中\u{E78D}", true), Coding::Ucs2);
    }

    #[test]
    fn gbk_encoding_is_exact_for_every_char_it_accepts() {
        let mut accepted = 0;
        for ch in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = ch.to_string();
            if let Ok(bytes) = encode_text(&text, Coding::Gbk) {
                accepted += 1;
                assert_eq!(decode_text(15, &bytes), Decoded::Text(text), "{ch:?}");
            }
        }
        // 129 single bytes (ASCII, €) + 23,956 double bytes, minus the 18 that do not round-trip.
        assert_eq!(accepted, 24_085 - 18);
    }

    #[test]
    fn decodes_each_msg_fmt() {
        assert_eq!(decode_text(0, b"Hi"), Decoded::Text("Hi".into()));
        // The UTF-8-in-Msg_Fmt-0 bug is read as meant; Latin-1 is kept byte for byte.
        assert_eq!(
            decode_text(0, "你好".as_bytes()),
            Decoded::Text("你好".into())
        );
        assert_eq!(
            decode_text(0, &[0x63, 0x61, 0x66, 0xE9]),
            Decoded::Binary(vec![0x63, 0x61, 0x66, 0xE9])
        );
        assert_eq!(
            decode_text(8, &[0x4F, 0x60, 0x59, 0x7D]),
            Decoded::Text("你好".into())
        );
        assert_eq!(
            decode_text(15, &[0xC4, 0xE3, 0xBA, 0xC3]),
            Decoded::Text("你好".into())
        );
        assert_eq!(
            decode_text(4, &[0xFF, 0x00]),
            Decoded::Binary(vec![0xFF, 0x00])
        );
        assert_eq!(decode_text(3, &[0x01]), Decoded::Binary(vec![0x01]));
    }

    #[test]
    fn ucs2_decoding_is_lossy_not_fatal_and_ignores_boms() {
        // Odd length: the dangling byte becomes U+FFFD.
        assert_eq!(
            decode_text(8, &[0x00, 0x41, 0x00]),
            Decoded::Text("A\u{FFFD}".into())
        );
        // Lone high surrogate.
        assert_eq!(
            decode_text(8, &[0xD8, 0x3D, 0x00, 0x41]),
            Decoded::Text("\u{FFFD}A".into())
        );
        // FF FE is U+FFFE in big-endian, not a little-endian BOM.
        assert_eq!(
            decode_text(8, &[0xFF, 0xFE, 0x00, 0x41]),
            Decoded::Text("\u{FFFE}A".into())
        );
    }

    #[test]
    fn unknown_msg_fmt_falls_back_to_dcs_bits_2_and_3() {
        let ucs2 = [0x00, 0x41];
        assert_eq!(decode_text(0x01, b"A"), Decoded::Text("A".into())); // 00 → ASCII
        assert_eq!(decode_text(0xF4, &ucs2), Decoded::Binary(ucs2.to_vec())); // 01 → binary
        assert_eq!(decode_text(9, &ucs2), Decoded::Text("A".into())); // 10 → UCS2 (vendor 9)
        assert_eq!(decode_text(0x0C, &ucs2), Decoded::Binary(ucs2.to_vec())); // 11 → binary
    }

    proptest! {
        #[test]
        fn decode_never_panics(msg_fmt: u8, bytes: Vec<u8>) {
            let _ = decode_text(msg_fmt, &bytes);
        }

        #[test]
        fn every_coding_round_trips_what_it_can_encode(text: String) {
            for coding in [Coding::Ascii, Coding::Ucs2, Coding::Gbk] {
                if let Ok(bytes) = encode_text(&text, coding) {
                    prop_assert_eq!(
                        decode_text(coding.msg_fmt(), &bytes),
                        Decoded::Text(text.clone()),
                        "{:?}", coding
                    );
                }
            }
            // UCS2 represents everything.
            prop_assert!(encode_text(&text, Coding::Ucs2).is_ok());
        }
    }
}
