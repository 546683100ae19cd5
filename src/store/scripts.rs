//! Lua scripts: each makes a multi-key change atomic and costs one round trip.
//!
//! Every script's source is a file in `lua/`, named after it, whose comment repeats the
//! KEYS/ARGV contract documented here next to its static. Shared helpers (`status.lua`,
//! `index_add.lua`, `correlate.lua`) define Lua locals, so [`with_helpers`] puts them in front
//! of the scripts that call them.

use std::sync::LazyLock;

use redis::Script;

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

/// Move a message's state forward: write the fields, and the status only if it ranks higher
/// than the current one (a report that raced ahead of SUBMIT_RESP bookkeeping is not undone).
/// The current status is the effective one (see [`STATUS_FN`]).
/// KEYS[1] state key; ARGV[1] status, ARGV[2] TTL ms, then field/value pairs.
/// Returns the status before the change, or false when there was none.
pub static TRANSITION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[STATUS_FN], include_str!("lua/transition.lua")));

/// Loads every script sent in batches (a pipeline cannot fall back from EVALSHA to EVAL, and a
/// restarted Redis, or a Cluster node that never ran them, does not know them). On a Cluster,
/// SCRIPT LOAD goes to every node.
pub(crate) async fn load_all(conn: &mut super::RedisConn) -> redis::RedisResult<()> {
    for script in [
        &*TRANSITION,
        &*super::outbound::ACCEPT,
        &*super::dead_letter::DEAD_STATE,
        &*super::dead_letter::LETTER,
        &*super::reports::CORRELATE,
        &*super::reports::REPORT_WRITE,
        &*super::held_reports::REPORT_RESOLVE,
    ] {
        script.prepare_invoke().load_async(conn).await?;
    }
    Ok(())
}
