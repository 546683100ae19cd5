-- Shared helper (src/store/index.rs), put in front of the scripts that index.
-- `index_add(key, ms, member, ttl_ms)`: the per-number index write shared by the scripts
-- (trimming on one write in [`TRIM_EVERY`], like [`Store::index_message`]).
local function index_add(key, ms, member, ttl)
  redis.call('ZADD', key, ms, member)
  redis.call('PEXPIRE', key, ttl)
  local t = tonumber(ms)
  if t % 16 == 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', t - tonumber(ttl)))
  end
end
local function entry_ms(entry_id) return string.match(entry_id, '^%d+') end
