//! The links this process holds at the moment, by channel and slot. Slots come and go with
//! their leases, so HTTP (readiness, the console's link card, rates) reads this set instead of
//! holding one link.

use std::sync::{Arc, Mutex};

use super::events::LinkState;
use super::link::Link;

/// One held connection slot.
#[derive(Clone)]
pub struct HeldLink {
    pub channel: String,
    pub slot: u32,
    pub link: Link,
}

#[derive(Clone, Default)]
pub struct LinkSet(Arc<Mutex<Vec<HeldLink>>>);

impl LinkSet {
    /// A set holding one link (a process with a single unleased link, tests).
    pub fn single(channel: &str, link: Link) -> LinkSet {
        let set = LinkSet::default();
        set.insert(channel, 0, link);
        set
    }

    pub fn insert(&self, channel: &str, slot: u32, link: Link) {
        let mut links = self.lock();
        links.retain(|h| !(h.channel == channel && h.slot == slot));
        links.push(HeldLink {
            channel: channel.to_owned(),
            slot,
            link,
        });
        links.sort_by(|a, b| (&a.channel, a.slot).cmp(&(&b.channel, b.slot)));
    }

    pub fn remove(&self, channel: &str, slot: u32) {
        self.lock()
            .retain(|h| !(h.channel == channel && h.slot == slot));
    }

    /// Every held link, by channel then slot.
    pub fn snapshot(&self) -> Vec<HeldLink> {
        self.lock().clone()
    }

    /// The link that speaks for this process where one is shown: the first one up, else the
    /// first held.
    pub fn representative(&self) -> Option<Link> {
        let links = self.lock();
        links
            .iter()
            .find(|h| h.link.status().state == LinkState::Up)
            .or_else(|| links.first())
            .map(|h| h.link.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<HeldLink>> {
        // Every operation is one call: the list stays consistent even after a panic.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
