//! A connection that is replaced by a freshly opened one when a command fails in a way a new
//! connection may mend: the Sentinel primary (a failover moved it: ask the sentinels again)
//! and the Cluster client (it stopped answering: open a new one). The failing command's error
//! still goes back to its caller at once, who tries again with its own bound; the new
//! connection is opened in the background (bounded by [`OPEN_TIMEOUT`]) and the tries after it
//! go through it. Concurrent failures open one new connection, and at most one per
//! [`RENEW_INTERVAL`].

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use redis::aio::ConnectionLike;
use redis::{Cmd, RedisError, RedisFuture, RedisResult, Value};

/// However many commands fail meanwhile, a new connection is opened at most this often.
const RENEW_INTERVAL: Duration = Duration::from_millis(250);
/// Opening a new connection gives up after this long (the next failure tries again).
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection; with a few words on where to, for the log line.
type Open<C> = dyn Fn() -> BoxFuture<'static, RedisResult<(C, String)>> + Send + Sync;

pub(crate) struct Renewing<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for Renewing<C> {
    fn clone(&self) -> Self {
        Renewing {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<C> {
    current: RwLock<Current<C>>,
    open: Box<Open<C>>,
    /// Held while a new connection is opened.
    renewing: Arc<tokio::sync::Mutex<()>>,
    /// An error after which a new connection may do better.
    mends_error: fn(&RedisError) -> bool,
    /// The same for one reply of a pipeline (a write refused inside it).
    mends_reply: fn(&Value) -> bool,
}

#[derive(Clone)]
struct Current<C> {
    conn: C,
    /// Counts renewals, so failures seen on an older connection renew once.
    generation: u64,
    renewed_at: Instant,
}

impl<C: Clone + Send + Sync + 'static> Renewing<C> {
    pub(crate) async fn open(
        open: impl Fn() -> BoxFuture<'static, RedisResult<(C, String)>> + Send + Sync + 'static,
        mends_error: fn(&RedisError) -> bool,
        mends_reply: fn(&Value) -> bool,
    ) -> RedisResult<Renewing<C>> {
        let (conn, _) = open().await?;
        Ok(Renewing {
            shared: Arc::new(Shared {
                current: RwLock::new(Current {
                    conn,
                    generation: 0,
                    renewed_at: Instant::now(),
                }),
                open: Box::new(open),
                renewing: Arc::new(tokio::sync::Mutex::new(())),
                mends_error,
                mends_reply,
            }),
        })
    }

    /// The connection in use now.
    pub(crate) fn current(&self) -> C {
        self.snapshot().conn
    }

    fn snapshot(&self) -> Current<C> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Opens a new connection in the background, unless one is being opened, another caller
    /// had one opened since `seen`, or one was opened a moment ago.
    fn renew(&self, seen: u64) {
        let shared = self.shared.clone();
        let Ok(guard) = shared.renewing.clone().try_lock_owned() else {
            return;
        };
        let current = self.snapshot();
        if current.generation != seen || current.renewed_at.elapsed() < RENEW_INTERVAL {
            return;
        }
        tokio::spawn(async move {
            let _one_at_a_time = guard;
            let opened = tokio::time::timeout(OPEN_TIMEOUT, (shared.open)()).await;
            let mut slot = shared
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slot.renewed_at = Instant::now();
            match opened {
                Ok(Ok((conn, what))) => {
                    tracing::info!(to = %what, "redis: connected anew");
                    slot.conn = conn;
                    slot.generation += 1;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "redis: no new connection yet"),
                Err(_) => tracing::debug!("redis: no new connection within {OPEN_TIMEOUT:?}"),
            }
        });
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> ConnectionLike for Renewing<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let Current {
                mut conn,
                generation,
                ..
            } = self.snapshot();
            let result = conn.req_packed_command(cmd).await;
            let mends = match &result {
                Err(e) => (self.shared.mends_error)(e),
                Ok(v) => (self.shared.mends_reply)(v),
            };
            if mends {
                self.renew(generation);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let Current {
                mut conn,
                generation,
                ..
            } = self.snapshot();
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            let mends = match &result {
                Err(e) => (self.shared.mends_error)(e),
                Ok(values) => values.iter().any(self.shared.mends_reply),
            };
            if mends {
                self.renew(generation);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.snapshot().conn.get_db()
    }
}
