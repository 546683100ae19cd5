//! Admitting a login: the account's connection limit (`max_connections`), and the guard that
//! holds the connection's slot, the overall live count and its line in `/stats` until it ends.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::conn_stats::ConnectionMeter;
use super::counters::{dec, inc, raise};
use super::server::{AccountState, Shared};
use crate::protocol::Version;

/// A logged-in connection's presence. Dropping it, however the connection ends (TERMINATE either
/// way, reset, malformed PDU, fault injection, shutdown, a panic), frees the account's slot,
/// lowers `connections_live` and moves the connection to the closed list of `/stats`.
pub(crate) struct Admitted {
    shared: Arc<Shared>,
    account: Arc<AccountState>,
    meter: Arc<ConnectionMeter>,
}

impl Admitted {
    pub fn meter(&self) -> &Arc<ConnectionMeter> {
        &self.meter
    }
}

/// The account already has `max_connections` live connections (counted in `/stats`).
#[derive(Debug)]
pub(crate) struct AccountFull;

/// Takes one of the account's slots for connection `id`, or refuses when it has `max` (0 = no
/// limit) live connections already.
pub(crate) fn admit(
    shared: &Arc<Shared>,
    account: &Arc<AccountState>,
    max: usize,
    (id, peer, version): (u64, SocketAddr, Version),
) -> Result<Admitted, AccountFull> {
    if account.slots.try_take(max).is_none() {
        inc(&shared.counters.logins_refused_max_connections);
        return Err(AccountFull);
    }
    let live = shared
        .counters
        .connections_live
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    raise(&shared.counters.connections_peak, live);
    let meter = Arc::new(ConnectionMeter::new(
        id,
        &account.account.sp_id,
        version,
        peer,
        Instant::now(),
    ));
    shared.connection_stats.open(Arc::clone(&meter));
    Ok(Admitted {
        shared: Arc::clone(shared),
        account: Arc::clone(account),
        meter,
    })
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.account.slots.release();
        dec(&self.shared.counters.connections_live);
        self.shared
            .connection_stats
            .close(self.meter.id(), Instant::now());
    }
}
