//! Which channel an entry goes out on: its `channel` field names it (the default channel when
//! absent). An entry on another channel's stream is moved there; a name no channel has is a
//! dead letter, as HTTP would refuse it with a 422.

use super::Assignment;
use crate::store::OutboundEntry;

pub(super) enum Route {
    /// This worker's channel.
    Here,
    /// Another channel's stream.
    Elsewhere(String),
    /// No such channel: the reason for the dead letter.
    Unknown(String),
}

pub(super) fn route(entry: &OutboundEntry, assignment: &Assignment) -> Route {
    // The last non-empty `channel`, as the message is read.
    let named = entry
        .field_pairs()
        .filter(|(k, v)| *k == "channel" && !v.is_empty())
        .map(|(_, v)| v)
        .last();
    let Some(name) = named else {
        // No channel named: the stream's own channel (the default one's stream is where such
        // entries are added).
        return Route::Here;
    };
    if name == assignment.channel {
        return Route::Here;
    }
    match assignment.routes.get(name) {
        Some(stream) => Route::Elsewhere(stream.clone()),
        None => {
            let mut known: Vec<&str> = assignment.routes.keys().map(String::as_str).collect();
            known.sort_unstable();
            Route::Unknown(format!(
                "unknown channel {name:?}; this gateway has {}",
                known.join(", ")
            ))
        }
    }
}
