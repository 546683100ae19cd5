//! DELIVERs handed to the caller, each with the means to answer it once the caller has stored it.

use tokio::sync::mpsc;

use crate::protocol::{Deliver, MsgId, deliver_result};

/// A received DELIVER (MO or status report). Answer it with [`DeliverAck`]; dropping the ack
/// unanswered sends no DELIVER_RESP, so the ISMG delivers it again later.
#[derive(Debug)]
pub struct Inbound {
    pub deliver: Deliver,
    pub ack: DeliverAck,
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
    /// The DELIVER is stored: answer Result 0.
    pub fn confirm(self) {
        self.answer(deliver_result::OK);
    }

    /// Refuse the DELIVER with a non-zero Result (1 = cannot be decoded, 8 = try later).
    pub fn refuse(self, result: u32) {
        self.answer(result);
    }

    fn answer(mut self, result: u32) {
        if let Some(mut message) = self.message.take() {
            message.result = result;
            // The link may be gone; the ISMG then resends, which is what we want.
            let _ = self.tx.send(message);
        }
    }
}
