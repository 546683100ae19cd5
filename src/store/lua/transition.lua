-- TRANSITION (src/store/scripts.rs); preceded by status.lua.
-- Move a message's state forward: write the fields, and the status only if it ranks higher
-- than the current one (a report that raced ahead of SUBMIT_RESP bookkeeping is not undone).
-- KEYS[1] state key; ARGV[1] status, ARGV[2] TTL ms, then field/value pairs.
-- Returns the status before the change (its effective status, see status.lua), or false when
-- there was none.
local function transition(key, status, ttl, fields)
  local current = effective_status(unpack(redis.call('HMGET', key, 'status', 'submitted_at')))
  if #fields > 0 then redis.call('HSET', key, unpack(fields)) end
  if (not current) or (rank[status] or 0) > (rank[current] or 0) then
    redis.call('HSET', key, 'status', status)
  end
  redis.call('PEXPIRE', key, ttl)
  return current
end
return transition(KEYS[1], ARGV[1], ARGV[2], {unpack(ARGV, 3)})
