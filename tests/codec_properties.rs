//! Property tests of the codec: every PDU round-trips in both versions, and no input of any
//! kind panics the decoder or the framing codec.

use bytes::{Bytes, BytesMut};
use cmpp_gateway::protocol::{
    ActiveTestResp, Cancel, CancelResp, Connect, ConnectResp, Deliver, DeliverResp, FwdResp,
    HEADER_LEN, MsgId, Packet, Pdu, Query, QueryResp, ReportLayout, StatusReport, Submit,
    SubmitResp, Version, max_content_len,
};
use cmpp_gateway::session::codec::CmppCodec;
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V20), Just(Version::V30)]
}

/// Octet-string contents that survive a round trip: no NUL, no trailing space, within the width.
fn oct(width: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9A-Za-z+:-]{{0,{width}}}")).unwrap()
}

fn msg_id() -> impl Strategy<Value = MsgId> {
    any::<u64>().prop_map(MsgId)
}

/// A status value that fits the version's field (u8 in 2.0).
fn status(v: Version) -> BoxedStrategy<u32> {
    match v {
        Version::V20 => any::<u8>().prop_map(u32::from).boxed(),
        Version::V30 => any::<u32>().boxed(),
    }
}

fn content() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![Just(0u8), Just(4), Just(8), Just(15), any::<u8>()]
        .prop_flat_map(|fmt| (Just(fmt), vec(any::<u8>(), 0..=max_content_len(fmt))))
}

/// Terminal ids are 21 wide in 2.0 and 32 in 3.0; the type bytes exist only in 3.0.
fn widths(v: Version) -> (usize, usize, BoxedStrategy<u8>) {
    match v {
        Version::V20 => (21, 8, Just(0u8).boxed()),
        Version::V30 => (32, 20, any::<u8>().boxed()),
    }
}

fn submit(v: Version) -> impl Strategy<Value = Submit> {
    let (tid, trailer, terminal_type) = widths(v);
    (
        (
            msg_id(),
            any::<[u8; 4]>(),
            oct(10),
            any::<u8>(),
            oct(tid),
            terminal_type.clone(),
        ),
        (
            any::<[u8; 2]>(),
            oct(6),
            oct(2),
            oct(6),
            oct(17),
            oct(17),
            oct(21),
        ),
        (
            vec(oct(tid), 1..=99),
            terminal_type,
            content(),
            oct(trailer),
        ),
    )
        .prop_map(|(a, b, c)| {
            let (
                msg_id,
                [pk_total, pk_number, registered_delivery, msg_level],
                service_id,
                fee_user_type,
                fee_id,
                fee_type_t,
            ) = a;
            let ([tp_pid, tp_udhi], msg_src, fee_type, fee_code, valid_time, at_time, src_id) = b;
            let (dests, dest_type, (msg_fmt, msg_content), link_id) = c;
            Submit {
                msg_id,
                pk_total,
                pk_number,
                registered_delivery,
                msg_level,
                service_id,
                fee_user_type,
                fee_terminal_id: fee_id,
                fee_terminal_type: fee_type_t,
                tp_pid,
                tp_udhi,
                msg_fmt,
                msg_src,
                fee_type,
                fee_code,
                valid_time,
                at_time,
                src_id,
                dest_terminal_ids: dests,
                dest_terminal_type: dest_type,
                msg_content,
                link_id,
            }
        })
}

fn report() -> impl Strategy<Value = StatusReport> {
    (msg_id(), oct(7), oct(10), oct(10), oct(21), any::<u32>()).prop_map(
        |(msg_id, stat, submit_time, done_time, dest_terminal_id, smsc_sequence)| StatusReport {
            msg_id,
            stat,
            submit_time,
            done_time,
            dest_terminal_id,
            smsc_sequence,
        },
    )
}

fn deliver(v: Version) -> impl Strategy<Value = Deliver> {
    let (tid, trailer, terminal_type) = widths(v);
    (
        (
            msg_id(),
            oct(21),
            oct(10),
            any::<[u8; 2]>(),
            oct(tid),
            terminal_type,
        ),
        (
            content(),
            oct(trailer),
            proptest::option::of((report(), any::<bool>())),
        ),
    )
        .prop_map(|(a, b)| {
            let (
                msg_id,
                dest_id,
                service_id,
                [tp_pid, tp_udhi],
                src_terminal_id,
                src_terminal_type,
            ) = a;
            let ((msg_fmt, msg_content), link_id, report) = b;
            let mo = Deliver {
                msg_id,
                dest_id,
                service_id,
                tp_pid,
                tp_udhi,
                msg_fmt,
                src_terminal_id,
                src_terminal_type,
                registered_delivery: 0,
                msg_content,
                link_id,
            };
            match report {
                Some((r, compact)) => {
                    let layout = if compact {
                        ReportLayout::Compact60
                    } else {
                        ReportLayout::Spec71
                    };
                    Deliver { msg_fmt: 0, ..mo }
                        .with_report(&r, layout)
                        .unwrap()
                }
                None => mo,
            }
        })
}

