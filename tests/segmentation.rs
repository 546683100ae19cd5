//! Long-message edge cases the project owner requires (PROTOCOL.md §7.3): part counts and sizes at
//! every limit, characters straddling a boundary, both UDH forms, and reassembly of the result.

use cmpp_gateway::text::*;

const CJK: &str = "中";
const EMOJI: &str = "😀"; // U+1F600: a surrogate pair in UTF-16

fn default_opts() -> SplitOptions {
    SplitOptions::default()
}

fn wide_opts() -> SplitOptions {
    SplitOptions {
        wide_reference: true,
        ..SplitOptions::default()
    }
}

/// Payload sizes in bytes, UDH removed.
fn payload_lens(segments: &[Segment]) -> Vec<usize> {
    segments.iter().map(|s| payload(s).len()).collect()
}

fn payload(segment: &Segment) -> &[u8] {
    parse_udh(segment.tp_udhi, &segment.content)
        .expect("our own UDH parses")
        .1
}

/// The receive path: parse each UDH, check numbering, concatenate in order and decode. Each part
/// must also decode on its own without U+FFFD, which proves no character was cut in two.
fn reassemble(segments: &[Segment], coding: Coding) -> String {
    let total = segments.len();
    let mut bytes = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let (concat, payload) = parse_udh(segment.tp_udhi, &segment.content).unwrap();
        assert_eq!(usize::from(segment.pk_total), total);
        assert_eq!(usize::from(segment.pk_number), i + 1);
        if total > 1 {
            let concat = concat.expect("every part of a long message has a concat UDH");
            assert_eq!(
                (concat.total, concat.number),
                (segment.pk_total, segment.pk_number)
            );
        } else {
            assert_eq!(concat, None);
        }
        let Decoded::Text(part) = decode_text(coding.msg_fmt(), payload) else {
            panic!("part {} is not text", i + 1);
        };
        assert!(
            !part.contains('\u{FFFD}'),
            "part {} cut a character: {part:?}",
            i + 1
        );
        bytes.extend_from_slice(payload);
    }
    match decode_text(coding.msg_fmt(), &bytes) {
        Decoded::Text(text) => text,
        Decoded::Binary(b) => panic!("reassembled content is binary: {b:?}"),
    }
}

/// Split, check the per-PDU limits and the round trip, and agree with `segment_count`.
fn split(text: &str, coding: Coding, opts: &SplitOptions) -> Vec<Segment> {
    let segments = split_text(text, coding, 0x42, opts).unwrap();
    let max = if coding == Coding::Ascii { 159 } else { 140 };
    assert!(segments.iter().all(|s| s.content.len() <= max));
    assert_eq!(segment_count(text, coding, opts), Ok(segments.len()));
    assert_eq!(reassemble(&segments, coding), text);
    segments
}

#[test]
fn ucs2_70_chars_is_one_part_without_udh() {
    let segments = split(&CJK.repeat(70), Coding::Ucs2, &default_opts());
    assert_eq!(segments.len(), 1);
    let only = &segments[0];
    assert_eq!((only.tp_udhi, only.pk_total, only.pk_number), (0, 1, 1));
    assert_eq!(only.content.len(), 140);
    assert_eq!(
        only.content[..2],
        [0x4E, 0x2D],
        "starts with text, not a UDH"
    );
}

#[test]
fn ucs2_71_chars_is_67_plus_4_with_udh() {
    let segments = split(&CJK.repeat(71), Coding::Ucs2, &default_opts());
    assert_eq!(payload_lens(&segments), [67 * 2, 4 * 2]);
    assert_eq!(segments[0].content.len(), 140);
    assert_eq!(segments[1].content.len(), 6 + 8);
    assert!(segments.iter().all(|s| s.tp_udhi == 1 && s.pk_total == 2));
    assert_eq!(
        segments[0].content[..6],
        [0x05, 0x00, 0x03, 0x42, 0x02, 0x01]
    );
    assert_eq!(
        segments[1].content[..6],
        [0x05, 0x00, 0x03, 0x42, 0x02, 0x02]
    );
}

#[test]
fn ucs2_part_count_is_ceil_len_over_67_around_multiples() {
    for n in 2..=4 {
        for len in [67 * n - 1, 67 * n, 67 * n + 1] {
            let segments = split(&CJK.repeat(len), Coding::Ucs2, &default_opts());
            assert_eq!(segments.len(), len.div_ceil(67), "{len} chars");
            // Every part but the last is full; the last holds the remainder.
            let lens = payload_lens(&segments);
            let (last, full) = lens.split_last().unwrap();
            assert!(full.iter().all(|&l| l == 134), "{len} chars: {lens:?}");
            assert_eq!(*last, (len - 67 * full.len()) * 2, "{len} chars");
        }
    }
}

#[test]
fn emoji_straddling_the_67_unit_boundary_moves_whole_to_the_next_part() {
    // 66 units, then the emoji would occupy units 67 and 68.
    let text = format!("{}{EMOJI}{}", CJK.repeat(66), CJK.repeat(10));
    let segments = split(&text, Coding::Ucs2, &default_opts());
    assert_eq!(payload_lens(&segments), [66 * 2, (2 + 10) * 2]);
    assert_eq!(payload(&segments[1])[..4], [0xD8, 0x3D, 0xDE, 0x00]);

    // Emoji exactly at units 66–67 fits: the boundary falls after it.
    let text = format!("{}{EMOJI}{}", CJK.repeat(65), CJK.repeat(10));
    let segments = split(&text, Coding::Ucs2, &default_opts());
    assert_eq!(payload_lens(&segments), [67 * 2, 10 * 2]);
}

