//! The integration tests, one module per area, linked into one test binary: two dozen binaries
//! each linking the whole crate cost minutes of linking and gigabytes of disk. Every test starts
//! its own redis-server, simulator and gateway on free loopback ports, so they run side by side.
//!
//! `tests/redis_tls.rs` stays a binary of its own: it sets `SSL_CERT_FILE` for the process.

mod common;

mod codec_properties;
mod config;
mod console;
mod console_browser;
mod consumer_cleanup;
mod crash;
mod dashboards;
mod decode_cli;
mod hostile_ismg;
mod http;
mod http_limits;
mod link;
mod link_chaos;
mod log_secrets;
mod message_ids;
mod metrics;
mod outbound_trim;
mod poison_entries;
mod receive_held_reports;
mod receive_mo;
mod receive_outage;
mod receive_reports;
mod segmentation;
mod send_path;
mod simulator;
mod vectors;
