//! Message ids the gateway hands out: time-ordered (so they sort like the stream) and random
//! enough that two gateways never collide.

use std::time::{SystemTime, UNIX_EPOCH};

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
    }
}
