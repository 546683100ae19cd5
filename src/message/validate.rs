//! The checks a message passes before it is accepted (HTTP) or sent (worker), so both refuse the
//! same things for the same reasons.

use super::entry::{Content, OutboundMessage};
use super::invalid::{Invalid, InvalidKind};
use crate::config::MessageConfig;
use crate::text::{Coding, Decoded, choose_coding, decode_text, segment_count, split_binary};

/// Src_Id is oct[21]: the access number plus the extension must fit.
pub const SRC_ID_LEN: usize = 21;
const SERVICE_ID_LEN: usize = 10;
const LINK_ID_LEN: usize = 20;

/// `+8613800138000` and `8613800138000` become `13800138000`; other forms are kept, trimmed.
pub fn normalize_msisdn(raw: &str) -> String {
    let trimmed = raw.trim();
    let national = trimmed
        .strip_prefix("+86")
        .or_else(|| trimmed.strip_prefix("86").filter(|rest| rest.len() == 11));
    match national {
        Some(rest) if rest.len() == 11 && rest.bytes().all(|b| b.is_ascii_digit()) => {
            rest.to_owned()
        }
        _ => trimmed.to_owned(),
    }
}

impl OutboundMessage {
    /// Normalizes the recipient and checks every field; returns the number of segments.
    pub fn validate(&mut self, cfg: &MessageConfig) -> Result<usize, Invalid> {
        self.to = normalize_msisdn(&self.to);
        if !cfg.msisdn.is_match(&self.to) {
            return Err(Invalid::unprocessable(
                "to",
                format!("{:?} is not a valid mobile number", self.to),
            ));
        }
        if !self.src_ext.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::unprocessable("src_ext", "digits only"));
        }
        let src_len = cfg.access_no.len() + self.src_ext.len();
        if src_len > SRC_ID_LEN {
            return Err(Invalid::unprocessable(
                "src_ext",
                format!(
                    "access number and extension are {src_len} digits; Src_Id holds {SRC_ID_LEN}"
                ),
            ));
        }
        check_len("service_id", self.service_id.as_deref(), SERVICE_ID_LEN)?;
        check_len("link_id", self.link_id.as_deref(), LINK_ID_LEN)?;
        check_time("at", self.at.as_deref())?;
        check_time("valid", self.valid.as_deref())?;
        if let Some(fee_type) = &self.fee_type {
            if !(fee_type.len() == 2 && fee_type.bytes().all(|b| b.is_ascii_digit())) {
                return Err(Invalid::unprocessable("fee_type", "two digits, e.g. 01"));
            }
        }
        if let Some(fee_code) = &self.fee_code {
            if fee_code.is_empty()
                || fee_code.len() > 6
                || !fee_code.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(Invalid::unprocessable("fee_code", "1 to 6 digits (fen)"));
            }
        }
        if self.fee_user_type.is_some_and(|t| t > 3) {
            return Err(Invalid::unprocessable("fee_user_type", "0 to 3"));
        }
        self.normalize_content()?;
        let segments = match &self.content {
            Content::Text { text, coding } => {
                if text.is_empty() {
                    return Err(Invalid::unprocessable("text", "empty"));
                }
                let coding = coding.unwrap_or_else(|| choose_coding(text, cfg.prefer_gbk));
                segment_count(text, coding, &cfg.split)
                    .map_err(|e| Invalid::unprocessable("text", e.to_string()))?
            }
            Content::Bytes { bytes, .. } => split_binary(bytes, 0, &cfg.split)
                .map_err(|e| Invalid::unprocessable("hex", e.to_string()))?
                .len(),
        };
        if segments > cfg.max_segments {
            return Err(Invalid::new(
                InvalidKind::TooLarge,
                "text",
                format!(
                    "needs {segments} segments; at most {} are allowed",
                    cfg.max_segments
                ),
            ));
        }
        Ok(segments)
    }

    /// Bytes given with a text coding are text: decode them, so splitting never cuts a character.
    fn normalize_content(&mut self) -> Result<(), Invalid> {
        let Content::Bytes { bytes, coding } = &self.content else {
            if let Content::Text {
                coding: Some(Coding::Binary),
                ..
            } = &self.content
            {
                return Err(Invalid::new(
                    InvalidKind::Unsupported,
                    "coding",
                    "binary content is given as hex",
                ));
            }
            return Ok(());
        };
        if *coding == Coding::Binary {
            return Ok(());
        }
        match decode_text(coding.msg_fmt(), bytes) {
            Decoded::Text(text) if !text.contains(char::REPLACEMENT_CHARACTER) => {
                self.content = Content::Text {
                    text,
                    coding: Some(*coding),
                };
                Ok(())
            }
            _ => Err(Invalid::unprocessable(
                "hex",
                format!("not valid {} bytes", coding.name()),
            )),
        }
    }
}

fn check_len(field: &'static str, value: Option<&str>, max: usize) -> Result<(), Invalid> {
    match value {
        Some(v) if v.len() > max => Err(Invalid::unprocessable(
            field,
            format!("at most {max} bytes"),
        )),
        _ => Ok(()),
    }
}

/// SMPP 3.3 absolute or relative time: `YYMMDDhhmmsstnnp`, p one of `+`, `-`, `R`.
fn check_time(field: &'static str, value: Option<&str>) -> Result<(), Invalid> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let ok = v.len() == 16
        && v.as_bytes()[..15].iter().all(u8::is_ascii_digit)
        && v.ends_with(['+', '-', 'R']);
    if ok {
        Ok(())
    } else {
        Err(Invalid::unprocessable(
            field,
            "SMPP time YYMMDDhhmmsstnnp, p one of + - R",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdn_forms() {
        assert_eq!(normalize_msisdn(" +8613800138000 "), "13800138000");
        assert_eq!(normalize_msisdn("8613800138000"), "13800138000");
        assert_eq!(normalize_msisdn("13800138000"), "13800138000");
        assert_eq!(normalize_msisdn("8612345"), "8612345");
    }

    #[test]
    fn smpp_times() {
        assert!(check_time("at", Some("261125120000032+")).is_ok());
        assert!(check_time("at", Some("000001000000000R")).is_ok());
        assert!(check_time("at", Some("")).is_ok());
        assert!(check_time("at", Some("2611251200")).is_err());
        assert!(check_time("at", Some("26112512000003x+")).is_err());
    }
}
