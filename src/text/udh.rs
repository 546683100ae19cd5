//! The concatenation User Data Header (GSM 03.40 §9.2.3.24; PROTOCOL.md §7.3).
//!
//! A UDH is `UDHL` (length of what follows) and then information elements `IEI IEL data…`.
//! We write only the concatenation IE; on receive we walk every IE because handsets and gateways
//! add others (port addressing, text formatting) in front of or behind it.

use thiserror::Error;

/// IEI of the concatenation element with an 8-bit reference.
const IEI_CONCAT_8: u8 = 0x00;
/// IEI of the concatenation element with a 16-bit reference (0x08, not 0x00 as one library writes).
const IEI_CONCAT_16: u8 = 0x08;

/// Concatenation info from / for a UDH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    /// Same for every part of one message. Only the low 8 bits travel when `wide_reference` is false.
    pub reference: u16,
    /// 16-bit reference form (IEI 0x08), one byte longer than the default 8-bit form (IEI 0x00).
    pub wide_reference: bool,
    pub total: u8,
    /// 1-based.
    pub number: u8,
}

/// Why a UDH could not be read. Offsets count from the start of the content (the UDHL byte is 0).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UdhError {
    #[error("TP_udhi is set but the content is empty")]
    Empty,
    #[error("UDH length {udhl} runs past the {available} bytes of content after it")]
    UdhTooLong { udhl: usize, available: usize },
    #[error("information element at offset {offset} has no length byte inside the UDH")]
    IeHeaderTruncated { offset: usize },
    #[error(
        "information element 0x{iei:02x} at offset {offset} declares {len} bytes, only {available} left in the UDH"
    )]
    IeTooLong {
        iei: u8,
        offset: usize,
        len: usize,
        available: usize,
    },
    #[error("concatenation element 0x{iei:02x} has length {len}, expected {expected}")]
    BadConcatLength {
        iei: u8,
        len: usize,
        expected: usize,
    },
    #[error("concatenation part {number} of {total} is invalid (need 1 <= part <= total)")]
    BadConcatNumbers { total: u8, number: u8 },
}

/// Append the concatenation UDH: `05 00 03 RR TT NN` or, with a wide reference,
/// `06 08 04 RH RL TT NN`.
pub fn write_udh(concat: &Concat, out: &mut Vec<u8>) {
    let [high, low] = concat.reference.to_be_bytes();
    if concat.wide_reference {
        out.extend_from_slice(&[6, IEI_CONCAT_16, 4, high, low]);
    } else {
        out.extend_from_slice(&[5, IEI_CONCAT_8, 3, low]);
    }
    out.extend_from_slice(&[concat.total, concat.number]);
}

/// Read the UDH at the start of `content` when `(tp_udhi & 0x41) != 0` (the spec says 1, many
/// gateways send the SMPP esm_class bit 0x40). Returns the concatenation info, if any, and the
/// payload after the whole UDH. Without the flag the content is all payload.
pub fn parse_udh(tp_udhi: u8, content: &[u8]) -> Result<(Option<Concat>, &[u8]), UdhError> {
    if tp_udhi & 0x41 == 0 {
        return Ok((None, content));
    }
    let (&udhl, rest) = content.split_first().ok_or(UdhError::Empty)?;
    let udhl = usize::from(udhl);
    if udhl > rest.len() {
        return Err(UdhError::UdhTooLong {
            udhl,
            available: rest.len(),
        });
    }
    let (mut ies, payload) = rest.split_at(udhl);

    let mut concat = None;
    let mut offset = 1;
    while let Some((&iei, after_iei)) = ies.split_first() {
        let (&len, data) = after_iei
            .split_first()
            .ok_or(UdhError::IeHeaderTruncated { offset })?;
        let len = usize::from(len);
        if len > data.len() {
            return Err(UdhError::IeTooLong {
                iei,
                offset,
                len,
                available: data.len(),
            });
        }
        let (data, next) = data.split_at(len);
        // GSM 03.40: when an element repeats, the last occurrence wins, so keep overwriting.
        match iei {
            IEI_CONCAT_8 | IEI_CONCAT_16 => concat = Some(read_concat(iei, data)?),
            _ => {} // port addressing, formatting, …: not ours to interpret
        }
        offset += 2 + len;
        ies = next;
    }
    Ok((concat, payload))
}

