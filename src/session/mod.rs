//! The SP side of one CMPP link.
//!
//! [`Link::spawn`] starts one background task that logs in, keeps the connection alive and
//! reconnects; [`Link`] is the handle used to submit segments. Inside the task a single
//! `select!` serves the socket, new submits, DELIVER answers, timers and shutdown
//! (`connection.rs`). The window is a semaphore whose permit travels with each submit until it
//! is answered (`window.rs`); the pacer holds the rate limit and the Result-8 slowdown
//! (`pacer.rs`). Everything observable is a typed [`LinkEvent`] (`events.rs`), counted by
//! [`LinkStats`].

mod backoff;
pub mod codec;
mod config;
mod connection;
mod error;
mod events;
mod fence;
mod inbound;
mod link;
mod link_set;
mod login;
mod pacer;
mod stats;
mod task;
mod window;

pub use config::{AuthCheck, LinkConfig};
pub use error::{ConnectError, SubmitError};
pub use events::{ConnectOutcome, DisconnectReason, LinkEvent, LinkObserver, LinkState};
pub use fence::Fence;
pub use inbound::{DeliverAck, Delivered, Inbound, UndecodableDeliver};
pub use link::{Link, LinkParts};
pub use link_set::{HeldLink, LinkSet};
pub use stats::{LinkStats, LinkStatsSnapshot};
pub use task::LinkStatus;
pub use window::SubmitAccepted;
