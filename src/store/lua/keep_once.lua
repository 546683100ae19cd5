-- KEEP_ONCE (src/store/undecodable.rs).
-- KEYS[1] stream, KEYS[2] the DELIVER's seen-marker; ARGV[1] TTL ms, ARGV[2] approximate MAXLEN,
-- then the entry's field/value pairs. Returns 1 when written, 0 when it was written before.
if not redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
return 1
