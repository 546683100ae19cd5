-- DEAD_STATE (src/store/dead_letter.rs); preceded by status.lua. The first step of a dead
-- letter: the message's final state, in the message's slot. The letter itself follows
-- (letter.lua, in the channel's slot).
-- A state already decided by reports (`delivered`, or `failed` after its Msg_Ids were
-- recorded) is left as it is and no letter is wanted. A state decided by an earlier run of
-- this (dead or failed, never submitted) still wants its letter: that run may have stopped
-- before writing it, and letter.lua writes it only while the entry is pending, so once. A
-- state that belongs to another entry (the id was used before) is not touched; the letter is
-- still wanted.
-- KEYS[1] state key. ARGV[1] status, ARGV[2] TTL ms, ARGV[3] this entry's stream id, then the
-- state's field/value pairs.
-- Returns 1 when the letter is wanted, 0 when the state was decided otherwise.
local status, submitted_at, owner =
  unpack(redis.call('HMGET', KEYS[1], 'status', 'submitted_at', 'stream_id'))
if owner and owner ~= ARGV[3] then return 1 end
local current = effective_status(status, submitted_at)
if (rank[current] or 0) >= rank.delivered then
  if submitted_at or current == 'delivered' then return 0 end
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
