-- REPORT_WRITE (src/store/reports.rs); preceded by index_add.lua. A status report's entry, in
-- the report stream's slot, written once per DELIVER: its marker is claimed with the write.
-- The per-number index and the minute's counter of the decision it carries go with it.
-- A DELIVER whose marker is claimed was written before, or is held (its Msg_Id was not mapped
-- when it came): a redelivery that correlated now writes the held one in its place and
-- releases it.
-- KEYS[1] reports stream, KEYS[2] the DELIVER's marker, KEYS[3] the number's report index
-- (used only with ARGV[7]), KEYS[4] this minute's counters, KEYS[5] the DELIVER's held-report hash, KEYS[6] the
-- held-report index. ARGV[1] TTL ms (marker and index), ARGV[2] approximate MAXLEN, ARGV[3]
-- the counter to add 1 to (`delivered`, `failed`) or "", ARGV[4] the counters' TTL ms,
-- ARGV[5] the DELIVER's Msg_Id, ARGV[6] `1` when this write is correlated (and may take a
-- held report's place), ARGV[7] `1` to index it under the number, then the entry's
-- field/value pairs.
-- Returns 1 when written, 0 when this DELIVER was written before (or is held, and this write
-- is not correlated either).
if not redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then
  if ARGV[6] ~= '1' or redis.call('DEL', KEYS[5]) == 0 then return 0 end
  redis.call('ZREM', KEYS[6], ARGV[5])
end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 8))
if ARGV[7] == '1' then index_add(KEYS[3], entry_ms(entry), entry, ARGV[1]) end
if ARGV[3] ~= '' and redis.call('HINCRBY', KEYS[4], ARGV[3], 1) == 1 then
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return 1
