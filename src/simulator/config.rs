//! What the simulator is told: the accounts it accepts, how it misbehaves, where it listens.
//! Everything here is plain data, loaded and validated once (`SimulatorConfig::validate`,
//! `Behaviour::validate`); the running simulator never re-checks it.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_fmt;
use crate::protocol::{ReportLayout, SOURCE_ADDR_LEN, Version};

/// One SP account the simulator accepts.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub sp_id: String,
    pub secret: String,
    /// The version this account speaks; the CONNECT_RESP and every later PDU use its layouts.
    #[serde(default, deserialize_with = "serde_fmt::version::deserialize")]
    pub version: Version,
}

impl Account {
    pub fn new(sp_id: &str, secret: &str, version: Version) -> Account {
        Account {
            sp_id: sp_id.to_owned(),
            secret: secret.to_owned(),
            version,
        }
    }
}

/// Hand-written so that the secret never reaches a log line or an error message.
impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("sp_id", &self.sp_id)
            .field("secret", &"<redacted>")
            .field("version", &self.version)
            .finish()
    }
}

/// `SPID:SECRET` or `SPID:SECRET:2.0` (the command-line form).
impl FromStr for Account {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut fields = s.splitn(3, ':');
        let (Some(sp_id), Some(secret)) = (fields.next(), fields.next()) else {
            // Not echoing `s`: it may hold a secret.
            return Err("an account is SPID:SECRET or SPID:SECRET:VERSION".into());
        };
        let version = match fields.next() {
            Some(v) => v.parse()?,
            None => Version::V30,
        };
        Ok(Account::new(sp_id, secret, version))
    }
}

/// How the simulated ISMG behaves; every knob can change while it runs (`set_behaviour`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Delay before each SUBMIT_RESP (0 = answer while reading). Timers tick in whole
    /// milliseconds: a response goes out up to min(delay/2, 0.5 ms) early and up to ~1 ms late.
    #[serde(with = "serde_fmt::duration")]
    pub response_delay: Duration,
    /// Delay before the status report of a Registered_Delivery = 1 submit.
    #[serde(with = "serde_fmt::duration")]
    pub report_delay: Duration,
    /// Weighted Stat values of reports, e.g. `[["DELIVRD", 95], ["UNDELIV", 5]]`
    /// (JSON also accepts the string form `"DELIVRD=95,UNDELIV=5"`).
    #[serde(with = "serde_fmt::stat_mix")]
    pub stat_mix: Vec<(String, u32)>,
    /// Report body layout for 3.0 accounts ("71" or "60"); 2.0 accounts always get 60.
    #[serde(with = "serde_fmt::report_layout")]
    pub report_layout: ReportLayout,
    /// Fraction of submits answered with Result 8, at random.
    pub flow_control_ratio: f64,
    /// 0 = off; else submits beyond this many per one-second window of a connection get Result 8.
    pub flow_control_above_rate: u32,
    /// 0 = off; else a submit arriving while this many of its connection's submits are unanswered
    /// gets Result 8 and counts a window violation.
    pub window: usize,
    /// Fraction of accepted submits whose SUBMIT_RESP is never sent (the report still follows).
    pub drop_response_ratio: f64,
    /// 0 = off; else the connection is closed when its N-th PDU (CONNECT included) arrives; that
    /// PDU is not answered.
    pub close_after_pdus: u64,
    /// Leave ACTIVE_TEST unanswered.
    pub ignore_heartbeats: bool,
    /// Answer a successful login with a wrong AuthenticatorISMG, as some ISMGs do, to exercise
    /// the client's strict / warn / off check.
    pub bad_authenticator: bool,
    /// A DELIVER without DELIVER_RESP Result 0 after this long is sent again (same Msg_Id).
    #[serde(with = "serde_fmt::duration")]
    pub deliver_retry: Duration,
    /// 0 = off; else the simulator sends ACTIVE_TEST after this long without a PDU from the client.
    #[serde(with = "serde_fmt::duration")]
    pub heartbeat_interval: Duration,
    /// Most DELIVERs one connection may have unanswered, so a slow client is not flooded.
    pub deliver_window: usize,
    /// Bytes appended inside Total_Length to every PDU sent after login (0 = off), as ISMGs
    /// that pad their PDUs do.
    pub trailing_bytes: usize,
    /// On a 3.0 account, write responses (SUBMIT_RESP, CANCEL_RESP, …) in the 2.0 layout.
    pub v20_responses: bool,
    /// Answer ACTIVE_TEST with a 12-byte ACTIVE_TEST_RESP, without its Reserved byte.
    pub active_test_resp_without_reserved: bool,
    /// Non-empty: a SUBMIT to this number closes the connection unanswered (what was answered
    /// before it is flushed first), as an ISMG that chokes on one particular message does.
    pub close_on_dest: String,
    /// Act as an ISMG that speaks only CMPP 2.0: every CONNECT is answered in the 30-byte 2.0
    /// layout with Version 0x20, whatever the client announced, and the session goes on in 2.0.
    pub answer_v20: bool,
    /// Give every accepted SUBMIT the same Msg_Id (and report it under that id), as a broken
    /// peer does.
    pub repeat_msg_id: bool,
    /// 0 = no limit; else a login beyond this many live connections of its account is refused
    /// with CONNECT_RESP Status 5 and closed, as carriers limit connections per account. A change
    /// applies to logins from then on; connections already live stay.
    pub max_connections: usize,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            response_delay: Duration::ZERO,
            report_delay: Duration::ZERO,
            stat_mix: vec![("DELIVRD".to_owned(), 1)],
            report_layout: ReportLayout::Spec71,
            flow_control_ratio: 0.0,
            flow_control_above_rate: 0,
            window: 0,
            drop_response_ratio: 0.0,
            close_after_pdus: 0,
            ignore_heartbeats: false,
            bad_authenticator: false,
            deliver_retry: Duration::from_secs(5),
            heartbeat_interval: Duration::ZERO,
            deliver_window: 16,
            trailing_bytes: 0,
            v20_responses: false,
            active_test_resp_without_reserved: false,
            close_on_dest: String::new(),
            answer_v20: false,
            repeat_msg_id: false,
            max_connections: 0,
        }
    }
}

