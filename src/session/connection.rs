//! One logged-in TCP connection: a single `select!` over the socket, new submits, answers to
//! DELIVERs, timers and shutdown. It owns the window; when it drops, every request still waiting
//! is handed to the next connection with what it went through counted, so nothing is lost with
//! the connection and no request is sent more than N times in all.
//!
//! It reads the ISMG leniently: any frame whose header is sound is handled by its header at
//! least (a DELIVER nobody can read is answered Result 1 once its raw body is kept; a SUBMIT sent
//! to us is answered Result 1 or 2; anything else is skipped), and counted as an anomaly. Only
//! bytes that cannot be framed reset the connection.
//!
//! Every request a dropped connection left unanswered is a suspect: the peer may have choked on
//! it. On the next connection suspects go out one at a time, alone — nothing else in flight,
//! nothing new until it is answered — so a message the ISMG drops the connection on is found
//! (the connection drops while it is alone) without taking the others down with it, and after
//! `quarantine_after_drops` such drops it is given up. A suspect the ISMG simply does not answer
//! within T stops holding the link up and waits in the window like any request.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::{Decoder, FramedRead};
use tokio_util::sync::CancellationToken;

use super::codec::{CodecError, LinkCodec};
use super::config::LinkConfig;
use super::error::SubmitError;
use super::events::{DisconnectReason, LinkEvent, LinkObserver};
use super::inbound::{AckMessage, DeliverAck, Delivered, Inbound, UndecodableDeliver};
use super::login::Transport;
use super::pacer::Pacer;
use super::stats::LinkStats;
use super::window::{Pending, Sent, SequenceIds, SubmitAccepted, Window};
use crate::protocol::{
    ActiveTestResp, CommandId, Deliver, DeliverResp, Lenient, MsgId, Packet, Pdu, SubmitResp,
    Undecodable, Version, deliver_result, encode_pdu, submit_result,
};

/// Frames handled per wake-up before writing, so bursts go out in few syscalls.
const BATCH: usize = 64;

/// Sends a typed event to the link's own counters and to the optional outside observer.
#[derive(Clone)]
pub(crate) struct Events {
    pub stats: Arc<LinkStats>,
    pub observer: Option<Arc<dyn LinkObserver>>,
}

impl Events {
    pub(crate) fn emit(&self, event: LinkEvent) {
        self.stats.on_event(&event);
        if let Some(observer) = &self.observer {
            observer.on_event(&event);
        }
    }
}

/// What outlives a connection: the caller's queues, the Sequence_Id counter, the pacing state.
pub(crate) struct Shared {
    pub config: Arc<LinkConfig>,
    pub commands: mpsc::Receiver<Pending>,
    pub acks_rx: mpsc::UnboundedReceiver<AckMessage>,
    pub acks_tx: mpsc::UnboundedSender<AckMessage>,
    pub inbound: mpsc::Sender<Inbound>,
    pub events: Events,
    pub shutdown: CancellationToken,
    pub sequence: SequenceIds,
    pub connection_id: u64,
    pub pacer: Pacer,
    /// Requests a dropped connection left unanswered, for the next connection to send first.
    pub lost: Vec<Pending>,
}

impl Shared {
    /// Keeps a request a dropped connection left unanswered for the next connection, unless it
    /// has used up its sends or its drops.
    fn keep_for_next_connection(&mut self, pending: Pending) {
        let c = &self.config;
        if pending.blamed >= c.quarantine_after_drops {
            let (drops, sends) = (pending.blamed, pending.unanswered_sends);
            tracing::warn!(
                drops,
                sends,
                "the ISMG dropped the connection each time this SUBMIT was sent alone; giving it up"
            );
            self.events.emit(LinkEvent::Quarantined { drops });
            pending.finish(Err(SubmitError::Quarantined { drops, sends }));
        } else if pending.unanswered_sends >= c.max_sends {
            let sends = pending.unanswered_sends;
            pending.finish(Err(SubmitError::Unconfirmed { sends }));
        } else {
            self.lost.push(pending);
        }
    }

    /// Every request kept for a next connection that will not come goes back to its caller.
    pub(crate) fn give_back_lost(&mut self) {
        for pending in self.lost.drain(..) {
            pending.finish(Err(SubmitError::LinkLost { sequence_id: None }));
        }
    }
}

