//! One outbound message as the gateway understands it, whether it came through HTTP or was
//! XADDed by an application: the flat stream-entry form, validation, and the SUBMIT segments
//! it becomes. Pure: no I/O.

mod build;
mod entry;
mod id;
mod invalid;
mod validate;

pub use build::build_submits;
pub use entry::{Content, OutboundMessage};
pub use id::{
    RECIPIENT_SEPARATOR, check_caller_id, check_message_id, new_message_id, recipient_id,
};
pub use invalid::{Invalid, InvalidKind};
pub use validate::{SRC_ID_LEN, normalize_msisdn};