/// Longest delay any behaviour field may ask for.
const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// A padded PDU must still fit the largest frame a client accepts.
const MAX_TRAILING_BYTES: usize = 64;

/// Stat is oct[7] on the wire.
const STAT_LEN: usize = 7;

impl Behaviour {
    /// Rejects what would make the simulator misbehave in ways nobody asked for.
    pub fn validate(&self) -> Result<(), String> {
        for (name, ratio) in [
            ("flow_control_ratio", self.flow_control_ratio),
            ("drop_response_ratio", self.drop_response_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("{name} must be between 0 and 1, got {ratio}"));
            }
        }
        if self
            .stat_mix
            .iter()
            .map(|(_, w)| u64::from(*w))
            .sum::<u64>()
            == 0
        {
            return Err("stat_mix needs at least one Stat with a weight above 0".into());
        }
        if let Some((stat, _)) = self
            .stat_mix
            .iter()
            .find(|(s, _)| s.is_empty() || s.len() > STAT_LEN || !s.is_ascii())
        {
            return Err(format!("Stat {stat:?} must be 1 to 7 ASCII characters"));
        }
        // Timers are `Instant + delay`; absurd values would overflow rather than mean anything.
        for (name, d) in [
            ("response_delay", self.response_delay),
            ("report_delay", self.report_delay),
            ("deliver_retry", self.deliver_retry),
            ("heartbeat_interval", self.heartbeat_interval),
        ] {
            if d > MAX_DELAY {
                return Err(format!("{name} {d:?} is above the 1-day maximum"));
            }
        }
        // Zero would resend every DELIVER in a busy loop.
        if self.deliver_retry < Duration::from_millis(1) {
            return Err("deliver_retry must be at least 1ms".into());
        }
        if self.deliver_window == 0 {
            return Err("deliver_window must be at least 1".into());
        }
        if self.trailing_bytes > MAX_TRAILING_BYTES {
            return Err(format!(
                "trailing_bytes must be at most {MAX_TRAILING_BYTES}, got {}",
                self.trailing_bytes
            ));
        }
        if self.close_on_dest.len() > 32
            || !self.close_on_dest.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err("close_on_dest must be a number of at most 32 characters".into());
        }
        Ok(())
    }

    /// Picks a Stat by weight; `roll` is uniform in `0..total weight` (see [`Self::stat_weight`]).
    pub(crate) fn stat_for(&self, roll: u64) -> &str {
        let mut left = roll;
        for (stat, weight) in &self.stat_mix {
            let weight = u64::from(*weight);
            if left < weight {
                return stat;
            }
            left -= weight;
        }
        // Only reachable with an unvalidated mix; a fixed answer beats a panic.
        "DELIVRD"
    }

    pub(crate) fn stat_weight(&self) -> u64 {
        self.stat_mix.iter().map(|(_, w)| u64::from(*w)).sum()
    }
}

/// Parses `DELIVRD=95,UNDELIV=5` (weights default to 1: `DELIVRD,UNDELIV`).
pub fn parse_stat_mix(s: &str) -> Result<Vec<(String, u32)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((stat, weight)) => weight
                .trim()
                .parse()
                .map(|w| (stat.trim().to_owned(), w))
                .map_err(|_| format!("weight of {stat:?} is not a whole number: {weight:?}")),
            None => Ok((part.to_owned(), 1)),
        })
        .collect()
}

