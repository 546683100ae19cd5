//! Splitting a message into SUBMIT-sized parts (PROTOCOL.md §7.2, §7.3).
//!
//! The text is encoded once, then cut greedily into parts that never end inside a character:
//! the indivisible unit is one byte for ASCII and binary, one GBK character (1 or 2 bytes) and one
//! UTF-16 code point (2 bytes, 4 for a surrogate pair). A part that cannot take the next unit whole
//! simply ends one unit early.

use super::coding::{Coding, TextError, encode_text};
use super::udh::{Concat, write_udh};

/// Msg_Length limit for Msg_Fmt 0 (the spec says "< 160").
const MAX_ASCII_PDU: usize = 159;
/// Msg_Length limit for every other Msg_Fmt.
const MAX_PDU: usize = 140;
/// Part numbers are one byte in the UDH and in Pk_total.
const MAX_PARTS: usize = 255;

/// How to cut long messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitOptions {
    /// ASCII characters per part with an 8-bit reference (one fewer with a 16-bit reference).
    /// 153 fills a 159-byte PDU; some gateways want less (go-sms-protocol uses 134). Valid: 1..=153.
    pub ascii_segment_chars: usize,
    /// Use the 16-bit reference UDH (IEI 0x08), e.g. when 256 references per recipient are too few.
    pub wide_reference: bool,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            ascii_segment_chars: 153,
            wide_reference: false,
        }
    }
}

/// One SUBMIT's worth of content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Msg_Content, UDH included when `pk_total > 1`; its length is Msg_Length.
    pub content: Vec<u8>,
    /// 1 when `content` starts with a UDH, else 0.
    pub tp_udhi: u8,
    pub pk_total: u8,
    /// 1-based.
    pub pk_number: u8,
}

/// Split `text` for sending with `coding` (not [`Coding::Binary`]).
///
/// A text that fits one PDU (ASCII ≤ 159 bytes, UCS2 ≤ 70 units, GBK ≤ 140 bytes) goes out as one
/// part without UDH; otherwise every part carries a concatenation UDH with `reference` (only its
/// low 8 bits unless `opts.wide_reference`). Empty text gives one empty part.
pub fn split_text(
    text: &str,
    coding: Coding,
    reference: u16,
    opts: &SplitOptions,
) -> Result<Vec<Segment>, TextError> {
    let bytes = encode_text(text, coding)?;
    split_encoded(&bytes, coding, reference, opts)
}

/// [`split_text`] for binary payloads (Msg_Fmt 4): 140 bytes in one part, else 134 per part
/// (133 with a 16-bit reference).
pub fn split_binary(
    bytes: &[u8],
    reference: u16,
    opts: &SplitOptions,
) -> Result<Vec<Segment>, TextError> {
    split_encoded(bytes, Coding::Binary, reference, opts)
}

/// How many parts [`split_text`] produces, or the error it returns, without building the parts.
pub fn segment_count(text: &str, coding: Coding, opts: &SplitOptions) -> Result<usize, TextError> {
    let bytes = encode_text(text, coding)?;
    let limits = Limits::new(coding, opts)?;
    if bytes.len() <= limits.single {
        return Ok(1);
    }
    let parts = parts(&bytes, coding, limits.per_part).count();
    if parts > MAX_PARTS {
        return Err(TextError::TooManySegments { parts });
    }
    Ok(parts)
}

fn split_encoded(
    bytes: &[u8],
    coding: Coding,
    reference: u16,
    opts: &SplitOptions,
) -> Result<Vec<Segment>, TextError> {
    let limits = Limits::new(coding, opts)?;
    if bytes.len() <= limits.single {
        return Ok(vec![Segment {
            content: bytes.to_vec(),
            tp_udhi: 0,
            pk_total: 1,
            pk_number: 1,
        }]);
    }
    let parts: Vec<&[u8]> = parts(bytes, coding, limits.per_part).collect();
    let total =
        u8::try_from(parts.len()).map_err(|_| TextError::TooManySegments { parts: parts.len() })?;
    let segments = parts
        .into_iter()
        .zip(1..=total)
        .map(|(payload, number)| {
            let concat = Concat {
                reference,
                wide_reference: opts.wide_reference,
                total,
                number,
            };
            let mut content = Vec::with_capacity(limits.udh_len + payload.len());
            write_udh(&concat, &mut content);
            content.extend_from_slice(payload);
            Segment {
                content,
                tp_udhi: 1,
                pk_total: total,
                pk_number: number,
            }
        })
        .collect();
    Ok(segments)
}

