-- ACCEPT (src/store/outbound.rs); the second step of an enqueue, after the entries were
-- XADDed. Records the request's messages: each one's state (unless another entry already owns
-- its id) and the request's idempotency answer. Every key is in the request's slot.
-- A state the worker created first (it read the entry already) keeps its status; one that
-- belongs to another entry (a request with the same id won a race) is left alone: the worker
-- dead-letters this request's entry as a duplicate of that one.
-- KEYS[1] the request's idempotency key, then per message its state key (a key is always
-- given, even when unused: a Cluster checks every key's slot).
-- ARGV[1] TTL ms, ARGV[2] the answer to store, ARGV[3] `1` to check and store the answer,
-- ARGV[4] message count, then per message: its entry's stream id, queued_at ms, field count
-- n, n field/value pairs (`id`, `to`, content).
-- Returns {1, answer} when recorded, {0, first answer} when another request with this id was
-- recorded first.
local answered = ARGV[3] == '1'
if answered then
  local prior = redis.call('GET', KEYS[1])
  if prior then return {0, prior} end
end
local ttl = ARGV[1]
local i = 5
for m = 1, tonumber(ARGV[4]) do
  local key = KEYS[1 + m]
  local stream_id, queued_at, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local fields = {unpack(ARGV, i + 3, i + 2 + 2 * n)}
  i = i + 3 + 2 * n
  local owner = redis.call('HGET', key, 'stream_id')
  if (not owner) or owner == stream_id then
    redis.call('HSETNX', key, 'stream_id', stream_id)
    redis.call('HSETNX', key, 'status', 'queued')
    redis.call('HSETNX', key, 'updated_at', queued_at)
    redis.call('HSET', key, 'queued_at', queued_at, unpack(fields))
    redis.call('PEXPIRE', key, ttl)
  end
end
if answered then redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl) end
return {1, ARGV[2]}
