-- ACQUIRE (src/store/lease.rs).
-- Takes the lowest free slot: the first lease key that does not exist gets a new token from
-- its fence and the holder's name, with the TTL. KEYS: per slot, in order, its lease key and
-- its fence key. ARGV[1] base name, ARGV[2] TTL ms. Returns {slot, token, holder}, or nil when
-- every slot is held.
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local slot = (i - 1) / 2
    local token = redis.call('INCR', KEYS[i + 1])
    local holder = string.format('%s/%d/%d', ARGV[1], slot, token)
    redis.call('SET', KEYS[i], holder, 'PX', ARGV[2])
    return {slot, token, holder}
  end
end
return false
