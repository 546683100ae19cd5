-- REPORT_RESOLVE (src/store/held_reports.rs); preceded by index_add.lua. Writes a held report
-- (in the report stream's slot) with what its correlation found, and releases it: the held
-- hash is the token, so of two instances resolving one report only the first writes it.
-- KEYS[1] held-report hash, KEYS[2] held-report index, KEYS[3] reports stream, KEYS[4] the
-- number's report index (used only with ARGV[6]), KEYS[5] this minute's counters. ARGV[1]
-- TTL ms (index), ARGV[2] approximate MAXLEN, ARGV[3] the DELIVER's Msg_Id, ARGV[4] the
-- counter to add 1 to or "", ARGV[5] the counters' TTL ms, ARGV[6] `1` to index it under the
-- number, then field/value pairs to add to the held ones.
-- Returns 1 when written, 0 when the held report is gone (written by someone else, expired).
local fields = redis.call('HGETALL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[3])
if #fields == 0 then return 0 end
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
if ARGV[6] == '1' then index_add(KEYS[4], entry_ms(entry), entry, ARGV[1]) end
if ARGV[4] ~= '' and redis.call('HINCRBY', KEYS[5], ARGV[4], 1) == 1 then
  redis.call('PEXPIRE', KEYS[5], ARGV[5])
end
redis.call('DEL', KEYS[1])
return 1
