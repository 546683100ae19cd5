//! Commands sent together in one round trip: one pipeline on a single node, one pipeline per
//! hash slot (all in flight at once) on a Cluster, whose nodes refuse a pipeline that spans
//! slots. A batch is not a transaction and has no order between slots: a caller whose second
//! write must land after the first sends them in two batches.

use std::collections::HashMap;

use futures_util::future::try_join_all;
use redis::cluster_routing::Slot;
use redis::{Arg, Cmd, FromRedisValue, Pipeline, ScriptInvocation, ToRedisArgs, Value};

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
        // One pipeline per slot (commands without a key go alone), in first-seen order.
        let mut groups: Vec<(Pipeline, Vec<usize>)> = Vec::new();
        let mut by_slot: HashMap<Slot, usize> = HashMap::new();
        for (i, (cmd, &ignored)) in self.pipe.cmd_iter().zip(&self.ignored).enumerate() {
            let group = match routing_key(cmd).map(Slot::for_key) {
                Some(slot) => *by_slot.entry(slot).or_insert_with(|| {
                    groups.push((Pipeline::new(), Vec::new()));
                    groups.len() - 1
                }),
                None => {
                    groups.push((Pipeline::new(), Vec::new()));
                    groups.len() - 1
                }
            };
            let (pipe, members) = &mut groups[group];
            pipe.add_command(cmd.clone());
            if ignored {
                pipe.ignore();
            } else {
                members.push(i);
            }
        }
        let replies = try_join_all(groups.iter().map(|(pipe, _)| {
            let mut conn = conn.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
        }))
        .await?;
        let mut ordered: Vec<(usize, Value)> = groups
            .iter()
            .zip(replies)
            .flat_map(|((_, members), values)| members.iter().copied().zip(values))
            .collect();
        ordered.sort_unstable_by_key(|(i, _)| *i);
        T::from_redis_value(Value::Array(ordered.into_iter().map(|(_, v)| v).collect()))
            .map_err(redis::RedisError::from)
    }
}

/// The key a Cluster routes `cmd` by: the first key of the commands the store sends.
fn routing_key(cmd: &Cmd) -> Option<&[u8]> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"FCALL" => {
            let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            (keys > 0).then(|| args.get(3).copied()).flatten()
        }
        b"XINFO" | b"XGROUP" | b"OBJECT" | b"MEMORY" => args.get(2).copied(),
        b"XREAD" | b"XREADGROUP" => {
            let at = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(at + 1).copied()
        }
        b"PING" | b"WAIT" | b"SCRIPT" | b"INFO" | b"FUNCTION" | b"CLUSTER" => None,
        _ => args.get(1).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(cmd: &Cmd) -> Option<String> {
        routing_key(cmd).map(|k| String::from_utf8_lossy(k).into_owned())
    }

    #[test]
    fn routing_keys_of_the_commands_the_store_sends() {
        let mut hset = redis::cmd("HSET");
        hset.arg("cmpp:msg:{a}").arg("f").arg("v");
        assert_eq!(key_of(&hset).as_deref(), Some("cmpp:msg:{a}"));
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(2).arg("k1").arg("k2").arg("argv");
        assert_eq!(key_of(&eval).as_deref(), Some("k1"));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0).arg("argv");
        assert_eq!(key_of(&keyless), None);
        let mut info = redis::cmd("XINFO");
        info.arg("GROUPS").arg("cmpp:mt");
        assert_eq!(key_of(&info).as_deref(), Some("cmpp:mt"));
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(5)
            .arg("STREAMS")
            .arg("s")
            .arg(">");
        assert_eq!(key_of(&read).as_deref(), Some("s"));
        assert_eq!(key_of(&redis::cmd("PING")), None);
    }
}
