-- LETTER (src/store/dead_letter.rs). The second step of a dead letter, in the channel's slot:
-- the letter and the entry's acknowledgement together, and only while the entry is pending in
-- the group, so a retry after an error or a crash never writes a second letter. The pending
-- check comes first and the acknowledgement last: a letter Redis refuses acknowledges nothing.
-- KEYS[1] dead-letter stream, KEYS[2] outbound stream. ARGV[1] group, ARGV[2] the entry's
-- stream id, ARGV[3] approximate MAXLEN of the dead-letter stream, then the letter's
-- field/value pairs.
-- Returns 1 when the letter was written, 0 when the entry was no longer pending.
if #redis.call('XPENDING', KEYS[2], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return 1
