//! One client connection after login: one task, one `select!` over the socket, the control
//! commands, the outbox and a single timer.
//!
//! The hot path is built for ≥ 50 000 submits/s on one connection:
//! * responses are encoded straight into the `Framed` write buffer with the protocol's own
//!   `Packet::encode` (what `CmppCodec` does), and flushed once per wake-up, after up to
//!   `MAX_BATCH` PDUs that were already readable;
//! * no task or timer per submit: delayed SUBMIT_RESPs wait in one deque ordered by due time, and
//!   one `Sleep` is re-armed only when an earlier deadline appears;
//! * counters are relaxed atomics, the behaviour is re-read only when its generation changes, and
//!   no lock is held across an await.
//!
//! A submit counts as *unanswered* from the moment it is read until its SUBMIT_RESP has been
//! flushed to the socket. That can only under-estimate what the client has outstanding (submits
//! still in transit, responses flushed but not yet read), never over-estimate it, so a window
//! violation is never reported for a client that kept its window, and `max_unanswered` never
//! exceeds the client's real window.
//!
//! Files: this one has the loop, login hand-off, commands and heartbeats; `submits` the SUBMIT
//! path; `delivers` the DELIVER window and redelivery.

mod delivers;
mod submits;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};
use tokio_util::codec::Framed;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{debug, info, warn};

use self::delivers::InFlight;
use super::config::Behaviour;
use super::conn_stats::ConnectionMeter;
use super::counters::{dec, inc};
use super::hostile::{self, Damage, IsmgSubmitRequest};
use super::login::{Link, LoggedIn, login};
use super::outbox::Entry;
use super::server::{AccountState, ConnCommand, Shared};
use super::submit::RateWindow;
use crate::protocol::{ActiveTestResp, CancelResp, CommandId, Packet, Pdu, QueryResp, Version};
use crate::session::codec::{CmppCodec, CodecError};
use bytes::Bytes;

/// PDUs handled per wake-up before their responses are flushed: bounds how long the first
/// response of a burst waits and how large the write buffer grows.
const MAX_BATCH: usize = 64;
/// How long to wait for TERMINATE_RESP after sending TERMINATE.
const TERMINATE_WAIT: Duration = Duration::from_secs(1);
const READ_CAPACITY: usize = 64 * 1024;
/// Total_Length 8 is below the 12-byte header: every conforming decoder must reject it.
const MALFORMED_PDU: [u8; 12] = [0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 0];
/// Commands queued per connection; more are refused (the caller's count says so).
const COMMAND_QUEUE: usize = 8;

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    Shutdown,
    PeerClosed,
    Malformed(CodecError),
    Io(CodecError),
    /// The client sent TERMINATE (answered).
    ClientTerminated,
    /// We sent TERMINATE and got TERMINATE_RESP.
    Terminated,
    TerminateTimeout,
    /// close_after_pdus.
    PduLimit,
    /// A SUBMIT to close_on_dest arrived.
    Poison,
    /// disconnect_all.
    Disconnected,
}

impl Close {
    /// Whether what was already answered should still reach the client before the close.
    fn flush_first(&self) -> bool {
        matches!(
            self,
            Close::ClientTerminated | Close::PduLimit | Close::Poison
        )
    }
}

/// Runs one accepted TCP connection to the end.
pub(crate) async fn run(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, id: u64) {
    inc(&shared.counters.connections_accepted);
    inc(&shared.counters.connections_open);
    // Responses are batched and flushed once per wake-up; Nagle would only add latency.
    if let Err(e) = stream.set_nodelay(true) {
        debug!(conn = id, "cannot set TCP_NODELAY: {e}");
    }
    let mut link = Framed::with_capacity(stream, CmppCodec::new(Version::V30), READ_CAPACITY);
    if let Some(LoggedIn {
        account,
        version,
        admitted,
    }) = login(&shared, &mut link, peer, id).await
    {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        shared.register(id, tx);
        let meter = Arc::clone(admitted.meter());
        let mut conn = Connection::new(Arc::clone(&shared), account, version, link, rx, id, meter);
        let close = conn.serve().await;
        shared.unregister(id);
        // The slot is free before anything more reaches the client: one that saw its
        // TERMINATE_RESP or the close can log in again at once without being refused.
        drop(admitted);
        if close.flush_first() {
            let flush = SinkExt::<&Packet>::flush(&mut conn.link);
            // Best effort: the connection is going away either way.
            let _ = tokio::time::timeout(TERMINATE_WAIT, flush).await;
        }
        let returned = conn.hand_back_in_flight();
        let sp_id = &conn.account.account.sp_id;
        match &close {
            Close::Malformed(e) => {
                warn!(conn = id, %peer, %sp_id, "malformed PDU from client, closing: {e}")
            }
            Close::Io(e) => info!(conn = id, %peer, %sp_id, "connection lost: {e}"),
            other => {
                info!(conn = id, %peer, %sp_id, reason = ?other, delivers_returned = returned, "connection closed")
            }
        }
    }
    dec(&shared.counters.connections_open);
}

