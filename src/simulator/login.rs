//! The first exchange on a connection: CONNECT → CONNECT_RESP (spec §8.4.1, PROTOCOL.md §4).
//! Nothing but CONNECT is accepted first; a refused login gets its CONNECT_RESP and the close.
//! A login that passes every check but finds its account at `max_connections` is refused too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::admission::{Admitted, admit};
use super::counters::inc;
use super::server::{AccountState, Shared};
use crate::protocol::{Connect, ConnectResp, Packet, Pdu, Version, connect_status};
use crate::session::codec::CmppCodec;

/// A client that connects and says nothing is closed after this long.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// CONNECT_RESP Status for a login beyond the account's `max_connections`. The spec defines 0–4
/// and leaves "5 and above" as other errors (§8.4.1.2); a connection limit is none of 0–4, so it
/// gets the first of those, a non-zero Status every client takes as a refusal. It must not be one
/// of 2–4: clients (the gateway among them) take those as a wrong account, secret or version and
/// back off long, while a full account frees up as soon as one of its connections closes.
const STATUS_TOO_MANY_CONNECTIONS: u32 = 5;

pub(crate) type Link = Framed<TcpStream, CmppCodec>;

/// A successful login: the account, the version the session speaks (the codec then speaks it
/// too), and the connection's slot, held until it is dropped.
pub(crate) struct LoggedIn {
    pub account: Arc<AccountState>,
    pub version: Version,
    pub admitted: Admitted,
}

pub(crate) async fn login(
    shared: &Arc<Shared>,
    link: &mut Link,
    peer: SocketAddr,
    id: u64,
) -> Option<LoggedIn> {
    let first = tokio::select! {
        () = shared.shutdown.cancelled() => return None,
        first = tokio::time::timeout(LOGIN_TIMEOUT, link.next()) => first,
    };
    let packet = match first {
        Err(_) => {
            info!(conn = id, %peer, "no CONNECT within {LOGIN_TIMEOUT:?}; closing");
            return None;
        }
        Ok(None) => {
            debug!(conn = id, %peer, "closed before CONNECT");
            return None;
        }
        Ok(Some(Err(e))) => {
            warn!(conn = id, %peer, "malformed first PDU, closing: {e}");
            return None;
        }
        Ok(Some(Ok(packet))) => packet,
    };
    inc(&shared.counters.pdus_received);
    let close_after = shared.behaviour.get().close_after_pdus;
    if close_after == 1 {
        inc(&shared.counters.disconnects_injected);
        info!(conn = id, %peer, "close_after_pdus = 1: closing on the first PDU");
        return None;
    }
    let Pdu::Connect(connect) = packet.pdu else {
        info!(conn = id, %peer, command = %packet.pdu.command_id(), "first PDU is not CONNECT; closing");
        return None;
    };

    let account = shared.account(&connect.source_addr).cloned();
    let behaviour = shared.behaviour.get();
    let judged = if behaviour.answer_v20 {
        judge_as_v20_only(&connect, account.as_deref())
    } else {
        judge(&connect, account.as_deref())
    };
    let Answer {
        mut status,
        layout: version,
        version_byte,
    } = judged;
    // The slot is taken before CONNECT_RESP goes out and given back if it cannot be sent, so a
    // client never sees Status 0 without holding one.
    let mut admitted = None;
    if let (connect_status::OK, Some(account)) = (status, &account) {
        match admit(
            shared,
            account,
            behaviour.max_connections,
            (id, peer, version),
        ) {
            Ok(a) => admitted = Some(a),
            Err(_) => status = STATUS_TOO_MANY_CONNECTIONS,
        }
    }
    let counter = match status {
        connect_status::OK => Some(&shared.counters.logins_ok),
        connect_status::BAD_SOURCE_ADDR => Some(&shared.counters.login_failed_bad_addr),
        connect_status::AUTH_FAILED => Some(&shared.counters.login_failed_auth),
        connect_status::VERSION_TOO_HIGH => Some(&shared.counters.login_failed_version),
        // Counted by `admit`.
        _ => None,
    };
    if let Some(counter) = counter {
        inc(counter);
    }
    let secret = account
        .as_ref()
        .map_or(&[][..], |a| a.account.secret.as_bytes());
    let mut resp = ConnectResp::answer(version, status, &connect, secret);
    resp.version = version_byte;
    if status == connect_status::OK && behaviour.bad_authenticator {
        // What a server that ignores the secret sends: MD5 of nothing useful.
        resp.authenticator_ismg = [0xA5; 16];
    }
    link.codec_mut().set_version(version);
    if let Err(e) = link
        .send(Packet::new(packet.sequence_id, Pdu::ConnectResp(resp)))
        .await
    {
        warn!(conn = id, %peer, "cannot send CONNECT_RESP: {e}");
        return None;
    }
    if status == STATUS_TOO_MANY_CONNECTIONS {
        info!(
            conn = id, %peer, sp_id = %connect.source_addr, status,
            max_connections = behaviour.max_connections,
            "login refused: the account has max_connections live connections"
        );
        return None;
    }
    if status != connect_status::OK {
        info!(
            conn = id, %peer, sp_id = %connect.source_addr, status,
            "login refused: {}", connect_status::describe(status)
        );
        return None;
    }
    info!(conn = id, %peer, sp_id = %connect.source_addr, %version, "logged in");
    Some(LoggedIn {
        account: account?,
        version,
        admitted: admitted?,
    })
}

