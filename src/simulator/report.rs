//! Status reports: the DELIVER (Registered_Delivery = 1) an ISMG sends for each recipient of a
//! submit that asked for one, and the on-demand form (`SimulatorHandle::send_report`).

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::protocol::{ChinaTime, Deliver, EncodeError, MsgId, ReportLayout, StatusReport};

/// The fields of one report that do not come from the simulator's own state.
#[derive(Debug, Clone)]
pub(crate) struct ReportSpec<'a> {
    /// The Msg_Id the SUBMIT_RESP gave (plus the recipient's index).
    pub submit_msg_id: MsgId,
    /// The SUBMIT's Src_Id: the report's Dest_Id.
    pub src_id: &'a str,
    pub service_id: &'a str,
    /// The recipient: the report's Src_terminal_Id and Dest_terminal_Id.
    pub destination: &'a str,
    pub stat: &'a str,
}

/// Builds the DELIVER. `deliver_msg_id` is the DELIVER's own new id; `delay` is how long after
/// now the report will go out (Done_time).
pub(crate) fn build(
    spec: &ReportSpec<'_>,
    deliver_msg_id: MsgId,
    smsc_sequence: u32,
    layout: ReportLayout,
    delay: Duration,
) -> Result<Deliver, EncodeError> {
    let now = SystemTime::now();
    let report = StatusReport {
        msg_id: spec.submit_msg_id,
        stat: spec.stat.to_owned(),
        submit_time: ChinaTime::from_system(now).report_time(),
        done_time: ChinaTime::from_system(now + delay).report_time(),
        dest_terminal_id: spec.destination.to_owned(),
        smsc_sequence,
    };
    Deliver {
        msg_id: deliver_msg_id,
        dest_id: spec.src_id.to_owned(),
        service_id: spec.service_id.to_owned(),
        msg_fmt: 0,
        src_terminal_id: spec.destination.to_owned(),
        ..Deliver::default()
    }
    .with_report(&report, layout)
}

/// A report on demand, e.g. for a Msg_Id the gateway never saw (control API `POST /report`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// Which account's clients get it; default: the first account.
    #[serde(default)]
    pub sp_id: Option<String>,
    /// The Msg_Id being reported (decimal u64).
    pub msg_id: u64,
    /// The recipient.
    pub destination: String,
    /// Default: picked from the behaviour's stat_mix.
    #[serde(default)]
    pub stat: Option<String>,
    /// The report's Dest_Id (the SUBMIT's Src_Id).
    #[serde(default)]
    pub src_id: String,
    #[serde(default)]
    pub service_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_deliver_carries_the_submit_id_and_the_recipient() {
        let spec = ReportSpec {
            submit_msg_id: MsgId(99),
            src_id: "106900",
            service_id: "SVC",
            destination: "13800138000",
            stat: "UNDELIV",
        };
        for layout in [ReportLayout::Spec71, ReportLayout::Compact60] {
            let d = build(&spec, MsgId(5), 3, layout, Duration::ZERO).unwrap();
            assert_eq!(d.msg_id, MsgId(5));
            assert_eq!(d.dest_id, "106900");
            assert_eq!(d.src_terminal_id, "13800138000");
            assert_eq!(d.msg_content.len(), layout.body_len());
            let r = d.report().unwrap().unwrap();
            assert_eq!(
                (r.msg_id, r.stat.as_str(), r.smsc_sequence),
                (MsgId(99), "UNDELIV", 3)
            );
            assert_eq!(r.submit_time.len(), 10);
        }
    }
}
