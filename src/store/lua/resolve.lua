-- RESOLVE (src/store/held_reports.rs); preceded by status.lua, index_add.lua, correlate.lua.
-- KEYS[1] held-report hash, KEYS[2] held-report index, KEYS[3] Msg_Id map key, KEYS[4] reports
-- stream, KEYS[5] seen-marker of the DELIVER, KEYS[6] the mapped message's state key or "",
-- KEYS[7] the report index of the number (the message's `to`, else the report's `dest`; ""
-- when there is none),
-- KEYS[8] this minute's counters. ARGV[1] the message id the keys were derived for ("" when
-- the caller saw no mapping), ARGV[2] `1` to write it unmatched when still not mapped,
-- ARGV[3] TTL ms, ARGV[4] approximate MAXLEN, ARGV[5] now (ms), ARGV[6] the counters' TTL ms,
-- ARGV[7] the DELIVER's Msg_Id.
-- Returns `gone` (written by someone else, or expired), `stale` (the mapping is not the one
-- the keys were derived for: derive them again), `held` (not mapped, not giving up),
-- `duplicate` (a redelivery of its DELIVER was written correlated meanwhile), or `written…` as
-- the report script does.
local fields = redis.call('HGETALL', KEYS[1])
local function release()
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[7])
end
if #fields == 0 then
  redis.call('ZREM', KEYS[2], ARGV[7])
  return 'gone'
end
local mapped = redis.call('GET', KEYS[3])
local rec = mapped and cmsgpack.unpack(mapped)
if (rec and rec[1] or '') ~= ARGV[1] then return 'stale' end
if not rec and ARGV[2] ~= '1' then return 'held' end
local decided, in_state = '', false
if rec then
  local stat = ''
  for i = 1, #fields, 2 do
    if fields[i] == 'stat' then stat = fields[i + 1] end
  end
  local redelivered
  in_state, decided, redelivered = correlate(KEYS[6], rec, fields, stat, ARGV[5], ARGV[7],
    KEYS[8], ARGV[6])
  if redelivered then
    release()
    return 'duplicate'
  end
else
  fields[#fields + 1] = 'unmatched'
  fields[#fields + 1] = '1'
end
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
-- An unmatched report without a number has no index to go in.
if KEYS[7] ~= '' then index_add(KEYS[7], entry_ms(entry), entry, ARGV[3]) end
release()
-- The state lists the DELIVER now: the marker that stood in for it is no longer needed.
if in_state then redis.call('DEL', KEYS[5]) end
if rec then return 'written' .. decided end
return 'written_unmatched'