/// Byte limits for one coding.
struct Limits {
    /// The whole encoded message, sent without UDH.
    single: usize,
    /// Payload of one part, after its UDH.
    per_part: usize,
    udh_len: usize,
}

impl Limits {
    fn new(coding: Coding, opts: &SplitOptions) -> Result<Limits, TextError> {
        let udh_len = if opts.wide_reference { 7 } else { 6 };
        let (single, per_part) = match coding {
            Coding::Ascii => {
                // The wide UDH is one byte longer, so a part carries one character fewer.
                let per_part = opts
                    .ascii_segment_chars
                    .saturating_sub(usize::from(opts.wide_reference));
                if per_part == 0 || udh_len + per_part > MAX_ASCII_PDU {
                    return Err(TextError::InvalidAsciiSegmentSize {
                        chars: opts.ascii_segment_chars,
                    });
                }
                (MAX_ASCII_PDU, per_part)
            }
            // Whole UTF-16 units: 134 bytes (67 units), 132 (66) with the 7-byte UDH.
            Coding::Ucs2 => (MAX_PDU, (MAX_PDU - udh_len) & !1),
            Coding::Gbk | Coding::Binary => (MAX_PDU, MAX_PDU - udh_len),
        };
        Ok(Limits {
            single,
            per_part,
            udh_len,
        })
    }
}

/// Greedy cut of `bytes` into payloads of at most `limit` bytes that end on unit boundaries.
/// Empty input gives no parts. `limit` must hold the largest unit (4 bytes; 1 for ASCII and
/// binary, whose `limit` may be as small as 1): `Limits::new` guarantees that.
fn parts(bytes: &[u8], coding: Coding, limit: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        while end < rest.len() {
            let next = end + unit_len(coding, &rest[end..]);
            if next > limit {
                break;
            }
            end = next;
        }
        // Cannot happen with valid limits, but a part must never be empty (endless loop) or
        // oversized: stop instead.
        if end == 0 {
            return None;
        }
        let (part, tail) = rest.split_at(end);
        rest = tail;
        Some(part)
    })
}

