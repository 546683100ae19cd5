-- RENEW (src/store/lease.rs).
-- Extends the lease only if it still holds our name. KEYS[1] lease key. ARGV[1] holder,
-- ARGV[2] TTL ms. Returns 1 when renewed, 0 when it lapsed or someone else holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
