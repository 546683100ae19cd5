//! Every Redis key the gateway uses, built from one configurable prefix (default `cmpp`).
//!
//! Keys that one script touches share a hash tag (the part in braces), so on a Redis Cluster
//! they live in one slot and the script runs there unchanged:
//!
//! * a channel's outbound stream, its dead letters (and the group, which lives in the stream);
//!   the default channel's stream is `{prefix}:mt` itself, so its tag is that whole name;
//! * a message's state and the idempotency answer of its request, under the request's id (the
//!   part of a message id before `~`), so one request's messages share a slot;
//! * everything about the report stream (`{prefix}:reports`: the stream, its DELIVER markers,
//!   held reports, per-number report indexes, the per-minute counters) and everything about
//!   the MO stream (`{prefix}:mo`: the stream, its markers, long-MO sets, per-number MO
//!   indexes) under the stream's own name;
//! * a channel's leases, fences and concatenation-reference counters under the channel name.
//!
//! The Msg_Id map (`{prefix}:msgid:<Msg_Id>`) and the console's message indexes have no tag:
//! they are written and read by plain commands only.

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

    /// The dead letters of the channel whose outbound stream is `stream`: messages that failed
    /// for good, with the reason. In the stream's slot (`{prefix:mt}:dead` for the default
    /// channel, `{prefix}:mt:{<name>}:dead` for the others), so the letter and the entry's
    /// acknowledgement are one script.
    pub fn dead_letters_of(&self, stream: &str) -> String {
        if stream.contains('{') {
            format!("{stream}:dead")
        } else {
            format!("{{{stream}}}:dead")
        }
    }

    /// The default channel's dead letters.
    pub fn dead_letters(&self) -> String {
        self.dead_letters_of(&self.outbound())
    }

    /// The counter of concatenation references for long messages to one recipient on one
    /// channel, so two instances never give one phone two long messages with one reference.
    pub fn reference_counter(&self, channel: &str, to: &str) -> String {
        format!("{}:ref:{{{channel}}}:{to}", self.prefix)
    }

    /// Status reports, correlated to our message ids.
    pub fn reports(&self) -> String {
        format!("{}:reports", self.prefix)
    }

    /// The hash tag of every key the report scripts touch with the report stream.
    fn reports_tag(&self) -> String {
        format!("{{{}}}", self.reports())
    }

    /// MO messages, reassembled.
    pub fn mo(&self) -> String {
        format!("{}:mo", self.prefix)
    }

    /// The hash tag of every key the MO scripts touch with the MO stream.
    fn mo_tag(&self) -> String {
        format!("{{{}}}", self.mo())
    }

    /// The parts of one long MO being reassembled (hash), by sender, SP number, UDH reference
    /// and part count.
    pub fn mo_set(&self, from: &str, to: &str, reference: u16, total: u8) -> String {
        format!(
            "{}:mo:set:{}:{}:{}:{reference}:{total}",
            self.prefix,
            self.mo_tag(),
            untagged(from),
            untagged(to)
        )
    }

    /// Reassembly sets by first-seen time (sorted set), for the sweeper.
    pub fn mo_pending(&self) -> String {
        format!("{}:mo:pending:{}", self.prefix, self.mo_tag())
    }

    /// Marks an MO DELIVER (by its own Msg_Id) as stored, so a redelivery is written once.
    pub fn seen_mo(&self, deliver_msg_id: u64) -> String {
        format!("{}:seen:{}:{deliver_msg_id}", self.prefix, self.mo_tag())
    }

    /// Marks a report DELIVER (by its own Msg_Id) as written, so a redelivery is written once.
    pub fn seen_report(&self, deliver_msg_id: u64) -> String {
        format!(
            "{}:seen:{}:{deliver_msg_id}",
            self.prefix,
            self.reports_tag()
        )
    }

    /// A status report held until its Msg_Id is mapped (hash of the entry's fields), by the
    /// DELIVER's own Msg_Id.
    pub fn held_report(&self, deliver_msg_id: u64) -> String {
        format!(
            "{}:report:held:{}:{deliver_msg_id}",
            self.prefix,
            self.reports_tag()
        )
    }

    /// Held reports by the time they arrived (sorted set of DELIVER Msg_Ids, score Unix ms),
    /// for the sweeper.
    pub fn held_reports(&self) -> String {
        format!("{}:report:pending:{}", self.prefix, self.reports_tag())
    }

    /// The state hash of one message, tagged with its request's id (see the module comment).
    pub fn state(&self, message_id: &str) -> String {
        let (request, rest) = split_request(message_id);
        format!(
            "{}:msg:{{{}}}{}",
            self.prefix,
            untagged(request),
            untagged(rest)
        )
    }

    /// The request id of a message id (the part before `~`): what its state key is tagged
    /// with.
    pub fn request_of(&self, message_id: &str) -> String {
        split_request(message_id).0.to_owned()
    }

    /// The first answer to a request carrying this idempotency id; in the slot of the
    /// request's messages.
    pub fn idempotency(&self, id: &str) -> String {
        format!("{}:idem:{{{}}}", self.prefix, untagged(id))
    }

    /// Msg_Id → (message, segment), for report correlation.
    pub fn msg_id(&self, msg_id: u64) -> String {
        format!("{}:msgid:{msg_id}", self.prefix)
    }

    /// Recent messages (sorted set of message ids scored by enqueue time, Unix ms), for the
    /// console's list; trimmed to `state_ttl`.
    pub fn message_index(&self) -> String {
        format!("{}:index:msg", self.prefix)
    }

    /// One recipient's messages (sorted set, scored like [`Keys::message_index`]).
    pub fn message_index_by_to(&self, to: &str) -> String {
        format!("{}:index:msg:{}", self.prefix, untagged(to))
    }

    /// One number's report entries (sorted set of `cmpp:reports` entry ids by their time).
    pub fn reports_index(&self, to: &str) -> String {
        format!(
            "{}:index:reports:{}:{}",
            self.prefix,
            self.reports_tag(),
            untagged(to)
        )
    }

    /// One sender's MO entries (sorted set of `cmpp:mo` entry ids by their time).
    pub fn mo_index(&self, from: &str) -> String {
        format!(
            "{}:index:mo:{}:{}",
            self.prefix,
            self.mo_tag(),
            untagged(from)
        )
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

    /// Counters of one minute (hash: `delivered`, `failed`), minute = Unix ms / 60 000; in the
    /// report stream's slot, where the report that decides a message counts it.
    pub fn minute_counters(&self, minute: u64) -> String {
        format!("{}:stats:{}:{minute}", self.prefix, self.reports_tag())
    }
}

