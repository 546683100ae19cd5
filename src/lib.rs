//! cmpp-gateway: send and receive SMS over China Mobile's CMPP 3.0 through HTTP and Redis Streams.
//!
//! # Layout
//! - [`protocol`]: the CMPP 3.0 / 2.0 wire format, pure (no I/O): PDUs, Msg_Id, authenticators.
//! - [`text`]: message text: ASCII / UCS2 / GBK coding, long-message splitting with a UDH, UDH parsing.
//! - [`session`]: the SP side of one CMPP link: login, window, rate, flow control, heartbeats,
//!   reconnects, DELIVERs handed up with their acknowledgement.
//! - [`simulator`]: the ISMG side of CMPP with fault injection, for tests, demos and benchmarks.
//! - [`config`]: `config.json` (a superset of the original gateway's) and its environment overrides.
//! - [`message`]: one outbound message: its flat stream-entry form, validation, its SUBMITs.
//! - [`store`]: everything in Redis: streams, consumer group, message state, Msg_Id map.
//! - [`worker`]: drains the outbound stream over the link and records what happened.
//! - [`inbound`]: stores what the ISMG delivers: reports correlated, MO reassembled.
//! - [`http`]: the warp ingress: send, state, link, health, and the original gateway's routes.
//! - [`gateway`]: wires them together for `cmpp-gateway run`.
//! - [`bench`]: the benchmark runs; [`cli`]: the binary's subcommands; [`secret`]: unprintable strings.

pub mod bench;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod http;
pub mod inbound;
pub mod message;
pub mod metrics;
pub mod protocol;
pub mod secret;
pub mod session;
pub mod simulator;
pub mod store;
pub mod text;
pub mod worker;
