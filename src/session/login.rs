//! Opening a connection: TCP with a timeout, CONNECT with the MD5 authenticator, CONNECT_RESP
//! checked for its Status and, as configured, for the ISMG's own authenticator.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Framed;

use super::codec::LinkCodec;
use super::config::{AuthCheck, LinkConfig};
use super::error::ConnectError;
use super::events::{ConnectOutcome, LinkEvent};
use crate::protocol::{
    Anomaly, ChinaTime, Connect, Lenient, Packet, Pdu, authenticator_ismg, connect_status,
};

pub(crate) type Transport = Framed<TcpStream, LinkCodec>;

/// Connects and logs in; `emit` receives the attempt's outcome.
pub(crate) async fn login(
    config: &LinkConfig,
    sequence_id: u32,
    emit: &(dyn Fn(LinkEvent) + Sync),
) -> Result<Transport, ConnectError> {
    let result = attempt(config, sequence_id, emit).await;
    let outcome = match &result {
        Ok(_) => ConnectOutcome::Ok,
        Err(ConnectError::Io { .. } | ConnectError::ConnectTimeout { .. }) => {
            ConnectOutcome::Unreachable
        }
        Err(ConnectError::Refused { status, .. }) => ConnectOutcome::Refused(*status),
        Err(ConnectError::AuthenticatorMismatch) => ConnectOutcome::AuthenticatorMismatch,
        Err(ConnectError::VersionMismatch { .. }) => ConnectOutcome::VersionMismatch,
        Err(_) => ConnectOutcome::Protocol,
    };
    emit(LinkEvent::ConnectAttempt { outcome });
    result
}

async fn attempt(
    config: &LinkConfig,
    sequence_id: u32,
    emit: &(dyn Fn(LinkEvent) + Sync),
) -> Result<Transport, ConnectError> {
    let stream = timeout(config.connect_timeout, TcpStream::connect(&config.addr))
        .await
        .map_err(|_| ConnectError::ConnectTimeout {
            addr: config.addr.clone(),
            timeout: config.connect_timeout,
        })?
        .map_err(|source| ConnectError::Io {
            addr: config.addr.clone(),
            source,
        })?;
    // Small PDUs, one request at a time per slot of the window: never wait for Nagle.
    stream
        .set_nodelay(true)
        .map_err(|source| ConnectError::Io {
            addr: config.addr.clone(),
            source,
        })?;
    let codec = LinkCodec::new(config.version, config.max_frame_len);
    let mut transport = Framed::new(stream, codec);

    let secret = config.secret.expose().as_bytes();
    let timestamp = ChinaTime::now().connect_timestamp();
    let connect = Connect::new(&config.sp_id, secret, config.version, timestamp)?;
    let source = connect.authenticator_source;
    transport
        .send(Packet::new(sequence_id, Pdu::Connect(connect)))
        .await?;

    let answer = timeout(config.response_timeout, transport.next())
        .await
        .map_err(|_| ConnectError::ResponseTimeout {
            timeout: config.response_timeout,
        })?;
    let (packet, anomaly) = match answer {
        None => return Err(ConnectError::Closed),
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(Lenient::Exact(packet))) => (packet, None),
        Some(Ok(Lenient::Tolerated(packet, anomaly))) => (packet, Some(anomaly)),
        Some(Ok(Lenient::Undecodable(raw))) => {
            return Err(ConnectError::Undecodable {
                command: raw.header.command_id,
                error: raw.error,
            });
        }
    };
    let resp = match packet.pdu {
        Pdu::ConnectResp(resp) => resp,
        other => {
            return Err(ConnectError::Unexpected {
                command: other.command_id(),
            });
        }
    };
    match anomaly {
        // An ISMG of the other version: nothing after this login could be read right.
        Some(Anomaly::OtherVersion { layout, .. }) => {
            return Err(ConnectError::VersionMismatch {
                configured: config.version,
                answered: layout,
                status: resp.status,
            });
        }
        Some(anomaly) => emit(LinkEvent::ProtocolAnomaly {
            kind: anomaly.kind(),
        }),
        None => {}
    }
    if resp.status != connect_status::OK {
        return Err(ConnectError::Refused {
            status: resp.status,
            meaning: connect_status::describe(resp.status),
        });
    }
    let expected = authenticator_ismg(config.version, resp.status, &source, secret);
    if resp.authenticator_ismg != expected && config.auth_check != AuthCheck::Off {
        emit(LinkEvent::AuthenticatorMismatch);
        if config.auth_check == AuthCheck::Strict {
            return Err(ConnectError::AuthenticatorMismatch);
        }
        tracing::warn!(
            addr = %config.addr,
            "AuthenticatorISMG does not match the shared secret; continuing (authenticator check is warn)"
        );
    }
    Ok(transport)
}
