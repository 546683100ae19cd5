-- DEAD_LETTER (src/store/dead_letter.rs); preceded by status.lua.
-- Writes the dead letter and the final state together, so a retry after an error never writes
-- the letter twice: a state already decided (`failed`/`dead` by an earlier run of this, or
-- `delivered` by reports) is left as it is and no letter is written. A state that belongs to
-- another entry (its `stream_id` differs: the id was used before) is not touched.
-- KEYS[1] dead-letter stream, KEYS[2] state key or "". ARGV[1] status, ARGV[2] TTL ms,
-- ARGV[3] approximate MAXLEN of the dead-letter stream, ARGV[4] this entry's stream id,
-- ARGV[5] number of state field/value pairs k, then k pairs, then the dead letter's fields.
-- Returns 1 when the letter was written, 0 when the state was already decided.
local k = tonumber(ARGV[5])
local write_state = false
if KEYS[2] ~= '' then
  local status, submitted_at, owner =
    unpack(redis.call('HMGET', KEYS[2], 'status', 'submitted_at', 'stream_id'))
  if (not owner) or owner == ARGV[4] then
    status = effective_status(status, submitted_at)
    if (rank[status] or 0) >= rank.delivered then return 0 end
    write_state = true
  end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 6 + 2 * k))
if write_state then
  redis.call('HSET', KEYS[2], 'status', ARGV[1], unpack(ARGV, 6, 5 + 2 * k))
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
