//! The state every connection and the control interface share, the accept loop, and `start`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::config::{Account, Behaviour, SimulatorConfig};
use super::conn_stats::ConnectionRegistry;
use super::counters::{CounterSet, add};
use super::handle::SimulatorHandle;
use super::limits::AccountSlots;
use super::outbox::{DeliverKind, Entry, Outbox};
use super::report::{self, ReportSpec};
use super::stats::Stats;
use super::submit::RecordedSubmit;
use super::udh_refs::UdhReferences;
use super::{connection, control, ids};
use crate::protocol::{EncodeError, MsgId, ReportLayout, Version};

/// One account, the DELIVERs waiting for its clients and its logged-in connections.
pub(crate) struct AccountState {
    pub account: Account,
    pub outbox: Outbox,
    pub slots: AccountSlots,
}

impl AccountState {
    pub fn new(account: Account) -> AccountState {
        AccountState {
            account,
            outbox: Outbox::default(),
            slots: AccountSlots::default(),
        }
    }

    /// 2.0 has only the 60-byte report body; 3.0 follows the behaviour.
    pub fn report_layout(&self, behaviour: &Behaviour) -> ReportLayout {
        match self.account.version {
            Version::V20 => ReportLayout::Compact60,
            Version::V30 => behaviour.report_layout,
        }
    }
}

/// The current behaviour plus a generation number, so a connection notices a change with one
/// atomic load per PDU instead of taking the lock.
pub(crate) struct BehaviourCell {
    current: RwLock<Arc<Behaviour>>,
    generation: AtomicU64,
}

