-- DELETE_STALE (src/store/stale_consumers.rs).
-- Deletes the group's consumers, other than the caller and the names spared, that have nothing
-- pending and have been idle at least ARGV[2] ms, in one step: none can read an entry between
-- the check and the delete (deleting a consumer drops its pending entries' claim, so one with
-- any is kept).
-- KEYS[1] outbound stream. ARGV[1] group, ARGV[2] idle ms, ARGV[3] the caller's consumer name,
-- ARGV[4..] names to keep (live lease holders). Returns the names deleted.
local spared = {[ARGV[3]] = true}
for i = 4, #ARGV do spared[ARGV[i]] = true end
local deleted = {}
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local c = {}
  for i = 1, #row, 2 do c[row[i]] = row[i + 1] end
  if not spared[c.name] and c.pending == 0 and c.idle >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], c.name)
    deleted[#deleted + 1] = c.name
  end
end
return deleted
