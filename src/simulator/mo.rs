//! MO messages on demand: a user's text turned into the DELIVER(s) an ISMG would send, including
//! the ways real networks garble long messages (parts out of order, TP_udhi 0x40, a part twice,
//! a part missing).

use serde::Deserialize;

use crate::protocol::{Deliver, MsgId};
use crate::text::{
    Coding, Concat, SplitOptions, choose_coding, encode_text, split_text, write_udh,
};

/// One MO message to deliver (control API `POST /mo`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MoRequest {
    /// Which account's clients get it; default: the first account.
    pub sp_id: Option<String>,
    /// The sender (Src_terminal_Id).
    pub from: String,
    /// The SP number the user sent to, extension included (Dest_Id).
    pub to: String,
    pub text: String,
    /// "ascii" | "ucs2" | "gbk"; default: ASCII when the text is ASCII, else UCS2.
    pub coding: Option<String>,
    pub service_id: Option<String>,
    pub link_id: Option<String>,
    /// Cut into UDH parts whose payload (after the UDH) is at most this many bytes, even when the
    /// text would fit one PDU. Default: the normal limits of `split_text`.
    pub max_part_len: Option<usize>,
    /// Send the parts in a different order (random, never the original one).
    pub shuffle: bool,
    /// TP_udhi = 0x40 (the SMPP esm_class bit many gateways send) instead of 1.
    pub udhi_0x40: bool,
    /// 16-bit reference UDH (IEI 0x08).
    pub wide_reference: bool,
    /// Send this part (1-based) twice with the same DELIVER Msg_Id, as a network resend would.
    pub duplicate_part: Option<u8>,
    /// Never send this part (1-based), leaving the set incomplete.
    pub drop_part: Option<u8>,
}

/// One part: its place in the message and its Msg_Content (UDH included).
struct Part {
    number: u8,
    content: Vec<u8>,
    has_udh: bool,
}

/// Builds the DELIVERs in sending order. Returns them with the message's part count (Pk_total).
pub(crate) fn build(
    req: &MoRequest,
    reference: u16,
    rng: &mut fastrand::Rng,
    mut next_id: impl FnMut() -> MsgId,
) -> Result<(Vec<Deliver>, usize), String> {
    let coding = match &req.coding {
        None => choose_coding(&req.text, false),
        Some(name) => match Coding::parse(name) {
            Some(Coding::Binary) | None => {
                return Err(format!("coding {name:?}: use ascii, ucs2 or gbk"));
            }
            Some(c) => c,
        },
    };
    let opts = SplitOptions {
        wide_reference: req.wide_reference,
        ..SplitOptions::default()
    };
    let mut parts = match req.max_part_len {
        Some(max) => split_forced(&req.text, coding, reference, &opts, max)?,
        None => split_text(&req.text, coding, reference, &opts)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|s| Part {
                number: s.pk_number,
                has_udh: s.tp_udhi != 0,
                content: s.content,
            })
            .collect(),
    };
    let total = parts.len();
    for (name, number) in [
        ("drop_part", req.drop_part),
        ("duplicate_part", req.duplicate_part),
    ] {
        if let Some(n) = number.filter(|&n| n == 0 || usize::from(n) > total) {
            return Err(format!(
                "{name} {n} is not a part of this {total}-part message"
            ));
        }
    }
    if req.shuffle && total > 1 {
        let original: Vec<u8> = parts.iter().map(|p| p.number).collect();
        rng.shuffle(&mut parts);
        if parts.iter().map(|p| p.number).eq(original.iter().copied()) {
            parts.reverse();
        }
    }

    let udhi = if req.udhi_0x40 { 0x40 } else { 1 };
    let mut delivers = Vec::with_capacity(total + 1);
    for part in parts {
        if req.drop_part == Some(part.number) {
            continue;
        }
        let deliver = Deliver {
            msg_id: next_id(),
            dest_id: req.to.clone(),
            service_id: req.service_id.clone().unwrap_or_default(),
            tp_udhi: if part.has_udh { udhi } else { 0 },
            msg_fmt: coding.msg_fmt(),
            src_terminal_id: req.from.clone(),
            registered_delivery: 0,
            msg_content: part.content,
            link_id: req.link_id.clone().unwrap_or_default(),
            ..Deliver::default()
        };
        if req.duplicate_part == Some(part.number) {
            delivers.push(deliver.clone());
        }
        delivers.push(deliver);
    }
    Ok((delivers, total))
}

