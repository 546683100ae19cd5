-- Shared helper (src/store/reports.rs) of report.lua and resolve.lua; needs status.lua before it.
-- Correlates one report to segment `rec[2]` of the message `rec` (the Msg_Id map's record:
-- id, segment, segments, to) whose state hash is `state`: appends `id`, `to`, `segment`,
-- `segments` (and `status` on the report that completes the message) to `fields` and brings
-- the state up to date. Returns `in_state` (false when the state is gone: the report is still
-- written, nothing is recreated), the decided status (`''`, `':delivered'`, `':failed'`), and
-- true as a third value when the state already lists this DELIVER (a redelivery: write
-- nothing). The state's TTL is not renewed: it runs from the message's start and outlasts a
-- report's 48 hours.
local function correlate(state, rec, fields, stat, now, deliver, counters, counters_ttl)
  local id, seg, segs, to = rec[1], rec[2], rec[3], rec[4]
  for _, v in ipairs({'id', id, 'to', to, 'segment', tostring(seg), 'segments', tostring(segs)}) do
    fields[#fields + 1] = v
  end
  local names = {'status', 'submitted_at', 's' .. seg .. '_delivers'}
  for i = 1, segs do names[#names + 1] = 's' .. i .. '_stat' end
  local have = redis.call('HMGET', state, unpack(names))
  if not have[1] then return false, '' end
  local delivers = have[3]
  if delivers and string.find(' ' .. delivers .. ' ', ' ' .. deliver .. ' ', 1, true) then
    return true, '', true
  end
  local decided = ''
  local change = {'s' .. seg .. '_delivers', delivers and (delivers .. ' ' .. deliver) or deliver, 'updated_at', now}
  -- ACCEPTD is intermediate: it is reported but decides nothing.
  if stat ~= 'ACCEPTD' then
    for _, v in ipairs({'s' .. seg .. '_stat', stat, 's' .. seg .. '_reported_at', now}) do
      change[#change + 1] = v
    end
    local complete, failed_stat = true, false
    for i = 1, segs do
      local s = have[3 + i]
      if i == seg then s = stat end
      if not s then complete = false break end
      if s ~= 'DELIVRD' and not failed_stat then failed_stat = s end
    end
    if complete then
      local final = failed_stat and 'failed' or 'delivered'
      local current = effective_status(have[1], have[2])
      if (rank[final] or 0) > (rank[current] or 0) then
        for _, v in ipairs({'status', final, 'final_at', now}) do change[#change + 1] = v end
        if redis.call('HINCRBY', counters, final, 1) == 1 then
          redis.call('PEXPIRE', counters, counters_ttl)
        end
        if failed_stat then
          change[#change + 1] = 'error'
          change[#change + 1] = 'Stat ' .. failed_stat
        end
        decided = ':' .. final
      end
      fields[#fields + 1] = 'status'
      fields[#fields + 1] = final
    end
  end
  redis.call('HSET', state, unpack(change))
  return true, decided
end
