-- MO_DUE (src/store/mo.rs).
-- KEYS[1] pending zset. ARGV[1] cutoff ms, ARGV[2] limit.
-- Returns {set key, HGETALL, …} for the sets first seen at or before the cutoff; members whose
-- set no longer exists (written, or expired by the safety TTL) are removed on the way.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, key in ipairs(due) do
  local h = redis.call('HGETALL', key)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], key)
  else
    out[#out + 1] = key
    out[#out + 1] = h
  end
end
return out
