-- RELEASE (src/store/lease.rs).
-- Deletes the lease only if it still holds our name. KEYS[1] lease key. ARGV[1] holder.
-- Returns 1 when deleted, 0 when it was not ours (any more).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
