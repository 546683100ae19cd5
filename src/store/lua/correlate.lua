-- CORRELATE (src/store/reports.rs); preceded by status.lua. The message's side of a status
-- report, in the message's slot (the report is written next, in the report stream's slot).
-- Brings segment ARGV[1] of ARGV[2] up to date with Stat ARGV[3] and decides the message once
-- every segment has a final Stat. The state lists the DELIVER Msg_Ids each segment's reports
-- came in (`s{n}_delivers`), so a redelivered DELIVER changes nothing, and the one that
-- decided the message is kept (`decided_by`): its redelivery says so again, so the report
-- write, which may not have happened the first time, counts the decision once.
-- The state's TTL is not renewed: it runs from the message's start and outlasts a report's 48
-- hours. Nothing is created when the state is gone.
-- KEYS[1] state key. ARGV[1] segment, ARGV[2] segments, ARGV[3] Stat, ARGV[4] now (ms),
-- ARGV[5] the DELIVER's Msg_Id.
-- Returns {in_state, final, decided}: in_state 0 when there is no state; final the message's
-- status once every segment has a Stat (`delivered`/`failed`, else ''), for the report's
-- `status` field; decided that status when this DELIVER decided the message, else ''.
local state, seg, segs = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local stat, now, deliver = ARGV[3], ARGV[4], ARGV[5]
local names = {'status', 'submitted_at', 's' .. seg .. '_delivers', 'decided_by'}
for i = 1, segs do names[#names + 1] = 's' .. i .. '_stat' end
local have = redis.call('HMGET', state, unpack(names))
if not have[1] then return {0, '', ''} end
-- ACCEPTD is intermediate: it is reported but decides nothing.
local counts = stat ~= 'ACCEPTD'
local complete, failed_stat = true, false
for i = 1, segs do
  local s = have[4 + i]
  if i == seg and counts then s = stat end
  if not s then complete = false break end
  if s ~= 'DELIVRD' and not failed_stat then failed_stat = s end
end
local final = ''
if complete then final = failed_stat and 'failed' or 'delivered' end
local delivers = have[3]
if delivers and string.find(' ' .. delivers .. ' ', ' ' .. deliver .. ' ', 1, true) then
  return {1, final, have[4] == deliver and final or ''}
end
local change = {'s' .. seg .. '_delivers', delivers and (delivers .. ' ' .. deliver) or deliver,
                'updated_at', now}
local decided = ''
if counts then
  for _, v in ipairs({'s' .. seg .. '_stat', stat, 's' .. seg .. '_reported_at', now}) do
    change[#change + 1] = v
  end
  if complete and (rank[final] or 0) > (rank[effective_status(have[1], have[2])] or 0) then
    for _, v in ipairs({'status', final, 'final_at', now, 'decided_by', deliver}) do
      change[#change + 1] = v
    end
    if failed_stat then
      change[#change + 1] = 'error'
      change[#change + 1] = 'Stat ' .. failed_stat
    end
    decided = final
  end
end
redis.call('HSET', state, unpack(change))
return {1, final, decided}
