//! cmpp-gateway: send and receive SMS over China Mobile's CMPP 3.0 through HTTP and Redis Streams.
//!
//! # Layout
//! - [`protocol`]: the CMPP 3.0 / 2.0 wire format, pure (no I/O): PDUs, Msg_Id, authenticators.
//! - [`text`]: message text: ASCII / UCS2 / GBK coding, long-message splitting with a UDH, UDH parsing.
//! - [`session`]: the SP side of one CMPP link: login, window, rate, flow control, heartbeats,
//!   reconnects, DELIVERs handed up with their acknowledgement.
//! - [`cli`]: the subcommands of the `cmpp-gateway` binary (`decode`).

pub mod bench;
pub mod cli;
pub mod protocol;
pub mod secret;
pub mod session;
pub mod simulator;
pub mod text;
