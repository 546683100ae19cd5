//! The ISMG simulator driven over real TCP on 127.0.0.1 by a bare client built from `CmppCodec`.
//! Each test starts its own simulator on port 0; timings are short (≤ a few hundred ms).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use cmpp_gateway::protocol::{
    ChinaTime, Connect, ConnectResp, Deliver, DeliverResp, MsgId, Packet, Pdu, ReportLayout,
    StatusReport, Submit, SubmitResp, Version, authenticator_ismg,
};
use cmpp_gateway::session::codec::{CmppCodec, CodecError};
use cmpp_gateway::session::{ConnectOutcome, LinkEvent};
use cmpp_gateway::simulator::{
    self, Account, Behaviour, Counters, MoRequest, SimulatorConfig, SimulatorHandle,
};
use cmpp_gateway::text::{Concat, Decoded, decode_text, parse_udh, write_udh};

use crate::common::link;
use crate::common::wait::until;

/// Upper bound for anything that should happen "at once".
const SOON: Duration = Duration::from_secs(3);

fn accounts() -> Vec<Account> {
    vec![
        Account::new("900001", "888888", Version::V30),
        Account::new("900002", "222222", Version::V20),
    ]
}

async fn start(behaviour: Behaviour) -> SimulatorHandle {
    start_with(SimulatorConfig {
        behaviour,
        ..SimulatorConfig::default()
    })
    .await
}

async fn start_with(config: SimulatorConfig) -> SimulatorHandle {
    simulator::start(SimulatorConfig {
        accounts: accounts(),
        ..config
    })
    .await
    .expect("simulator starts")
}

/// Sends CONNECT on a raw socket and reads the CONNECT_RESP by hand, to see its Total_Length.
async fn raw_login(
    addr: SocketAddr,
    sp_id: &str,
    secret: &str,
    client_version: Version,
    resp_version: Version,
) -> (TcpStream, Connect, u32, ConnectResp) {
    raw_login_byte(addr, sp_id, secret, client_version.byte(), resp_version).await
}

/// [`raw_login`] with any CONNECT Version byte (0x21 is CMPP 2.1; the byte is not hashed).
async fn raw_login_byte(
    addr: SocketAddr,
    sp_id: &str,
    secret: &str,
    version_byte: u8,
    resp_version: Version,
) -> (TcpStream, Connect, u32, ConnectResp) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut connect = Connect::new(sp_id, secret.as_bytes(), Version::V30, 1_021_080_510).unwrap();
    connect.version = version_byte;
    // CONNECT has one layout in every version.
    let bytes = Packet::new(1, Pdu::Connect(connect.clone()))
        .to_bytes(Version::V30)
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(SOON, stream.read_exact(&mut len))
        .await
        .expect("CONNECT_RESP in time")
        .unwrap();
    let total = u32::from_be_bytes(len);
    let mut frame = len.to_vec();
    frame.resize(total as usize, 0);
    stream.read_exact(&mut frame[4..]).await.unwrap();
    let packet = Packet::decode(resp_version, &frame).unwrap();
    assert_eq!(packet.sequence_id, 1, "CONNECT_RESP echoes the Sequence_Id");
    let Pdu::ConnectResp(resp) = packet.pdu else {
        panic!("expected CONNECT_RESP, got {:?}", packet.pdu)
    };
    (stream, connect, total, resp)
}

/// Whether the server closed the socket (EOF or reset) within `SOON`, skipping nothing.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(SOON, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Asserts a successful login's CONNECT_RESP: its Total_Length and Version byte, Status 0, and
/// the AuthenticatorISMG for `secret` as `layout` hashes it (the Status is 1 byte in 2.0).
fn assert_logged_in(
    (total, connect, resp): (u32, &Connect, &ConnectResp),
    (want_total, want_version): (u32, u8),
    layout: Version,
    secret: &[u8],
) {
    assert_eq!(
        (total, resp.status, resp.version),
        (want_total, 0, want_version)
    );
    assert_eq!(
        resp.authenticator_ismg,
        authenticator_ismg(layout, 0, &connect.authenticator_source, secret)
    );
}

struct Client {
    link: Framed<TcpStream, CmppCodec>,
    seq: u32,
}

impl Client {
    async fn login(addr: SocketAddr, sp_id: &str, secret: &str, version: Version) -> Client {
        let (stream, _, _, resp) = raw_login(addr, sp_id, secret, version, version).await;
        assert_eq!(resp.status, 0, "login of {sp_id}");
        Client {
            link: Framed::new(stream, CmppCodec::new(version)),
            seq: 100,
        }
    }

    async fn v30(sim: &SimulatorHandle) -> Client {
        Client::login(sim.addr(), "900001", "888888", Version::V30).await
    }

    async fn send(&mut self, pdu: Pdu) -> u32 {
        self.seq += 1;
        self.link.send(Packet::new(self.seq, pdu)).await.unwrap();
        self.seq
    }

    async fn reply(&mut self, sequence_id: u32, pdu: Pdu) {
        self.link.send(Packet::new(sequence_id, pdu)).await.unwrap();
    }