/// Length of the indivisible unit at the start of `bytes` (output of `encode_text`), never more
/// than what is left.
fn unit_len(coding: Coding, bytes: &[u8]) -> usize {
    let len = match (coding, bytes.first()) {
        // GBK lead bytes are 0x81..=0xFE and always take a trail byte; everything else
        // (ASCII, and 0x80 = € in encoding_rs's GBK) is a single byte. Walking from the start
        // keeps us in step, so trail bytes in the ASCII range are never mistaken for characters.
        (Coding::Gbk, Some(0x81..=0xFE)) => 2,
        // A high surrogate (D800–DBFF) and its low surrogate travel together.
        (Coding::Ucs2, Some(0xD8..=0xDB)) => 4,
        (Coding::Ucs2, _) => 2,
        _ => 1,
    };
    len.min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{Decoded, decode_text, parse_udh};
    use proptest::prelude::*;

    fn wide() -> SplitOptions {
        SplitOptions {
            wide_reference: true,
            ..SplitOptions::default()
        }
    }

    #[test]
    fn defaults_match_the_protocol_table() {
        assert_eq!(
            SplitOptions::default(),
            SplitOptions {
                ascii_segment_chars: 153,
                wide_reference: false
            }
        );
    }

    #[test]
    fn empty_text_is_one_empty_part() {
        for coding in [Coding::Ascii, Coding::Ucs2, Coding::Gbk] {
            let segments = split_text("", coding, 9, &SplitOptions::default()).unwrap();
            assert_eq!(
                segments,
                [Segment {
                    content: vec![],
                    tp_udhi: 0,
                    pk_total: 1,
                    pk_number: 1
                }]
            );
            assert_eq!(segment_count("", coding, &SplitOptions::default()), Ok(1));
        }
        assert_eq!(
            split_binary(&[], 9, &SplitOptions::default())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn binary_limits() {
        let opts = SplitOptions::default();
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(split_binary(&bytes[..140], 1, &opts).unwrap().len(), 1);
        let parts = split_binary(&bytes, 0x1AB, &opts).unwrap();
        let lens: Vec<usize> = parts.iter().map(|s| s.content.len()).collect();
        assert_eq!(lens, [140, 6 + 122]);
        assert_eq!(parts[1].content[..6], [5, 0, 3, 0xAB, 2, 2]);
        assert_eq!(parts[1].content[6..], bytes[134..]);

        let parts = split_binary(&bytes, 0x1AB, &wide()).unwrap();
        let lens: Vec<usize> = parts.iter().map(|s| s.content.len()).collect();
        assert_eq!(lens, [140, 7 + 123]);
        assert_eq!(parts[0].content[..7], [6, 8, 4, 0x01, 0xAB, 2, 1]);
    }

    #[test]
    fn binary_coding_is_rejected_for_text() {
        let opts = SplitOptions::default();
        assert_eq!(
            split_text("x", Coding::Binary, 0, &opts),
            Err(TextError::BinaryIsNotText)
        );
        assert_eq!(
            segment_count("x", Coding::Binary, &opts),
            Err(TextError::BinaryIsNotText)
        );
    }

    #[test]
    fn encoding_errors_come_through() {
        let opts = SplitOptions::default();
        assert_eq!(
            segment_count("aé", Coding::Ascii, &opts),
            Err(TextError::NotAscii {
                position: 1,
                ch: 'é'
            })
        );
        assert!(matches!(
            split_text("😀", Coding::Gbk, 0, &opts),
            Err(TextError::Unmappable { ch: '😀', .. })
        ));
    }

    #[test]
    fn at_most_255_parts() {
        let opts = SplitOptions::default();
        let fits = "中".repeat(67 * 255);
        let segments = split_text(&fits, Coding::Ucs2, 1, &opts).unwrap();
        assert_eq!(segments.len(), 255);
        assert_eq!(
            (segments[254].pk_total, segments[254].pk_number),
            (255, 255)
        );
        assert_eq!(segment_count(&fits, Coding::Ucs2, &opts), Ok(255));

        let too_long = "中".repeat(67 * 255 + 1);
        assert_eq!(
            split_text(&too_long, Coding::Ucs2, 1, &opts),
            Err(TextError::TooManySegments { parts: 256 })
        );
        assert_eq!(
            segment_count(&too_long, Coding::Ucs2, &opts),
            Err(TextError::TooManySegments { parts: 256 })
        );
        assert_eq!(
            split_binary(&[0; 134 * 255 + 1], 1, &opts),
            Err(TextError::TooManySegments { parts: 256 })
        );
    }

    #[test]
    fn ascii_segment_size_is_configurable_within_the_pdu_limit() {
        let text = "x".repeat(300);
        let opts = |chars, wide_reference| SplitOptions {
            ascii_segment_chars: chars,
            wide_reference,
        };
        // go-sms-protocol's 134.
        let segments = split_text(&text, Coding::Ascii, 1, &opts(134, false)).unwrap();
        let lens: Vec<usize> = segments.iter().map(|s| s.content.len()).collect();
        assert_eq!(lens, [6 + 134, 6 + 134, 6 + 32]);
        // Smallest and largest valid sizes: one character per part.
        let x255 = "x".repeat(255);
        assert_eq!(
            segment_count(&x255, Coding::Ascii, &opts(1, false)),
            Ok(255)
        );
        assert_eq!(segment_count(&x255, Coding::Ascii, &opts(2, true)), Ok(255));
        assert_eq!(
            segment_count(&text, Coding::Ascii, &opts(1, false)),
            Err(TextError::TooManySegments { parts: 300 })
        );
        assert_eq!(segment_count(&text, Coding::Ascii, &opts(153, true)), Ok(2));
        for (chars, wide) in [(0, false), (1, true), (154, false), (154, true)] {
            assert_eq!(
                split_text(&text, Coding::Ascii, 1, &opts(chars, wide)),
                Err(TextError::InvalidAsciiSegmentSize { chars })
            );
        }
        // Other codings ignore the ASCII setting.
        assert_eq!(segment_count("中", Coding::Ucs2, &opts(0, false)), Ok(1));
    }

    #[test]
    fn eight_bit_form_sends_the_low_byte_of_the_reference() {
        let segments = split_text(
            &"x".repeat(160),
            Coding::Ascii,
            0x1234,
            &SplitOptions::default(),
        )
        .unwrap();
        assert_eq!(segments[0].content[..6], [5, 0, 3, 0x34, 2, 1]);
    }

    /// Texts with many multi-byte and multi-unit characters, long enough to need several parts.
    fn text_strategy() -> impl Strategy<Value = String> {
        let ch = prop_oneof![
            any::<char>(),
            proptest::char::range(' ', '~'),
            proptest::char::range('\u{4E00}', '\u{9FA5}'), // all in GBK
            proptest::char::range('\u{1F300}', '\u{1FAFF}'), // surrogate pairs
            Just('€'),                                     // single byte 0x80 in GBK
        ];
        proptest::collection::vec(ch, 0..400).prop_map(String::from_iter)
    }

    fn check_split(text: &str, coding: Coding, opts: &SplitOptions) -> Result<(), TestCaseError> {
        let reference = 0xBEEF;
        let segments = match split_text(text, coding, reference, opts) {
            Ok(segments) => segments,
            Err(err) => {
                match &err {
                    TextError::TooManySegments { parts } => prop_assert!(*parts > MAX_PARTS),
                    _ => prop_assert!(encode_text(text, coding).is_err(), "{}", err),
                }
                prop_assert_eq!(segment_count(text, coding, opts), Err(err));
                return Ok(());
            }
        };
        prop_assert_eq!(segment_count(text, coding, opts), Ok(segments.len()));
        let total = segments.len();
        let max_content = if coding == Coding::Ascii { 159 } else { 140 };
        let per_part = Limits::new(coding, opts).unwrap().per_part;

        let mut whole = Vec::new();
        let mut text_by_part = String::new();
        for (i, segment) in segments.iter().enumerate() {
            prop_assert!(segment.content.len() <= max_content);
            prop_assert_eq!(usize::from(segment.pk_total), total);
            prop_assert_eq!(usize::from(segment.pk_number), i + 1);
            prop_assert_eq!(segment.tp_udhi, u8::from(total > 1));
            let (concat, payload) = parse_udh(segment.tp_udhi, &segment.content).unwrap();
            match concat {
                None => prop_assert_eq!(total, 1),
                Some(c) => {
                    prop_assert_eq!(c.total, segment.pk_total);
                    prop_assert_eq!(c.number, segment.pk_number);
                    prop_assert_eq!(c.wide_reference, opts.wide_reference);
                    let sent = if opts.wide_reference {
                        reference
                    } else {
                        reference & 0xFF
                    };
                    prop_assert_eq!(c.reference, sent);
                    // Greedy: a part other than the last is short by less than one unit.
                    if i + 1 < total {
                        prop_assert!(payload.len() + 4 > per_part);
                    }
                }
            }
            // Each part decodes on its own: no character was cut in two.
            match decode_text(coding.msg_fmt(), payload) {
                Decoded::Text(part) => text_by_part.push_str(&part),
                Decoded::Binary(bytes) => prop_assert!(false, "binary part {:?}", bytes),
            }
            whole.extend_from_slice(payload);
        }
        prop_assert_eq!(&text_by_part, text);
        prop_assert_eq!(
            decode_text(coding.msg_fmt(), &whole),
            Decoded::Text(text.to_owned())
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn split_reassembles_for_every_coding(text in text_strategy(), wide_reference: bool) {
            let opts = SplitOptions { wide_reference, ..SplitOptions::default() };
            for coding in [Coding::Ucs2, Coding::Gbk, Coding::Ascii] {
                check_split(&text, coding, &opts)?;
            }
        }

        #[test]
        fn ascii_split_reassembles(
            text in "[ -~]{0,700}", chars in 2usize..=153, wide_reference: bool,
        ) {
            let opts = SplitOptions { ascii_segment_chars: chars, wide_reference };
            check_split(&text, Coding::Ascii, &opts)?;
        }

        #[test]
        fn gbk_split_reassembles(text in "[a-z\u{4E00}-\u{4E20}€]{0,400}", wide_reference: bool) {
            let opts = SplitOptions { wide_reference, ..SplitOptions::default() };
            check_split(&text, Coding::Gbk, &opts)?;
        }

        #[test]
        fn arbitrary_strings_never_break_splitting(text: String) {
            for coding in [Coding::Ucs2, Coding::Gbk, Coding::Ascii] {
                check_split(&text, coding, &SplitOptions::default())?;
            }
        }
    }
}
