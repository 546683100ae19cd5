//! The soak tier: tests that push volume, chaos, crashes, outages or a real browser through the
//! whole stack, each taking seconds to a minute. They run in CI with everything else
//! (`scripts/test.sh`), in a binary of their own so that `cargo test --test integration` (and one
//! module of it) stays quick: `cargo test --test soak` runs just these.
//!
//! They share `tests/common` with the integration tests and, like them, start their own
//! redis-server, simulator and gateway, so they run side by side.

mod common;

#[path = "soak/aof.rs"]
mod aof;
#[path = "soak/cluster.rs"]
mod cluster;
#[path = "soak/console_browser.rs"]
mod console_browser;
#[path = "soak/crash.rs"]
mod crash;
#[path = "soak/instances.rs"]
mod instances;
#[path = "soak/link_chaos.rs"]
mod link_chaos;
#[path = "soak/link_load.rs"]
mod link_load;
#[path = "soak/receive_outage.rs"]
mod receive_outage;
#[path = "soak/sentinel.rs"]
mod sentinel;
