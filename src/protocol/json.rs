//! A JSON view of a PDU with every field under its spec name, for people reading captures
//! (`cmpp-gateway decode`) and for checking the codec against the golden vectors.

use encoding_rs::{GBK, UTF_16BE};
use serde_json::{Map, Value, json};

use super::{Deliver, MsgId, Packet, Pdu, StatusReport, Submit, Version};
use crate::text::parse_udh;

/// The whole packet: header fields first, then the body's.
pub fn packet(version: Version, packet: &Packet, total_length: usize) -> Value {
    let command = packet.pdu.command_id();
    let mut map = Map::new();
    map.insert("Total_Length".into(), total_length.into());
    map.insert("Command_Id".into(), command.value().into());
    map.insert("Command".into(), command.to_string().into());
    map.insert("Sequence_Id".into(), packet.sequence_id.into());
    map.extend(body(version, &packet.pdu));
    Value::Object(map)
}

/// The body's fields under their spec names.
pub fn body(version: Version, pdu: &Pdu) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |key: &str, value: Value| {
        m.insert(key.to_owned(), value);
    };
    match pdu {
        Pdu::Connect(c) => {
            put("Source_Addr", c.source_addr.clone().into());
            put(
                "AuthenticatorSource",
                hex::encode(c.authenticator_source).into(),
            );
            put("Version", c.version.into());
            put("Timestamp", c.timestamp.into());
        }
        Pdu::ConnectResp(c) => {
            put("Status", c.status.into());
            put(
                "Status_text",
                super::connect_status::describe(c.status).into(),
            );
            put(
                "AuthenticatorISMG",
                hex::encode(c.authenticator_ismg).into(),
            );
            put("Version", c.version.into());
        }
        Pdu::Submit(s) => return submit(version, s),
        Pdu::Deliver(d) => return deliver(version, d),
        Pdu::SubmitResp(r) => {
            put_msg_id(&mut m, "Msg_Id", r.msg_id);
            m.insert("Result".into(), r.result.into());
            m.insert(
                "Result_text".into(),
                super::submit_result::describe(r.result).into(),
            );
        }
        Pdu::DeliverResp(r) => {
            put_msg_id(&mut m, "Msg_Id", r.msg_id);
            m.insert("Result".into(), r.result.into());
        }
        Pdu::Query(q) => {
            put("Time", q.time.clone().into());
            put("Query_Type", q.query_type.into());
            put("Query_Code", q.query_code.clone().into());
            put("Reserve", q.reserve.clone().into());
        }
        Pdu::QueryResp(q) => {
            put("Time", q.time.clone().into());
            put("Query_Type", q.query_type.into());
            put("Query_Code", q.query_code.clone().into());
            for (name, value) in q.counters() {
                put(name, value.into());
            }
        }
        Pdu::Cancel(c) => put_msg_id(&mut m, "Msg_Id", c.msg_id),
        Pdu::CancelResp(c) => put("Success_Id", c.success_id.into()),
        Pdu::ActiveTestResp(a) => put("Reserved", a.reserved.into()),
        Pdu::FwdResp(f) => {
            put_msg_id(&mut m, "Msg_Id", f.msg_id);
            m.insert("Pk_total".into(), f.pk_total.into());
            m.insert("Pk_number".into(), f.pk_number.into());
            m.insert("Result".into(), f.result.into());
        }
        Pdu::Terminate | Pdu::TerminateResp | Pdu::ActiveTest => {}
        Pdu::Other { body, .. } => put("Body_hex", hex::encode(body).into()),
    }
    m
}

fn submit(version: Version, s: &Submit) -> Map<String, Value> {
    let mut m = Map::new();
    put_msg_id(&mut m, "Msg_Id", s.msg_id);
    let fields: [(&str, Value); 8] = [
        ("Pk_total", s.pk_total.into()),
        ("Pk_number", s.pk_number.into()),
        ("Registered_Delivery", s.registered_delivery.into()),
        ("Msg_level", s.msg_level.into()),
        ("Service_Id", s.service_id.clone().into()),
        ("Fee_UserType", s.fee_user_type.into()),
        ("Fee_terminal_Id", s.fee_terminal_id.clone().into()),
        ("Fee_terminal_type", s.fee_terminal_type.into()),
    ];
    extend(&mut m, fields, version);
    let fields: [(&str, Value); 13] = [
        ("TP_pId", s.tp_pid.into()),
        ("TP_udhi", s.tp_udhi.into()),
        ("Msg_Fmt", s.msg_fmt.into()),
        ("Msg_src", s.msg_src.clone().into()),
        ("FeeType", s.fee_type.clone().into()),
        ("FeeCode", s.fee_code.clone().into()),
        ("ValId_Time", s.valid_time.clone().into()),
        ("At_Time", s.at_time.clone().into()),
        ("Src_Id", s.src_id.clone().into()),
        ("DestUsr_tl", s.dest_terminal_ids.len().into()),
        ("Dest_terminal_Id", json!(s.dest_terminal_ids)),
        ("Dest_terminal_type", s.dest_terminal_type.into()),
        ("Msg_Length", s.msg_content.len().into()),
    ];
    extend(&mut m, fields, version);
    put_content(&mut m, s.tp_udhi, s.msg_fmt, &s.msg_content);
    m.insert(version.trailer_name().into(), s.link_id.clone().into());
    m
}

