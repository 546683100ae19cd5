//! The integration tests, one module per area, linked into one test binary: two dozen binaries
//! each linking the whole crate cost minutes of linking and gigabytes of disk. Every test starts
//! its own redis-server (on a Unix socket in a directory of its own), simulator and gateway (on
//! loopback ports the kernel picks), so they run side by side.
//!
//! `tests/redis_tls.rs` stays a binary of its own: it sets `SSL_CERT_FILE` for the process.
//! The long tests (volume, chaos, crashes, outages, the browser) are the soak tier,
//! `tests/soak.rs`.

mod common;

mod bench_many_link;
mod codec_properties;
mod config;
mod console;
mod consumer_cleanup;
mod dashboards;
mod decode_cli;
mod hostile_ismg;
mod http;
mod http_limits;
mod leases;
mod link;
mod log_secrets;
mod message_ids;
mod metrics;
mod outbound_trim;
mod poison_entries;
mod receive_held_reports;
mod receive_mo;
mod receive_reports;
mod report_scripts;
mod scripts;
mod segmentation;
mod send_path;
mod simulator;
mod vectors;