/// A message id's request id (before `~`) and the rest (`~n`, or nothing).
fn split_request(message_id: &str) -> (&str, &str) {
    match message_id.find(crate::message::RECIPIENT_SEPARATOR) {
        Some(at) => message_id.split_at(at),
        None => (message_id, ""),
    }
}

/// `text` with its braces (and `%`) percent-escaped: what a caller or an ISMG wrote never
/// opens or closes a hash tag, so it cannot choose a key's Cluster slot. The ids and numbers
/// the gateway accepts have no braces, so their keys read as before.
fn untagged(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['{', '}', '%']) {
        return text.into();
    }
    text.replace('%', "%25")
        .replace('{', "%7B")
        .replace('}', "%7D")
        .into()
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    fn slot(key: &str) -> Slot {
        Slot::for_key(key)
    }

    #[test]
    fn what_one_script_touches_shares_a_slot() {
        let k = Keys::new("cmpp");
        assert_eq!(slot(&k.dead_letters()), slot("cmpp:mt"));
        let other = k.outbound_stream("cm-sh", false);
        assert_eq!(other, "cmpp:mt:{cm-sh}");
        assert_eq!(slot(&k.dead_letters_of(&other)), slot(&other));
        assert_eq!(slot(&k.state("order-7~2")), slot(&k.idempotency("order-7")));
        assert_eq!(slot(&k.state("order-7")), slot(&k.state("order-7~15")));
        assert_eq!(k.state("order-7~2"), "cmpp:msg:{order-7}~2");
        let reports = slot(&k.reports());
        for key in [
            k.seen_report(9),
            k.held_report(9),
            k.held_reports(),
            k.reports_index("13800138000"),
            k.minute_counters(28_000_000),
        ] {
            assert_eq!(slot(&key), reports, "{key}");
        }
        let mo = slot(&k.mo());
        for key in [
            k.seen_mo(9),
            k.mo_set("138", "106", 7, 3),
            k.mo_pending(),
            k.mo_index("13800138000"),
        ] {
            assert_eq!(slot(&key), mo, "{key}");
        }
        assert_eq!(slot(&k.lease("cm-sh", 1)), slot(&k.lease_fence("cm-sh", 0)));
    }

    #[test]
    fn braces_from_outside_never_choose_a_slot() {
        let k = Keys::new("cmpp");
        assert_eq!(k.state("a{x}b"), "cmpp:msg:{a%7Bx%7Db}");
        assert_ne!(slot(&k.state("{x}")), slot("x"));
        assert_eq!(
            k.reports_index("{x}"),
            "cmpp:index:reports:{cmpp:reports}:%7Bx%7D"
        );
        assert_eq!(k.mo_index("1%7B"), "cmpp:index:mo:{cmpp:mo}:1%257B");
        assert_eq!(k.message_index_by_to("{x}"), "cmpp:index:msg:%7Bx%7D");
    }
}
