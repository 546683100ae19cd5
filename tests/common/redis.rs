//! The redis-server harness lives in the library so the benchmarks use the same one.

pub use cmpp_gateway::bench::redis_server::RedisServer;

/// A plain connection for test assertions on streams and keys.
pub async fn connect(redis: &RedisServer) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("test connects to redis")
}
