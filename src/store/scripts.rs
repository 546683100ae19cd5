//! Lua scripts: each makes a multi-key change atomic and costs one round trip.
//!
//! Every script's source is a file in `lua/`, named after it, whose comment repeats the
//! KEYS/ARGV contract documented here next to its static. Shared helpers (`status.lua`,
//! `index_add.lua`, `correlate.lua`) define Lua locals, so [`with_helpers`] puts them in front
//! of the scripts that call them.

use std::sync::LazyLock;

use redis::Script;

use super::index::INDEX_ADD_FN;

/// The status order and `effective_status(status, submitted_at)`, the rule by which a hash
/// with `submitted_at` over a lower status counts as `submitted` (the Rust side's copy is
/// [`MessageStatus::effective`](super::MessageStatus::effective)). For every script that reads
/// or moves a status.
pub(crate) const STATUS_FN: &str = include_str!("lua/status.lua");

/// A script made of the shared `helpers` it calls, in order, followed by its own `body`.
pub(crate) fn with_helpers(helpers: &[&str], body: &str) -> Script {
    let mut source = helpers.concat();
    source.push_str(body);
    Script::new(&source)
}

/// Enqueue a batch (one entry per recipient) unless its idempotency key was seen or one of its
/// message ids already has a state (another request, or a direct XADD, used it: replaying is
/// the only answer that neither sends twice nor overwrites), and index each message for the
/// console (recent and per recipient, see `index`). The state keeps the content (`text`, or
/// `hex` and `coding`): the outbound entry is trimmed once it is sent.
/// KEYS[1] outbound stream, KEYS[2] idempotency key or "", KEYS[3] recent-messages index, then
/// per message its state key and its recipient's index.
/// ARGV[1] TTL ms, ARGV[2] the answer to store, ARGV[3] message count, then per message:
/// queued_at ms, field count n, n field/value pairs.
/// Returns {1, answer} when enqueued, {0, first answer} when the id was seen before, {0, answer}
/// (nothing stored) when a message id has a state.
pub static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[INDEX_ADD_FN], include_str!("lua/enqueue.lua")));

/// Move a message's state forward: write the fields, and the status only if it ranks higher
/// than the current one (a report that raced ahead of SUBMIT_RESP bookkeeping is not undone).
/// The current status is the effective one (see [`STATUS_FN`]).
/// KEYS[1] state key; ARGV[1] status, ARGV[2] TTL ms, then field/value pairs.
/// Returns the status before the change, or false when there was none.
pub static TRANSITION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[STATUS_FN], include_str!("lua/transition.lua")));

/// Loads every script used in pipelines (a pipeline cannot fall back from EVALSHA to EVAL, and
/// a restarted Redis has forgotten them).
pub async fn load_all(conn: &mut redis::aio::ConnectionManager) -> redis::RedisResult<()> {
    for script in [
        &*TRANSITION,
        &*super::dead_letter::DEAD_LETTER,
        &*ENQUEUE,
        &*super::reports::REPORT,
    ] {
        script.prepare_invoke().load_async(conn).await?;
    }
    Ok(())
}
