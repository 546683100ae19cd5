//! One logged-in TCP connection: a single `select!` over the socket, new submits, answers to
//! DELIVERs, timers and shutdown. It owns the window; when it ends, every request still waiting
//! goes back to its caller as retryable, so nothing is lost with the connection.

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

use super::codec::{CmppCodec, CodecError};
use super::config::LinkConfig;
use super::error::SubmitError;
use super::events::{DisconnectReason, LinkEvent, LinkObserver};
use super::inbound::{AckMessage, DeliverAck, Inbound};
use super::login::Transport;
use super::pacer::Pacer;
use super::stats::LinkStats;
use super::window::{Pending, Sent, SequenceIds, SubmitAccepted, Window};
use crate::protocol::{
    ActiveTestResp, CommandId, Deliver, DeliverResp, Packet, Pdu, SubmitResp, deliver_result,
    encode_pdu, submit_result,
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
}

/// The ACTIVE_TEST we are waiting on, if any.
#[derive(Debug, Default)]
struct Heartbeat {
    outstanding: Option<(u32, Instant)>,
    misses: u32,
}

pub(crate) struct Connection<'a> {
    shared: &'a mut Shared,
    reader: FramedRead<OwnedReadHalf, CmppCodec>,
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
    early: Vec<Result<Packet, CodecError>>,
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
        Connection {
            shared,
            reader,
            writer,
            out: BytesMut::with_capacity(8 * 1024),
            window: Window::default(),
            retry: VecDeque::new(),
            heartbeat: Heartbeat::default(),
            last_rx: Instant::now(),
            closing: None,
            terminate: None,
            early,
        }
    }

    /// Runs until the connection ends; returns why.
    pub(crate) async fn run(mut self) -> DisconnectReason {
        let reason = self.serve().await;
        self.fail_everything_waiting();
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

    fn can_take_new(&self, now: Instant) -> bool {
        self.closing.is_none() && self.retry.is_empty() && self.shared.pacer.ready_at(now).is_none()
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
            .map(|(at, _)| paced.map_or(*at, |p| p.max(*at)));
        [
            Some(heartbeat),
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
                Ok(pending) => self.send_pending(pending),
                Err(_) => break,
            }
        }
    }

    fn send_pending(&mut self, pending: Pending) {
        let now = Instant::now();
        let sequence_id = self.next_sequence_id();
        if let Err(e) = encode_pdu(
            sequence_id,
            &pending.pdu,
            self.config().version,
            &mut self.out,
        ) {
            pending.finish(Err(SubmitError::Encode(e)));
            return;
        }
        self.shared.pacer.on_send(now);
        let command = pending.pdu.command_id();
        let deadline = now + self.config().response_timeout;
        self.window.insert(
            sequence_id,
            Sent {
                pending,
                sends: 1,
                sent_at: now,
            },
            deadline,
        );
        self.emit(LinkEvent::RequestSent {
            command,
            retransmit: false,
        });
        self.emit(LinkEvent::InFlight {
            count: self.window.len(),
        });
    }

    fn send_heartbeat(&mut self, now: Instant) {
        let sequence_id = self.next_sequence_id();
        self.write(sequence_id, &Pdu::ActiveTest);
        self.heartbeat.outstanding = Some((sequence_id, now + self.config().response_timeout));
        self.emit(LinkEvent::HeartbeatSent);
    }

    // ---- timers -------------------------------------------------------------------------

    fn on_timers(&mut self, now: Instant) -> Result<(), DisconnectReason> {
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

    /// Flow-controlled segments go out again, as new requests, once the pause is over.
    fn resubmit_due(&mut self, now: Instant) {
        if self.closing.is_some() {
            return;
        }
        while self.retry.front().is_some_and(|(at, _)| *at <= now)
            && self.shared.pacer.ready_at(now).is_none()
        {
            if let Some((_, pending)) = self.retry.pop_front() {
                self.send_pending(pending);
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
            // Segments waiting out a flow-control pause are not sent any more.
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
                self.fail_everything_waiting();
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
        frame: Option<Result<Packet, CodecError>>,
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
        frame: Option<Result<Packet, CodecError>>,
    ) -> Result<(), DisconnectReason> {
        match frame {
            None => Err(DisconnectReason::PeerClosed),
            Some(Err(CodecError::Io(e))) => {
                tracing::debug!(error = %e, "read failed");
                Err(DisconnectReason::Io)
            }
            Some(Err(e)) => {
                tracing::warn!(addr = %self.config().addr, error = %e, "malformed PDU from the ISMG; dropping the connection");
                self.emit(LinkEvent::MalformedPdu);
                Err(DisconnectReason::Malformed)
            }
            Some(Ok(packet)) => self.on_packet(packet),
        }
    }

    fn on_packet(&mut self, packet: Packet) -> Result<(), DisconnectReason> {
        let now = Instant::now();
        self.last_rx = now;
        // Any PDU proves the peer alive.
        let answered_heartbeat = self.heartbeat.outstanding.take();
        self.heartbeat.misses = 0;
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
                self.shared.pacer.on_accept(now);
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
                self.shared.pacer.on_flow_control(now);
                pending.flow_control_attempts += 1;
                if pending.flow_control_attempts > self.config().flow_control_retries {
                    let attempts = pending.flow_control_attempts;
                    pending.finish(Err(SubmitError::FlowControlExhausted { attempts }));
                } else if self.closing.is_some() {
                    pending.finish(Err(SubmitError::Closed));
                } else {
                    let at = self.shared.pacer.ready_at(now).unwrap_or(now);
                    self.retry.push_back((at, pending));
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
        let msg_id = deliver.msg_id;
        let ack = DeliverAck {
            message: Some(AckMessage {
                connection: self.shared.connection_id,
                sequence_id,
                msg_id,
                result: deliver_result::OK,
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

    /// Every request still waiting goes back to its caller as retryable.
    fn fail_everything_waiting(&mut self) {
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
}