fn pdu(v: Version) -> BoxedStrategy<Pdu> {
    let (connect_ver, auth) = (any::<u8>(), any::<[u8; 16]>());
    prop_oneof![
        (oct(6), auth, connect_ver, any::<u32>()).prop_map(
            |(source_addr, authenticator_source, version, timestamp)| {
                Pdu::Connect(Connect {
                    source_addr,
                    authenticator_source,
                    version,
                    timestamp,
                })
            }
        ),
        (status(v), auth, connect_ver).prop_map(|(status, authenticator_ismg, version)| {
            Pdu::ConnectResp(ConnectResp {
                status,
                authenticator_ismg,
                version,
            })
        }),
        Just(Pdu::Terminate),
        Just(Pdu::TerminateResp),
        submit(v).prop_map(Pdu::Submit),
        (msg_id(), status(v))
            .prop_map(|(msg_id, result)| Pdu::SubmitResp(SubmitResp { msg_id, result })),
        deliver(v).prop_map(Pdu::Deliver),
        (msg_id(), status(v))
            .prop_map(|(msg_id, result)| Pdu::DeliverResp(DeliverResp { msg_id, result })),
        (oct(8), any::<u8>(), oct(10), oct(8)).prop_map(
            |(time, query_type, query_code, reserve)| Pdu::Query(Query {
                time,
                query_type,
                query_code,
                reserve
            })
        ),
        (oct(8), any::<u8>(), oct(10), any::<[u32; 8]>()).prop_map(
            |(time, query_type, query_code, c)| {
                Pdu::QueryResp(QueryResp {
                    time,
                    query_type,
                    query_code,
                    mt_tl_msg: c[0],
                    mt_tl_usr: c[1],
                    mt_scs: c[2],
                    mt_wt: c[3],
                    mt_fl: c[4],
                    mo_scs: c[5],
                    mo_wt: c[6],
                    mo_fl: c[7],
                })
            }
        ),
        msg_id().prop_map(|msg_id| Pdu::Cancel(Cancel { msg_id })),
        status(v).prop_map(|success_id| Pdu::CancelResp(CancelResp { success_id })),
        Just(Pdu::ActiveTest),
        any::<u8>().prop_map(|reserved| Pdu::ActiveTestResp(ActiveTestResp { reserved })),
        (msg_id(), any::<[u8; 2]>(), status(v)).prop_map(
            |(msg_id, [pk_total, pk_number], result)| {
                Pdu::FwdResp(FwdResp {
                    msg_id,
                    pk_total,
                    pk_number,
                    result,
                })
            }
        ),
        (0x10u32..0x18, vec(any::<u8>(), 0..64)).prop_map(|(command_id, body)| Pdu::Other {
            command_id,
            body: Bytes::from(body)
        }),
    ]
    .boxed()
}

fn versioned_packet() -> impl Strategy<Value = (Version, Packet)> {
    version().prop_flat_map(|v| {
        (
            Just(v),
            (any::<u32>(), pdu(v)).prop_map(|(seq, pdu)| Packet::new(seq, pdu)),
        )
    })
}

/// Frames that pass the header checks, with a random known or unknown Command_Id and body.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    let ids = prop_oneof![
        prop::sample::select(vec![1u32, 2, 4, 5, 6, 7, 8, 9]),
        prop::sample::select(vec![1u32, 2, 4, 5, 6, 7, 8, 9]).prop_map(|id| id | 0x8000_0000),
        any::<u32>(),
    ];
    (ids, any::<u32>(), vec(any::<u8>(), 0..400)).prop_map(|(id, seq, body)| {
        let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
        frame.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_pdu_round_trips((version, packet) in versioned_packet()) {
        let bytes = packet.to_bytes(version).expect("generated values are encodable");
        prop_assert_eq!(u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len());
        let back = Packet::decode(version, &bytes).expect("own encoding decodes");
        prop_assert_eq!(&back, &packet);
        // And through the framing codec, in one piece.
        let mut buf = BytesMut::from(&bytes[..]);
        let framed = CmppCodec::new(version).decode(&mut buf).expect("codec accepts").expect("one frame");
        prop_assert_eq!(framed, packet);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in vec(any::<u8>(), 0..600), v in version()) {
        let _ = Packet::decode(v, &bytes);
        let _ = StatusReport::decode(&bytes);
    }

    /// Frames that get past the header reach every body decoder; whatever decodes must re-encode
    /// to bytes that decode to the same value.
    #[test]
    fn well_framed_garbage_decodes_or_fails_cleanly(frame in framed_garbage(), v in version()) {
        if let Ok(packet) = Packet::decode(v, &frame) {
            if let Ok(bytes) = packet.to_bytes(v) {
                prop_assert_eq!(Packet::decode(v, &bytes), Ok(packet.clone()));
            }
            if let Pdu::Deliver(d) = &packet.pdu {
                let _ = d.report();
            }
        }
    }

    #[test]
    fn arbitrary_streams_never_panic_the_codec(
        chunks in vec(vec(any::<u8>(), 0..64), 0..32),
        max in 0u32..5_000,
        v in version(),
    ) {
        let mut codec = CmppCodec::new(v).with_max_frame_len(max);
        let mut buf = BytesMut::new();
        'feed: for chunk in chunks {
            buf.extend_from_slice(&chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
}
