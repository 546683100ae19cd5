//! Helpers shared by the integration tests. Each test crate uses a subset, hence the allow.
#![allow(dead_code)]

pub mod gateway;
pub mod http_client;
pub mod link;
pub mod process;
pub mod redis;
pub mod streams;
pub mod wait;

/// The key names of the gateway the tests start (the default prefix).
pub fn keys() -> cmpp_gateway::store::Keys {
    cmpp_gateway::store::Keys::new("cmpp")
}