    /// The next PDU, or None when nothing arrives within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Result<Packet, CodecError>> {
        tokio::time::timeout(wait, self.link.next())
            .await
            .ok()
            .flatten()
    }

    async fn recv(&mut self) -> Packet {
        match self.next_within(SOON).await {
            Some(Ok(p)) => p,
            other => panic!("expected a PDU, got {other:?}"),
        }
    }

    async fn submit_resp(&mut self) -> (u32, SubmitResp) {
        let p = self.recv().await;
        match p.pdu {
            Pdu::SubmitResp(r) => (p.sequence_id, r),
            other => panic!("expected SUBMIT_RESP, got {other:?}"),
        }
    }

    async fn deliver(&mut self) -> (u32, Deliver) {
        let p = self.recv().await;
        match p.pdu {
            Pdu::Deliver(d) => (p.sequence_id, d),
            other => panic!("expected DELIVER, got {other:?}"),
        }
    }

    async fn ack(&mut self, sequence_id: u32, d: &Deliver, result: u32) {
        let resp = DeliverResp {
            msg_id: d.msg_id,
            result,
        };
        self.reply(sequence_id, Pdu::DeliverResp(resp)).await;
    }

    /// True when the connection ends (EOF or error) within `SOON` with no PDU before it.
    async fn closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(SOON, self.link.next()).await,
            Ok(None) | Ok(Some(Err(CodecError::Io(_))))
        )
    }
}

fn submit(dests: &[&str], registered_delivery: u8) -> Pdu {
    Pdu::Submit(Submit {
        pk_total: 1,
        pk_number: 1,
        registered_delivery,
        service_id: "TEST".into(),
        msg_src: "900001".into(),
        fee_type: "01".into(),
        src_id: "106900001".into(),
        dest_terminal_ids: dests.iter().map(|d| d.to_string()).collect(),
        msg_content: b"hello".to_vec(),
        ..Submit::default()
    })
}

