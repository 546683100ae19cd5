//! The redis-server harness lives in the library so the benchmarks use the same one.

pub use cmpp_gateway::bench::redis_server::RedisServer;
