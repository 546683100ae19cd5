//! A validated message becomes one SUBMIT per segment.

use super::entry::{Content, OutboundMessage};
use super::invalid::Invalid;
use crate::config::MessageConfig;
use crate::protocol::Submit;
use crate::text::{Coding, Segment, choose_coding, split_binary, split_text};

/// The SUBMITs for `msg` (validated), sharing the concatenation `reference`.
pub fn build_submits(
    msg: &OutboundMessage,
    cfg: &MessageConfig,
    reference: u16,
) -> Result<Vec<Submit>, Invalid> {
    let (segments, coding): (Vec<Segment>, Coding) = match &msg.content {
        Content::Text { text, coding } => {
            let coding = coding.unwrap_or_else(|| choose_coding(text, cfg.prefer_gbk));
            let segments = split_text(text, coding, reference, &cfg.split)
                .map_err(|e| Invalid::unprocessable("text", e.to_string()))?;
            (segments, coding)
        }
        Content::Bytes { bytes, coding } => (
            split_binary(bytes, reference, &cfg.split)
                .map_err(|e| Invalid::unprocessable("hex", e.to_string()))?,
            *coding,
        ),
    };
    let report = msg.report.unwrap_or(cfg.registered_delivery);
    let template = Submit {
        registered_delivery: u8::from(report),
        service_id: msg
            .service_id
            .clone()
            .unwrap_or_else(|| cfg.service_id.clone()),
        fee_user_type: msg.fee_user_type.unwrap_or(cfg.fee_user_type),
        msg_fmt: coding.msg_fmt(),
        msg_src: cfg.sp_id.clone(),
        fee_type: msg.fee_type.clone().unwrap_or_else(|| cfg.fee_type.clone()),
        fee_code: msg.fee_code.clone().unwrap_or_else(|| cfg.fee_code.clone()),
        valid_time: msg.valid.clone().unwrap_or_default(),
        at_time: msg.at.clone().unwrap_or_default(),
        src_id: format!("{}{}", cfg.access_no, msg.src_ext),
        dest_terminal_ids: vec![msg.to.clone()],
        link_id: msg.link_id.clone().unwrap_or_default(),
        ..Submit::default()
    };
    Ok(segments
        .into_iter()
        .map(|s| Submit {
            pk_total: s.pk_total,
            pk_number: s.pk_number,
            tp_udhi: s.tp_udhi,
            msg_content: s.content,
            ..template.clone()
        })
        .collect())
}