#[test]
fn emoji_only_text_never_splits_a_pair() {
    // 36 emoji = 72 units: too long for one PDU; 33 pairs (66 units) per part.
    let segments = split(&EMOJI.repeat(36), Coding::Ucs2, &default_opts());
    assert_eq!(payload_lens(&segments), [132, 12]);
}

#[test]
fn gbk_cjk_is_two_bytes_per_char() {
    let one = split(&CJK.repeat(70), Coding::Gbk, &default_opts());
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].tp_udhi, one[0].content.len()), (0, 140));

    let two = split(&CJK.repeat(71), Coding::Gbk, &default_opts());
    assert_eq!(payload_lens(&two), [134, 8]);
    assert_eq!(two[0].content[6..8], [0xD6, 0xD0], "中 in GBK");
}

#[test]
fn gbk_boundary_inside_a_char_ends_the_part_early() {
    // 1 + 70·2 = 141 bytes; the 134-byte cut would fall inside the 67th CJK char.
    let text = format!("a{}", CJK.repeat(70));
    let segments = split(&text, Coding::Gbk, &default_opts());
    assert_eq!(payload_lens(&segments), [1 + 66 * 2, 4 * 2]);

    // With the 16-bit reference the limit is 133, which the same text fills exactly.
    let segments = split(&text, Coding::Gbk, &wide_opts());
    assert_eq!(payload_lens(&segments), [133, 8]);

    // ASCII and CJK interleaved: parts stay ≤ 134 and every part decodes on its own.
    let text = "ab中文".repeat(40);
    let segments = split(&text, Coding::Gbk, &default_opts());
    assert_eq!(segments.len(), 2);
    assert!(payload_lens(&segments).iter().all(|&l| l <= 134));
}

#[test]
fn ascii_159_vs_160() {
    let one = split(&"a".repeat(159), Coding::Ascii, &default_opts());
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].tp_udhi, one[0].content.len()), (0, 159));

    let two = split(&"a".repeat(160), Coding::Ascii, &default_opts());
    assert_eq!(payload_lens(&two), [153, 7]);
    assert_eq!(two[0].content.len(), 159);
}

#[test]
fn sixteen_bit_reference_limits() {
    let opts = wide_opts();
    // UCS2: 66 units per part.
    let segments = split(&CJK.repeat(71), Coding::Ucs2, &opts);
    assert_eq!(payload_lens(&segments), [66 * 2, 5 * 2]);
    assert_eq!(segments[0].content.len(), 139);
    assert_eq!(
        segments[0].content[..7],
        [0x06, 0x08, 0x04, 0x00, 0x42, 0x02, 0x01]
    );
    // 66·3 units: exactly three full parts.
    let segments = split(&CJK.repeat(198), Coding::Ucs2, &opts);
    assert_eq!(payload_lens(&segments), [132, 132, 132]);
    // Single-part limit does not change with the reference form.
    assert_eq!(segment_count(&CJK.repeat(70), Coding::Ucs2, &opts), Ok(1));
    // GBK 133, ASCII 152.
    assert_eq!(
        payload_lens(&split(&CJK.repeat(71), Coding::Gbk, &opts)),
        [132, 10]
    );
    assert_eq!(
        payload_lens(&split(&"a".repeat(160), Coding::Ascii, &opts)),
        [152, 8]
    );
}

#[test]
fn udh_of_part_2_of_3_with_reference_0xab() {
    let text = CJK.repeat(67 * 2 + 1);
    let segments = split_text(&text, Coding::Ucs2, 0xAB, &default_opts()).unwrap();
    assert_eq!(segments.len(), 3);
    let part2 = &segments[1];
    assert_eq!((part2.tp_udhi, part2.pk_total, part2.pk_number), (1, 3, 2));
    assert_eq!(part2.content[..6], [0x05, 0x00, 0x03, 0xAB, 0x03, 0x02]);
    assert_eq!(
        parse_udh(1, &part2.content).unwrap().0,
        Some(Concat {
            reference: 0xAB,
            wide_reference: false,
            total: 3,
            number: 2
        })
    );

    let wide = split_text(&text, Coding::Ucs2, 0xAB, &wide_opts()).unwrap();
    assert_eq!(
        wide[1].content[..7],
        [0x06, 0x08, 0x04, 0x00, 0xAB, 0x03, 0x02]
    );

    let mut udh = Vec::new();
    write_udh(
        &Concat {
            reference: 0xAB,
            wide_reference: false,
            total: 3,
            number: 2,
        },
        &mut udh,
    );
    assert_eq!(udh, [0x05, 0x00, 0x03, 0xAB, 0x03, 0x02]);
}

#[test]
fn chosen_coding_splits_as_expected() {
    // The worker's path: choose, then split.
    let text = "验证码 123456,5分钟内有效。".repeat(5);
    let coding = choose_coding(&text, false);
    assert_eq!(coding, Coding::Ucs2);
    let units = text.encode_utf16().count();
    let segments = split(&text, coding, &default_opts());
    assert_eq!(segments.len(), units.div_ceil(67));

    let coding = choose_coding(&text, true);
    assert_eq!(coding, Coding::Gbk);
    split(&text, coding, &default_opts());
}
