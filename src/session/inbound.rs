//! DELIVERs handed to the caller, each with the means to answer it once the caller has stored it.

use tokio::sync::mpsc;

use bytes::Bytes;

use crate::protocol::{Deliver, MsgId};

/// A received DELIVER (MO or status report). Answer it with [`DeliverAck`]; dropping the ack
/// unanswered sends no DELIVER_RESP, so the ISMG delivers it again later.
#[derive(Debug)]
pub struct Inbound {
    pub deliver: Delivered,
    pub ack: DeliverAck,
}

/// What a DELIVER carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Decoded(Deliver),
    /// A DELIVER whose body no reading fits (a Msg_Length beyond the body, say). Its ack answers
    /// Result 1 (cannot be decoded) once the raw body is kept; the ISMG may deliver it again.
    Undecodable(UndecodableDeliver),
}

impl Delivered {
    /// The DELIVER's own Msg_Id (what DELIVER_RESP echoes).
    pub fn msg_id(&self) -> MsgId {
        match self {
            Delivered::Decoded(d) => d.msg_id,
            Delivered::Undecodable(u) => u.msg_id,
        }
    }

    pub fn decoded(&self) -> Option<&Deliver> {
        match self {
            Delivered::Decoded(d) => Some(d),
            Delivered::Undecodable(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecodableDeliver {
    /// The first eight bytes of the body (zeros where it is shorter).
    pub msg_id: MsgId,
    /// Registered_Delivery where the body reaches it: `Some(true)` for a status report.
    pub report: Option<bool>,
    /// The whole body, as received.
    pub body: Bytes,
    /// Why it could not be read.
    pub reason: String,
}

/// What the link needs to send the DELIVER_RESP.
#[derive(Debug)]
pub(crate) struct AckMessage {
    /// Which TCP connection the DELIVER came on; an answer for an older one is not sent.
    pub connection: u64,
    pub sequence_id: u32,
    pub msg_id: MsgId,
    pub result: u32,
}

#[derive(Debug)]
pub struct DeliverAck {
    pub(crate) message: Option<AckMessage>,
    pub(crate) tx: mpsc::UnboundedSender<AckMessage>,
}

impl DeliverAck {
    /// The DELIVER is stored: answer it (Result 0, or 1 for a DELIVER that could not be
    /// decoded and was kept raw).
    pub fn confirm(self) {
        self.answer(None);
    }

    /// Refuse the DELIVER with a non-zero Result (8 = try later).
    pub fn refuse(self, result: u32) {
        self.answer(Some(result));
    }

    fn answer(mut self, result: Option<u32>) {
        if let Some(mut message) = self.message.take() {
            if let Some(result) = result {
                message.result = result;
            }
            // The link may be gone; the ISMG then resends, which is what we want.
            let _ = self.tx.send(message);
        }
    }
}
