//! The first exchange on a connection: CONNECT → CONNECT_RESP (spec §8.4.1, PROTOCOL.md §4).
//! Nothing but CONNECT is accepted first; a refused login gets its CONNECT_RESP and the close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::counters::inc;
use super::server::{AccountState, Shared};
use crate::protocol::{Connect, ConnectResp, Packet, Pdu, Version, connect_status};
use crate::session::codec::CmppCodec;

/// A client that connects and says nothing is closed after this long.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) type Link = Framed<TcpStream, CmppCodec>;

/// Returns the account when the login succeeded; the codec then speaks the account's version.
pub(crate) async fn login(
    shared: &Shared,
    link: &mut Link,
    peer: SocketAddr,
    id: u64,
) -> Option<Arc<AccountState>> {
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
    let Answer {
        status,
        layout: version,
        version_byte,
    } = judge(&connect, account.as_deref());
    let counter = match status {
        connect_status::OK => &shared.counters.logins_ok,
        connect_status::BAD_SOURCE_ADDR => &shared.counters.login_failed_bad_addr,
        connect_status::AUTH_FAILED => &shared.counters.login_failed_auth,
        _ => &shared.counters.login_failed_version,
    };
    inc(counter);
    let secret = account
        .as_ref()
        .map_or(&[][..], |a| a.account.secret.as_bytes());
    let mut resp = ConnectResp::answer(version, status, &connect, secret);
    resp.version = version_byte;
    if status == connect_status::OK && shared.behaviour.get().bad_authenticator {
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
    if status != connect_status::OK {
        info!(
            conn = id, %peer, sp_id = %connect.source_addr, status,
            "login refused: {}", connect_status::describe(status)
        );
        return None;
    }
    info!(conn = id, %peer, sp_id = %connect.source_addr, %version, "logged in");
    account
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

/// A successful login is answered, and continued, in the account's version. A refusal is
/// answered in the layout of the version the client announced, so that it can read why (a 3.0
/// client refused with Status 4 by a 2.0 account gets a 33-byte CONNECT_RESP whose Version byte
/// says 0x20); an unknown SP likewise.
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
    let status = if !connect.verify(account.account.secret.as_bytes()) {
        connect_status::AUTH_FAILED
    } else if connect.version > version.byte() {
        connect_status::VERSION_TOO_HIGH
    } else {
        connect_status::OK
    };
    let layout = match status {
        connect_status::OK => version,
        _ => asked.unwrap_or(version),
    };
    Answer {
        status,
        layout,
        version_byte: version.byte(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::config::Account;
    use crate::simulator::outbox::Outbox;

    fn state(version: Version) -> AccountState {
        AccountState {
            account: Account::new("900001", "888888", version),
            outbox: Outbox::default(),
        }
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
        // A 2.0 CONNECT to a 3.0 account is not refused; the account's version decides.
        assert_eq!(
            judge(&v20, Some(&state(Version::V30))),
            answer(0, Version::V30, 0x30)
        );
    }
}
