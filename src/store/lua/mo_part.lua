-- MO_PART (src/store/mo.rs).
-- KEYS[1] set hash, KEYS[2] pending zset, KEYS[3] seen marker of the DELIVER.
-- ARGV: 1 part number, 2 total, 3 payload, 4 DELIVER Msg_Id, 5 Msg_Fmt, 6 service_id,
-- 7 link_id, 8 now ms, 9 set TTL ms, 10 seen TTL ms, 11 from, 12 to.
-- Returns {0} when nothing was stored (the DELIVER was seen, or its part number is held under
-- another Msg_Id), {1, parts held} when stored and still incomplete, and {2, HGETALL of the set}
-- whenever the set holds every part — also for a duplicate, so that a set completed by an
-- instance that crashed before writing it is written when the ISMG redelivers.
local set, pending, seen = KEYS[1], KEYS[2], KEYS[3]
local k, total = ARGV[1], tonumber(ARGV[2])
local function held()
  return tonumber(redis.call('HGET', set, 'n') or '0')
end
local function complete_or(reply)
  if held() >= total then return {2, redis.call('HGETALL', set)} end
  return reply
end
if redis.call('EXISTS', seen) == 1 then return complete_or({0}) end
redis.call('SET', seen, '1', 'PX', ARGV[10])
if redis.call('HSETNX', set, 'p:' .. k, ARGV[3]) == 0 then return complete_or({0}) end
redis.call('HSET', set, 'm:' .. k, ARGV[4], 'f:' .. k, ARGV[5], 'last_seen', ARGV[8])
local n = redis.call('HINCRBY', set, 'n', 1)
if redis.call('HSETNX', set, 'first_seen', ARGV[8]) == 1 then
  redis.call('HSET', set, 'total', total, 'service_id', ARGV[6], 'link_id', ARGV[7],
             'from', ARGV[11], 'to', ARGV[12])
  redis.call('PEXPIRE', set, ARGV[9])
  redis.call('ZADD', pending, ARGV[8], set)
end
if n >= total then return {2, redis.call('HGETALL', set)} end
return {1, n}
