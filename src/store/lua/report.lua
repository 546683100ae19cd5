-- REPORT (src/store/reports.rs); preceded by status.lua, index_add.lua, correlate.lua.
-- KEYS[1] reports stream, KEYS[2] seen-marker of the DELIVER, KEYS[3] Msg_Id map key or "",
-- KEYS[4] the DELIVER's held-report hash, KEYS[5] the held-report index.
-- ARGV[1] TTL ms, ARGV[2] approximate MAXLEN, ARGV[3] what to do unmapped: `write` (unmatched)
-- or `hold`, ARGV[4] state key prefix, ARGV[5] Stat, ARGV[6] now (ms), ARGV[7] per-number index
-- prefix, ARGV[8] the number to index an unmatched report under (or ""), ARGV[9] this minute's
-- counters key, ARGV[10] their TTL ms, ARGV[11] the DELIVER's Msg_Id, then the entry's own
-- field/value pairs. The Msg_Id map value is MessagePack of `Submitted` as an array: id,
-- segment, segments, to.
--
-- It runs once per message at full rate, and each `redis.call` costs Redis more than the
-- command itself, so it makes few: GET the map, one HMGET and one HSET of the state, the XADD,
-- the number's index (ZADD, PEXPIRE), and the minute's `delivered`/`failed` counter when the
-- report decides the message. A redelivered DELIVER is recognised in the state, which lists
-- the DELIVER Msg_Ids each segment's reports came in (`s{n}_delivers`); only a report with no
-- state to hold that (unmatched, held, malformed, state expired) claims a seen-marker key of
-- its own, and one whose Msg_Id is not mapped looks for it first. A held report claims it when
-- held, so a redelivery while it waits is known at once; the held-report script writes it
-- later (see `held_reports`), and a redelivery that finds the Msg_Id mapped first is written
-- then and recognised by that script in the state.
local mapped = false
if KEYS[3] ~= '' then mapped = redis.call('GET', KEYS[3]) end
local fields = {unpack(ARGV, 12)}
if not mapped then
  if ARGV[3] == 'hold' then
    if not redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then return 'duplicate' end
    redis.call('HSET', KEYS[4], unpack(fields))
    redis.call('PEXPIRE', KEYS[4], ARGV[1])
    redis.call('ZADD', KEYS[5], ARGV[6], ARGV[11])
    return 'held'
  end
  -- Stored before as unmatched (a redelivery): known at once.
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
end
local number = ARGV[8]
local decided, in_state = '', false
if mapped then
  local rec = cmsgpack.unpack(mapped)
  local redelivered
  in_state, decided, redelivered = correlate(ARGV[4] .. rec[1], rec, fields, ARGV[5], ARGV[6],
    ARGV[11], ARGV[9], ARGV[10])
  if redelivered then return 'duplicate' end
  number = rec[4]
else
  fields[#fields + 1] = 'unmatched'
  fields[#fields + 1] = '1'
end
if not in_state and not redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then
  return 'duplicate'
end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
if number ~= '' then index_add(ARGV[7] .. number, entry_ms(entry), entry, ARGV[1]) end
if mapped then return 'written' .. decided end
return 'written_unmatched'
