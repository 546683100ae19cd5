-- MO_SINGLE (src/store/mo.rs); preceded by index_add.lua.
-- KEYS[1] MO stream, KEYS[2] seen marker of the DELIVER, KEYS[3] the sender's MO index.
-- ARGV[1] seen (and index) TTL ms, ARGV[2] approximate MAXLEN, then the entry's field/value
-- pairs. Returns 1 when written, 0 when the DELIVER was stored before.
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
index_add(KEYS[3], entry_ms(entry), entry, ARGV[1])
return 1
