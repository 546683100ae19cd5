//! Every Redis key the gateway uses, built from one configurable prefix (default `cmpp`).

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// Outbound stream: send requests, from HTTP or any application.
    pub fn outbound(&self) -> String {
        format!("{}:mt", self.prefix)
    }

    /// Messages that failed for good, with the reason.
    pub fn dead_letters(&self) -> String {
        format!("{}:mt:dead", self.prefix)
    }

    /// Status reports, correlated to our message ids.
    pub fn reports(&self) -> String {
        format!("{}:reports", self.prefix)
    }

    /// MO messages, reassembled.
    pub fn mo(&self) -> String {
        format!("{}:mo", self.prefix)
    }

    /// The state hash of one message.
    pub fn state(&self, message_id: &str) -> String {
        format!("{}:msg:{message_id}", self.prefix)
    }

    /// Msg_Id → (message, segment), for report correlation.
    pub fn msg_id(&self, msg_id: u64) -> String {
        format!("{}:msgid:{msg_id}", self.prefix)
    }

    /// The first answer to a request carrying this idempotency id.
    pub fn idempotency(&self, id: &str) -> String {
        format!("{}:idem:{id}", self.prefix)
    }
}
