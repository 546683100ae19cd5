//! The CMPP 3.0 / 2.0 wire format, pure: bytes in, values out. No I/O, no runtime.
//!
//! One [`Header`], a [`Pdu`] enum with one body type per command, and [`Packet`] tying a body to
//! its Sequence_Id. Every difference between 2.0 and 3.0 is a width carried by [`Version`], so the
//! two share one code path. Decoding never panics: each failure is a [`DecodeError`] with numbers.

mod auth;
mod body;
mod cancel;
mod clock;
mod command;
mod connect;
mod control;
mod deliver;
mod error;
mod fwd;
pub mod json;
mod msg_id;
mod pdu;
mod query;
mod report;
mod submit;
mod tolerant;
mod version;
mod wire;

pub use auth::{
    SOURCE_ADDR_LEN, authenticator_ismg, authenticator_source, connect_timestamp, source_addr_bytes,
};
pub use cancel::{Cancel, CancelResp};
pub use clock::ChinaTime;
pub use command::CommandId;
pub use connect::{Connect, ConnectResp, connect_status};
pub use control::ActiveTestResp;
pub use deliver::{Deliver, DeliverResp, deliver_result};
pub use error::{DecodeError, EncodeError};
pub use fwd::FwdResp;
pub use msg_id::{MsgId, MsgIdParts};
pub use pdu::{HEADER_LEN, Header, MAX_PDU_LEN, Packet, Pdu, encode_pdu};
pub use query::{Query, QueryResp};
pub use report::{ReportLayout, StatusReport};
pub use submit::{MAX_DESTINATIONS, Submit, SubmitResp, submit_result};
pub use tolerant::{Anomaly, Lenient, Undecodable, decode_lenient};
pub use version::Version;
pub use wire::max_content_len;