fn read_concat(iei: u8, data: &[u8]) -> Result<Concat, UdhError> {
    let (reference, wide_reference, total, number) = match (iei, data) {
        (IEI_CONCAT_8, &[r, t, n]) => (u16::from(r), false, t, n),
        (IEI_CONCAT_16, &[rh, rl, t, n]) => (u16::from_be_bytes([rh, rl]), true, t, n),
        _ => {
            return Err(UdhError::BadConcatLength {
                iei,
                len: data.len(),
                expected: if iei == IEI_CONCAT_16 { 4 } else { 3 },
            });
        }
    };
    if total == 0 || number == 0 || number > total {
        return Err(UdhError::BadConcatNumbers { total, number });
    }
    Ok(Concat {
        reference,
        wide_reference,
        total,
        number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn concat(reference: u16, wide_reference: bool, total: u8, number: u8) -> Concat {
        Concat {
            reference,
            wide_reference,
            total,
            number,
        }
    }

    #[test]
    fn writes_both_forms_exactly() {
        let mut out = vec![0xEE]; // appends, keeps what is there
        write_udh(&concat(0x12AB, false, 3, 2), &mut out);
        assert_eq!(out, [0xEE, 0x05, 0x00, 0x03, 0xAB, 0x03, 0x02]);

        let mut out = Vec::new();
        write_udh(&concat(0x12AB, true, 3, 2), &mut out);
        assert_eq!(out, [0x06, 0x08, 0x04, 0x12, 0xAB, 0x03, 0x02]);
    }

    #[test]
    fn parses_what_it_writes_with_either_flag() {
        for (c, tp_udhi) in [
            (concat(0xAB, false, 3, 2), 1),
            (concat(0x12AB, true, 255, 255), 0x40),
            (concat(7, false, 1, 1), 0x41),
        ] {
            let mut content = Vec::new();
            write_udh(&c, &mut content);
            content.extend_from_slice(b"payload");
            assert_eq!(parse_udh(tp_udhi, &content), Ok((Some(c), &b"payload"[..])));
        }
    }

    #[test]
    fn without_the_flag_everything_is_payload() {
        let content = [0x05, 0x00, 0x03, 0xAB, 0x03, 0x02, b'x'];
        assert_eq!(parse_udh(0, &content), Ok((None, &content[..])));
        // Other bits (0x80, 0x02) are not the UDHI flag.
        assert_eq!(parse_udh(0x82, &content), Ok((None, &content[..])));
        assert_eq!(parse_udh(0, &[]), Ok((None, &[][..])));
    }

    #[test]
    fn skips_unknown_elements_around_the_concat_element() {
        // UDHL 13: port addressing (IEI 0x05, 4 bytes), concat 8-bit, then an empty IE 0x24.
        let content = [
            13, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x42, 0x02, 0x01, 0x24, 0x00, b'h',
            b'i',
        ];
        assert_eq!(
            parse_udh(1, &content),
            Ok((Some(concat(0x42, false, 2, 1)), &b"hi"[..]))
        );

        let only_other = [0x04, 0x24, 0x00, 0x70, 0x00, b'z'];
        assert_eq!(parse_udh(1, &only_other), Ok((None, &b"z"[..])));
    }

    #[test]
    fn empty_udh_is_allowed() {
        assert_eq!(parse_udh(1, &[0x00, b'a']), Ok((None, &b"a"[..])));
    }

    #[test]
    fn last_concat_element_wins() {
        let content = [
            11, 0x00, 0x03, 0x01, 0x02, 0x01, 0x08, 0x04, 0x12, 0x34, 0x03, 0x03, b'x',
        ];
        assert_eq!(
            parse_udh(1, &content),
            Ok((Some(concat(0x1234, true, 3, 3)), &b"x"[..]))
        );
    }

    #[test]
    fn truncated_headers_are_typed_errors() {
        assert_eq!(parse_udh(1, &[]), Err(UdhError::Empty));
        assert_eq!(
            parse_udh(1, &[0x05, 0x00, 0x03, 0xAB]),
            Err(UdhError::UdhTooLong {
                udhl: 5,
                available: 3
            })
        );
        // IE length 3 but UDHL leaves 2 bytes of data: the IE overruns UDHL even though the
        // content goes on.
        assert_eq!(
            parse_udh(1, &[0x04, 0x00, 0x03, 0xAB, 0x03, 0x02, 0x61]),
            Err(UdhError::IeTooLong {
                iei: 0x00,
                offset: 1,
                len: 3,
                available: 2
            })
        );
        // An IEI with no room for its length byte.
        assert_eq!(
            parse_udh(1, &[0x03, 0x24, 0x00, 0x70]),
            Err(UdhError::IeHeaderTruncated { offset: 3 })
        );
    }

    #[test]
    fn bad_concat_elements_are_typed_errors() {
        assert_eq!(
            parse_udh(1, &[0x04, 0x00, 0x02, 0xAB, 0x03]),
            Err(UdhError::BadConcatLength {
                iei: 0x00,
                len: 2,
                expected: 3
            })
        );
        assert_eq!(
            parse_udh(1, &[0x05, 0x08, 0x03, 0xAB, 0x03, 0x01]),
            Err(UdhError::BadConcatLength {
                iei: 0x08,
                len: 3,
                expected: 4
            })
        );
        for (total, number) in [(0, 0), (0, 1), (3, 0), (3, 4)] {
            assert_eq!(
                parse_udh(1, &[0x05, 0x00, 0x03, 0xAB, total, number]),
                Err(UdhError::BadConcatNumbers { total, number })
            );
        }
        let message = UdhError::BadConcatNumbers {
            total: 3,
            number: 4,
        }
        .to_string();
        assert!(message.contains("part 4 of 3"), "{message}");
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_payload_is_a_suffix(tp_udhi: u8, content: Vec<u8>) {
            if let Ok((concat, payload)) = parse_udh(tp_udhi, &content) {
                prop_assert!(content.ends_with(payload));
                if let Some(c) = concat {
                    prop_assert!(c.number >= 1 && c.number <= c.total);
                }
            }
        }

        #[test]
        fn write_then_parse_round_trips(
            reference: u16, wide_reference: bool, total in 1u8.., number in 1u8.., tail: Vec<u8>,
        ) {
            let c = concat(
                if wide_reference { reference } else { reference & 0xFF },
                wide_reference,
                total.max(number),
                number,
            );
            let mut content = Vec::new();
            write_udh(&c, &mut content);
            prop_assert_eq!(content.len(), if wide_reference { 7 } else { 6 });
            content.extend_from_slice(&tail);
            prop_assert_eq!(parse_udh(1, &content), Ok((Some(c), &tail[..])));
        }
    }
}
