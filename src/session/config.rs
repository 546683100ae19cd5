//! Settings of one CMPP link. Defaults are the spec's timers (PROTOCOL.md §8).

use std::time::Duration;

use crate::protocol::{MAX_PDU_LEN, Version};
use crate::secret::Secret;

use super::fence::Fence;

/// How to treat the ISMG's AuthenticatorISMG in CONNECT_RESP (many ISMGs send a wrong one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthCheck {
    /// A mismatch refuses the connection.
    Strict,
    /// A mismatch is logged and counted; the link goes up.
    #[default]
    Warn,
    /// Not checked.
    Off,
}

impl std::str::FromStr for AuthCheck {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "strict" => Ok(AuthCheck::Strict),
            "warn" => Ok(AuthCheck::Warn),
            "off" => Ok(AuthCheck::Off),
            other => Err(format!(
                "unknown authenticator check {other:?}; expected strict, warn or off"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// ISMG address, `host:port`.
    pub addr: String,
    /// SP_Id (Source_Addr), at most 6 characters.
    pub sp_id: String,
    pub secret: Secret,
    pub version: Version,
    pub auth_check: AuthCheck,
    /// W: unanswered requests at most.
    pub window: usize,
    /// Submits per second; 0 = no limit.
    pub rate: u32,
    /// T: how long a request waits for its response before it is sent again.
    pub response_timeout: Duration,
    /// N: sends of one request in all (first send included), across reconnects.
    pub max_sends: u32,
    /// A request is given up (quarantined) once this many connections dropped while it was the
    /// only one in flight on them.
    pub quarantine_after_drops: u32,
    /// How often one segment is resubmitted after Result 8 before it fails.
    pub flow_control_retries: u32,
    /// C: idle time before an ACTIVE_TEST.
    pub heartbeat_idle: Duration,
    /// Unanswered ACTIVE_TESTs in a row that mark the link dead.
    pub heartbeat_misses: u32,
    pub connect_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A connection that stays up this long resets the reconnect back-off; one that ends sooner
    /// counts as a failure, so a link that drops right after each login backs off too.
    pub reconnect_reset_after: Duration,
    /// Received DELIVERs waiting for the caller; beyond this they are refused with Result 8.
    pub deliver_queue: usize,
    pub max_frame_len: u32,
    /// Graceful close: how long to wait for in-flight responses before TERMINATE.
    pub close_timeout: Duration,
    /// The lease of the connection slot this link sends on: nothing is written, and no new
    /// connection is made, once it is closed. `None`: no lease (a link used on its own).
    pub fence: Option<Fence>,
}

impl LinkConfig {
    pub fn new(addr: impl Into<String>, sp_id: impl Into<String>, secret: Secret) -> LinkConfig {
        LinkConfig {
            addr: addr.into(),
            sp_id: sp_id.into(),
            secret,
            version: Version::V30,
            auth_check: AuthCheck::Warn,
            window: 16,
            rate: 0,
            response_timeout: Duration::from_secs(60),
            max_sends: 3,
            quarantine_after_drops: 2,
            flow_control_retries: 30,
            heartbeat_idle: Duration::from_secs(180),
            heartbeat_misses: 3,
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            reconnect_reset_after: Duration::from_secs(60),
            deliver_queue: 1024,
            max_frame_len: MAX_PDU_LEN,
            close_timeout: Duration::from_secs(10),
            fence: None,
        }
    }
}
