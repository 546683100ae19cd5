-- PAGE (src/store/index.rs).
-- KEYS[1] index. ARGV[1] cursor member or "", ARGV[2] cursor score, ARGV[3] count.
-- Members after the cursor, newest first, with scores. When the cursor's member is gone
-- (trimmed meanwhile), the page continues below its score.
local count = tonumber(ARGV[3])
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
  if not rank then
    return redis.call('ZRANGE', KEYS[1], '(' .. ARGV[2], '-inf', 'BYSCORE', 'REV',
                      'LIMIT', 0, count, 'WITHSCORES')
  end
  start = rank + 1
end
return redis.call('ZREVRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES')
