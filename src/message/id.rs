//! Message ids: the ones the gateway hands out (time-ordered, so they sort like the stream, and
//! random enough that two gateways never collide), and the rule for the ones callers give.

use std::time::{SystemTime, UNIX_EPOCH};

use super::invalid::Invalid;

/// Longest id a caller may give: it becomes part of Redis keys and of the per-recipient ids.
pub const MAX_CALLER_ID: usize = 64;

/// Joins a caller's id and the recipient's position in the ids of a request to several
/// recipients (`order-7~1`). Caller ids cannot contain it, so no caller can ask for an id that
/// another request's recipient already has.
pub const RECIPIENT_SEPARATOR: char = '~';

/// The id of the `n`-th (from 1) recipient of a request whose id is `caller_id`.
pub fn recipient_id(caller_id: &str, n: usize) -> String {
    format!("{caller_id}{RECIPIENT_SEPARATOR}{n}")
}

/// An id a caller may give (HTTP `id`, or an outbound entry's `id` field).
pub fn check_caller_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CALLER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::unprocessable(
            "id",
            format!("1 to {MAX_CALLER_ID} characters from A-Z a-z 0-9 - _ . :"),
        ))
    }
}

/// An id the stream may carry: a caller's id, or one with a recipient suffix as
/// [`recipient_id`] makes it (what the HTTP ingress writes for several recipients).
pub fn check_message_id(id: &str) -> Result<(), Invalid> {
    match id.split_once(RECIPIENT_SEPARATOR) {
        Some((caller, n))
            if !n.is_empty()
                && n.len() <= 6
                && n.bytes().all(|b| b.is_ascii_digit())
                && !n.starts_with('0') =>
        {
            check_caller_id(caller)
        }
        Some(_) => Err(Invalid::unprocessable(
            "id",
            format!(
                "{RECIPIENT_SEPARATOR} only before a recipient's position (1, 2, …), as the HTTP ingress adds it"
            ),
        )),
        None => check_caller_id(id),
    }
}

/// A new id: milliseconds since 1970 and 64 random bits, in hex (27 characters).
pub fn new_message_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    format!("{ms:011x}{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = new_message_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_message_id();
        assert_eq!(a.len(), 27);
        assert!(a[..11] < b[..11]);
        let many: std::collections::HashSet<_> = (0..10_000).map(|_| new_message_id()).collect();
        assert_eq!(many.len(), 10_000);
        assert!(check_caller_id(&a).is_ok());
    }

    #[test]
    fn caller_ids_and_recipient_ids() {
        for ok in ["order-42", "a", "x.y:z_1", &"x".repeat(64)] {
            assert!(check_caller_id(ok).is_ok(), "{ok}");
            assert!(check_message_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "o~1", &"x".repeat(65)] {
            assert!(check_caller_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(recipient_id("o", 2), "o~2");
        assert!(check_message_id("o~2").is_ok());
        assert!(check_message_id("order-42~100").is_ok());
        for bad in ["o~", "o~0", "o~01", "o~1~2", "~1", "o~x", "a b~1"] {
            assert!(check_message_id(bad).is_err(), "{bad:?}");
        }
    }
}