struct Connection {
    id: u64,
    shared: Arc<Shared>,
    account: Arc<AccountState>,
    /// What this session speaks: the client's version, which may be below the account's.
    version: Version,
    /// This connection's counters in `/stats`.
    meter: Arc<ConnectionMeter>,
    link: Link,
    commands: mpsc::Receiver<ConnCommand>,
    outbox_wake: watch::Receiver<()>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    behaviour: Arc<Behaviour>,
    behaviour_generation: u64,
    rng: fastrand::Rng,
    /// PDUs received on this connection, CONNECT included.
    pdus: u64,
    /// Submits read whose SUBMIT_RESP has not been flushed yet (dropped ones excluded).
    unanswered: usize,
    /// SUBMIT_RESPs written into the buffer since the last flush.
    fed: usize,
    /// Something is in the write buffer.
    dirty: bool,
    /// Delayed SUBMIT_RESPs, ordered by due time.
    pending: VecDeque<(Instant, Packet)>,
    rate: RateWindow,
    in_flight: Vec<InFlight>,
    next_sequence: u32,
    /// When the outbox's next delayed DELIVER is due, as of the last look.
    outbox_due: Option<Instant>,
    /// Time of the current read batch.
    now: Instant,
    last_received: Instant,
    last_heartbeat_sent: Instant,
    terminating_until: Option<Instant>,
    /// Reused buffer for `Outbox::take`.
    taken: Vec<Entry>,
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        account: Arc<AccountState>,
        version: Version,
        link: Link,
        commands: mpsc::Receiver<ConnCommand>,
        id: u64,
        meter: Arc<ConnectionMeter>,
    ) -> Connection {
        let now = Instant::now();
        let behaviour_generation = shared.behaviour.generation();
        Connection {
            id,
            version,
            meter,
            outbox_wake: account.outbox.subscribe(),
            shutdown: Box::pin(shared.shutdown.clone().cancelled_owned()),
            behaviour: shared.behaviour.get(),
            behaviour_generation,
            rng: fastrand::Rng::new(),
            // The CONNECT.
            pdus: 1,
            unanswered: 0,
            fed: 0,
            dirty: false,
            pending: VecDeque::new(),
            rate: RateWindow::new(now),
            in_flight: Vec::new(),
            next_sequence: 1,
            outbox_due: None,
            now,
            last_received: now,
            last_heartbeat_sent: now,
            terminating_until: None,
            taken: Vec::new(),
            shared,
            account,
            link,
            commands,
        }
    }

    async fn serve(&mut self) -> Close {
        let mut timer = Box::pin(tokio::time::sleep_until(Instant::now()));
        let mut armed: Option<Instant> = None;
        loop {
            if let Err(close) = self.housekeeping().await {
                return close;
            }
            // Re-arm only for an earlier deadline; a timer that fires early just costs one
            // extra round of housekeeping, while re-arming on every PDU costs a timer-wheel update.
            if let Some(due) = self
                .next_deadline()
                .filter(|&d| armed.is_none_or(|a| d < a))
            {
                timer.as_mut().reset(due);
                armed = Some(due);
            }
            let woke = tokio::select! {
                biased;
                () = self.shutdown.as_mut() => Err(Close::Shutdown),
                Some(command) = self.commands.recv() => self.command(command),
                item = self.link.next() => self.read_batch(item),
                Ok(()) = self.outbox_wake.changed() => Ok(()),
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    Ok(())
                }
            };
            if let Err(close) = woke {
                return close;
            }
        }
    }

    /// Everything that is due whatever woke us, then one flush.
    async fn housekeeping(&mut self) -> Result<(), Close> {
        let now = Instant::now();
        self.refresh_behaviour();
        self.send_due_responses(now);
        self.expire_in_flight(now);
        match self.terminating_until {
            Some(until) if now >= until => return Err(Close::TerminateTimeout),
            Some(_) => {}
            None => self.pull_outbox(now),
        }
        self.heartbeat(now);
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), Close> {
        if !self.dirty {
            return Ok(());
        }
        // Usually the socket takes everything at once; only a full socket waits, and then the
        // wait must still give way to shutdown.
        let flushed = match SinkExt::<&Packet>::flush(&mut self.link).now_or_never() {
            Some(result) => result,
            None => tokio::select! {
                result = SinkExt::<&Packet>::flush(&mut self.link) => result,
                () = self.shutdown.as_mut() => return Err(Close::Shutdown),
            },
        };
        flushed.map_err(Close::Io)?;
        self.dirty = false;
        self.unanswered = self.unanswered.saturating_sub(self.fed);
        self.fed = 0;
        Ok(())
    }

    /// Encodes into the write buffer; `false` if the packet cannot be encoded (logged).
    fn write(&mut self, packet: &Packet) -> bool {
        self.write_damaged(packet, None)
    }

    /// [`Self::write`], then `damage` and the behaviour's padding applied to the bytes.
    fn write_damaged(&mut self, packet: &Packet, damage: Option<Damage>) -> bool {
        let b = &self.behaviour;
        // A 2.0-only peer, or one that answers in 2.0 whatever was agreed.
        let version = if b.v20_responses && packet.pdu.command_id().is_response() {
            Version::V20
        } else {
            self.version
        };
        let padding = b.trailing_bytes;
        let buf = self.link.write_buffer_mut();
        let start = buf.len();
        match packet.encode(version, buf) {
            Ok(()) => {
                if let Some(damage) = damage {
                    hostile::damage_deliver(buf, start, version, damage);
                }
                if padding > 0 {
                    hostile::pad(buf, start, padding);
                }
                self.dirty = true;
                true
            }
            Err(e) => {
                warn!(conn = self.id, command = %packet.pdu.command_id(), "cannot encode: {e}");
                false
            }
        }
    }

    fn next_sequence(&mut self) -> u32 {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        sequence
    }

    fn refresh_behaviour(&mut self) {
        let generation = self.shared.behaviour.generation();
        if generation != self.behaviour_generation {
            self.behaviour = self.shared.behaviour.get();
            self.behaviour_generation = generation;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let b = &self.behaviour;
        let candidates = [
            self.pending
                .front()
                .map(|(due, _)| due.checked_sub(self.response_slack()).unwrap_or(*due)),
            self.in_flight
                .iter()
                .map(|f| f.sent_at)
                .min()
                .map(|oldest| oldest + b.deliver_retry),
            self.outbox_due.filter(|_| {
                self.terminating_until.is_none() && self.in_flight.len() < b.deliver_window
            }),
            (!b.heartbeat_interval.is_zero())
                .then(|| self.last_received.max(self.last_heartbeat_sent) + b.heartbeat_interval),
            self.terminating_until,
        ];
        candidates.into_iter().flatten().min()
    }

    fn command(&mut self, command: ConnCommand) -> Result<(), Close> {
        match command {
            ConnCommand::Disconnect => return Err(Close::Disconnected),
            ConnCommand::Malformed => {
                self.link
                    .write_buffer_mut()
                    .extend_from_slice(&MALFORMED_PDU);
                self.dirty = true;
                inc(&self.shared.counters.malformed_sent);
            }
            ConnCommand::Terminate if self.terminating_until.is_none() => {
                let sequence = self.next_sequence();
                self.write(&Packet::new(sequence, Pdu::Terminate));
                inc(&self.shared.counters.terminates_sent);
                self.terminating_until = Some(Instant::now() + TERMINATE_WAIT);
            }
            ConnCommand::Terminate => {}
            ConnCommand::Submit { valid } => {
                let sequence = self.next_sequence();
                let request = IsmgSubmitRequest { valid };
                hostile::ismg_submit(
                    &request,
                    sequence,
                    self.version,
                    self.link.write_buffer_mut(),
                );
                self.dirty = true;
                inc(&self.shared.counters.ismg_submits_sent);
            }
        }
        Ok(())
    }

    /// Handles `first` and whatever else is already readable, up to `MAX_BATCH` PDUs.
    fn read_batch(&mut self, first: Option<Result<Packet, CodecError>>) -> Result<(), Close> {
        self.now = Instant::now();
        self.last_received = self.now;
        let mut item = first;
        for handled in 1.. {
            match item {
                None => return Err(Close::PeerClosed),
                Some(Err(CodecError::Io(e))) => return Err(Close::Io(CodecError::Io(e))),
                Some(Err(e)) => return Err(Close::Malformed(e)),
                Some(Ok(packet)) => self.handle(packet)?,
            }
            if handled >= MAX_BATCH {
                break;
            }
            // Not ready means nothing more is buffered or readable right now: go flush.
            match self.link.next().now_or_never() {
                Some(next) => item = next,
                None => break,
            }
        }
        Ok(())
    }

    fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        self.pdus += 1;
        inc(&self.shared.counters.pdus_received);
        self.refresh_behaviour();
        let close_after = self.behaviour.close_after_pdus;
        if close_after > 0 && self.pdus >= close_after {
            inc(&self.shared.counters.disconnects_injected);
            return Err(Close::PduLimit);
        }
        let sequence = packet.sequence_id;
        let counters = &self.shared.counters;
        match packet.pdu {
            Pdu::Submit(submit) if self.is_poison(&submit) => {
                inc(&counters.poison_closes);
                return Err(Close::Poison);
            }
            Pdu::Submit(submit) => self.submit(sequence, submit),
            Pdu::SubmitResp(_) => inc(&counters.ismg_submit_resps_received),
            Pdu::DeliverResp(resp) => self.deliver_resp(sequence, resp),
            Pdu::ActiveTest => {
                inc(&counters.heartbeats_received);
                if self.behaviour.ignore_heartbeats {
                    inc(&counters.heartbeats_ignored);
                } else {
                    inc(&counters.heartbeats_answered);
                    let resp = if self.behaviour.active_test_resp_without_reserved {
                        // Header only: Command_Id ACTIVE_TEST_RESP with no body.
                        Pdu::Other {
                            command_id: CommandId::ActiveTestResp.value(),
                            body: Bytes::new(),
                        }
                    } else {
                        Pdu::ActiveTestResp(ActiveTestResp::default())
                    };
                    self.write(&Packet::new(sequence, resp));
                }
                debug!(conn = self.id, sequence, "ACTIVE_TEST");
            }
            Pdu::Terminate => {
                inc(&counters.terminates_received);
                self.write(&Packet::new(sequence, Pdu::TerminateResp));
                return Err(Close::ClientTerminated);
            }
            Pdu::TerminateResp if self.terminating_until.is_some() => {
                return Err(Close::Terminated);
            }
            Pdu::Query(q) => {
                // No traffic statistics are kept per day; answer with zeros.
                let resp = QueryResp {
                    time: q.time,
                    query_type: q.query_type,
                    query_code: q.query_code,
                    ..QueryResp::default()
                };
                self.write(&Packet::new(sequence, Pdu::QueryResp(resp)));
            }
            Pdu::Cancel(_) => {
                // Everything is "delivered" at once here, so there is nothing left to cancel.
                let resp = CancelResp { success_id: 1 };
                self.write(&Packet::new(sequence, Pdu::CancelResp(resp)));
            }
            other => {
                debug!(conn = self.id, sequence, command = %other.command_id(), "ignored");
            }
        }
        Ok(())
    }

    /// A SUBMIT this ISMG chokes on (`close_on_dest`).
    fn is_poison(&self, submit: &crate::protocol::Submit) -> bool {
        let poison = &self.behaviour.close_on_dest;
        !poison.is_empty() && submit.dest_terminal_ids.iter().any(|d| d == poison)
    }

    /// How early a delayed SUBMIT_RESP may go out. tokio timers tick in whole milliseconds and
    /// round deadlines up, so a client that submits right after the previous tick's responses
    /// would see every 1 ms delay become 2 ms. Firing up to half the delay (at most 0.5 ms)
    /// early keeps the mean close to `response_delay`.
    fn response_slack(&self) -> Duration {
        (self.behaviour.response_delay / 2).min(Duration::from_micros(500))
    }

    fn send_due_responses(&mut self, now: Instant) {
        let horizon = now + self.response_slack();
        while self.pending.front().is_some_and(|(due, _)| *due <= horizon) {
            if let Some((_, resp)) = self.pending.pop_front() {
                self.write(&resp);
                self.fed += 1;
            }
        }
    }

    fn heartbeat(&mut self, now: Instant) {
        let interval = self.behaviour.heartbeat_interval;
        if interval.is_zero() || now < self.last_received.max(self.last_heartbeat_sent) + interval {
            return;
        }
        let sequence = self.next_sequence();
        self.write(&Packet::new(sequence, Pdu::ActiveTest));
        inc(&self.shared.counters.heartbeats_sent);
        self.last_heartbeat_sent = now;
    }
}
