//! Lua scripts: each makes a multi-key change atomic and costs one round trip.

use std::sync::LazyLock;

use redis::Script;

use super::index::INDEX_ADD_FN;

/// Enqueue a batch (one entry per recipient) unless its idempotency key was seen or one of its
/// message ids already has a state (another request, or a direct XADD, used it: replaying is
/// the only answer that neither sends twice nor overwrites), and index each message for the
/// console (recent and per recipient, see `index`). The state keeps the content (`text`, or
/// `hex` and `coding`): the outbound entry is trimmed once it is sent.
/// KEYS[1] outbound stream, KEYS[2] idempotency key or "", KEYS[3] recent-messages index, then
/// per message its state key and its recipient's index.
/// ARGV[1] TTL ms, ARGV[2] the answer to store, ARGV[3] message count, then per message:
/// queued_at ms, field count n, n field/value pairs.
/// Returns {1, answer} when enqueued, {0, first answer} when the id was seen before, {0, answer}
/// (nothing stored) when a message id has a state.
pub static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            INDEX_ADD_FN,
            r#"
if KEYS[2] ~= '' then
  local prior = redis.call('GET', KEYS[2])
  if prior then return {0, prior} end
end
local count = tonumber(ARGV[3])
for m = 1, count do
  if redis.call('EXISTS', KEYS[2 + 2 * m]) == 1 then return {0, ARGV[2]} end
end
local i = 4
for m = 1, count do
  local state_key, by_to = KEYS[2 + 2 * m], KEYS[3 + 2 * m]
  local queued_at, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local fields, id, to, content = {}, '', '', {}
  for f = 0, n - 1 do
    local k, v = ARGV[i + 2 * f], ARGV[i + 2 * f + 1]
    fields[#fields + 1] = k
    fields[#fields + 1] = v
    if k == 'id' then id = v elseif k == 'to' then to = v
    elseif k == 'text' or k == 'hex' or k == 'coding' then
      content[#content + 1] = k
      content[#content + 1] = v
    end
  end
  i = i + 2 * n
  local entry = redis.call('XADD', KEYS[1], '*', unpack(fields))
  redis.call('HSET', state_key, 'id', id, 'to', to, 'status', 'queued', 'stream_id', entry,
             'queued_at', queued_at, 'updated_at', queued_at, unpack(content))
  redis.call('PEXPIRE', state_key, ARGV[1])
  local ms = entry_ms(entry)
  redis.call('ZADD', KEYS[3], ms, id)
  index_add(by_to, ms, id, ARGV[1])
end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1]) end
return {1, ARGV[2]}
"#,
        ]
        .concat(),
    )
});

/// The order of statuses: a status is only ever replaced by one that ranks higher.
macro_rules! status_rank {
    () => {
        "local rank = {queued = 1, submitting = 2, submitted = 3, delivered = 4, failed = 4, dead = 4}\n"
    };
}
pub(crate) const STATUS_RANK: &str = status_rank!();

/// The status ranks and the transition rule shared by the scripts below. `submitted` is not
/// written as a status: the worker records Msg_Ids with plain commands (no script on the hot
/// path), and a hash with `submitted_at` whose status ranks lower counts as submitted (see
/// `MessageState::from_hash`, which reads it the same way).
pub(crate) const TRANSITION_FN: &str = concat!(
    status_rank!(),
    r#"
local function current_status(key)
  local status, submitted_at = unpack(redis.call('HMGET', key, 'status', 'submitted_at'))
  if submitted_at and (rank[status] or 0) < rank.submitted then return 'submitted' end
  return status
end
local function transition(key, status, ttl, fields)
  local current = current_status(key)
  if #fields > 0 then redis.call('HSET', key, unpack(fields)) end
  if (not current) or (rank[status] or 0) > (rank[current] or 0) then
    redis.call('HSET', key, 'status', status)
  end
  redis.call('PEXPIRE', key, ttl)
  return current
end
"#
);

/// Move a message's state forward: write the fields, and the status only if it ranks higher
/// than the current one (a report that raced ahead of SUBMIT_RESP bookkeeping is not undone).
/// KEYS[1] state key; ARGV[1] status, ARGV[2] TTL ms, then field/value pairs.
/// Returns the status before the change, or false when there was none.
pub static TRANSITION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRANSITION_FN}\nreturn transition(KEYS[1], ARGV[1], ARGV[2], {{unpack(ARGV, 3)}})"
    ))
});

/// Loads every script used in pipelines (a pipeline cannot fall back from EVALSHA to EVAL, and
/// a restarted Redis has forgotten them).
pub async fn load_all(conn: &mut redis::aio::ConnectionManager) -> redis::RedisResult<()> {
    for script in [
        &*TRANSITION,
        &*super::dead_letter::DEAD_LETTER,
        &*ENQUEUE,
        &*super::reports::REPORT,
    ] {
        script.prepare_invoke().load_async(conn).await?;
    }
    Ok(())
}
