//! The SUBMIT path of a connection: verdict, Msg_Id, response (now or delayed), reports,
//! concatenation references, record.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::Connection;
use crate::protocol::{MsgId, Packet, Pdu, Submit, SubmitResp, submit_result};
use crate::simulator::counters::{add, inc, raise};
use crate::simulator::report::ReportSpec;
use crate::simulator::submit::{RecordedSubmit, Verdict, judge};
use crate::text::parse_udh;

impl Connection {
    pub(super) fn submit(&mut self, sequence: u32, submit: Submit) {
        let now = self.now;
        let counters = &self.shared.counters;
        inc(&counters.submits_received);
        self.meter.submit_received(now);
        let verdict = judge(
            &self.behaviour,
            self.unanswered,
            &mut self.rate,
            now,
            &mut self.rng,
        );
        self.unanswered += 1;
        raise(&counters.max_unanswered, self.unanswered as u64);
        let recipients = submit.dest_terminal_ids.len();
        let (result, assigned, dropped) = match verdict {
            Verdict::WindowViolation => {
                inc(&counters.window_violations);
                inc(&counters.flow_control_sent);
                self.meter.flow_control_sent();
                (submit_result::FLOW_CONTROL, None, false)
            }
            Verdict::FlowControl => {
                inc(&counters.flow_control_sent);
                self.meter.flow_control_sent();
                (submit_result::FLOW_CONTROL, None, false)
            }
            Verdict::Accept { drop_response } => {
                inc(&counters.submits_accepted);
                let count = u16::try_from(recipients).unwrap_or(u16::MAX);
                (
                    submit_result::OK,
                    Some(
                        self.shared
                            .submit_msg_id(count, self.behaviour.repeat_msg_id),
                    ),
                    drop_response,
                )
            }
        };
        debug!(conn = self.id, sequence, result, msg_id = ?assigned, dropped, "SUBMIT");
        self.note_concatenation(&submit, assigned.is_some());
        if let Some(first) = assigned.filter(|_| submit.registered_delivery == 1) {
            self.queue_reports(first, &submit, now);
        }
        if self.shared.recorded.is_some() {
            self.record(sequence, submit, result, assigned, dropped);
        }
        if dropped {
            inc(&self.shared.counters.submit_resp_dropped);
            self.unanswered -= 1;
            return;
        }
        let resp = SubmitResp {
            msg_id: assigned.unwrap_or_default(),
            result,
        };
        let resp = Packet::new(sequence, Pdu::SubmitResp(resp));
        let delay = self.behaviour.response_delay;
        if delay.is_zero() && self.pending.is_empty() {
            self.write(&resp);
            self.fed += 1;
        } else {
            // The delay is usually constant, so this is the back of the deque.
            let due = now + delay;
            let at = self.pending.partition_point(|(d, _)| *d <= due);
            self.pending.insert(at, (due, resp));
        }
    }

    /// Counts a concatenated part, and for an accepted one (only those reach a handset) whether
    /// its reference collides with another message's for one of its recipients. The UDH is read
    /// by the gateway's own parser; a SUBMIT whose UDH cannot be read is not a part.
    fn note_concatenation(&self, submit: &Submit, accepted: bool) {
        let Ok((Some(concat), payload)) = parse_udh(submit.tp_udhi, &submit.msg_content) else {
            return;
        };
        let counters = &self.shared.counters;
        inc(&counters.concatenated_parts);
        if accepted {
            let collisions = self.shared.udh_references.observe(
                &submit.dest_terminal_ids,
                &concat,
                submit.msg_fmt,
                payload,
                self.now,
            );
            if collisions > 0 {
                add(&counters.udh_reference_collisions, collisions);
                debug!(
                    conn = self.id,
                    reference = concat.reference,
                    part = concat.number,
                    total = concat.total,
                    collisions,
                    "UDH reference collision"
                );
            }
        }
    }

    /// One report per recipient; recipient i reports Msg_Id `first + i` (spec §9).
    pub(super) fn queue_reports(&mut self, first: MsgId, submit: &Submit, now: Instant) {
        let b = Arc::clone(&self.behaviour);
        let layout = self.account.report_layout(&b);
        let weight = b.stat_weight().max(1);
        for (i, destination) in submit.dest_terminal_ids.iter().enumerate() {
            let stat = b.stat_for(self.rng.u64(..weight));
            let spec = ReportSpec {
                submit_msg_id: MsgId(first.0 + i as u64),
                src_id: &submit.src_id,
                service_id: &submit.service_id,
                destination,
                stat,
            };
            if let Err(e) =
                self.shared
                    .queue_report(&self.account, &spec, layout, b.report_delay, now)
            {
                warn!(conn = self.id, msg_id = %spec.submit_msg_id, "no status report: {e}");
            }
        }
    }

    pub(super) fn record(
        &self,
        sequence: u32,
        submit: Submit,
        result: u32,
        assigned: Option<MsgId>,
        dropped: bool,
    ) {
        self.shared.record(RecordedSubmit {
            connection: self.id,
            sp_id: self.account.account.sp_id.clone(),
            sequence_id: sequence,
            dest_terminal_ids: submit.dest_terminal_ids,
            pk_total: submit.pk_total,
            pk_number: submit.pk_number,
            registered_delivery: submit.registered_delivery,
            msg_fmt: submit.msg_fmt,
            tp_udhi: submit.tp_udhi,
            msg_content: submit.msg_content,
            msg_id: assigned.filter(|_| !dropped).map(|id| id.0),
            assigned_msg_id: assigned.map(|id| id.0),
            result,
            response_dropped: dropped,
        });
    }
}