/// What to answer to a CONNECT.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u32,
    /// The layout of the CONNECT_RESP (30 or 33 bytes) and, on success, of the whole session.
    layout: Version,
    /// CONNECT_RESP.Version: the version the server speaks with this account.
    version_byte: u8,
}

/// A login is answered, and on success continued, in the layout of the version the client
/// announced, never in one it did not ask for. As ISMGs do: any 2.x Version byte (0x20, 0x21)
/// is 2.0; a 2.x client on a 3.0 account gets a 2.0 session (CONNECT_RESP.Version says 0x30, the
/// highest the ISMG speaks, as the spec defines that field: the client stays on its own lower
/// version); only a client above the account's version is refused (Status 4, its Version byte
/// saying what the account speaks). An unknown SP is refused in the client's layout likewise.
fn judge(connect: &Connect, account: Option<&AccountState>) -> Answer {
    let asked = Version::from_byte(connect.version);
    let Some(account) = account else {
        let layout = asked.unwrap_or_default();
        return Answer {
            status: connect_status::BAD_SOURCE_ADDR,
            layout,
            version_byte: layout.byte(),
        };
    };
    let version = account.account.version;
    let too_high = match asked {
        Some(asked) => asked.byte() > version.byte(),
        // An unknown major: compare the raw bytes (0x40 is too high; 0x10 gets the account's).
        None => connect.version > version.byte(),
    };
    let status = if !connect.verify(account.account.secret.as_bytes()) {
        connect_status::AUTH_FAILED
    } else if too_high {
        connect_status::VERSION_TOO_HIGH
    } else {
        connect_status::OK
    };
    let layout = match asked {
        Some(asked) if status != connect_status::OK || asked.byte() < version.byte() => asked,
        _ => version,
    };
    Answer {
        status,
        layout,
        version_byte: version.byte(),
    }
}

/// The `answer_v20` fault: an ISMG that speaks only CMPP 2.0, such as gocmpp's 2.0 server,
/// answers every CONNECT in the 30-byte 2.0 layout with Version 0x20, checks the SP and its
/// secret but not the Version byte, and goes on in 2.0 whatever the client asked.
fn judge_as_v20_only(connect: &Connect, account: Option<&AccountState>) -> Answer {
    let status = match account {
        None => connect_status::BAD_SOURCE_ADDR,
        Some(a) if !connect.verify(a.account.secret.as_bytes()) => connect_status::AUTH_FAILED,
        Some(_) => connect_status::OK,
    };
    Answer {
        status,
        layout: Version::V20,
        version_byte: Version::V20.byte(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::config::Account;

    fn state(version: Version) -> AccountState {
        AccountState::new(Account::new("900001", "888888", version))
    }

    #[test]
    fn status_follows_the_spec_order() {
        let answer = |status, layout: Version, version_byte| Answer {
            status,
            layout,
            version_byte,
        };
        let ok = Connect::new("900001", b"888888", Version::V30, 1_021_080_510).unwrap();
        assert_eq!(
            judge(&ok, Some(&state(Version::V30))),
            answer(0, Version::V30, 0x30)
        );
        assert_eq!(judge(&ok, None), answer(2, Version::V30, 0x30));
        let wrong = Connect::new("900001", b"nope", Version::V30, 1_021_080_510).unwrap();
        assert_eq!(judge(&wrong, Some(&state(Version::V30))).status, 3);
        // A 3.0 CONNECT to a 2.0 account: refused in the 3.0 layout it can read, Version 0x20.
        assert_eq!(
            judge(&ok, Some(&state(Version::V20))),
            answer(4, Version::V30, 0x20)
        );
        let v20 = Connect::new("900001", b"888888", Version::V20, 1_021_080_510).unwrap();
        assert_eq!(judge(&v20, None), answer(2, Version::V20, 0x20));
        // A 2.x CONNECT to a 3.0 account is served in 2.0; Version says the ISMG speaks 3.0.
        assert_eq!(
            judge(&v20, Some(&state(Version::V30))),
            answer(0, Version::V20, 0x30)
        );
        let mut v21 = v20.clone();
        v21.version = 0x21;
        assert_eq!(
            judge(&v21, Some(&state(Version::V20))),
            answer(0, Version::V20, 0x20)
        );
        let mut v40 = ok.clone();
        v40.version = 0x40;
        assert_eq!(judge(&v40, Some(&state(Version::V30))).status, 4);
    }

    #[test]
    fn a_v20_only_ismg_answers_everyone_in_2_0() {
        let ok = Connect::new("900001", b"888888", Version::V30, 1_021_080_510).unwrap();
        let wrong = Connect::new("900001", b"nope", Version::V30, 1_021_080_510).unwrap();
        let account = state(Version::V30);
        let v20 = |status| Answer {
            status,
            layout: Version::V20,
            version_byte: 0x20,
        };
        assert_eq!(judge_as_v20_only(&ok, Some(&account)), v20(0));
        assert_eq!(judge_as_v20_only(&wrong, Some(&account)), v20(3));
        assert_eq!(judge_as_v20_only(&ok, None), v20(2));
    }
}