fn deliver(version: Version, d: &Deliver) -> Map<String, Value> {
    let mut m = Map::new();
    put_msg_id(&mut m, "Msg_Id", d.msg_id);
    let fields: [(&str, Value); 9] = [
        ("Dest_Id", d.dest_id.clone().into()),
        ("Service_Id", d.service_id.clone().into()),
        ("TP_pid", d.tp_pid.into()),
        ("TP_udhi", d.tp_udhi.into()),
        ("Msg_Fmt", d.msg_fmt.into()),
        ("Src_terminal_Id", d.src_terminal_id.clone().into()),
        ("Src_terminal_type", d.src_terminal_type.into()),
        ("Registered_Delivery", d.registered_delivery.into()),
        ("Msg_Length", d.msg_content.len().into()),
    ];
    extend(&mut m, fields, version);
    match d.report() {
        Some(Ok(report)) => {
            m.insert("Msg_Content".into(), status_report(&report));
            // Which of the two layouts the peer used (71 spec, 60 the 2.0 form).
            m.insert("Report_layout".into(), d.msg_content.len().into());
            m.insert("Msg_Content_hex".into(), hex::encode(&d.msg_content).into());
        }
        Some(Err(e)) => {
            m.insert("Msg_Content_hex".into(), hex::encode(&d.msg_content).into());
            m.insert("Report_error".into(), e.to_string().into());
        }
        None => put_content(&mut m, d.tp_udhi, d.msg_fmt, &d.msg_content),
    }
    m.insert(version.trailer_name().into(), d.link_id.clone().into());
    m
}

/// The report fields under their spec names, with the Msg_Id's parts.
pub fn status_report(r: &StatusReport) -> Value {
    let mut m = Map::new();
    put_msg_id(&mut m, "Msg_Id", r.msg_id);
    m.insert("Stat".into(), r.stat.clone().into());
    m.insert("Submit_time".into(), r.submit_time.clone().into());
    m.insert("Done_time".into(), r.done_time.clone().into());
    m.insert("Dest_terminal_Id".into(), r.dest_terminal_id.clone().into());
    m.insert("SMSC_sequence".into(), r.smsc_sequence.into());
    Value::Object(m)
}

/// The parts of a Msg_Id as named in PROTOCOL.md.
pub fn msg_id_parts(id: MsgId) -> Value {
    let p = id.unpack();
    json!({
        "month": p.month, "day": p.day, "hour": p.hour, "minute": p.minute, "second": p.second,
        "ismg_code": p.gateway, "sequence": p.sequence,
    })
}

/// Fields that exist only in 3.0 are named `*_terminal_type`; they are dropped for 2.0.
fn extend<const N: usize>(
    m: &mut Map<String, Value>,
    fields: [(&str, Value); N],
    version: Version,
) {
    for (key, value) in fields {
        if version.has_terminal_type() || !key.ends_with("_terminal_type") {
            m.insert(key.to_owned(), value);
        }
    }
}

fn put_msg_id(m: &mut Map<String, Value>, key: &str, id: MsgId) {
    m.insert(key.to_owned(), id.0.into());
    if id.0 != 0 {
        m.insert(format!("{key}_parts"), msg_id_parts(id));
    }
}

/// Msg_Content as text when its bytes are valid for Msg_Fmt, the UDH when there is one, and
/// always the raw hex (a capture reader wants the bytes too).
fn put_content(m: &mut Map<String, Value>, tp_udhi: u8, msg_fmt: u8, content: &[u8]) {
    let payload = match parse_udh(tp_udhi, content) {
        Ok((Some(concat), payload)) => {
            m.insert(
                "UDH".into(),
                json!({
                    "reference": concat.reference,
                    "wide_reference": concat.wide_reference,
                    "total": concat.total,
                    "number": concat.number,
                }),
            );
            payload
        }
        Ok((None, payload)) => payload,
        Err(e) => {
            m.insert("UDH_error".into(), e.to_string().into());
            content
        }
    };
    if let Some(text) = strict_text(msg_fmt, payload) {
        m.insert("Msg_Content".into(), text.into());
    }
    m.insert("Msg_Content_hex".into(), hex::encode(content).into());
}

/// The text only when the bytes are exactly valid for the format (no replacement characters).
fn strict_text(msg_fmt: u8, bytes: &[u8]) -> Option<String> {
    match msg_fmt {
        0 => bytes
            .is_ascii()
            .then(|| String::from_utf8_lossy(bytes).into_owned()),
        8 => UTF_16BE
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|s| s.into_owned()),
        15 => GBK
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|s| s.into_owned()),
        _ => None,
    }
}
