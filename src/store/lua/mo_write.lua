-- MO_WRITE (src/store/mo.rs); preceded by index_add.lua.
-- KEYS[1] MO stream, KEYS[2] set hash, KEYS[3] pending zset, KEYS[4] the sender's MO index.
-- ARGV[1] approximate MAXLEN, ARGV[2] the part count the caller decoded, ARGV[3] index TTL
-- ms, then the entry's field/value pairs. Returns 1 when written (set and pending member
-- deleted), 0 when the set is gone (someone else wrote it; a dangling pending member is
-- removed), -1 when the set has changed since it was read (a part arrived: read it again).
local n = redis.call('HGET', KEYS[2], 'n')
if not n then
  redis.call('ZREM', KEYS[3], KEYS[2])
  return 0
end
if n ~= ARGV[2] then return -1 end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], KEYS[2])
index_add(KEYS[4], entry_ms(entry), entry, ARGV[3])
return 1
