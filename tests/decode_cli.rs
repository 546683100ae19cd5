//! The `decode` subcommand, run as a user would: every PDU vector through the real binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmpp-gateway"))
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn assert_fields(name: &str, expected: &Value, actual: &Value) {
    for (key, want) in expected.as_object().unwrap() {
        let got = &actual[key];
        match want {
            Value::Object(inner) => {
                for (k, w) in inner {
                    assert_eq!(&got[k], w, "{name}: {key}.{k}");
                }
            }
            _ => assert_eq!(got, want, "{name}: {key}"),
        }
    }
}

#[test]
fn prints_the_fields_of_every_pdu_vector() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/cmpp/vectors.json");
    let vectors: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for v in vectors.iter().filter(|v| v["kind"] == "pdu") {
        let name = v["name"].as_str().unwrap();
        let version = v["version"].as_str().unwrap();
        let out = run(&[v["hex"].as_str().unwrap(), "--version", version], None);
        assert_fields(name, &v["fields"], &json_out(&out));
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} PDU vectors checked");
}

#[test]
fn decodes_a_2_0_connect_resp_from_stdin_with_spaces_and_prefix() {
    let out = run(
        &["--version", "2.0"],
        Some("0x0000001e 80000001 00000017\n00 6c0b846e25bab6daa4ed1c466e0f4bd8 21\n"),
    );
    let v = json_out(&out);
    assert_eq!(v["Total_Length"], 30);
    assert_eq!(v["Status"], 0);
    assert_eq!(v["AuthenticatorISMG"], "6c0b846e25bab6daa4ed1c466e0f4bd8");
    assert_eq!(v["Version"], 0x21);
}

#[test]
fn decodes_a_report_body_without_header_and_shows_msg_id_parts() {
    let body = "b4c553000001000044454c49565244313531313132303935353135313131323039353731333431323334303030300000000000000000000012345678";
    // A 60-byte report body is a DELIVER's Msg_Content, not a PDU body: --body DELIVER must refuse it.
    let out = run(&[body, "--body", "deliver"], None);
    assert!(!out.status.success());
    let out = run(&["000000188000000400000017b2b9da800001000000000000"], None);
    let v = json_out(&out);
    assert_eq!(v["Msg_Id_parts"]["minute"], 29);
    assert_eq!(v["Result_text"], "ok");
    let out = run(&["b2b9da800001000000000008", "--body", "SUBMIT_RESP"], None);
    let v = json_out(&out);
    assert_eq!(v["Command"], "CMPP_SUBMIT_RESP");
    assert_eq!(v["Result"], 8);
    assert_eq!(v["Result_text"], "flow control");
}

#[test]
fn malformed_input_fails_with_one_clear_line() {
    for (input, needle) in [
        ("zz", "invalid hex"),
        ("0000000b0000000800000017", "below the 12-byte header"),
        ("0000000d0000000800000017", "only 12 bytes given"),
        (
            "000000218000000100000017000000007942977274098cf210ab0c16c367bc8d",
            "only 32 bytes",
        ),
    ] {
        let out = run(&[input], None);
        assert!(!out.status.success(), "{input} should fail");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{input}: {stderr}");
        assert!(stderr.contains(needle), "{input}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
