-- CLAIM_ORPHANS (src/store/orphans.rs).
-- Claims up to ARGV[4] entries pending at consumers other than this one and the live ones, idle
-- at least ARGV[3] ms. XCLAIM checks the idle time again, so of two instances racing for an
-- entry only the first gets it (the claim resets its idle time). Entries deleted from the
-- stream are dropped from the pending list by XCLAIM and not returned (Redis before 7 returns
-- nil in their place).
-- With ARGV[5] = 1 this consumer's own entries idle that long are taken again too (a worker
-- renews what it is sending, so its own entry that idle is one it left pending: a write Redis
-- refused, an acknowledgement given up).
-- KEYS[1] outbound stream. ARGV[1] group, ARGV[2] this consumer, ARGV[3] min idle ms,
-- ARGV[4] most entries, ARGV[5] 1 to include its own, ARGV[6..] live consumer names. Returns
-- the claimed entries as XCLAIM does.
local spared = {}
for i = 6, #ARGV do spared[ARGV[i]] = true end
spared[ARGV[2]] = ARGV[5] ~= '1'
local wanted = tonumber(ARGV[4])
local ids = {}
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  if #ids >= wanted then break end
  local c = {}
  for i = 1, #row, 2 do c[row[i]] = row[i + 1] end
  if c.pending > 0 and not spared[c.name] then
    local rows = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+',
                            wanted - #ids, c.name)
    for _, p in ipairs(rows) do ids[#ids + 1] = p[1] end
  end
end
-- In chunks: unpack of thousands of arguments would overflow Lua's stack.
local claimed = {}
for first = 1, #ids, 100 do
  local chunk = {}
  for i = first, math.min(first + 99, #ids) do chunk[#chunk + 1] = ids[i] end
  local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], unpack(chunk))
  for i = 1, #got do claimed[#claimed + 1] = got[i] end
end
return claimed
