//! The redis-server harness lives in the library so the benchmarks use the same one.

pub use cmpp_gateway::bench::redis_server::RedisServer;

/// A plain connection for test assertions on streams and keys. Its commands may take long
/// (reading tens of thousands of entries in a debug build), so no 500 ms default timeout.
pub async fn connect(redis: &RedisServer) -> ::redis::aio::MultiplexedConnection {
    let config = ::redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(60)));
    ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("test connects to redis")
}