/// Everything `simulator::start` needs.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// CMPP listen address; port 0 picks a free port (see `SimulatorHandle::addr`).
    pub listen: SocketAddr,
    /// HTTP control interface; `None` = none.
    pub control: Option<SocketAddr>,
    pub accounts: Vec<Account>,
    /// ISMG code packed into every Msg_Id (22 bits).
    pub gateway_code: u32,
    pub behaviour: Behaviour,
    /// Keep every SUBMIT for `recorded_submits` (costs memory; off for benchmarks).
    pub record_submits: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: None,
            accounts: vec![Account::new("900001", "888888", Version::V30)],
            gateway_code: 1,
            behaviour: Behaviour::default(),
            record_submits: false,
        }
    }
}

/// The largest gateway code that fits Msg_Id's 22 bits.
const MAX_GATEWAY_CODE: u32 = 0x3F_FFFF;

impl SimulatorConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.accounts.is_empty() {
            return Err("at least one account is needed".into());
        }
        for (i, account) in self.accounts.iter().enumerate() {
            if account.sp_id.is_empty() || account.sp_id.len() > SOURCE_ADDR_LEN {
                return Err(format!(
                    "account {:?}: SP id must be 1 to 6 bytes (Source_Addr is oct[6])",
                    account.sp_id
                ));
            }
            if self.accounts[..i].iter().any(|a| a.sp_id == account.sp_id) {
                return Err(format!("account {:?} is listed twice", account.sp_id));
            }
        }
        if self.gateway_code > MAX_GATEWAY_CODE {
            return Err(format!(
                "gateway code {} does not fit Msg_Id's 22 bits (max {MAX_GATEWAY_CODE})",
                self.gateway_code
            ));
        }
        self.behaviour.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_json_uses_human_durations_and_defaults() {
        let b: Behaviour = serde_json::from_str(
            r#"{"response_delay":"5ms","report_layout":"60","stat_mix":"UNDELIV=3,DELIVRD"}"#,
        )
        .unwrap();
        assert_eq!(b.response_delay, Duration::from_millis(5));
        assert_eq!(b.report_layout, ReportLayout::Compact60);
        assert_eq!(
            b.stat_mix,
            vec![("UNDELIV".to_owned(), 3), ("DELIVRD".to_owned(), 1)]
        );
        assert_eq!(b.deliver_retry, Duration::from_secs(5));
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["response_delay"], "5ms");
        assert_eq!(json["report_layout"], "60");
        let back: Behaviour = serde_json::from_value(json).unwrap();
        assert_eq!(back, b);
        assert!(serde_json::from_str::<Behaviour>(r#"{"windw":3}"#).is_err());
    }

    #[test]
    fn validation_catches_bad_values() {
        let mut b = Behaviour::default();
        assert!(b.validate().is_ok());
        b.flow_control_ratio = 1.5;
        assert!(b.validate().is_err());
        b.flow_control_ratio = f64::NAN;
        assert!(b.validate().is_err());
        let b = Behaviour {
            response_delay: Duration::from_secs(86_401),
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
        let b = Behaviour {
            stat_mix: vec![("TOOLONGSTAT".into(), 1)],
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
        let b = Behaviour {
            stat_mix: vec![("DELIVRD".into(), 0)],
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
    }

    #[test]
    fn stat_is_picked_by_weight() {
        let b = Behaviour {
            stat_mix: parse_stat_mix("DELIVRD=2, UNDELIV=1").unwrap(),
            ..Behaviour::default()
        };
        assert_eq!(b.stat_weight(), 3);
        assert_eq!(
            [0, 1, 2].map(|r| b.stat_for(r)),
            ["DELIVRD", "DELIVRD", "UNDELIV"]
        );
        assert!(parse_stat_mix("DELIVRD=x").is_err());
    }

    #[test]
    fn accounts_parse_without_leaking_secrets() {
        let a: Account = "900002:s3cret:2.0".parse().unwrap();
        assert_eq!(a, Account::new("900002", "s3cret", Version::V20));
        assert!(!format!("{a:?}").contains("s3cret"));
        let err = "900002".parse::<Account>().unwrap_err();
        assert!(err.contains("SPID:SECRET"));
        let a: Account = serde_json::from_str(r#"{"sp_id":"9","secret":"x"}"#).unwrap();
        assert_eq!(a.version, Version::V30);
    }

    #[test]
    fn config_validation() {
        let mut c = SimulatorConfig::default();
        assert!(c.validate().is_ok());
        c.accounts.push(c.accounts[0].clone());
        assert!(c.validate().unwrap_err().contains("twice"));
        c.accounts = vec![Account::new("9000011", "x", Version::V30)];
        assert!(c.validate().is_err());
        c.accounts = vec![Account::new("900001", "x", Version::V30)];
        c.gateway_code = 1 << 22;
        assert!(c.validate().is_err());
    }
}
