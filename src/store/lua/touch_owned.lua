-- TOUCH_OWNED (src/store/consumer.rs).
-- Renews the entries still pending at this consumer, and only those: an entry another
-- consumer reclaimed meanwhile stays with it. XCLAIM JUSTID leaves the delivery count as it is.
-- KEYS[1] outbound stream. ARGV[1] group, ARGV[2] this consumer, ARGV[3..] entry ids.
-- Returns the ids not renewed: pending elsewhere, acknowledged, or deleted from the stream.
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if pending[1] then
    if pending[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    else
      lost[#lost + 1] = id
    end
  end
end
return lost
