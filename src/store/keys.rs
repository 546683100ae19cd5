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

    /// The default channel's outbound stream: send requests, from HTTP or any application.
    pub fn outbound(&self) -> String {
        format!("{}:mt", self.prefix)
    }

    /// A channel's outbound stream: the default channel keeps `{prefix}:mt` (what applications
    /// XADD to without naming a channel), every other one has `{prefix}:mt:{<name>}`, the name
    /// in braces so a Redis Cluster keeps the channel's keys in one slot.
    pub fn outbound_stream(&self, channel: &str, default: bool) -> String {
        if default {
            self.outbound()
        } else {
            format!("{}:mt:{{{channel}}}", self.prefix)
        }
    }

    /// The counter of concatenation references for long messages to one recipient on one
    /// channel, so two instances never give one phone two long messages with one reference.
    pub fn reference_counter(&self, channel: &str, to: &str) -> String {
        format!("{}:ref:{{{channel}}}:{to}", self.prefix)
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

    /// The parts of one long MO being reassembled (hash), by sender, SP number, UDH reference
    /// and part count.
    pub fn mo_set(&self, from: &str, to: &str, reference: u16, total: u8) -> String {
        format!("{}:mo:set:{from}:{to}:{reference}:{total}", self.prefix)
    }

    /// Reassembly sets by first-seen time (sorted set), for the sweeper.
    pub fn mo_pending(&self) -> String {
        format!("{}:mo:pending", self.prefix)
    }

    /// The state hash of one message.
    pub fn state(&self, message_id: &str) -> String {
        format!("{}:msg:{message_id}", self.prefix)
    }

    /// Msg_Id → (message, segment), for report correlation.
    pub fn msg_id(&self, msg_id: u64) -> String {
        format!("{}:msgid:{msg_id}", self.prefix)
    }

    /// Marks a DELIVER (by its own Msg_Id) as stored, so a redelivery is written once.
    pub fn seen_deliver(&self, deliver_msg_id: u64) -> String {
        format!("{}:seen:{deliver_msg_id}", self.prefix)
    }

    /// A status report held until its Msg_Id is mapped (hash of the entry's fields), by the
    /// DELIVER's own Msg_Id.
    pub fn held_report(&self, deliver_msg_id: u64) -> String {
        format!("{}:report:held:{deliver_msg_id}", self.prefix)
    }

    /// Held reports by the time they arrived (sorted set of DELIVER Msg_Ids, score Unix ms),
    /// for the sweeper.
    pub fn held_reports(&self) -> String {
        format!("{}:report:pending", self.prefix)
    }

    /// The prefix of state keys, for scripts that derive a state key from a message id.
    pub fn state_prefix(&self) -> String {
        format!("{}:msg:", self.prefix)
    }

    /// The first answer to a request carrying this idempotency id.
    pub fn idempotency(&self, id: &str) -> String {
        format!("{}:idem:{id}", self.prefix)
    }

    /// Recent messages (sorted set of message ids scored by enqueue time, Unix ms), for the
    /// console's list; trimmed to `state_ttl`.
    pub fn message_index(&self) -> String {
        format!("{}:index:msg", self.prefix)
    }

    /// One recipient's messages (sorted set, scored like [`Keys::message_index`]).
    pub fn message_index_by_to(&self, to: &str) -> String {
        format!("{}:index:msg:{to}", self.prefix)
    }

    /// Prefix of the per-number index of report entry ids; scripts append the number.
    pub fn reports_index_prefix(&self) -> String {
        format!("{}:index:reports:", self.prefix)
    }

    /// One number's report entries (sorted set of `cmpp:reports` entry ids by their time).
    pub fn reports_index(&self, to: &str) -> String {
        format!("{}{to}", self.reports_index_prefix())
    }

    /// One sender's MO entries (sorted set of `cmpp:mo` entry ids by their time).
    pub fn mo_index(&self, from: &str) -> String {
        format!("{}:index:mo:{from}", self.prefix)
    }

    /// The lease of one of a channel's connection slots: holds the holder's name, expires
    /// unless renewed. The channel is a hash tag (`{channel}`), so every lease and fence key of
    /// one channel lives in one Redis Cluster slot and one script may touch them all.
    pub fn lease(&self, channel: &str, slot: u32) -> String {
        format!("{}:lease:{{{channel}}}:{slot}", self.prefix)
    }

    /// The fencing counter of one slot (INCR, never expires): each acquisition's token is higher
    /// than every earlier one's, so a holder name is never given twice.
    pub fn lease_fence(&self, channel: &str, slot: u32) -> String {
        format!("{}:fence", self.lease(channel, slot))
    }

    /// Counters of one minute (hash: `delivered`, `failed`), minute = Unix ms / 60 000.
    pub fn minute_counters(&self, minute: u64) -> String {
        format!("{}:stats:{minute}", self.prefix)
    }
}