/// The ACTIVE_TEST we are waiting on, if any.
#[derive(Debug, Default)]
struct Heartbeat {
    outstanding: Option<(u32, Instant)>,
    misses: u32,
}

pub(crate) struct Connection<'a> {
    shared: &'a mut Shared,
    reader: FramedRead<OwnedReadHalf, LinkCodec>,
    writer: OwnedWriteHalf,
    out: BytesMut,
    window: Window,
    /// Flow-controlled segments waiting to be resubmitted, with the earliest time to do so.
    retry: VecDeque<(Instant, Pending)>,
    heartbeat: Heartbeat,
    last_rx: Instant,
    /// Graceful close requested: the deadline for in-flight responses.
    closing: Option<Instant>,
    /// TERMINATE sent: its Sequence_Id and how long to wait for TERMINATE_RESP.
    terminate: Option<(u32, Instant)>,
    /// Frames that arrived in the same read as CONNECT_RESP (an ISMG with a backlog of DELIVERs
    /// sends them at once), handled before anything else.
    early: Vec<Result<Lenient, CodecError>>,
    /// A suspect sent alone: nothing else goes out until it is answered (or its T passes).
    probe: Option<u32>,
    /// Anomaly kinds already logged on this connection: one line each, then only counted.
    logged: Vec<&'static str>,
}

impl<'a> Connection<'a> {
    pub(crate) fn new(shared: &'a mut Shared, transport: Transport) -> Self {
        let parts = transport.into_parts();
        let (read_half, writer) = parts.io.into_split();
        // Bytes that arrived behind CONNECT_RESP are already buffered. A new FramedRead would only
        // look at them after the socket gives it more, so decode the whole frames now.
        let mut codec = parts.codec;
        let mut leftover = parts.read_buf;
        let mut early = Vec::new();
        loop {
            match codec.decode(&mut leftover) {
                Ok(Some(packet)) => early.push(Ok(packet)),
                Ok(None) => break,
                Err(e) => {
                    early.push(Err(e));
                    break;
                }
            }
        }
        let mut reader = FramedRead::new(read_half, codec);
        reader.read_buffer_mut().extend_from_slice(&leftover);
        // What the last connection left goes first: flow-controlled segments in their order, then
        // the suspects one at a time, those blamed least first.
        let now = Instant::now();
        let mut lost = std::mem::take(&mut shared.lost);
        lost.sort_by_key(|p| (p.suspect, p.blamed));
        let retry = lost.into_iter().map(|p| (now, p)).collect();
        Connection {
            shared,
            reader,
            writer,
            out: BytesMut::with_capacity(8 * 1024),
            window: Window::default(),
            retry,
            heartbeat: Heartbeat::default(),
            last_rx: Instant::now(),
            closing: None,
            terminate: None,
            early,
            probe: None,
            logged: Vec::new(),
        }
    }

    /// Runs until the connection ends; returns why.
    pub(crate) async fn run(mut self) -> DisconnectReason {
        let reason = self.serve().await;
        // After a lost lease the requests go back to the worker: the slot is someone else's.
        if matches!(
            reason,
            DisconnectReason::Shutdown | DisconnectReason::LeaseLost
        ) || self.closing.is_some()
        {
            self.give_back_everything_waiting();
        } else {
            self.hand_over_to_next_connection(reason);
        }
        reason
    }

    async fn serve(&mut self) -> DisconnectReason {
        for frame in std::mem::take(&mut self.early) {
            if let Err(reason) = self.on_one_frame(Some(frame)) {
                return self.flush_then(reason).await;
            }
        }
        loop {
            let now = Instant::now();
            if let Err(reason) = self.on_timers(now) {
                return self.flush_then(reason).await;
            }
            if let Err(reason) = self.flush().await {
                return reason;
            }
            self.probe = self.probe.filter(|seq| self.window.contains(*seq));
            let wake = self.next_wakeup(now);
            let take_new = self.can_take_new(now);
            let step = tokio::select! {
                biased;
                frame = self.reader.next() => self.on_frame(frame),
                Some(ack) = self.shared.acks_rx.recv() => {
                    self.on_ack(ack);
                    Ok(())
                }
                _ = self.shared.shutdown.cancelled(), if self.closing.is_none() => {
                    self.begin_close(now);
                    Ok(())
                }
                command = self.shared.commands.recv(), if take_new => {
                    match command {
                        Some(pending) => self.send_new(pending),
                        // Every handle is gone: nobody can submit any more.
                        None => self.begin_close(now),
                    }
                    Ok(())
                }
                () = sleep_until(wake.unwrap_or(now)), if wake.is_some() => Ok(()),
            };
            if let Err(reason) = step {
                return self.flush_then(reason).await;
            }
        }
    }

