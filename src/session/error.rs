//! What can go wrong on a link, typed so callers can tell retryable from final.

use std::time::Duration;

use crate::protocol::{CommandId, DecodeError, EncodeError, Version};

use super::codec::CodecError;

/// Why a login attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("no TCP connection to {addr} within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("no CONNECT_RESP within {timeout:?}")]
    ResponseTimeout { timeout: Duration },
    #[error("ISMG refused the login with Status {status} ({meaning})")]
    Refused { status: u32, meaning: &'static str },
    #[error(
        "AuthenticatorISMG does not match what the shared secret gives (authenticator check is strict)"
    )]
    AuthenticatorMismatch,
    #[error("expected CMPP_CONNECT_RESP, got {command}")]
    Unexpected { command: CommandId },
    #[error("{command} from the ISMG cannot be read: {error}")]
    Undecodable {
        command: CommandId,
        error: DecodeError,
    },
    /// The CONNECT_RESP has the other version's layout: the ISMG speaks that version only.
    #[error(
        "the ISMG answered in CMPP {answered} (Status {status}) to a CMPP {configured} login: set cmpp_version to {answered}"
    )]
    VersionMismatch {
        configured: Version,
        answered: Version,
        status: u32,
    },
    #[error("connection closed by the ISMG during login")]
    Closed,
    #[error("cannot build CONNECT: {0}")]
    Config(#[from] EncodeError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl ConnectError {
    /// Failures a real ISMG punishes when repeated quickly (accounts get locked), or that no
    /// quick retry can mend (a version mismatch is configuration): back off long.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            ConnectError::Refused { status: 2..=4, .. }
                | ConnectError::AuthenticatorMismatch
                | ConnectError::VersionMismatch { .. }
        )
    }
}

/// Why a SUBMIT did not get a Msg_Id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// A final Result from the ISMG (anything but 0 and 8).
    #[error("ISMG rejected the submit with Result {result} ({meaning})")]
    Rejected { result: u32, meaning: &'static str },
    /// Result 8 every time, up to the configured number of attempts.
    #[error("still flow-controlled (Result 8) after {attempts} attempts")]
    FlowControlExhausted { attempts: u32 },
    /// No response after every send. The ISMG may still have accepted it: its state is unknown.
    #[error("no SUBMIT_RESP for Sequence_Id {sequence_id} after {sends} sends, {timeout:?} each")]
    Timeout {
        sequence_id: u32,
        sends: u32,
        timeout: Duration,
    },
    /// Sent `sends` times without an answer: the last connections dropped while it waited. The
    /// ISMG may still have accepted it: its state is unknown.
    #[error("no SUBMIT_RESP after {sends} sends; the connection dropped while it waited")]
    Unconfirmed { sends: u32 },
    /// Given up because the connection dropped `drops` times while it was the only request in
    /// flight: the ISMG chokes on this message.
    #[error(
        "quarantined: the ISMG dropped the connection {drops} times while this SUBMIT was the only one in flight ({sends} sends)"
    )]
    Quarantined { drops: u32, sends: u32 },
    /// The link closed for good while this submit waited for its response: send it again on a
    /// later start (it stays pending).
    #[error("link closed before the response to Sequence_Id {sequence_id:?}")]
    LinkLost { sequence_id: Option<u32> },
    /// The link is closing or closed; the submit was not sent.
    #[error("link is closed")]
    Closed,
    /// The submit cannot be put on the wire (a field too long, no destination, …).
    #[error("submit cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
}

impl SubmitError {
    /// Whether sending the same segment again later is the right reaction.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SubmitError::LinkLost { .. } | SubmitError::Closed)
    }
}
