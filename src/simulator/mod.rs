//! A built-in ISMG: the server side of CMPP that the gateway is tested and benchmarked against
//! (`cmpp-gateway simulator`, or [`start`] from tests).
//!
//! It logs SPs in (2.0 and 3.0 accounts), answers SUBMITs with unique Msg_Ids, sends status
//! reports and MO messages as DELIVERs that it resends until acknowledged, and misbehaves on
//! request: delays, flow control, window enforcement, dropped responses, closed connections,
//! malformed PDUs, TERMINATE. Counters say what happened.
//!
//! # Layout
//! - [`config`]: [`Account`], [`Behaviour`], [`SimulatorConfig`]: what it accepts and how it behaves.
//! - `server`: shared state, the accept loop and [`start`]; `handle`: [`SimulatorHandle`].
//! - `login`: CONNECT → CONNECT_RESP; `admission` and `limits`: the per-account connection
//!   limit and the guard a logged-in connection holds; `connection`: one logged-in client (the
//!   hot path).
//! - `submit`: the verdict on one SUBMIT (window → flow control → dropped response) and
//!   [`RecordedSubmit`]; `ids`: Msg_Ids that never repeat within a run.
//! - `hostile`: damaged DELIVERs and ISMG-sent SUBMITs, as broken peers send them.
//! - `outbox`: per-account DELIVER queue with redelivery; `report` and `mo`: what goes into it.
//! - `control`: the HTTP control interface; `counters`: [`Counters`]; `conn_stats`: the
//!   per-connection counters; `udh_refs`: concatenation reference collisions; `stats`: [`Stats`],
//!   the `/stats` document.
//!
//! # Guarantees the gateway can rely on
//! - Msg_Ids (SUBMIT_RESP and DELIVER) are unique within a process run of less than a year;
//!   a SUBMIT to N recipients reserves Msg_Id … Msg_Id+N−1 within one second's sequence block.
//! - A DELIVER is resent (same Msg_Id, new Sequence_Id) until DELIVER_RESP Result 0 arrives:
//!   after `deliver_retry` without an answer, `deliver_retry` after a non-zero answer, and at once
//!   on another connection of the account when its connection closes. Duplicates are therefore
//!   normal and must be stored once.
//! - A submit whose response was dropped was still accepted: its report follows.
//! - With `max_connections`, a login is refused (Status 5) only while its account has that many
//!   logged-in connections; a closing connection frees its slot before its last bytes (a
//!   TERMINATE_RESP) are flushed, so a client that saw its connection end can log in again at once
//!   (after a reset or EOF from the client, once the simulator has read it).

mod admission;
pub mod config;
mod conn_stats;
mod connection;
mod control;
mod counters;
mod handle;
mod hostile;
mod ids;
mod limits;
mod login;
mod mo;
mod outbox;
mod report;
mod serde_fmt;
mod server;
mod stats;
mod submit;
mod udh_refs;

pub use config::{Account, Behaviour, SimulatorConfig, parse_stat_mix};
pub use counters::Counters;
pub use handle::SimulatorHandle;
pub use hostile::{Damage, DamagedDeliverRequest, IsmgSubmitRequest};
pub use mo::MoRequest;
pub use report::ReportRequest;
pub use server::start;
pub use stats::{AccountStats, ConnectionStats, Stats};
pub use submit::RecordedSubmit;
