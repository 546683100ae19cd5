//! Commands sent together in one round trip: one pipeline on a single node; on a Cluster, whose
//! nodes refuse a pipeline that spans slots, every command at once on its own. A batch is not
//! a transaction and, on a Cluster, has no order: a caller whose second write must land after
//! the first sends them in two batches.

use futures_util::future::try_join_all;
use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, Pipeline, ScriptInvocation, ToRedisArgs, Value};

use super::redis_conn::RedisConn;

/// A pipeline that remembers which replies it ignores, so it can be split by slot.
#[derive(Default)]
pub(crate) struct Batch {
    pipe: Pipeline,
    ignored: Vec<bool>,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch::default()
    }

    pub(crate) fn cmd(&mut self, name: &str) -> &mut Batch {
        self.pipe.cmd(name);
        self.ignored.push(false);
        self
    }

    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Batch {
        self.pipe.arg(arg);
        self
    }

    /// The last command's reply is left out of the result.
    pub(crate) fn ignore(&mut self) -> &mut Batch {
        self.pipe.ignore();
        if let Some(last) = self.ignored.last_mut() {
            *last = true;
        }
        self
    }

    pub(crate) fn add(&mut self, cmd: Cmd) -> &mut Batch {
        self.pipe.add_command(cmd);
        self.ignored.push(false);
        self
    }

    /// EVALSHA of the script; a Redis that lost it answers NOSCRIPT, and `Store::run` loads
    /// every script and sends the batch again.
    pub(crate) fn invoke_script(&mut self, invocation: &ScriptInvocation<'_>) -> &mut Batch {
        self.pipe.invoke_script(invocation);
        self.ignored.push(false);
        self
    }

    /// Sends the batch; the replies of the commands not ignored, in their order.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        conn: &mut RedisConn,
    ) -> redis::RedisResult<T> {
        if self.ignored.is_empty() {
            // Nothing to send (Redis refuses an empty pipeline): no replies.
            return T::from_redis_value(Value::Array(Vec::new())).map_err(redis::RedisError::from);
        }
        if !conn.is_cluster() {
            return self.pipe.query_async(conn).await;
        }
        // Every command on its own, all in flight at once: the cluster client writes those
        // for one node together on its connection, as a pipeline would, and follows MOVED and
        // ASK for each (it does not for a pipeline, which a slot being moved then fails).
        let replies = try_join_all(
            self.pipe
                .cmd_iter()
                .zip(&self.ignored)
                .filter(|(_, ignored)| !**ignored)
                .map(|(cmd, _)| (cmd, conn.clone()))
                .map(|(cmd, mut conn)| async move { conn.req_packed_command(cmd).await }),
        );
        let ignored = try_join_all(
            self.pipe
                .cmd_iter()
                .zip(&self.ignored)
                .filter(|(_, ignored)| **ignored)
                .map(|(cmd, _)| (cmd, conn.clone()))
                .map(|(cmd, mut conn)| async move { conn.req_packed_command(cmd).await }),
        );
        let (replies, _) = futures_util::future::try_join(replies, ignored).await?;
        let replies = replies
            .into_iter()
            .map(|v| v.extract_error())
            .collect::<redis::RedisResult<Vec<Value>>>()?;
        T::from_redis_value(Value::Array(replies)).map_err(redis::RedisError::from)
    }
}