/// Splits by whole characters into payloads of at most `max` encoded bytes, each behind a UDH.
/// `split_text` has no such knob (it always fills a PDU), and cutting at characters never
/// splits a surrogate pair or a GBK double byte.
fn split_forced(
    text: &str,
    coding: Coding,
    reference: u16,
    opts: &SplitOptions,
    max: usize,
) -> Result<Vec<Part>, String> {
    let udh_len = if opts.wide_reference { 7 } else { 6 };
    let pdu_limit = if coding == Coding::Ascii { 159 } else { 140 };
    if max < 4 || max + udh_len > pdu_limit {
        return Err(format!(
            "max_part_len {max} must be 4 to {} for {}",
            pdu_limit - udh_len,
            coding.name()
        ));
    }
    let mut payloads: Vec<Vec<u8>> = vec![Vec::new()];
    let mut buf = [0u8; 4];
    for ch in text.chars() {
        let bytes = encode_text(ch.encode_utf8(&mut buf), coding).map_err(|e| e.to_string())?;
        // `payloads` always has a last element; it was created non-empty above.
        let fits = payloads
            .last()
            .is_some_and(|p| p.len() + bytes.len() <= max);
        if !fits {
            payloads.push(Vec::new());
        }
        if let Some(last) = payloads.last_mut() {
            last.extend_from_slice(&bytes);
        }
    }
    let total = u8::try_from(payloads.len())
        .map_err(|_| format!("{} parts; a UDH numbers at most 255", payloads.len()))?;
    if total == 1 {
        let content = payloads.pop().unwrap_or_default();
        return Ok(vec![Part {
            number: 1,
            content,
            has_udh: false,
        }]);
    }
    Ok(payloads
        .into_iter()
        .zip(1..=total)
        .map(|(payload, number)| {
            let mut content = Vec::with_capacity(udh_len + payload.len());
            write_udh(
                &Concat {
                    reference,
                    wide_reference: opts.wide_reference,
                    total,
                    number,
                },
                &mut content,
            );
            content.extend_from_slice(&payload);
            Part {
                number,
                content,
                has_udh: true,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{Decoded, decode_text, parse_udh};

    fn build_with(req: &MoRequest) -> Result<(Vec<Deliver>, usize), String> {
        let mut n = 0;
        build(req, 42, &mut fastrand::Rng::with_seed(1), || {
            n += 1;
            MsgId(n)
        })
    }

    fn reassemble(delivers: &[Deliver]) -> (Vec<u8>, String) {
        let mut parts: Vec<(u8, Vec<u8>)> = delivers
            .iter()
            .map(|d| {
                let (concat, payload) = parse_udh(d.tp_udhi, &d.msg_content).unwrap();
                (concat.unwrap().number, payload.to_vec())
            })
            .collect();
        let order = parts.iter().map(|p| p.0).collect();
        parts.sort_by_key(|p| p.0);
        let bytes: Vec<u8> = parts.into_iter().flat_map(|p| p.1).collect();
        match decode_text(delivers[0].msg_fmt, &bytes) {
            Decoded::Text(t) => (order, t),
            Decoded::Binary(_) => panic!("not text"),
        }
    }

    #[test]
    fn short_ascii_is_one_plain_deliver() {
        let req = MoRequest {
            from: "13800138000".into(),
            to: "1069000".into(),
            text: "TD".into(),
            ..MoRequest::default()
        };
        let (d, total) = build_with(&req).unwrap();
        assert_eq!((d.len(), total), (1, 1));
        assert_eq!(
            (d[0].tp_udhi, d[0].msg_fmt, &d[0].msg_content[..]),
            (0, 0, &b"TD"[..])
        );
        assert_eq!(d[0].src_terminal_id, "13800138000");
    }

    #[test]
    fn forced_parts_shuffled_with_0x40_reassemble() {
        let text = "长短信😀测试".repeat(5);
        let req = MoRequest {
            text: text.clone(),
            max_part_len: Some(10),
            shuffle: true,
            udhi_0x40: true,
            ..MoRequest::default()
        };
        let (d, total) = build_with(&req).unwrap();
        assert_eq!(total, d.len());
        assert!(total > 3);
        assert!(d.iter().all(|d| d.tp_udhi == 0x40 && d.msg_fmt == 8));
        assert!(d.iter().all(|d| d.msg_content.len() <= 16));
        let (order, back) = reassemble(&d);
        assert_eq!(back, text);
        assert!(!order.windows(2).all(|w| w[0] < w[1]), "not shuffled");
    }

    #[test]
    fn duplicate_and_drop_parts() {
        let req = MoRequest {
            text: "x".repeat(400),
            duplicate_part: Some(1),
            drop_part: Some(3),
            ..MoRequest::default()
        };
        let (d, total) = build_with(&req).unwrap();
        assert_eq!(total, 3);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].msg_id, d[1].msg_id, "a duplicate keeps its Msg_Id");
        assert_eq!(d[0].msg_content, d[1].msg_content);
        assert!(
            build_with(&MoRequest {
                drop_part: Some(4),
                ..req
            })
            .is_err()
        );
    }

    #[test]
    fn bad_coding_and_sizes_are_refused() {
        let bad = |req: MoRequest| build_with(&req).unwrap_err();
        assert!(
            bad(MoRequest {
                text: "你好".into(),
                coding: Some("ascii".into()),
                ..Default::default()
            })
            .contains("ASCII")
        );
        assert!(
            bad(MoRequest {
                coding: Some("utf8".into()),
                ..Default::default()
            })
            .contains("coding")
        );
        assert!(
            bad(MoRequest {
                max_part_len: Some(200),
                ..Default::default()
            })
            .contains("max_part_len")
        );
    }
}
