//! The `GET /stats` document: every counter at the top level (as before accounts and connections
//! were added, so `jq .submits_accepted` still works), then per account and per connection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::conn_stats::ConnectionStats;
use super::counters::Counters;
pub use super::limits::AccountStats;

/// What `/stats` answers. Field names are part of the control interface:
/// - the [`Counters`] fields, flat;
/// - `accounts`: SP id → [`AccountStats`] (`connections_live`, `connections_peak`,
///   `logins_refused_max_connections`);
/// - `connections`: [`ConnectionStats`], the live connections by id, then up to 64 closed ones
///   (`closed: true`), oldest close first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    #[serde(flatten)]
    pub counters: Counters,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountStats>,
    #[serde(default)]
    pub connections: Vec<ConnectionStats>,
}

impl Stats {
    /// The live connections only.
    pub fn live_connections(&self) -> impl Iterator<Item = &ConnectionStats> {
        self.connections.iter().filter(|c| !c.closed)
    }

    /// Connection `id`, live or among the closed ones kept.
    pub fn connection(&self, id: u64) -> Option<&ConnectionStats> {
        self.connections.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_stay_flat_beside_accounts_and_connections() {
        let mut stats = Stats::default();
        stats.counters.submits_accepted = 3;
        stats
            .accounts
            .insert("900001".into(), AccountStats::default());
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["submits_accepted"], 3);
        assert_eq!(json["accounts"]["900001"]["connections_live"], 0);
        assert!(json["connections"].as_array().unwrap().is_empty());
        let back: Stats = serde_json::from_value(json).unwrap();
        assert_eq!(back, stats);
    }
}
