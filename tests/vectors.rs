//! Every golden vector of `../shared/cmpp/vectors.json` decodes to its listed fields and
//! re-encodes byte for byte. The file is read where it lives, never copied.

use std::path::PathBuf;

use cmpp_gateway::protocol::{
    MsgId, Packet, ReportLayout, StatusReport, Version, authenticator_ismg, authenticator_source,
    json, source_addr_bytes,
};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/cmpp/vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str::<Vec<Value>>(&text).expect("vectors.json is a JSON array")
}

/// Every key of `expected` is in `actual` with an equal value; objects compare recursively so the
/// decoder may add fields (such as Msg_Id_parts) that the vector does not list.
fn assert_subset(name: &str, path: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, value) in want {
                let here = format!("{path}.{key}");
                let found = got
                    .get(key)
                    .unwrap_or_else(|| panic!("{name}: {here} missing from {actual}"));
                assert_subset(name, &here, value, found);
            }
        }
        _ => assert_eq!(actual, expected, "{name}: {path}"),
    }
}

fn version_of(v: &Value) -> Version {
    v["version"].as_str().unwrap().parse().unwrap()
}

fn bytes_of(v: &Value) -> Vec<u8> {
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v["fields"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is a u64"))
}

fn check_pdu(name: &str, v: &Value) {
    let version = version_of(v);
    let bytes = bytes_of(v);
    let packet = Packet::decode(version, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_subset(
        name,
        "",
        &v["fields"],
        &json::packet(version, &packet, bytes.len()),
    );
    let encoded = packet
        .to_bytes(version)
        .unwrap_or_else(|e| panic!("{name}: encode: {e}"));
    assert_eq!(
        hex::encode(encoded),
        hex::encode(&bytes),
        "{name}: re-encoding differs"
    );
}

fn check_report_body(name: &str, v: &Value) {
    let bytes = bytes_of(v);
    let report = StatusReport::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_subset(name, "", &v["fields"], &json::status_report(&report));
    let layout = ReportLayout::from_len(bytes.len()).unwrap();
    assert_eq!(
        report.encode(layout).unwrap(),
        bytes,
        "{name}: re-encoding differs"
    );
}

fn check_msg_id(name: &str, v: &Value) {
    let bytes: [u8; 8] = bytes_of(v).try_into().expect("8 bytes");
    let id = MsgId(u64::from_be_bytes(bytes));
    assert_eq!(id.0, u64_field(v, "Msg_Id"), "{name}");
    let mut parts = v["fields"].clone();
    parts.as_object_mut().unwrap().remove("Msg_Id");
    assert_subset(name, "", &parts, &json::msg_id_parts(id));
    assert_eq!(MsgId::pack(id.unpack()), id, "{name}: pack(unpack(id))");
}

fn check_auth(name: &str, v: &Value) {
    let f = &v["fields"];
    let secret = f["shared_secret"].as_str().unwrap().as_bytes();
    let digest = if let Some(addr) = f.get("Source_Addr") {
        let addr = source_addr_bytes(addr.as_str().unwrap()).unwrap();
        authenticator_source(&addr, secret, u64_field(v, "Timestamp") as u32)
    } else {
        let mut source = [0u8; 16];
        hex::decode_to_slice(f["AuthenticatorSource"].as_str().unwrap(), &mut source).unwrap();
        authenticator_ismg(
            version_of(v),
            u64_field(v, "Status") as u32,
            &source,
            secret,
        )
    };
    assert_eq!(hex::encode(digest), v["hex"].as_str().unwrap(), "{name}");
}

#[test]
fn every_vector_decodes_and_re_encodes() {
    let all = vectors();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for v in &all {
        let name = v["name"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap();
        match kind {
            "pdu" => check_pdu(name, v),
            "report_body" => check_report_body(name, v),
            "msg_id" => check_msg_id(name, v),
            "auth" => check_auth(name, v),
            other => panic!("{name}: vector kind {other:?} has no check; add one"),
        }
        *checked.entry(kind.to_owned()).or_default() += 1;
    }
    assert_eq!(checked.values().sum::<usize>(), all.len(), "{checked:?}");
    for kind in ["pdu", "report_body", "msg_id", "auth"] {
        assert!(
            checked.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} vector checked: {checked:?}"
        );
    }
}

#[test]
fn text_encoder_never_produces_the_utf8_in_msg_fmt_0_bug() {
    // submit_v30_utf8_in_msgfmt0_bug carries UTF-8 "你好" under Msg_Fmt 0; we must send UCS2.
    use cmpp_gateway::text::{Coding, choose_coding, encode_text};
    let coding = choose_coding("你好", false);
    assert_eq!(coding, Coding::Ucs2);
    assert_eq!(
        encode_text("你好", coding).unwrap(),
        vec![0x4f, 0x60, 0x59, 0x7d]
    );
    assert!(encode_text("你好", Coding::Ascii).is_err());
}
