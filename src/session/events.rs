//! Everything observable about a link, as typed events. The link emits them; [`super::LinkStats`]
//! counts them, and the metrics layer maps them to Prometheus, so no component logs or counts
//! the same thing in two places.

use std::time::Duration;

use crate::protocol::CommandId;

/// Where the link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// TCP connect and login in progress.
    Connecting,
    /// Logged in; requests flow.
    Up,
    /// Lost or never established; a reconnect is scheduled.
    Down,
    /// Graceful close in progress: no new requests.
    Closing,
    /// Closed for good.
    Closed,
}

impl LinkState {
    /// Every state, in the order of a link's life.
    pub const ALL: [LinkState; 5] = [
        LinkState::Connecting,
        LinkState::Up,
        LinkState::Down,
        LinkState::Closing,
        LinkState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Closing => "closing",
            LinkState::Closed => "closed",
        }
    }
}

/// How a login attempt ended, for counting by result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    Ok,
    /// TCP could not connect, or timed out.
    Unreachable,
    /// CONNECT_RESP with this non-zero Status.
    Refused(u32),
    /// Strict check of AuthenticatorISMG failed.
    AuthenticatorMismatch,
    /// The ISMG answered in the other version's layout (e.g. 2.0 to a 3.0 login).
    VersionMismatch,
    /// No CONNECT_RESP in time, or something else came.
    Protocol,
}

impl ConnectOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectOutcome::Ok => "ok",
            ConnectOutcome::Unreachable => "unreachable",
            ConnectOutcome::Refused(2) => "bad_source_addr",
            ConnectOutcome::Refused(3) => "auth_failed",
            ConnectOutcome::Refused(4) => "version_too_high",
            ConnectOutcome::Refused(_) => "refused_other",
            ConnectOutcome::AuthenticatorMismatch => "authenticator_mismatch",
            ConnectOutcome::VersionMismatch => "version_mismatch",
            ConnectOutcome::Protocol => "protocol_error",
        }
    }
}

/// Why an established connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer closed TCP.
    PeerClosed,
    /// The peer sent TERMINATE.
    PeerTerminated,
    /// The peer sent bytes that are not a PDU.
    Malformed,
    /// N ACTIVE_TESTs in a row went unanswered.
    HeartbeatLost,
    /// The socket would not take our bytes within T.
    WriteStalled,
    /// A socket error.
    Io,
    /// We closed it (graceful shutdown).
    Shutdown,
    /// The slot's lease ended: nothing more may be written on it.
    LeaseLost,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::PeerClosed => "peer_closed",
            DisconnectReason::PeerTerminated => "peer_terminated",
            DisconnectReason::Malformed => "malformed_pdu",
            DisconnectReason::HeartbeatLost => "heartbeat_lost",
            DisconnectReason::WriteStalled => "write_stalled",
            DisconnectReason::Io => "io_error",
            DisconnectReason::Shutdown => "shutdown",
            DisconnectReason::LeaseLost => "lease_lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    StateChanged {
        state: LinkState,
    },
    ConnectAttempt {
        outcome: ConnectOutcome,
    },
    /// AuthenticatorISMG did not match (in `warn` mode the link still goes up).
    AuthenticatorMismatch,
    Disconnected {
        reason: DisconnectReason,
    },
    /// A request went out; `retransmit` when it is a resend after T.
    RequestSent {
        command: CommandId,
        retransmit: bool,
    },
    /// A response matched an in-flight request.
    Response {
        command: CommandId,
        rtt: Duration,
        result: u32,
    },
    /// Result 8: the segment will be resubmitted after a pause.
    FlowControl,
    /// A request got no response after every send.
    RequestTimeout {
        command: CommandId,
    },
    HeartbeatSent,
    HeartbeatAnswered,
    HeartbeatMissed,
    /// We answered the peer's ACTIVE_TEST.
    PeerHeartbeatAnswered,
    DeliverReceived {
        report: bool,
    },
    /// The caller's queue was full; the DELIVER was answered with Result 8 so the ISMG resends it.
    DeliverRefused,
    /// Bytes that are not a PDU (a Total_Length out of bounds): the connection is reset.
    MalformedPdu,
    /// A PDU read although it is not as the spec says (`kind`: trailing_bytes,
    /// other_version_layout, missing_reserved), or one whose body could not be read at all
    /// (undecodable_body) and was answered or skipped by its header.
    ProtocolAnomaly {
        kind: &'static str,
    },
    /// A request the link gave up on after the connection dropped `drops` times while it was the
    /// only one in flight: the ISMG chokes on it.
    Quarantined {
        drops: u32,
    },
    /// The link will try to log in again after `delay`.
    ReconnectScheduled {
        delay: Duration,
    },
    /// A response nobody waits for (late, after its timeout) or a request we do not serve.
    UnexpectedPdu {
        command: CommandId,
    },
    /// Requests now waiting for a response.
    InFlight {
        count: usize,
    },
}

/// Receives every event of a link. Called on the link's task: keep it cheap and non-blocking.
pub trait LinkObserver: Send + Sync + 'static {
    fn on_event(&self, event: &LinkEvent);
}
