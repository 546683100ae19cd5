-- REPORT_HOLD (src/store/reports.rs). A status report whose Msg_Id is not mapped yet is held
-- (in the report stream's slot) until it is: its DELIVER's marker is claimed now, so a
-- redelivery while it waits is known at once, and report_resolve.lua writes it later.
-- KEYS[1] the DELIVER's marker, KEYS[2] held-report hash, KEYS[3] held-report index.
-- ARGV[1] TTL ms, ARGV[2] now (ms), ARGV[3] the DELIVER's Msg_Id, then the entry's
-- field/value pairs.
-- Returns 1 when held, 0 when this DELIVER was written (or held) before.
if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return 1