impl BehaviourCell {
    fn new(b: Behaviour) -> Self {
        BehaviourCell {
            current: RwLock::new(Arc::new(b)),
            generation: AtomicU64::new(0),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self) -> Arc<Behaviour> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set(&self, b: Behaviour) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(b);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Orders the control side gives one live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnCommand {
    /// Write a malformed PDU next.
    Malformed,
    /// Drop the TCP connection at once.
    Disconnect,
    /// Send CMPP_TERMINATE, close on TERMINATE_RESP or after a second.
    Terminate,
    /// Send the client a SUBMIT (well-formed or not), as a misbehaving ISMG does.
    Submit { valid: bool },
}

pub(crate) struct Shared {
    pub accounts: Vec<Arc<AccountState>>,
    pub gateway_code: u32,
    pub behaviour: BehaviourCell,
    pub counters: CounterSet,
    /// Per-connection counters for `/stats`.
    pub connection_stats: ConnectionRegistry,
    /// Concatenated parts seen, for `udh_reference_collisions`.
    pub udh_references: UdhReferences,
    /// Logged-in connections by id, for the fault-injection commands.
    connections: Mutex<HashMap<u64, mpsc::Sender<ConnCommand>>>,
    pub recorded: Option<Mutex<Vec<RecordedSubmit>>>,
    next_connection: AtomicU64,
    smsc_sequence: AtomicU32,
    mo_reference: AtomicU32,
    /// The one Msg_Id every SUBMIT gets under `repeat_msg_id`, made on first use.
    repeated_msg_id: OnceLock<MsgId>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn account(&self, sp_id: &str) -> Option<&Arc<AccountState>> {
        self.accounts.iter().find(|a| a.account.sp_id == sp_id)
    }

    /// The named account, or the first one when no name is given.
    pub fn account_or_first(&self, sp_id: Option<&str>) -> Result<&Arc<AccountState>, String> {
        match sp_id {
            Some(id) => self.account(id).ok_or_else(|| format!("no account {id:?}")),
            None => self
                .accounts
                .first()
                .ok_or_else(|| "no accounts configured".to_owned()),
        }
    }

    /// Counters, per-account connections and per-connection counters, as `/stats` shows them.
    pub fn stats(&self) -> Stats {
        Stats {
            counters: self.counters.snapshot(),
            accounts: self
                .accounts
                .iter()
                .map(|a| (a.account.sp_id.clone(), a.slots.snapshot()))
                .collect(),
            connections: self.connection_stats.snapshot(Instant::now()),
        }
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn next_smsc_sequence(&self) -> u32 {
        self.smsc_sequence
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// UDH reference for the next MO long message (wraps; only the low byte travels by default).
    pub fn next_mo_reference(&self) -> u16 {
        // Truncation is the wrap we want.
        self.mo_reference.fetch_add(1, Ordering::Relaxed) as u16
    }

    pub fn next_msg_id(&self, count: u16) -> MsgId {
        ids::allocate(self.gateway_code, count)
    }

    /// The Msg_Id of an accepted SUBMIT to `count` recipients: a fresh block, or under
    /// `repeat_msg_id` the same first id every time (recipient i still gets first + i).
    pub fn submit_msg_id(&self, count: u16, repeat: bool) -> MsgId {
        if repeat {
            *self.repeated_msg_id.get_or_init(|| self.next_msg_id(count))
        } else {
            self.next_msg_id(count)
        }
    }

    pub fn register(&self, id: u64, commands: mpsc::Sender<ConnCommand>) {
        lock(&self.connections).insert(id, commands);
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.connections).remove(&id);
    }

    /// Sends `command` to every logged-in connection; returns how many took it.
    pub fn broadcast(&self, command: ConnCommand) -> usize {
        lock(&self.connections)
            .values()
            .filter(|tx| tx.try_send(command).is_ok())
            .count()
    }

    pub fn record(&self, submit: RecordedSubmit) {
        if let Some(recorded) = &self.recorded {
            lock(recorded).push(submit);
        }
    }

    pub fn recorded(&self) -> Vec<RecordedSubmit> {
        self.recorded
            .as_ref()
            .map(|r| lock(r).clone())
            .unwrap_or_default()
    }

    /// Builds one status report and puts it in the account's outbox, due after `delay`.
    /// Fails when the report cannot be encoded, e.g. a 32-character recipient in the 60-byte layout.
    pub fn queue_report(
        &self,
        account: &AccountState,
        spec: &ReportSpec<'_>,
        layout: ReportLayout,
        delay: Duration,
        now: Instant,
    ) -> Result<(), EncodeError> {
        let deliver = report::build(
            spec,
            self.next_msg_id(1),
            self.next_smsc_sequence(),
            layout,
            delay,
        )?;
        let entry = Entry::new(deliver, DeliverKind::Report);
        if delay.is_zero() {
            account.outbox.push([entry]);
        } else {
            account.outbox.push_at(entry, now + delay);
        }
        add(&self.counters.reports_queued, 1);
        Ok(())
    }
}

/// Binds the listeners, spawns the accept loop (and the control interface) and returns at once.
pub async fn start(config: SimulatorConfig) -> std::io::Result<SimulatorHandle> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let control_listener = match config.control {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    let control_addr = control_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;

    let shared = Arc::new(Shared {
        accounts: config
            .accounts
            .into_iter()
            .map(|account| Arc::new(AccountState::new(account)))
            .collect(),
        gateway_code: config.gateway_code,
        behaviour: BehaviourCell::new(config.behaviour),
        counters: CounterSet::default(),
        connection_stats: ConnectionRegistry::default(),
        udh_references: UdhReferences::default(),
        connections: Mutex::default(),
        recorded: config.record_submits.then(Mutex::default),
        next_connection: AtomicU64::new(0),
        smsc_sequence: AtomicU32::new(0),
        mo_reference: AtomicU32::new(fastrand::u32(..)),
        repeated_msg_id: OnceLock::new(),
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let handle = SimulatorHandle::new(Arc::clone(&shared), addr, control_addr);
    shared
        .tasks
        .spawn(accept_loop(Arc::clone(&shared), listener));
    if let Some(listener) = control_listener {
        shared.tasks.spawn(control::serve(
            handle.clone(),
            listener,
            shared.shutdown.clone(),
        ));
    }
    info!(%addr, control = ?control_addr, accounts = shared.accounts.len(), "ISMG simulator listening");
    Ok(handle)
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let id = shared.next_connection_id();
                shared
                    .tasks
                    .spawn(connection::run(Arc::clone(&shared), stream, peer, id));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_changes_bump_the_generation() {
        let cell = BehaviourCell::new(Behaviour::default());
        let g = cell.generation();
        cell.set(Behaviour {
            window: 3,
            ..Behaviour::default()
        });
        assert_ne!(cell.generation(), g);
        assert_eq!(cell.get().window, 3);
    }

    #[test]
    fn two_point_oh_accounts_always_get_the_60_byte_report() {
        let b = Behaviour::default();
        let state = |version| AccountState::new(Account::new("900001", "x", version));
        assert_eq!(
            state(Version::V20).report_layout(&b),
            ReportLayout::Compact60
        );
        assert_eq!(state(Version::V30).report_layout(&b), ReportLayout::Spec71);
    }
}
