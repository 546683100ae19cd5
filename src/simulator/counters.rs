//! What the simulator saw and did, as atomics on the hot path and a plain snapshot for callers.
//! One macro list defines both, so a counter cannot exist in one and be missing in the other.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

macro_rules! counters {
    ($($(#[doc = $doc:expr])* $name:ident,)*) => {
        /// A snapshot of the simulator's counters (all since start).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        /// The live counters. Relaxed ordering: each is an independent tally, read for reporting.
        #[derive(Debug, Default)]
        pub(crate) struct CounterSet {
            $(pub $name: AtomicU64,)*
        }

        impl CounterSet {
            pub fn snapshot(&self) -> Counters {
                Counters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// TCP connections accepted.
    connections_accepted,
    /// TCP connections currently open (logged in or not).
    connections_open,
    logins_ok,
    /// CONNECT_RESP Status 2: unknown Source_Addr.
    login_failed_bad_addr,
    /// Status 3: AuthenticatorSource mismatch.
    login_failed_auth,
    /// Status 4: Version above the account's.
    login_failed_version,
    /// Status 5: the account already had `max_connections` live connections.
    logins_refused_max_connections,
    /// Logged-in connections not yet closed, all accounts together.
    connections_live,
    /// The most logged-in connections at once since start, all accounts together.
    connections_peak,
    submits_received,
    /// Submits answered (or due to be answered) with Result 0; includes those whose response was dropped.
    submits_accepted,
    /// Accepted submits whose SUBMIT_RESP was never sent (drop_response_ratio).
    submit_resp_dropped,
    /// Every Result 8 sent: window violations, flow_control_ratio and flow_control_above_rate.
    flow_control_sent,
    /// Submits that arrived while `window` submits of their connection were unanswered.
    window_violations,
    /// Most submits seen unanswered on one connection at once (sent responses count as answered
    /// only once flushed to the socket).
    max_unanswered,
    /// Status reports put into an outbox (one per recipient).
    reports_queued,
    /// Status-report DELIVERs written for the first time.
    reports_sent,
    /// Status-report DELIVERs answered with DELIVER_RESP Result 0.
    reports_acked,
    /// MO DELIVERs put into an outbox (duplicated parts count twice, dropped parts not at all).
    mo_queued,
    /// MO DELIVERs written for the first time.
    mo_sent,
    mo_acked,
    /// DELIVERs written again (no answer within deliver_retry, non-zero answer, or connection lost).
    delivers_resent,
    /// DELIVER_RESPs with a non-zero Result.
    deliver_resp_nonzero,
    heartbeats_received,
    heartbeats_answered,
    heartbeats_ignored,
    /// ACTIVE_TESTs the simulator sent to idle clients.
    heartbeats_sent,
    terminates_received,
    terminates_sent,
    malformed_sent,
    /// Connections dropped by disconnect_all or close_after_pdus.
    disconnects_injected,
    /// Connections closed because a SUBMIT to `close_on_dest` arrived (that SUBMIT unanswered).
    poison_closes,
    /// Damaged DELIVERs put into an outbox (`POST /faults/deliver`).
    damaged_delivers_queued,
    /// SUBMITs the simulator sent to clients (`POST /faults/submit`).
    ismg_submits_sent,
    /// SUBMIT_RESPs clients sent back for those.
    ismg_submit_resps_received,
    /// Every PDU read from a client, CONNECT included.
    pdus_received,
    /// SUBMITs carrying a concatenation UDH element (IEI 0x00 or 0x08), one per SUBMIT.
    concatenated_parts,
    /// Accepted concatenated parts that reuse, for one recipient, the reference, part count and
    /// part number of a different part seen in the last 10 minutes (one per recipient).
    udh_reference_collisions,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn dec(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}

/// Raises a high-water mark.
pub(crate) fn raise(counter: &AtomicU64, value: u64) {
    counter.fetch_max(value, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_serializes_every_counter_as_a_number() {
        let set = CounterSet::default();
        inc(&set.submits_received);
        raise(&set.max_unanswered, 7);
        raise(&set.max_unanswered, 3);
        let json = serde_json::to_value(set.snapshot()).unwrap();
        assert_eq!(json["submits_received"], 1);
        assert_eq!(json["max_unanswered"], 7);
        assert_eq!(json.as_object().unwrap().len(), 38);
    }
}
