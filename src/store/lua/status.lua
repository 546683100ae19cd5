-- Shared helper: the status order and the effective-status rule, for every script that reads
-- or moves a message's status (transition.lua, dead_letter.lua, correlate.lua).
--
-- The order of statuses: a status is only ever replaced by one that ranks higher.
local rank = {queued = 1, submitting = 2, submitted = 3, delivered = 4, failed = 4, dead = 4}

-- `effective_status(status, submitted_at)`: the status a state hash stands for, given its
-- `status` and `submitted_at` fields as HMGET returns them (false when absent). `submitted` is
-- not written as a status: the worker records Msg_Ids with plain commands (no script on the
-- hot path), so a hash with `submitted_at` whose status ranks lower (queued, submitting, one
-- this table does not know, or none) counts as submitted. The Rust side reads a hash the same
-- way (`MessageStatus::effective` in src/store/state.rs).
local function effective_status(status, submitted_at)
  if submitted_at and (rank[status] or 0) < rank.submitted then return 'submitted' end
  return status
end