/// Waits until the counters satisfy `ok`.
async fn eventually(sim: &SimulatorHandle, ok: impl Fn(&Counters) -> bool) -> Counters {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let c = sim.counters();
        if ok(&c) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counters never got there: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn login_answers_in_the_account_version() {
    let sim = start(Behaviour::default()).await;
    let (_s, connect, total, resp) =
        raw_login(sim.addr(), "900001", "888888", Version::V30, Version::V30).await;
    assert_logged_in(
        (total, &connect, &resp),
        (33, 0x30),
        Version::V30,
        b"888888",
    );

    let (stream, connect, total, resp) =
        raw_login(sim.addr(), "900002", "222222", Version::V20, Version::V20).await;
    assert_logged_in(
        (total, &connect, &resp),
        (30, 0x20),
        Version::V20,
        b"222222",
    );
    a_2_0_session_submits_and_gets_its_report(&sim, stream).await;
    assert_eq!(sim.counters().logins_ok, 2);
}

#[tokio::test]
async fn refused_logins_get_their_status_and_the_close() {
    let sim = start(Behaviour::default()).await;
    // (SP, secret, client version, Status, CONNECT_RESP length, its Version byte). A refusal is
    // written in the layout the client announced, so that it can read the Status.
    let cases = [
        ("900009", "888888", Version::V30, 2, 33, 0x30),
        ("900009", "888888", Version::V20, 2, 30, 0x20),
        ("900001", "wrong", Version::V30, 3, 33, 0x30),
        // A 3.0 client on a 2.0 account: version too high; Version says what the account speaks.
        ("900002", "222222", Version::V30, 4, 33, 0x20),
    ];
    for (sp, secret, client, status, len, version) in cases {
        let (mut stream, _, total, resp) = raw_login(sim.addr(), sp, secret, client, client).await;
        assert_eq!(
            (resp.status, total, resp.version),
            (status, len, version),
            "{sp}/{secret}/{client}"
        );
        assert_eq!(resp.authenticator_ismg, [0; 16]);
        assert!(closed(&mut stream).await, "closed after status {status}");
    }
    let c = sim.counters();
    assert_eq!(
        (
            c.login_failed_bad_addr,
            c.login_failed_auth,
            c.login_failed_version,
            c.logins_ok
        ),
        (2, 1, 1, 0)
    );
}

/// After a login answered in the 2.0 layout, the session speaks 2.0: a 21-byte SUBMIT_RESP and
/// a report in a 2.0 DELIVER with the 60-byte body, acknowledged before this returns.
async fn a_2_0_session_submits_and_gets_its_report(sim: &SimulatorHandle, stream: TcpStream) {
    let mut v20 = Client {
        link: Framed::new(stream, CmppCodec::new(Version::V20)),
        seq: 0,
    };
    let seq = v20.send(submit(&["13800138000"], 1)).await;
    let (resp_seq, resp) = v20.submit_resp().await;
    assert_eq!((resp_seq, resp.result), (seq, 0));
    let (deliver_seq, report) = v20.deliver().await;
    assert_eq!(report.msg_content.len(), 60);
    assert_eq!(report.report().unwrap().unwrap().msg_id, resp.msg_id);
    let acked = sim.counters().reports_acked;
    v20.ack(deliver_seq, &report, 0).await;
    eventually(sim, |c| c.reports_acked > acked).await;
}

/// Any 2.x Version byte (0x21 is CMPP 2.1, as gocmpp's and pycmpp's 2.x clients announce it)
/// logs in to a 2.0 account, and a 2.x client on a 3.0 account gets a 2.0 session: the layout
/// it reads, Version 0x30 (the highest the ISMG speaks), 60-byte reports although the account's
/// are 71.
#[tokio::test]
async fn every_2x_client_gets_a_2_0_session() {
    let sim = start(Behaviour::default()).await;
    let cases = [
        ("900002", "222222", 0x21, 0x20),
        ("900001", "888888", 0x20, 0x30),
        ("900001", "888888", 0x21, 0x30),
    ];
    for (sp, secret, byte, answered) in cases {
        let (stream, connect, total, resp) =
            raw_login_byte(sim.addr(), sp, secret, byte, Version::V20).await;
        assert_logged_in(
            (total, &connect, &resp),
            (30, answered),
            Version::V20,
            secret.as_bytes(),
        );
        a_2_0_session_submits_and_gets_its_report(&sim, stream).await;
    }
    let c = sim.counters();
    assert_eq!((c.logins_ok, c.login_failed_version), (3, 0));
}

#[tokio::test]
async fn answer_v20_answers_a_3_0_client_in_the_2_0_layout() {
    let sim = start(Behaviour {
        answer_v20: true,
        ..Behaviour::default()
    })
    .await;
    let (stream, connect, total, resp) =
        raw_login(sim.addr(), "900001", "888888", Version::V30, Version::V20).await;
    assert_logged_in(
        (total, &connect, &resp),
        (30, 0x20),
        Version::V20,
        b"888888",
    );
    // A 2.0-only ISMG goes on in 2.0.
    a_2_0_session_submits_and_gets_its_report(&sim, stream).await;
    // Refusals too: a wrong secret gets Status 3 in 30 bytes.
    let (mut stream, _, total, resp) =
        raw_login(sim.addr(), "900001", "wrong", Version::V30, Version::V20).await;
    assert_eq!((total, resp.status, resp.version), (30, 3, 0x20));
    assert!(closed(&mut stream).await);
}

#[tokio::test]
async fn answer_v20_is_set_by_the_control_route() {
    let sim = start_with(SimulatorConfig {
        control: Some("127.0.0.1:0".parse().unwrap()),
        ..SimulatorConfig::default()
    })
    .await;
    let control = sim.control_addr().unwrap();
    let (status, _) = http(control, "PATCH", "/behaviour", r#"{"answer_v20":true}"#).await;
    assert_eq!(status, 200);
    let (_, behaviour) = http(control, "GET", "/behaviour", "").await;
    assert_eq!(behaviour["answer_v20"], true);
    let (_, _, total, _) =
        raw_login(sim.addr(), "900001", "888888", Version::V30, Version::V20).await;
    assert_eq!(total, 30);
}

#[tokio::test]
async fn nothing_but_connect_is_accepted_first() {
    let sim = start(Behaviour::default()).await;
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    let bytes = Packet::new(1, Pdu::ActiveTest)
        .to_bytes(Version::V30)
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    assert!(closed(&mut stream).await);
    assert_eq!(sim.counters().heartbeats_answered, 0);
}

#[tokio::test]
async fn msg_ids_are_unique_and_carry_gateway_code_and_time() {
    let sim = start_with(SimulatorConfig {
        gateway_code: 4242,
        ..SimulatorConfig::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    let mut taken = HashSet::new();
    for i in 0..40 {
        let dests: &[&str] = if i % 4 == 0 {
            &["13800000001", "13800000002", "13800000003"]
        } else {
            &["13800000001"]
        };
        let seq = client.send(submit(dests, 0)).await;
        let (resp_seq, resp) = client.submit_resp().await;
        assert_eq!((resp_seq, resp.result), (seq, 0));
        // Recipient k of this submit owns Msg_Id + k: none of them may be anyone else's.
        for k in 0..dests.len() as u64 {
            assert!(taken.insert(resp.msg_id.0 + k), "Msg_Id reused");
        }
        let parts = resp.msg_id.unpack();
        assert_eq!(parts.gateway, 4242);
        let now = ChinaTime::now();
        assert_eq!((parts.month, parts.day), (now.month, now.day));
        let minutes = |h: u8, m: u8| i32::from(h) * 60 + i32::from(m);
        let skew = minutes(parts.hour, parts.minute) - minutes(now.hour, now.minute);
        assert!(skew.abs() <= 1, "Msg_Id time {parts:?} is not now");
    }
    assert_eq!(sim.counters().submits_accepted, 40);
}

#[tokio::test]
async fn repeat_msg_id_gives_every_submit_the_same_msg_id_and_reports_it() {
    let sim = start(Behaviour {
        repeat_msg_id: true,
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        client.send(submit(&["13800000001"], 1)).await;
        let (_, resp) = client.submit_resp().await;
        ids.push(resp.msg_id);
        let (seq, d) = client.deliver().await;
        assert_eq!(d.report().unwrap().unwrap().msg_id, resp.msg_id);
        client.ack(seq, &d, 0).await;
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

#[tokio::test]
async fn reports_carry_the_submit_msg_ids_and_the_configured_stat() {
    let sim = start(Behaviour {
        stat_mix: vec![("UNDELIV".into(), 1)],
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    client
        .send(submit(&["13800000001", "13800000002"], 1))
        .await;
    let (_, resp) = client.submit_resp().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (seq, d) = client.deliver().await;
        assert_eq!(d.registered_delivery, 1);
        assert_eq!(
            d.dest_id, "106900001",
            "report Dest_Id is the submit's Src_Id"
        );
        assert_eq!(d.msg_content.len(), 71, "spec layout by default");
        assert_ne!(d.msg_id, resp.msg_id, "a report has its own DELIVER Msg_Id");
        let r: StatusReport = d.report().unwrap().unwrap();
        assert_eq!(r.stat, "UNDELIV");
        assert_eq!(r.dest_terminal_id, d.src_terminal_id);
        seen.push((r.msg_id, r.dest_terminal_id));
        client.ack(seq, &d, 0).await;
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            (resp.msg_id, "13800000001".to_owned()),
            (MsgId(resp.msg_id.0 + 1), "13800000002".to_owned())
        ]
    );
    eventually(&sim, |c| c.reports_acked == 2 && c.reports_queued == 2).await;
}

#[tokio::test]
async fn compact_reports_on_request() {
    let sim = start(Behaviour {
        report_layout: ReportLayout::Compact60,
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    client.send(submit(&["13800000001"], 1)).await;
    let (_, resp) = client.submit_resp().await;
    let (_, d) = client.deliver().await;
    assert_eq!(d.msg_content.len(), 60);
    assert_eq!(d.report().unwrap().unwrap().msg_id, resp.msg_id);
}

#[tokio::test]
async fn reports_wait_for_report_delay() {
    let sim = start(Behaviour {
        report_delay: Duration::from_millis(300),
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    client.send(submit(&["13800000001"], 1)).await;
    client.submit_resp().await;
    assert!(
        client
            .next_within(Duration::from_millis(150))
            .await
            .is_none()
    );
    let (_, d) = client.deliver().await;
    assert!(d.is_report());
}

#[tokio::test]
async fn unacknowledged_reports_are_redelivered_with_the_same_msg_id() {
    let sim = start(Behaviour {
        deliver_retry: Duration::from_millis(150),
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    client.send(submit(&["13800000001"], 1)).await;
    client.submit_resp().await;
    // 1st: no answer at all. 2nd: answered with an error. 3rd: acknowledged.
    let (seq1, first) = client.deliver().await;
    let (seq2, second) = client.deliver().await;
    assert_eq!(second.msg_id, first.msg_id);
    assert_ne!(seq2, seq1, "a resend has a new Sequence_Id");
    client.ack(seq2, &second, 1).await;
    let (seq3, third) = client.deliver().await;
    assert_eq!(
        (third.msg_id, &third.msg_content),
        (first.msg_id, &first.msg_content)
    );
    client.ack(seq3, &third, 0).await;
    assert!(
        client
            .next_within(Duration::from_millis(400))
            .await
            .is_none()
    );
    let c = eventually(&sim, |c| c.reports_acked == 1).await;
    assert_eq!(
        (c.reports_sent, c.delivers_resent, c.deliver_resp_nonzero),
        (1, 2, 1)
    );
}

#[tokio::test]
async fn delivers_in_flight_move_to_the_next_connection() {
    let sim = start(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    client.send(submit(&["13800000001"], 1)).await;
    client.submit_resp().await;
    let (_, lost) = client.deliver().await;
    assert_eq!(sim.disconnect_all(), 1);
    assert!(client.closed().await);
    // deliver_retry is 5 s; the new connection gets it at once.
    let mut again = Client::v30(&sim).await;
    let (seq, d) = again.deliver().await;
    assert_eq!(d.msg_id, lost.msg_id);
    again.ack(seq, &d, 0).await;
    let c = eventually(&sim, |c| c.reports_acked == 1).await;
    assert_eq!((c.disconnects_injected, c.delivers_resent), (1, 1));
}

#[tokio::test]
async fn long_mo_arrives_shuffled_with_udhi_0x40_and_reassembles() {
    let sim = start(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    let text = "中国移动短信网关模拟器测试".repeat(12);
    let parts = sim
        .send_mo(MoRequest {
            from: "13900000000".into(),
            to: "10690000123".into(),
            text: text.clone(),
            coding: Some("ucs2".into()),
            shuffle: true,
            udhi_0x40: true,
            link_id: Some("LINK1".into()),
            ..MoRequest::default()
        })
        .unwrap();
    assert!(parts >= 3, "{parts} parts");
    let mut received = Vec::new();
    for _ in 0..parts {
        let (seq, d) = client.deliver().await;
        assert_eq!((d.registered_delivery, d.tp_udhi, d.msg_fmt), (0, 0x40, 8));
        assert_eq!(
            (d.src_terminal_id.as_str(), d.dest_id.as_str()),
            ("13900000000", "10690000123")
        );
        assert_eq!(d.link_id, "LINK1");
        let (concat, payload) = parse_udh(d.tp_udhi, &d.msg_content).unwrap();
        let concat = concat.expect("every part has a concatenation UDH");
        assert_eq!(usize::from(concat.total), parts);
        received.push((concat.number, payload.to_vec()));
        client.ack(seq, &d, 0).await;
    }
    let order: Vec<u8> = received.iter().map(|(n, _)| *n).collect();
    assert!(
        !order.windows(2).all(|w| w[0] < w[1]),
        "parts came in order {order:?}"
    );
    received.sort();
    let bytes: Vec<u8> = received.into_iter().flat_map(|(_, p)| p).collect();
    assert_eq!(decode_text(8, &bytes), Decoded::Text(text));
    eventually(&sim, |c| {
        c.mo_acked == parts as u64 && c.mo_queued == parts as u64
    })
    .await;
}

#[tokio::test]
async fn window_violations_get_result_8() {
    let sim = start(Behaviour {
        window: 2,
        response_delay: Duration::from_millis(200),
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(client.send(submit(&["13800000001"], 0)).await);
    }
    let mut results = Vec::new();
    for _ in 0..3 {
        let (seq, resp) = client.submit_resp().await;
        results.push((seq, resp.result));
    }
    results.sort();
    assert_eq!(results, [(seqs[0], 0), (seqs[1], 0), (seqs[2], 8)]);
    let c = sim.counters();
    assert_eq!(
        (c.window_violations, c.flow_control_sent, c.max_unanswered),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn flow_control_ratio_one_refuses_everything() {
    let sim = start(Behaviour {
        flow_control_ratio: 1.0,
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    for _ in 0..5 {
        client.send(submit(&["13800000001"], 1)).await;
        let (_, resp) = client.submit_resp().await;
        assert_eq!((resp.result, resp.msg_id), (8, MsgId(0)));
    }
    let c = sim.counters();
    assert_eq!(
        (c.flow_control_sent, c.submits_accepted, c.reports_queued),
        (5, 0, 0)
    );
}

#[tokio::test]
async fn dropped_responses_never_arrive_but_reports_do() {
    let sim = start_with(SimulatorConfig {
        behaviour: Behaviour {
            drop_response_ratio: 1.0,
            ..Behaviour::default()
        },
        record_submits: true,
        ..SimulatorConfig::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    let seq = client.send(submit(&["13800000001"], 1)).await;
    // The only thing that arrives is the report; no SUBMIT_RESP.
    let (_, d) = client.deliver().await;
    assert!(
        client
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
    let recorded = sim.recorded_submits();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(
        (r.sequence_id, r.msg_id, r.response_dropped),
        (seq, None, true)
    );
    assert_eq!(
        Some(d.report().unwrap().unwrap().msg_id.0),
        r.assigned_msg_id
    );
    assert_eq!(sim.counters().submit_resp_dropped, 1);
}

#[tokio::test]
async fn close_after_pdus_closes_without_answering_the_last() {
    let sim = start(Behaviour {
        close_after_pdus: 3,
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await; // PDU 1
    client.send(submit(&["13800000001"], 0)).await; // PDU 2: answered
    client.submit_resp().await;
    client.send(submit(&["13800000001"], 0)).await; // PDU 3: the close
    assert!(client.closed().await);
    let c = eventually(&sim, |c| c.connections_open == 0).await;
    assert_eq!(
        (c.submits_received, c.disconnects_injected, c.pdus_received),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn heartbeats_are_answered_until_told_otherwise() {
    let sim = start(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    let seq = client.send(Pdu::ActiveTest).await;
    let p = client.recv().await;
    assert_eq!(p.sequence_id, seq);
    assert!(matches!(p.pdu, Pdu::ActiveTestResp(_)));
    // Takes effect on the live connection.
    sim.set_behaviour(Behaviour {
        ignore_heartbeats: true,
        ..Behaviour::default()
    })
    .unwrap();
    client.send(Pdu::ActiveTest).await;
    assert!(
        client
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
    let c = sim.counters();
    assert_eq!(
        (
            c.heartbeats_received,
            c.heartbeats_answered,
            c.heartbeats_ignored
        ),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn idle_clients_get_active_test() {
    let sim = start(Behaviour {
        heartbeat_interval: Duration::from_millis(100),
        ..Behaviour::default()
    })
    .await;
    let mut client = Client::v30(&sim).await;
    let p = client.recv().await;
    assert_eq!(p.pdu, Pdu::ActiveTest);
    assert_eq!(sim.counters().heartbeats_sent, 1);
}

#[tokio::test]
async fn injected_malformed_pdu_breaks_the_client_codec() {
    let sim = start(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    assert_eq!(sim.inject_malformed(), 1);
    match client.next_within(SOON).await {
        Some(Err(CodecError::Malformed { .. })) => {}
        other => panic!("expected a malformed frame, got {other:?}"),
    }
    assert_eq!(sim.counters().malformed_sent, 1);
}

#[tokio::test]
async fn terminate_all_sends_terminate_and_closes_on_the_answer() {
    let sim = start(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    assert_eq!(sim.terminate_all(), 1);
    let p = client.recv().await;
    assert_eq!(p.pdu, Pdu::Terminate);
    client.reply(p.sequence_id, Pdu::TerminateResp).await;
    assert!(client.closed().await);
    assert_eq!(sim.counters().terminates_sent, 1);
}

#[tokio::test]
async fn client_terminate_is_answered() {
    let sim = start(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    let seq = client.send(Pdu::Terminate).await;
    let p = client.recv().await;
    assert_eq!((p.sequence_id, p.pdu), (seq, Pdu::TerminateResp));
    assert!(client.closed().await);
    assert_eq!(sim.counters().terminates_received, 1);
}

/// A minimal HTTP/1.1 exchange: status code and JSON body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(SOON, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn control_interface_reports_and_steers() {
    let sim = start_with(SimulatorConfig {
        control: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SimulatorConfig::default()
    })
    .await;
    let control = sim.control_addr().unwrap();
    let mut client = Client::v30(&sim).await;

    let (status, stats) = http(control, "GET", "/stats", "").await;
    assert_eq!((status, stats["logins_ok"].as_u64()), (200, Some(1)));

    let mo = r#"{"from":"13900000000","to":"1069","text":"hello"}"#;
    let (status, body) = http(control, "POST", "/mo", mo).await;
    assert_eq!((status, body["parts"].as_u64()), (200, Some(1)));
    let (_, d) = client.deliver().await;
    assert_eq!((d.msg_content.as_slice(), d.msg_fmt), (&b"hello"[..], 0));

    let (status, body) = http(control, "POST", "/mo", "{not json").await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string());

    let (status, body) = http(control, "PUT", "/behaviour", r#"{"window": 4}"#).await;
    assert_eq!((status, body["window"].as_u64()), (200, Some(4)));
    assert_eq!(sim.behaviour().window, 4);
    // PATCH keeps what it does not name; PUT above reset everything else to defaults.
    let (status, body) = http(control, "PATCH", "/behaviour", r#"{"report_delay": "5ms"}"#).await;
    assert_eq!((status, body["window"].as_u64()), (200, Some(4)));
    assert_eq!(sim.behaviour().report_delay, Duration::from_millis(5));
    let (status, _) = http(control, "PUT", "/behaviour", r#"{"flow_control_ratio": 3}"#).await;
    assert_eq!(status, 400);

    let report = r#"{"msg_id": 12345, "destination": "13800000009", "stat": "EXPIRED"}"#;
    let (status, _) = http(control, "POST", "/report", report).await;
    assert_eq!(status, 200);
    let (seq, d) = client.deliver().await;
    let r = d.report().unwrap().unwrap();
    assert_eq!((r.msg_id, r.stat.as_str()), (MsgId(12345), "EXPIRED"));
    client.ack(seq, &d, 0).await;

    let (status, body) = http(control, "POST", "/faults/terminate", "").await;
    assert_eq!((status, body["connections"].as_u64()), (200, Some(1)));
    assert_eq!(client.recv().await.pdu, Pdu::Terminate);

    let (status, _) = http(control, "GET", "/submits", "").await;
    assert_eq!(status, 404, "not recording");
    let (status, _) = http(control, "GET", "/nowhere", "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn shutdown_closes_connections_and_returns_counters() {
    let sim = start(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    client.send(submit(&["13800000001"], 0)).await;
    client.submit_resp().await;
    let addr = sim.addr();
    let counters = sim.shutdown().await;
    assert_eq!(
        (counters.submits_accepted, counters.connections_open),
        (1, 0)
    );
    assert!(client.closed().await);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

// Per-account limits, per-connection counters and concatenation references.

/// A simulator with its control interface and `behaviour`.
async fn start_controlled(behaviour: Behaviour) -> (SimulatorHandle, SocketAddr) {
    let sim = start_with(SimulatorConfig {
        behaviour,
        control: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SimulatorConfig::default()
    })
    .await;
    let control = sim.control_addr().unwrap();
    (sim, control)
}

async fn stats_json(control: SocketAddr) -> Value {
    let (status, stats) = http(control, "GET", "/stats", "").await;
    assert_eq!(status, 200);
    stats
}

/// Waits until account `sp_id` has `live` logged-in connections.
async fn until_live(sim: &SimulatorHandle, sp_id: &str, live: u64) {
    until(&format!("{sp_id} has {live} live"), SOON, || async {
        let seen = sim.stats().accounts[sp_id].connections_live;
        if seen == live {
            Ok(())
        } else {
            Err(format!("{seen} live"))
        }
    })
    .await;
}

#[tokio::test]
async fn max_connections_refuses_with_status_5_until_a_connection_closes() {
    let (sim, control) = start_controlled(Behaviour {
        max_connections: 2,
        ..Behaviour::default()
    })
    .await;
    let mut first = Client::v30(&sim).await;
    let second = Client::v30(&sim).await;
    let (mut refused, _, total, resp) =
        raw_login(sim.addr(), "900001", "888888", Version::V30, Version::V30).await;
    assert_eq!((resp.status, total, resp.version), (5, 33, 0x30));
    assert_eq!(resp.authenticator_ismg, [0; 16]);
    assert!(closed(&mut refused).await, "closed after Status 5");
    // The limit is per account: another account still logs in.
    let _other = Client::login(sim.addr(), "900002", "222222", Version::V20).await;

    // Closed by TERMINATE: the slot is free by the time TERMINATE_RESP arrives.
    let seq = first.send(Pdu::Terminate).await;
    assert_eq!(first.recv().await.pdu, Pdu::TerminateResp, "seq {seq}");
    let mut third = Client::v30(&sim).await;

    // Reset by the client (RST): the slot comes back once the simulator notices.
    second.link.get_ref().set_zero_linger().unwrap();
    drop(second);
    until_live(&sim, "900001", 1).await;
    let _fourth = Client::v30(&sim).await;

    // Closed by the simulator on a malformed PDU from the client.
    let malformed = [0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 0];
    third.link.get_mut().write_all(&malformed).await.unwrap();
    assert!(third.closed().await);
    until_live(&sim, "900001", 1).await;
    let _fifth = Client::v30(&sim).await;
    let (_, _, _, resp) =
        raw_login(sim.addr(), "900001", "888888", Version::V30, Version::V30).await;
    assert_eq!(resp.status, 5);

    let stats = stats_json(control).await;
    assert_eq!(stats["logins_refused_max_connections"], 2);
    assert_eq!(stats["logins_ok"], 6);
    assert_eq!(
        stats["login_failed_version"], 0,
        "Status 5 is not a version failure"
    );
    assert_eq!(
        (
            stats["connections_live"].as_u64(),
            stats["connections_peak"].as_u64()
        ),
        (Some(3), Some(3))
    );
    let account = &stats["accounts"]["900001"];
    assert_eq!(
        (
            account["connections_live"].as_u64(),
            account["connections_peak"].as_u64(),
            account["logins_refused_max_connections"].as_u64()
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(stats["accounts"]["900002"]["connections_live"], 1);
}

/// Eight logins at once on a multi-threaded runtime for four slots: exactly four get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_get_exactly_the_free_slots() {
    let sim = start(Behaviour {
        max_connections: 4,
        ..Behaviour::default()
    })
    .await;
    let addr = sim.addr();
    let logins: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                let (stream, _, _, resp) =
                    raw_login(addr, "900001", "888888", Version::V30, Version::V30).await;
                (stream, resp.status)
            })
        })
        .collect();
    let mut kept = Vec::new();
    let mut statuses = Vec::new();
    for login in logins {
        let (stream, status) = login.await.unwrap();
        statuses.push(status);
        kept.push(stream);
    }
    statuses.sort();
    assert_eq!(statuses, [0, 0, 0, 0, 5, 5, 5, 5]);
    let stats = sim.stats();
    let account = &stats.accounts["900001"];
    assert_eq!(
        (
            account.connections_live,
            account.connections_peak,
            account.logins_refused_max_connections
        ),
        (4, 4, 4)
    );
    assert_eq!(
        (stats.counters.logins_ok, stats.counters.connections_peak),
        (4, 4)
    );
    assert_eq!(stats.live_connections().count(), 4);
}

/// The gateway's link, refused with Status 5 while another holds the only slot, keeps trying
/// and comes up once the slot is free.
#[tokio::test]
async fn a_link_refused_for_max_connections_gets_in_when_a_slot_frees() {
    let sim = start(Behaviour {
        max_connections: 1,
        ..Behaviour::default()
    })
    .await;
    let holder = link::spawn_up(link::config(&sim)).await;
    let waiting = link::spawn(link::config(&sim));
    let refused = |e: &LinkEvent| {
        matches!(
            e,
            LinkEvent::ConnectAttempt {
                outcome: ConnectOutcome::Refused(5)
            }
        )
    };
    until("the second link is refused", SOON, || async {
        match waiting.events.count(refused) {
            0 => Err("no refusal yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
    holder.close().await;
    let up = tokio::time::timeout(Duration::from_secs(10), waiting.link().wait_up()).await;
    assert_eq!(up, Ok(true), "{:?}", waiting.link().status());
    assert!(sim.counters().logins_refused_max_connections >= 1);
    waiting.close().await;
}

#[tokio::test]
async fn stats_list_each_connection_with_its_counters() {
    let (sim, control) = start_controlled(Behaviour::default()).await;
    let mut a = Client::v30(&sim).await;
    let mut b = Client::login(sim.addr(), "900002", "222222", Version::V20).await;
    let a_peer = a.link.get_ref().local_addr().unwrap().to_string();
    let b_peer = b.link.get_ref().local_addr().unwrap().to_string();
    for _ in 0..2 {
        a.send(submit(&["13800000001"], 0)).await;
        assert_eq!(a.submit_resp().await.1.result, 0);
    }
    sim.set_behaviour(Behaviour {
        flow_control_ratio: 1.0,
        ..Behaviour::default()
    })
    .unwrap();
    a.send(submit(&["13800000001"], 0)).await;
    assert_eq!(a.submit_resp().await.1.result, 8);
    sim.send_mo(MoRequest {
        sp_id: Some("900002".into()),
        from: "13900000000".into(),
        to: "1069".into(),
        text: "hi".into(),
        ..MoRequest::default()
    })
    .unwrap();
    let (seq, d) = b.deliver().await;
    b.ack(seq, &d, 0).await;
    b.send(Pdu::Terminate).await;
    assert_eq!(b.recv().await.pdu, Pdu::TerminateResp);
    assert!(b.closed().await);

    let stats = stats_json(control).await;
    let connections = stats["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2, "{connections:?}");
    let (live, closed) = (&connections[0], &connections[1]);
    assert_eq!(
        (
            live["sp_id"].as_str(),
            live["version"].as_str(),
            live["peer"].as_str(),
            live["closed"].as_bool(),
            live["closed_at"].is_null()
        ),
        (
            Some("900001"),
            Some("3.0"),
            Some(a_peer.as_str()),
            Some(false),
            true
        )
    );
    assert_eq!(
        (
            live["submits_received"].as_u64(),
            live["flow_control_sent"].as_u64(),
            live["delivers_sent"].as_u64()
        ),
        (Some(3), Some(1), Some(0))
    );
    humantime::parse_rfc3339(live["logged_in_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            closed["sp_id"].as_str(),
            closed["version"].as_str(),
            closed["peer"].as_str(),
            closed["closed"].as_bool()
        ),
        (
            Some("900002"),
            Some("2.0"),
            Some(b_peer.as_str()),
            Some(true)
        )
    );
    assert_eq!(
        (
            closed["submits_received"].as_u64(),
            closed["delivers_sent"].as_u64()
        ),
        (Some(0), Some(1))
    );
    humantime::parse_rfc3339(closed["closed_at"].as_str().unwrap()).unwrap();
    assert!(live["id"].as_u64() < closed["id"].as_u64());

    // The rate: the three submits show in the last full second once it is over, and the rate
    // falls back to 0 while the connection is idle.
    let id = live["id"].as_u64().unwrap();
    let rate = |sim: &SimulatorHandle| {
        sim.stats()
            .connection(id)
            .map(|c| c.submits_last_second)
            .unwrap_or_default()
    };
    until("a rate shows", SOON, || async {
        match rate(&sim) {
            0 => Err("0 per second".to_owned()),
            n => Ok(n),
        }
    })
    .await;
    until("the rate falls back to 0", SOON, || async {
        match rate(&sim) {
            0 => Ok(()),
            n => Err(format!("{n} per second")),
        }
    })
    .await;
}

/// flow_control_above_rate counts per connection: two connections, each below the rate and
/// together above it, get no Result 8; a third, alone above it, does.
#[tokio::test]
async fn flow_control_above_rate_is_per_connection() {
    const RATE: u32 = 10;
    let sim = start(Behaviour {
        flow_control_above_rate: RATE,
        ..Behaviour::default()
    })
    .await;
    let mut a = Client::v30(&sim).await;
    let mut b = Client::v30(&sim).await;
    for _ in 0..RATE - 2 {
        a.send(submit(&["13800000001"], 0)).await;
        b.send(submit(&["13800000002"], 0)).await;
    }
    for client in [&mut a, &mut b] {
        for _ in 0..RATE - 2 {
            assert_eq!(client.submit_resp().await.1.result, 0);
        }
    }
    let mut c = Client::v30(&sim).await;
    for _ in 0..3 * RATE {
        c.send(submit(&["13800000003"], 0)).await;
    }
    let mut refused = 0;
    for _ in 0..3 * RATE {
        if c.submit_resp().await.1.result == 8 {
            refused += 1;
        }
    }
    // 30 submits sent at once fall in one or two one-second windows: at most 20 get through.
    assert!(refused >= RATE, "{refused} refused");
    let stats = sim.stats();
    let per_connection: Vec<(u64, u64)> = stats
        .live_connections()
        .map(|c| (c.submits_received, c.flow_control_sent))
        .collect();
    assert_eq!(
        per_connection,
        [
            (u64::from(RATE - 2), 0),
            (u64::from(RATE - 2), 0),
            (u64::from(3 * RATE), u64::from(refused))
        ]
    );
    assert_eq!(stats.counters.flow_control_sent, u64::from(refused));
}

/// A concatenated SUBMIT: part `number` of `total` under `reference`, then `payload`.
fn part(dest: &str, reference: u16, wide: bool, (total, number): (u8, u8), payload: &[u8]) -> Pdu {
    let mut content = Vec::new();
    write_udh(
        &Concat {
            reference,
            wide_reference: wide,
            total,
            number,
        },
        &mut content,
    );
    content.extend_from_slice(payload);
    let Pdu::Submit(plain) = submit(&[dest], 0) else {
        unreachable!()
    };
    Pdu::Submit(Submit {
        pk_total: total,
        pk_number: number,
        tp_udhi: 1,
        msg_fmt: 8,
        msg_content: content,
        ..plain
    })
}

#[tokio::test]
async fn udh_reference_collisions_are_counted_and_resends_are_not() {
    let (sim, control) = start_controlled(Behaviour::default()).await;
    let mut client = Client::v30(&sim).await;
    let mut send = async |pdu: Pdu| {
        client.send(pdu).await;
        client.submit_resp().await.1.result
    };
    let (x, y) = ("13800000001", "13800000002");
    // Message A in two parts, its first part sent again: no collision.
    assert_eq!(send(part(x, 7, false, (2, 1), b"A one")).await, 0);
    assert_eq!(send(part(x, 7, false, (2, 2), b"A two")).await, 0);
    assert_eq!(send(part(x, 7, false, (2, 1), b"A one")).await, 0);
    let c = sim.counters();
    assert_eq!((c.concatenated_parts, c.udh_reference_collisions), (3, 0));
    // Message B to the same recipient under the same reference: one collision.
    assert_eq!(send(part(x, 7, false, (2, 1), b"B one")).await, 0);
    assert_eq!(sim.counters().udh_reference_collisions, 1);
    // To another recipient it is no collision; nor is a plain SUBMIT a part.
    assert_eq!(send(part(y, 7, false, (2, 1), b"B one")).await, 0);
    assert_eq!(send(submit(&[x], 0)).await, 0);
    // The 16-bit reference form is read too.
    assert_eq!(send(part(x, 0x1234, true, (3, 1), b"C one")).await, 0);
    assert_eq!(send(part(x, 0x1234, true, (3, 1), b"D one")).await, 0);
    // A part refused with Result 8 never reaches the handset: it collides with nothing.
    sim.set_behaviour(Behaviour {
        flow_control_ratio: 1.0,
        ..Behaviour::default()
    })
    .unwrap();
    assert_eq!(send(part(x, 7, false, (2, 2), b"E two")).await, 8);

    let stats = stats_json(control).await;
    assert_eq!(
        (
            stats["concatenated_parts"].as_u64(),
            stats["udh_reference_collisions"].as_u64()
        ),
        (Some(8), Some(2))
    );
}