    fn config(&self) -> &LinkConfig {
        &self.shared.config
    }

    fn emit(&self, event: LinkEvent) {
        self.shared.events.emit(event);
    }

    /// New submits wait while a resubmission is due (those go first), while a suspect waits to
    /// go out alone or is out alone, and while the pacer holds sends back.
    fn can_take_new(&self, now: Instant) -> bool {
        self.closing.is_none()
            && self.probe.is_none()
            && self
                .retry
                .front()
                .is_none_or(|(at, p)| !p.suspect && *at > now)
            && self.shared.pacer.ready_at(now).is_none()
    }

    /// Whether the next retry waits for the window to empty (a suspect goes alone), in which
    /// case only a response or a request's timer can move it.
    fn retry_waits_for_window(&self) -> bool {
        self.retry
            .front()
            .is_some_and(|(_, p)| p.suspect && (!self.window.is_empty() || self.probe.is_some()))
    }

    fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let heartbeat = match self.heartbeat.outstanding {
            Some((_, deadline)) => deadline,
            None => self.last_rx + self.config().heartbeat_idle,
        };
        // Pacing only matters when something is ready to go but held back.
        let paced = self.shared.pacer.ready_at(now);
        let retry = self
            .retry
            .front()
            .filter(|_| !self.retry_waits_for_window())
            .map(|(at, _)| paced.map_or(*at, |p| p.max(*at)));
        [
            Some(heartbeat),
            // The connection ends when its slot's lease could have, even with nothing to write.
            self.config().fence.as_ref().and_then(|f| f.deadline()),
            self.window.next_deadline(),
            retry,
            paced,
            self.closing,
            self.terminate.map(|(_, at)| at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn write(&mut self, sequence_id: u32, pdu: &Pdu) {
        // Our own responses and control PDUs always encode; a failure here is a bug worth a line.
        if let Err(e) = encode_pdu(sequence_id, pdu, self.config().version, &mut self.out) {
            tracing::error!(command = %pdu.command_id(), error = %e, "cannot encode PDU");
        }
    }

    async fn flush(&mut self) -> Result<(), DisconnectReason> {
        if self.out.is_empty() {
            return Ok(());
        }
        // Checked at the last moment before the bytes go out: a process paused after it built
        // them must not send them once another instance may hold the slot.
        if self.config().fence.as_ref().is_some_and(|f| !f.is_open()) {
            self.out.clear();
            return Err(DisconnectReason::LeaseLost);
        }
        let limit = self.config().response_timeout;
        match timeout(limit, self.writer.write_all(&self.out)).await {
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed");
                Err(DisconnectReason::Io)
            }
            Err(_) => Err(DisconnectReason::WriteStalled),
        }
    }

    /// Sends what is buffered (a TERMINATE_RESP, say) before giving `reason` back.
    async fn flush_then(&mut self, reason: DisconnectReason) -> DisconnectReason {
        match self.flush().await {
            Ok(()) => reason,
            Err(write_reason) if reason == DisconnectReason::Shutdown => write_reason,
            Err(_) => reason,
        }
    }

    fn next_sequence_id(&mut self) -> u32 {
        let window = &self.window;
        self.shared.sequence.next(|id| window.contains(id))
    }

    // ---- sending ------------------------------------------------------------------------

    fn send_new(&mut self, pending: Pending) {
        self.send_pending(pending);
        // Take whatever else is queued while the pacer allows, so one write carries a burst.
        let now = Instant::now();
        for _ in 1..BATCH {
            if !self.can_take_new(now) {
                break;
            }
            match self.shared.commands.try_recv() {
                Ok(pending) => {
                    self.send_pending(pending);
                }
                Err(_) => break,
            }
        }
    }

    /// Puts `pending` on the wire; returns its Sequence_Id, `None` if it cannot be encoded.
    fn send_pending(&mut self, pending: Pending) -> Option<u32> {
        let now = Instant::now();
        let sequence_id = self.next_sequence_id();
        if let Err(e) = encode_pdu(
            sequence_id,
            &pending.pdu,
            self.config().version,
            &mut self.out,
        ) {
            pending.finish(Err(SubmitError::Encode(e)));
            return None;
        }
        self.shared.pacer.on_send(now);
        let command = pending.pdu.command_id();
        let deadline = now + self.config().response_timeout;
        let sends = pending.unanswered_sends + 1;
        self.window.insert(
            sequence_id,
            Sent {
                pending,
                sends,
                sent_at: now,
            },
            deadline,
        );
        self.emit(LinkEvent::RequestSent {
            command,
            retransmit: sends > 1,
        });
        self.emit(LinkEvent::InFlight {
            count: self.window.len(),
        });
        Some(sequence_id)
    }

    fn send_heartbeat(&mut self, now: Instant) {
        let sequence_id = self.next_sequence_id();
        self.write(sequence_id, &Pdu::ActiveTest);
        self.heartbeat.outstanding = Some((sequence_id, now + self.config().response_timeout));
        self.emit(LinkEvent::HeartbeatSent);
    }

    // ---- timers -------------------------------------------------------------------------

    fn on_timers(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        if self.config().fence.as_ref().is_some_and(|f| !f.is_open()) {
            return Err(DisconnectReason::LeaseLost);
        }
        self.expire_requests(now);
        self.resubmit_due(now);
        self.check_heartbeat(now)?;
        self.progress_close(now)
    }

    /// No response within T: send the identical PDU again, or give up after N sends.
    fn expire_requests(&mut self, now: Instant) {
        let (max_sends, t) = (self.config().max_sends, self.config().response_timeout);
        while let Some((sequence_id, mut sent)) = self.window.pop_expired(now) {
            let command = sent.pending.pdu.command_id();
            // Unanswered but the connection lives: not what the peer chokes on, so it stops
            // holding everything else back.
            if self.probe == Some(sequence_id) {
                self.probe = None;
                sent.pending.suspect = false;
            }
            if sent.sends < max_sends {
                sent.sends += 1;
                sent.sent_at = now;
                self.write(sequence_id, &sent.pending.pdu);
                self.window.insert(sequence_id, sent, now + t);
                self.emit(LinkEvent::RequestSent {
                    command,
                    retransmit: true,
                });
            } else {
                tracing::debug!(sequence_id, sends = sent.sends, "request timed out");
                self.emit(LinkEvent::RequestTimeout { command });
                sent.pending.finish(Err(SubmitError::Timeout {
                    sequence_id,
                    sends: sent.sends,
                    timeout: t,
                }));
                self.emit(LinkEvent::InFlight {
                    count: self.window.len(),
                });
            }
        }
    }

    /// Flow-controlled segments go out again, as new requests, once their pause is over; what a
    /// dropped connection left goes out first, each suspect alone.
    fn resubmit_due(&mut self, now: Instant) {
        if self.closing.is_some() {
            return;
        }
        while self.retry.front().is_some_and(|(at, _)| *at <= now)
            && self.shared.pacer.ready_at(now).is_none()
            && self.probe.is_none()
            && !self.retry_waits_for_window()
        {
            let Some((_, pending)) = self.retry.pop_front() else {
                break;
            };
            let alone = pending.suspect;
            let sequence_id = self.send_pending(pending);
            if alone {
                self.probe = sequence_id;
            }
        }
    }

    fn check_heartbeat(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        match self.heartbeat.outstanding {
            Some((_, deadline)) if now >= deadline => {
                self.heartbeat.misses += 1;
                self.emit(LinkEvent::HeartbeatMissed);
                tracing::debug!(misses = self.heartbeat.misses, "ACTIVE_TEST unanswered");
                if self.heartbeat.misses >= self.config().heartbeat_misses {
                    return Err(DisconnectReason::HeartbeatLost);
                }
                self.send_heartbeat(now);
            }
            None if now >= self.last_rx + self.config().heartbeat_idle => self.send_heartbeat(now),
            _ => {}
        }
        Ok(())
    }

    fn begin_close(&mut self, now: Instant) {
        if self.closing.is_none() {
            self.closing = Some(now + self.config().close_timeout);
            // Segments waiting to be resubmitted are not sent any more.
            for (_, pending) in self.retry.drain(..) {
                pending.finish(Err(SubmitError::Closed));
            }
        }
    }

    /// Once the window is empty (or the deadline passed) send TERMINATE; end when it is answered
    /// or after T.
    fn progress_close(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        let Some(deadline) = self.closing else {
            return Ok(());
        };
        match self.terminate {
            None if self.window.is_empty() || now >= deadline => {
                self.give_back_everything_waiting();
                let sequence_id = self.next_sequence_id();
                self.write(sequence_id, &Pdu::Terminate);
                let wait = self
                    .config()
                    .response_timeout
                    .min(self.config().close_timeout);
                self.terminate = Some((sequence_id, now + wait));
                Ok(())
            }
            Some((_, until)) if now >= until => Err(DisconnectReason::Shutdown),
            _ => Ok(()),
        }
    }

    // ---- receiving ----------------------------------------------------------------------

    fn on_frame(
        &mut self,
        frame: Option<Result<Lenient, CodecError>>,
    ) -> Result<(), DisconnectReason> {
        self.on_one_frame(frame)?;
        // Drain whatever else is already readable before writing.
        for _ in 1..BATCH {
            match self.reader.next().now_or_never() {
                Some(frame) => self.on_one_frame(frame)?,
                None => break,
            }
        }
        Ok(())
    }

    fn on_one_frame(
        &mut self,
        frame: Option<Result<Lenient, CodecError>>,
    ) -> Result<(), DisconnectReason> {
        match frame {
            None => Err(DisconnectReason::PeerClosed),
            Some(Err(CodecError::Io(e))) => {
                tracing::debug!(error = %e, "read failed");
                Err(DisconnectReason::Io)
            }
            Some(Err(e)) => {
                tracing::warn!(addr = %self.config().addr, error = %e, "bytes from the ISMG that cannot be framed; resetting the connection");
                self.emit(LinkEvent::MalformedPdu);
                Err(DisconnectReason::Malformed)
            }
            Some(Ok(Lenient::Exact(packet))) => self.on_packet(packet),
            Some(Ok(Lenient::Tolerated(packet, anomaly))) => {
                self.note_anomaly(anomaly.kind(), || anomaly.to_string());
                self.on_packet(packet)
            }
            Some(Ok(Lenient::Undecodable(raw))) => {
                self.on_undecodable(raw);
                Ok(())
            }
        }
    }

    /// Counts an anomaly; the first of each kind on a connection also gets a log line.
    fn note_anomaly(&mut self, kind: &'static str, describe: impl FnOnce() -> String) {
        self.emit(LinkEvent::ProtocolAnomaly { kind });
        if !self.logged.contains(&kind) {
            self.logged.push(kind);
            tracing::warn!(addr = %self.config().addr, kind, what = %describe(), "the ISMG sent a PDU that is not as the spec says; read it anyway (further ones on this connection are only counted)");
        }
    }

    /// Any PDU proves the peer alive; returns the ACTIVE_TEST it may answer.
    fn on_traffic(&mut self) -> Option<(u32, Instant)> {
        self.last_rx = Instant::now();
        self.heartbeat.misses = 0;
        self.heartbeat.outstanding.take()
    }

    /// A frame whose body no reading fits, handled by its header.
    fn on_undecodable(&mut self, raw: Undecodable) {
        self.on_traffic();
        let command = raw.header.command_id;
        let sequence_id = raw.header.sequence_id;
        self.note_anomaly("undecodable_body", || {
            format!("{command} {}: {}", sequence_id, raw.error)
        });
        match command {
            CommandId::Deliver => {
                let deliver = undecodable_deliver(self.config().version, raw);
                self.hand_up(
                    sequence_id,
                    Delivered::Undecodable(deliver),
                    deliver_result::BAD_STRUCTURE,
                );
            }
            // We serve no SUBMIT; an answer stops a peer from resending it.
            CommandId::Submit => self.write(
                sequence_id,
                &Pdu::SubmitResp(SubmitResp {
                    msg_id: MsgId(0),
                    result: submit_result::BAD_STRUCTURE,
                }),
            ),
            // A response we cannot read: its request stays in the window and is resent after T,
            // within its N sends. Anything else: skipped by its length.
            _ => {}
        }
    }

    fn on_packet(&mut self, packet: Packet) -> Result<(), DisconnectReason> {
        let now = Instant::now();
        let answered_heartbeat = self.on_traffic();
        let sequence_id = packet.sequence_id;
        match packet.pdu {
            Pdu::SubmitResp(resp) => self.on_submit_resp(sequence_id, resp, now),
            Pdu::Deliver(deliver) => self.on_deliver(sequence_id, deliver),
            Pdu::ActiveTest => {
                self.write(sequence_id, &Pdu::ActiveTestResp(ActiveTestResp::default()));
                self.emit(LinkEvent::PeerHeartbeatAnswered);
            }
            Pdu::ActiveTestResp(_)
                if answered_heartbeat.is_some_and(|(seq, _)| seq == sequence_id) =>
            {
                self.emit(LinkEvent::HeartbeatAnswered);
            }
            Pdu::Terminate => {
                tracing::info!("ISMG sent TERMINATE; answering and reconnecting");
                self.write(sequence_id, &Pdu::TerminateResp);
                return Err(DisconnectReason::PeerTerminated);
            }
            Pdu::TerminateResp if self.terminate.is_some_and(|(seq, _)| seq == sequence_id) => {
                return Err(DisconnectReason::Shutdown);
            }
            Pdu::Submit(_) => {
                tracing::debug!(sequence_id, "the ISMG sent a SUBMIT; answering Result 2");
                self.emit(LinkEvent::UnexpectedPdu {
                    command: CommandId::Submit,
                });
                let resp = SubmitResp {
                    msg_id: MsgId(0),
                    result: submit_result::BAD_COMMAND,
                };
                self.write(sequence_id, &Pdu::SubmitResp(resp));
            }
            other => {
                let command = other.command_id();
                tracing::debug!(%command, sequence_id, "PDU nobody waits for");
                self.emit(LinkEvent::UnexpectedPdu { command });
            }
        }
        Ok(())
    }

    fn on_submit_resp(&mut self, sequence_id: u32, resp: SubmitResp, now: Instant) {
        // After a resend, Result 3 (duplicate Sequence_Id) means the first copy arrived: keep
        // waiting for its response instead of failing.
        let duplicate_of_resend = resp.result == submit_result::DUPLICATE_SEQUENCE
            && self.window.get(sequence_id).is_some_and(|s| s.sends > 1);
        if duplicate_of_resend {
            return;
        }
        let Some(sent) = self.window.remove(sequence_id) else {
            self.emit(LinkEvent::UnexpectedPdu {
                command: CommandId::SubmitResp,
            });
            return;
        };
        let rtt = now.saturating_duration_since(sent.sent_at);
        self.emit(LinkEvent::Response {
            command: CommandId::SubmitResp,
            rtt,
            result: resp.result,
        });
        self.emit(LinkEvent::InFlight {
            count: self.window.len(),
        });
        let mut pending = sent.pending;
        match resp.result {
            submit_result::OK => {
                self.shared.pacer.on_accept(now, rtt);
                let accepted = SubmitAccepted {
                    msg_id: resp.msg_id,
                    sequence_id,
                    sends: sent.sends,
                    flow_control_retries: pending.flow_control_attempts,
                    rtt,
                };
                pending.finish(Ok(accepted));
            }
            submit_result::FLOW_CONTROL => {
                self.emit(LinkEvent::FlowControl);
                self.shared.pacer.on_flow_control(now, rtt);
                pending.flow_control_attempts += 1;
                // Answered: whatever its sends before, it is neither unconfirmed nor a suspect.
                pending.unanswered_sends = 0;
                pending.suspect = false;
                if pending.flow_control_attempts > self.config().flow_control_retries {
                    let attempts = pending.flow_control_attempts;
                    pending.finish(Err(SubmitError::FlowControlExhausted { attempts }));
                } else if self.closing.is_some() {
                    pending.finish(Err(SubmitError::Closed));
                } else {
                    let at = now
                        + self
                            .shared
                            .pacer
                            .resubmit_pause(pending.flow_control_attempts);
                    // Kept in due order; suspects (due at once) stay ahead.
                    let place = self.retry.partition_point(|(due, _)| *due <= at);
                    self.retry.insert(place, (at, pending));
                }
            }
            result => pending.finish(Err(SubmitError::Rejected {
                result,
                meaning: submit_result::describe(result),
            })),
        }
    }

    fn on_deliver(&mut self, sequence_id: u32, deliver: Deliver) {
        self.emit(LinkEvent::DeliverReceived {
            report: deliver.is_report(),
        });
        self.hand_up(sequence_id, Delivered::Decoded(deliver), deliver_result::OK);
    }

    /// Passes a DELIVER to the caller, whose ack answers `result` once it is stored.
    fn hand_up(&mut self, sequence_id: u32, deliver: Delivered, result: u32) {
        let msg_id = deliver.msg_id();
        let ack = DeliverAck {
            message: Some(AckMessage {
                connection: self.shared.connection_id,
                sequence_id,
                msg_id,
                result,
            }),
            tx: self.shared.acks_tx.clone(),
        };
        if let Err(e) = self.shared.inbound.try_send(Inbound { deliver, ack }) {
            // The caller is behind (or gone): refuse with flow control so the ISMG resends later,
            // rather than blocking the socket or dropping the message.
            tracing::debug!(error = %e, "DELIVER queue full; answering Result 8");
            self.emit(LinkEvent::DeliverRefused);
            let resp = DeliverResp {
                msg_id,
                result: submit_result::FLOW_CONTROL,
            };
            // The ack inside the returned value is dropped unanswered: no second response.
            self.write(sequence_id, &Pdu::DeliverResp(resp));
        }
    }

    fn on_ack(&mut self, first: AckMessage) {
        // `DeliverAck::confirm` answers the Result chosen when the DELIVER was handed up.
        let mut next = Some(first);
        let mut answered = 0;
        while let Some(ack) = next {
            // An answer for a DELIVER of an older connection has no one to go to; the ISMG resends.
            if ack.connection == self.shared.connection_id {
                let resp = DeliverResp {
                    msg_id: ack.msg_id,
                    result: ack.result,
                };
                self.write(ack.sequence_id, &Pdu::DeliverResp(resp));
            }
            answered += 1;
            next = if answered < BATCH {
                self.shared.acks_rx.try_recv().ok()
            } else {
                None
            };
        }
    }

    /// Closing for good: every request still waiting goes back to its caller.
    fn give_back_everything_waiting(&mut self) {
        for (sequence_id, sent) in self.window.drain() {
            sent.pending.finish(Err(SubmitError::LinkLost {
                sequence_id: Some(sequence_id),
            }));
        }
        for (_, pending) in self.retry.drain(..) {
            pending.finish(Err(SubmitError::LinkLost { sequence_id: None }));
        }
        self.emit(LinkEvent::InFlight { count: 0 });
    }

    /// The connection dropped: what it left unanswered goes to the next one as suspects, with
    /// their sends counted, and a suspect that was alone on the wire is blamed.
    fn hand_over_to_next_connection(&mut self, reason: DisconnectReason) {
        // We stalled or stopped, not the peer: nobody to blame.
        let blame = match reason {
            DisconnectReason::WriteStalled | DisconnectReason::Shutdown => None,
            _ => self.probe,
        };
        let unanswered: Vec<_> = self.window.drain().collect();
        for (sequence_id, sent) in unanswered {
            let mut pending = sent.pending;
            pending.unanswered_sends = sent.sends;
            pending.suspect = true;
            if blame == Some(sequence_id) {
                pending.blamed += 1;
            }
            self.shared.keep_for_next_connection(pending);
        }
        for (_, pending) in self.retry.drain(..) {
            self.shared.keep_for_next_connection(pending);
        }
        self.emit(LinkEvent::InFlight { count: 0 });
    }
}

/// What can be read of a DELIVER whose body does not decode: its Msg_Id (the first eight bytes)
/// for the answer, and Registered_Delivery where the body reaches it.
fn undecodable_deliver(version: Version, raw: Undecodable) -> UndecodableDeliver {
    let mut id = [0u8; 8];
    let n = raw.body.len().min(8);
    id[..n].copy_from_slice(&raw.body[..n]);
    // Msg_Id, Dest_Id, Service_Id, TP_pid, TP_udhi, Msg_Fmt, Src_terminal_Id (+ its type in 3.0).
    let registered_delivery_at = match version {
        Version::V20 => 8 + 21 + 10 + 3 + 21,
        Version::V30 => 8 + 21 + 10 + 3 + 32 + 1,
    };
    UndecodableDeliver {
        msg_id: MsgId(u64::from_be_bytes(id)),
        report: raw.body.get(registered_delivery_at).map(|&rd| rd == 1),
        reason: raw.error.to_string(),
        body: raw.body,
    }
}
