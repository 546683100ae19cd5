-- ENQUEUE (src/store/scripts.rs); preceded by index_add.lua.
-- Enqueue a batch (one entry per recipient) unless its idempotency key was seen or one of its
-- message ids already has a state (another request, or a direct XADD, used it: replaying is
-- the only answer that neither sends twice nor overwrites), and index each message for the
-- console (recent and per recipient, see `index`). The state keeps the content (`text`, or
-- `hex` and `coding`): the outbound entry is trimmed once it is sent.
-- KEYS[1] outbound stream, KEYS[2] idempotency key or "", KEYS[3] recent-messages index, then
-- per message its state key and its recipient's index.
-- ARGV[1] TTL ms, ARGV[2] the answer to store, ARGV[3] message count, then per message:
-- queued_at ms, field count n, n field/value pairs.
-- Returns {1, answer} when enqueued, {0, first answer} when the id was seen before, {0, answer}
-- (nothing stored) when a message id has a state.
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
