//! Message text: encoding per Msg_Fmt, the concatenation UDH and splitting into SUBMIT-sized parts
//! (PROTOCOL.md §7).
//!
//! This module is pure (bytes and strings in, values out) so that the worker, the simulator and the
//! HTTP validation all share one definition of how many parts a text needs.
//!
//! # Layout
//! * Coding: [`Coding`] (Msg_Fmt), [`choose_coding`], [`encode_text`], [`decode_text`].
//! * UDH: [`Concat`], [`write_udh`], [`parse_udh`] (GSM 03.40 §9.2.3.24, IEI 0x00 and 0x08).
//! * Segmentation: [`split_text`], [`split_binary`], [`segment_count`] with [`SplitOptions`].
//!
//! Sending: `choose_coding` → `split_text` → one SUBMIT per [`Segment`] (`Msg_Content = content`,
//! `TP_udhi`, `Pk_total`, `Pk_number` copied as they are). Receiving: `parse_udh` on the DELIVER
//! content, reassemble the payloads by part number, then `decode_text` the whole.

mod coding;
mod segment;
mod udh;

pub use coding::{Coding, Decoded, TextError, choose_coding, decode_text, encode_text};
pub use segment::{Segment, SplitOptions, segment_count, split_binary, split_text};
pub use udh::{Concat, UdhError, parse_udh, write_udh};
